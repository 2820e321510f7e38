-- Tenants are isolated by grants: a role granted acme cannot use globex.
CREATE TABLE shared_secrets (tenant text, name text, value bytea);
GRANT SELECT, INSERT ON shared_secrets TO PUBLIC;
SET ROLE regress_app_a;
INSERT INTO shared_secrets VALUES ('acme', 'db', pq_encrypt('acme', 'a-secret', 'db'));
SELECT pq_decrypt_text(value, name) FROM shared_secrets WHERE tenant = 'acme';
SELECT try($$ SELECT pq_encrypt('globex', 'x') $$);
SELECT try($$ SELECT pq_sign('globex', 'm') $$);
RESET ROLE;
SET ROLE regress_app_b;
INSERT INTO shared_secrets VALUES ('globex', 'db', pq_encrypt('globex', 'b-secret', 'db'));
-- B cannot open A's ciphertext; neither the error nor pq_inspect names A's tenant to B.
SELECT try($$ SELECT pq_decrypt_text(value, name) FROM shared_secrets WHERE tenant = 'acme' $$);
SELECT pq_inspect(value) ? 'tenant' AS names_tenant FROM shared_secrets WHERE tenant = 'acme';
SELECT pq_inspect(value)->>'tenant' FROM shared_secrets WHERE tenant = 'globex';
-- B sees only its own tenant: an existing and an unknown tenant give the same error.
SELECT tenant, version FROM pq.tenant_keys ORDER BY tenant;
SELECT try($$ SELECT pq_encrypt('acme', 'x') $$) AS forbidden,
       try($$ SELECT pq_encrypt('no-such-tenant', 'x') $$) AS unknown;
SELECT try($$ SELECT pq.tenant_public_key('acme') $$) AS forbidden,
       try($$ SELECT pq.tenant_public_key('no-such-tenant') $$) AS unknown;
SELECT length(pq.tenant_public_key('globex')) AS own_public_key;
SELECT pq.tenant_visible('acme') AS sees_acme, pq.tenant_visible('globex') AS sees_globex;
-- B cannot read the key tables, nor administer keys.
SELECT try($$ SELECT * FROM pq.tenant_key_versions $$);
SELECT try($$ SELECT * FROM pq.master_keys $$);
SELECT try($$ SELECT pq.create_tenant('b-corp') $$);
RESET ROLE;
-- pq_admin members see every tenant, and get 42704 for an unknown one; using
-- a tenant's keys still takes a grant.
SET ROLE regress_admin;
SELECT DISTINCT tenant FROM pq.tenant_keys ORDER BY tenant;
SELECT try($$ SELECT pq.tenant_public_key('no-such-tenant') $$);
SELECT length(pq.tenant_public_key('acme')) AS any_public_key;
RESET ROLE;
-- A role with no grant and no pq_user membership may not call the tenant functions at all.
SET ROLE regress_nobody;
SELECT try($$ SELECT pq_encrypt('acme', 'x') $$);
-- Raw-key functions are open to everyone.
SELECT pq_verify_with(public_key, 'm', pq_sign_with(secret_key, 'm')) FROM pq_generate_keypair('ml-dsa-65');
RESET ROLE;
-- pq_admin members administer; a grant, once revoked, is gone in this session too.
SET ROLE regress_admin;
SELECT tenant, version FROM pq.create_tenant('initech');
SELECT pq.grant_tenant('initech', 'regress_app_a');
RESET ROLE;
SET ROLE regress_app_a;
SELECT pq_decrypt_text(pq_encrypt('initech', 'i-secret')) AS granted;
RESET ROLE;
SELECT pq.revoke_tenant('initech', 'regress_app_a');
SELECT pq.revoke_tenant('initech', 'regress_app_a') AS revoked_twice;
SET ROLE regress_app_a;
SELECT try($$ SELECT pq_encrypt('initech', 'x') $$);
RESET ROLE;
-- Membership counts: a member of a granted role may use the tenant.
CREATE ROLE regress_app_a_member NOLOGIN IN ROLE regress_app_a;
SET ROLE regress_app_a_member;
SELECT pq_decrypt_text(pq_encrypt('acme', 'via membership')) AS member;
RESET ROLE;
-- Grants are kept by role OID: a new role with a dropped role's name does
-- not inherit its grant.
CREATE ROLE regress_reborn NOLOGIN IN ROLE pq_user;
SELECT pq.grant_tenant('acme', 'regress_reborn');
SET ROLE regress_reborn;
SELECT length(pq_encrypt('acme', 'x')) > 0 AS granted;
RESET ROLE;
DROP ROLE regress_reborn;
CREATE ROLE regress_reborn NOLOGIN IN ROLE pq_user;
SET ROLE regress_reborn;
SELECT try($$ SELECT pq_encrypt('acme', 'x') $$) AS reborn;
RESET ROLE;
-- The stale grant is shown by OID and can be revoked by the old name.
SELECT role::oid <> 'regress_reborn'::regrole::oid AS stale_oid, role_name FROM pq.tenant_grants WHERE role_name = 'regress_reborn';
SELECT pq.revoke_tenant('acme', 'regress_reborn') AS revoked_stale;
DROP ROLE regress_reborn;
-- Renaming a granted role suspends its grant until it is granted again.
CREATE ROLE regress_renamed NOLOGIN IN ROLE pq_user;
SELECT pq.grant_tenant('acme', 'regress_renamed');
ALTER ROLE regress_renamed RENAME TO regress_renamed2;
SET ROLE regress_renamed2;
SELECT try($$ SELECT pq_encrypt('acme', 'x') $$) AS renamed;
RESET ROLE;
SELECT pq.grant_tenant('acme', 'regress_renamed2') AS granted_again;
SET ROLE regress_renamed2;
SELECT length(pq_encrypt('acme', 'x')) > 0 AS works_again;
RESET ROLE;
SELECT pq.revoke_tenant('acme', 'regress_renamed2');
DROP ROLE regress_renamed2;
DROP TABLE shared_secrets;
