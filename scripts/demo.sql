\pset footer off
\set VERBOSITY default
\echo '== 1. Install the extension and create a tenant (ML-KEM-768 + ML-DSA-65 keys, a DEK)'
CREATE EXTENSION apg_pqcrypto;
SELECT tenant, version, encode(kid, 'hex') AS kid FROM pq.create_tenant('acme');
SELECT tenant, version, state, encode(kid, 'hex') AS kid, length(public_key) AS ek_bytes
  FROM pq.tenant_keys;

\echo '== 2. Encrypt a configuration value bound to its key name, store it, read it back'
CREATE TABLE app_config (name text PRIMARY KEY, value pq_envelope NOT NULL);
INSERT INTO app_config VALUES
  ('database_url', pq_encrypt('acme', 'postgres://app:s3cret@db.internal/app', 'database_url')),
  ('smtp_password', pq_encrypt('acme', 'hunter2', 'smtp_password'));
SELECT name, length(value) AS envelope_bytes, left(encode(value, 'hex'), 36) || '…' AS stored
  FROM app_config ORDER BY name;
SELECT name, pq_decrypt_text(value, name) AS plaintext FROM app_config ORDER BY name;

\echo '== 3. The same ciphertext under another key name does not decrypt (SQLSTATE PQ001)'
\set ON_ERROR_STOP 0
SELECT pq_decrypt_text(value, 'database_url') FROM app_config WHERE name = 'smtp_password';
\echo '   and a non-envelope is refused at INSERT (SQLSTATE 22023):'
INSERT INTO app_config VALUES ('api_key', convert_to('plaintext by mistake', 'UTF8'));
\set ON_ERROR_STOP 1

\echo '== 4. A client seals with the tenant public key; pq_unseal opens it'
\echo '   (sealed envelopes are confidential but anyone with the public key can make one,'
\echo '    so pq_decrypt, which opens only what the server made, refuses them: SQLSTATE 22023)'
SELECT pq_unseal_text(pq_seal(pq.tenant_public_key('acme'), 'sk_live_from_a_client', 'api_key'), 'api_key') AS opened;
\set ON_ERROR_STOP 0
SELECT pq_decrypt_text(pq_seal(pq.tenant_public_key('acme'), 'planted by a writer', 'api_key'), 'api_key');
\set ON_ERROR_STOP 1

\echo '== 5. Sign and verify a configuration snapshot (ML-DSA-65)'
SELECT length(pq_sign('acme', 'config v42')) AS signature_envelope_bytes,
       pq_verify('acme', 'config v42', pq_sign('acme', 'config v42')) AS valid,
       pq_verify('acme', 'config v43', pq_sign('acme', 'config v42')) AS tampered;

\echo '== 6. pq_inspect: what an envelope is, never what it holds'
SELECT name, jsonb_pretty(pq_inspect(value)) AS inspect FROM app_config WHERE name = 'database_url';

\echo '== 7. Tenants are isolated: a role granted acme cannot use globex, nor see it (SQLSTATE 42501)'
SELECT tenant FROM pq.create_tenant('globex');
CREATE ROLE demo_app NOLOGIN IN ROLE pq_user;
SELECT pq.grant_tenant('acme', 'demo_app');
GRANT SELECT ON app_config TO demo_app;
SET ROLE demo_app;
SELECT pq_decrypt_text(value, name) AS as_demo_app FROM app_config WHERE name = 'database_url';
SELECT tenant, version FROM pq.tenant_keys;
\set ON_ERROR_STOP 0
SELECT pq_encrypt('globex', 'not mine');
SELECT pq_encrypt('no-such-tenant', 'same error as a forbidden tenant');
\set ON_ERROR_STOP 1
RESET ROLE;

\echo '== 8. Rotate the tenant key: new values use version 2, old ones still decrypt'
SELECT success, new_version, old_key_archived FROM pq.rotate_tenant_key('acme', 'demo rotation');
SELECT name, pq_inspect(value)->>'key_version' AS stored_under, pq_decrypt_text(value, name) AS plaintext
  FROM app_config ORDER BY name;

\echo '== 9. The background worker re-encrypts the stored values under version 2'
SELECT pq.track_column('app_config', 'value', tenant => 'acme', aad_column => 'name') AS tracked;
SELECT pq.reencrypt('app_config', 'value') AS job \gset
DO $$ BEGIN
  FOR i IN 1..100 LOOP
    EXIT WHEN (SELECT state FROM pq.jobs ORDER BY id DESC LIMIT 1) = 'completed';
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT id, state, rows_done, rows_failed, percent FROM pq.jobs WHERE id = :job;
SELECT tenant, version, state, table_name, column_name, ciphertexts FROM pq.key_usage;
SELECT event, version, actor FROM pq.key_events WHERE tenant = 'acme' ORDER BY id;

\echo '== 10. Move the master key from the key file into an HSM (a SoftHSM2 token), in one transaction'
SELECT state, provider, answered FROM pq.master_key_status();
SELECT provider, key_ref, versions_rewrapped FROM pq.rotate_master_key('pkcs11');
SELECT state, provider, answered FROM pq.master_key_status();
\c
SELECT name, pq_decrypt_text(value, name) AS plaintext_after_the_move FROM app_config ORDER BY name;

\echo '== 11. Migrate a column encrypted with pgcrypto to post-quantum envelopes'
CREATE EXTENSION pgcrypto;
CREATE TABLE legacy_config (name text PRIMARY KEY, value bytea);
INSERT INTO legacy_config VALUES
  ('smtp_password', pgp_sym_encrypt('correct horse battery staple', 'the old passphrase')),
  ('api_token', pgp_sym_encrypt('tok_live_8f2a', 'the old passphrase', 'cipher-algo=aes256')),
  ('webhook_secret', NULL);
SELECT name, pq.classify(value) AS stored_as FROM legacy_config ORDER BY name;
SELECT pq.register_classical_key('acme', 'pgp_sym', 'the old passphrase') AS classical_key \gset
\echo registered classical key :classical_key (stored wrapped under the master data key, never readable back)
SELECT name, pq.decrypt_any_text(value, 'acme') AS read_before FROM legacy_config WHERE value IS NOT NULL ORDER BY name;
SELECT job, rows_migrated, rows_failed, state FROM pq.migrate_column_now('legacy_config', 'value', tenant => 'acme', aad_column => 'name');
SELECT name, pq.classify(value) AS stored_as, pq_decrypt_text(value, name) AS plaintext FROM legacy_config ORDER BY name;
SELECT status, classical_values, rows_migrated FROM pq.migration_status('acme');
SELECT pq.drop_classical_key(:classical_key) AS classical_key_dropped;

\echo '== 12. A signed configuration store and a tamper-evident audit trail'
SELECT pq.config_set('acme', 'db.password', 'hunter2', 'alice') AS version;
SELECT pq.config_set('acme', 'db.password', 'hunter3', 'bob') AS version;
SELECT pq.config_get('acme', 'db.password');
SELECT version, op, user_id, signature_valid, chain_valid FROM pq.config_history('acme', 'db.password');
SELECT tenant, key, current_version, updated_by FROM pq.config;
SELECT id, event, tenant, actor FROM pq.audit_log ORDER BY id DESC LIMIT 5;
SELECT head_id, encode(head_hash, 'hex') AS signed_head FROM pq.audit_checkpoint();
SELECT ok, rows_checked FROM pq.verify_audit_chain();
\echo '   a superuser edits an audit row behind the triggers back; the chain names it:'
SET session_replication_role = replica;
UPDATE pq.audit_log SET actor = 'mallory' WHERE id = 3;
RESET session_replication_role;
SELECT ok, first_bad_id, problem FROM pq.verify_audit_chain();
SELECT pq.flush_counters() >= 0 AS counters_flushed;
SELECT jsonb_pretty(pq.compliance_report('acme') - 'key_rotation_events') AS compliance_report;
