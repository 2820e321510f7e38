-- pq.verify_keys: every stored key version checked end to end; a damaged
-- version is named with what is wrong, never with key material.
SELECT tenant, version FROM pq.create_tenant('verify_t');
SELECT new_version FROM pq.rotate_tenant_key('verify_t', 'verify regress');
SELECT tenant, version, state, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
-- Every version of every tenant of this suite passes.
SELECT count(*) > 0 AS some, bool_and(ok) AS all_ok FROM pq.verify_keys();
-- Damage version 1 in four ways, one at a time, and put it back.
CREATE TEMP TABLE saved AS SELECT * FROM pq.tenant_key_versions WHERE tenant = 'verify_t';
UPDATE pq.tenant_key_versions SET sealed_dek = (SELECT sealed_dek FROM saved WHERE version = 2)
 WHERE tenant = 'verify_t' AND version = 1;
SELECT version, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
UPDATE pq.tenant_key_versions v SET sealed_dek = s.sealed_dek,
       wrapped_dsa_seed = (SELECT wrapped_dsa_seed FROM saved WHERE version = 2)
  FROM saved s WHERE v.tenant = 'verify_t' AND v.version = 1 AND s.version = 1;
SELECT version, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
UPDATE pq.tenant_key_versions v SET wrapped_dsa_seed = s.wrapped_dsa_seed,
       public_key = (SELECT public_key FROM saved WHERE version = 2)
  FROM saved s WHERE v.tenant = 'verify_t' AND v.version = 1 AND s.version = 1;
SELECT version, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
UPDATE pq.tenant_key_versions v SET public_key = s.public_key,
       wrapped_kem_seed = set_byte(s.wrapped_kem_seed, 59, get_byte(s.wrapped_kem_seed, 59) # 255)
  FROM saved s WHERE v.tenant = 'verify_t' AND v.version = 1 AND s.version = 1;
SELECT version, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
UPDATE pq.tenant_key_versions v SET wrapped_kem_seed = s.wrapped_kem_seed
  FROM saved s WHERE v.tenant = 'verify_t' AND v.version = 1 AND s.version = 1;
SELECT version, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
-- A destroyed version passes while it holds no secret.
SELECT pq.destroy_key_version('verify_t', 1, confirm => 'destroy verify_t v1', force => true);
SELECT version, state, ok, problem FROM pq.verify_keys('verify_t') ORDER BY version;
-- pq_admin only; another role gets 42501.
SET ROLE regress_app_a;
SELECT try($$ SELECT * FROM pq.verify_keys() $$) AS not_admin;
RESET ROLE;
SET ROLE regress_admin;
SELECT count(*) = (SELECT count(*) FROM pq.tenant_keys) AS admin_sees_all FROM pq.verify_keys();
RESET ROLE;
