-- Runs after every function exists: the pq_envelope domain, the view of
-- tenant keys, the invalidation triggers and privileges.

CREATE DOMAIN pq_envelope AS bytea CHECK (pq_envelope_check(VALUE));
COMMENT ON DOMAIN pq_envelope IS 'A well-formed apg_pqcrypto v1 envelope; anything else fails with 22023';

-- No secret columns, and only the tenants the caller sees: those it may
-- use (pq_admin members and superusers see all). security_barrier keeps
-- the filter ahead of any function a caller adds to the query.
CREATE VIEW pq.tenant_keys WITH (security_barrier) AS
SELECT tenant, version, state, kid, signing_kid, public_key, verifying_key,
       created_at, activated_at, retired_at
  FROM pq.tenant_key_versions
 WHERE pq.tenant_visible(tenant);
GRANT SELECT ON pq.tenant_keys TO pq_admin, pq_user;

-- Any change to a key table drops every backend's cached keys at commit.
-- Statement triggers, ENABLE ALWAYS, cover our functions, a DBA's edits,
-- pg_restore and TRUNCATE, also under session_replication_role = replica.
-- A logical-replication apply worker fires only row triggers for the rows
-- it applies, so row triggers, ENABLE REPLICA, cover a subscriber: its
-- sessions see revocations and rotations made on the publisher.
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.master_keys
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenant_key_versions
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenant_grants
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation_replica AFTER INSERT OR UPDATE OR DELETE ON pq.master_keys
    FOR EACH ROW EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation_replica AFTER INSERT OR UPDATE OR DELETE ON pq.tenants
    FOR EACH ROW EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation_replica AFTER INSERT OR UPDATE OR DELETE ON pq.tenant_key_versions
    FOR EACH ROW EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation_replica AFTER INSERT OR UPDATE OR DELETE ON pq.tenant_grants
    FOR EACH ROW EXECUTE FUNCTION pq_key_tables_changed();
ALTER TABLE pq.master_keys ENABLE ALWAYS TRIGGER key_cache_invalidation,
                           ENABLE REPLICA TRIGGER key_cache_invalidation_replica;
ALTER TABLE pq.tenants ENABLE ALWAYS TRIGGER key_cache_invalidation,
                       ENABLE REPLICA TRIGGER key_cache_invalidation_replica;
ALTER TABLE pq.tenant_key_versions ENABLE ALWAYS TRIGGER key_cache_invalidation,
                                   ENABLE REPLICA TRIGGER key_cache_invalidation_replica;
ALTER TABLE pq.tenant_grants ENABLE ALWAYS TRIGGER key_cache_invalidation,
                             ENABLE REPLICA TRIGGER key_cache_invalidation_replica;
REVOKE ALL ON FUNCTION pq_key_tables_changed() FROM PUBLIC;

-- Key administration.
REVOKE ALL ON FUNCTION pq.create_tenant(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq.grant_tenant(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq.revoke_tenant(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.create_tenant(text), pq.grant_tenant(text, text),
                          pq.revoke_tenant(text, text) TO pq_admin;

-- Tenant-key functions: pq_user, and a pq.grant_tenant for the tenant.
REVOKE ALL ON FUNCTION pq_encrypt(text, text, text), pq_encrypt(text, bytea, bytea),
                       pq_decrypt(bytea, bytea), pq_decrypt_text(bytea, text),
                       pq_unseal(bytea, bytea), pq_unseal_text(bytea, text),
                       pq_sign(text, bytea, bytea), pq_verify(text, bytea, bytea, bytea)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq_encrypt(text, text, text), pq_encrypt(text, bytea, bytea),
                          pq_decrypt(bytea, bytea), pq_decrypt_text(bytea, text),
                          pq_unseal(bytea, bytea), pq_unseal_text(bytea, text),
                          pq_sign(text, bytea, bytea), pq_verify(text, bytea, bytea, bytea)
    TO pq_user;

-- Tenant public keys: to roles that see the tenant (checked inside).
REVOKE ALL ON FUNCTION pq.tenant_public_key(text), pq.tenant_verifying_key(text), pq.tenant_visible(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.tenant_public_key(text), pq.tenant_verifying_key(text), pq.tenant_visible(text)
    TO pq_admin, pq_user;
