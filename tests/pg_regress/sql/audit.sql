-- The signed configuration store, the audit chain and the counters.
-- (Tenants acme and globex and the regress_* roles come from setup.)

-- The canonical pieces an outside client builds (docs/FORMAT.md §11).
CREATE FUNCTION cfg_str(s text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT int4send(octet_length(s)) || convert_to(s, 'UTF8') $$;
CREATE FUNCTION cfg_aad(t text, k text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT convert_to('apg-pq config v1', 'UTF8') || cfg_str(t) || cfg_str(k) $$;
-- Format 2 (FORMAT.md §11.3): the message ends with the record hash of the
-- key's newest record, the one the value replaces (pq.config_head).
CREATE FUNCTION cfg_sealed_message(t text, k text, env bytea) RETURNS bytea LANGUAGE sql STABLE AS
$$ SELECT cfg_str(t) || cfg_str(k) || sha256(env) || (SELECT record_hash FROM pq.config_head(t, k)) $$;
-- Format 1, before 0.8.0: no longer accepted for new values.
CREATE FUNCTION cfg_sealed_message_v1(t text, k text, env bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT cfg_str(t) || cfg_str(k) || sha256(env) $$;
GRANT EXECUTE ON FUNCTION cfg_str(text), cfg_aad(text, text), cfg_sealed_message(text, text, bytea),
                          cfg_sealed_message_v1(text, text, bytea) TO PUBLIC;

-- An application role granted acme sets, reads, changes and deletes keys.
SET ROLE regress_app_a;
SELECT pq.config_set('acme', 'db.password', 'hunter2', 'alice') AS v1;
SELECT pq.config_set('acme', 'db.password', 'hunter3') AS v2;
SELECT pq.config_set('acme', 'feature.flags', '{"beta": true}', 'bob') AS v1;
SELECT pq.config_get('acme', 'db.password'), pq.config_get('acme', 'feature.flags');
SELECT pq.config_delete('acme', 'feature.flags', 'bob') AS v2;
SELECT try($$ SELECT pq.config_get('acme', 'feature.flags') $$) AS deleted;
SELECT try($$ SELECT pq.config_delete('acme', 'feature.flags') $$) AS deleted_twice;
SELECT pq.config_set('acme', 'feature.flags', '{"beta": false}', 'bob') AS v3;
SELECT version, op, user_id, signer, signature_valid, chain_valid, problem
  FROM pq.config_history('acme', 'db.password');
SELECT version, op, user_id, signature_valid, chain_valid FROM pq.config_history('acme', 'feature.flags');
-- The view shows keys and metadata, never values.
SELECT tenant, key, current_version, deleted, sealed, updated_by, versions FROM pq.config ORDER BY key;
SELECT count(*) AS value_columns FROM information_schema.columns
 WHERE table_schema = 'pq' AND table_name = 'config' AND column_name IN ('value', 'envelope');
SELECT * FROM pq.config_verify('acme');
-- Another tenant's keys are out of reach, and the same error as an unknown tenant.
SELECT try($$ SELECT pq.config_set('globex', 'k', 'v') $$) AS forbidden,
       try($$ SELECT pq.config_set('no-such-tenant', 'k', 'v') $$) AS unknown;
SELECT try($$ SELECT pq.config_get('globex', 'k') $$) AS forbidden;
SELECT try($$ SELECT * FROM pq.config_history('globex', 'k') $$) AS forbidden;
-- Bad names: empty, oversized, control characters; unknown key.
SELECT try($$ SELECT pq.config_set('acme', '', 'v') $$) AS empty_key;
SELECT try($$ SELECT pq.config_set('acme', repeat('k', 256), 'v') $$) AS oversized_key;
SELECT try($$ SELECT pq.config_set('acme', E'a\nb', 'v') $$) AS control_key;
SELECT try($$ SELECT pq.config_set('acme', 'k', 'v', repeat('u', 256)) $$) AS oversized_user;
SELECT try($$ SELECT pq.config_get('acme', 'never.set') $$) AS unknown_key;
-- The audit tables are not the application's to read or write.
SELECT try($$ SELECT * FROM pq.audit_log $$) AS read_audit;
SELECT try($$ SELECT * FROM pq.config_records $$) AS read_records;
SELECT try($$ SELECT * FROM pq.audit_checkpoint() $$) AS checkpoint;
SELECT try($$ SELECT pq.compliance_report('acme') $$) AS report;
RESET ROLE;
-- Nothing was stored by the refused calls.
SELECT key, count(*) FROM pq.config_records GROUP BY key ORDER BY key;

-- The values are keyed envelopes bound to tenant and key: moved to another key, they do not open.
SELECT pq_inspect(envelope)->>'kind' AS kind FROM pq.config_records WHERE key = 'db.password' AND version = 2;
SELECT convert_from(pq_decrypt(envelope, cfg_aad('acme', 'db.password')), 'UTF8') AS opens_with_config_aad
  FROM pq.config_records WHERE key = 'db.password' AND version = 2;
SELECT try(format($$ SELECT pq_decrypt(%L::bytea, %L::bytea) $$, envelope, cfg_aad('acme', 'other.key'))) AS other_key
  FROM pq.config_records WHERE key = 'db.password' AND version = 2;

-- Sealed values: the client seals to the tenant's public key and signs with its own ML-DSA-65 key.
CREATE TEMP TABLE client AS SELECT public_key, secret_key FROM pq_generate_keypair('ml-dsa-65');
CREATE TEMP TABLE stranger AS SELECT public_key, secret_key FROM pq_generate_keypair('ml-dsa-65');
GRANT SELECT ON client, stranger TO PUBLIC;
SELECT try($$ SELECT pq.config_register_signer('acme', 'deployer', (SELECT public_key FROM client)) $$) AS as_superuser;
SELECT try($$ SELECT pq.config_register_signer('acme', 'deployer', (SELECT public_key FROM client)) $$) AS twice;
SELECT try($$ SELECT pq.config_register_signer('acme', 'bad', '\x00'::bytea) $$) AS bad_key;
CREATE TEMP TABLE sealed AS
SELECT pq_seal(pq.tenant_public_key('acme'), convert_to('sealed-secret', 'UTF8'), cfg_aad('acme', 'api.token')) AS env;
GRANT SELECT ON sealed TO PUBLIC;
SET ROLE regress_app_a;
SELECT version, encode(record_hash, 'hex') AS record_hash FROM pq.config_head('acme', 'api.token');
-- A format 1 signature (before 0.8.0) is refused for a new value.
SELECT try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, %L) $$, env,
           pq_sign_with((SELECT secret_key FROM client), cfg_sealed_message_v1('acme', 'api.token', env),
                        convert_to('apg-pq config-sealed v1', 'UTF8')))) AS format_1
  FROM sealed;
CREATE TEMP TABLE signed AS
SELECT env, pq_sign_with((SELECT secret_key FROM client), cfg_sealed_message('acme', 'api.token', env),
                         convert_to('apg-pq config-sealed v2', 'UTF8')) AS sig
  FROM sealed;
SELECT pq.config_set_sealed('acme', 'api.token', env, sig, 'ci') AS v1 FROM signed;
SELECT pq.config_get('acme', 'api.token');
-- The same (envelope, signature) again: its signature bound the record it
-- replaced, which is no longer the newest: a replay is refused.
SELECT try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, %L) $$, env, sig)) AS replay FROM signed;
SELECT pq.config_set('acme', 'api.token', 'server value') AS v2;
SELECT try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, %L) $$, env, sig)) AS replay_later FROM signed;
-- Signed again over the new head, the sealed value goes in.
SELECT pq.config_set_sealed('acme', 'api.token', env,
                            pq_sign_with((SELECT secret_key FROM client), cfg_sealed_message('acme', 'api.token', env),
                                         convert_to('apg-pq config-sealed v2', 'UTF8')), 'ci') AS v3
  FROM sealed;
SELECT version, op, user_id, signer, signature_valid, chain_valid FROM pq.config_history('acme', 'api.token');
-- A signature by an unregistered key, over another key name, or with another context: PQ001, nothing stored.
SELECT try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, %L) $$, env,
           pq_sign_with((SELECT secret_key FROM stranger), cfg_sealed_message('acme', 'api.token', env),
                        convert_to('apg-pq config-sealed v2', 'UTF8')))) AS unregistered_signer,
       try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, %L) $$, env,
           pq_sign_with((SELECT secret_key FROM client), cfg_sealed_message('acme', 'other', env),
                        convert_to('apg-pq config-sealed v2', 'UTF8')))) AS other_key,
       try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, %L) $$, env,
           pq_sign_with((SELECT secret_key FROM client), cfg_sealed_message('acme', 'api.token', env), ''::bytea))) AS no_context
  FROM sealed;
-- A keyed envelope, a value sealed to another tenant, garbage: refused.
SELECT try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, '\x00') $$, pq_encrypt('acme', 'x'))) AS keyed;
RESET ROLE;
SELECT try(format($$ SELECT pq.config_set_sealed('acme', 'api.token', %L, '\x00') $$,
                  pq_seal(pq.tenant_public_key('globex'), 'x'))) AS other_tenant;
SELECT try($$ SELECT pq.config_set_sealed('acme', 'api.token', '\x0102', '\x00') $$) AS garbage;
SELECT version FROM pq.config_history('acme', 'api.token');
-- A sealed value stored under another key name does not open (the AAD names the key).
SELECT pq.config_set_sealed('acme', 'moved', env,
                            pq_sign_with((SELECT secret_key FROM client), cfg_sealed_message('acme', 'moved', env),
                                         convert_to('apg-pq config-sealed v2', 'UTF8'))) AS v1
  FROM sealed;
SELECT try($$ SELECT pq.config_get('acme', 'moved') $$) AS moved;
-- A dropped signer's records still verify (its key is stored with them).
SELECT pq.config_drop_signer('acme', 'deployer');
SELECT signature_valid FROM pq.config_history('acme', 'api.token');

-- Applications with their own tables sign and verify change records.
SELECT pq.verify_config_signature('acme', 'app.key', NULL, '\x01', 'carol', '2026-01-02 03:04:05.678901+00',
           pq.sign_config_change('acme', 'app.key', NULL, '\x01', 'carol', '2026-01-02 03:04:05.678901+00')) AS valid;
WITH s AS (SELECT pq.sign_config_change('acme', 'app.key', '\x01', '\x02', 'carol', '2026-01-02 03:04:05+00', 2,
                                        sha256('prev')) AS sig)
SELECT pq.verify_config_signature('acme', 'app.key', '\x01', '\x02', 'carol', '2026-01-02 03:04:05+00', sig, 2, sha256('prev')) AS valid,
       pq.verify_config_signature('acme', 'app.key', '\x01', '\x03', 'carol', '2026-01-02 03:04:05+00', sig, 2, sha256('prev')) AS other_value,
       pq.verify_config_signature('acme', 'app.key', '\x01', '\x02', 'carol', '2026-01-02 03:04:05.000001+00', sig, 2, sha256('prev')) AS other_time,
       pq.verify_config_signature('acme', 'app.key', '\x01', '\x02', 'carol', '2026-01-02 03:04:05+00', sig, 3, sha256('prev')) AS other_version,
       pq.verify_config_signature('globex', 'app.key', '\x01', '\x02', 'carol', '2026-01-02 03:04:05+00', sig, 2, sha256('prev')) AS other_tenant
  FROM s;
SELECT try($$ SELECT pq.sign_config_change('acme', 'k', NULL, '\x01', 'u', 'infinity') $$) AS infinite_time;
SELECT try($$ SELECT pq.sign_config_change('acme', 'k', NULL, '\x01', 'u', now(), 0) $$) AS version_zero;
SELECT try($$ SELECT pq.sign_config_change('acme', 'k', NULL, '\x01', 'u', now(), 2, '\x00') $$) AS short_prev_hash;
SELECT try($$ SELECT pq.sign_config_change(NULL, 'k', NULL, '\x01', 'u', now()) $$) AS null_tenant,
       try($$ SELECT pq.verify_config_signature('acme', 'k', NULL, '\x01', 'u', now(), NULL) $$) AS null_signature;

-- Key rotation: old versions' signatures keep verifying; new changes are signed by the new version.
SELECT new_version FROM pq.rotate_tenant_key('acme', 'audit test', 'dba');
SELECT pq.config_set('acme', 'db.password', 'after-rotation') AS v3;
SELECT version, signature_valid, chain_valid FROM pq.config_history('acme', 'db.password');
SELECT ok, records_checked FROM pq.config_verify('acme');

-- Append-only: UPDATE, DELETE and TRUNCATE are refused, also to a superuser.
SELECT try($$ UPDATE pq.audit_log SET actor = 'x' $$) AS update_audit,
       try($$ DELETE FROM pq.audit_log $$) AS delete_audit,
       try($$ TRUNCATE pq.audit_log $$) AS truncate_audit;
SELECT try($$ UPDATE pq.config_records SET user_id = 'x' $$) AS update_records,
       try($$ DELETE FROM pq.config_records $$) AS delete_records,
       try($$ TRUNCATE pq.audit_checkpoints $$) AS truncate_checkpoints;

-- The chain: ids without gaps, every lifecycle and config event recorded, no value in it.
SELECT count(*) = max(id) AS no_gaps, min(id) AS first_id FROM pq.audit_log;
SELECT event, count(*) FROM pq.audit_log
 WHERE event IN ('tenant_created', 'tenant_granted', 'key_rotated', 'config_set', 'config_set_sealed', 'config_deleted',
                 'config_signer_registered', 'config_signer_dropped')
 GROUP BY event ORDER BY event;
SELECT count(*) AS secrets_in_audit FROM pq.audit_log
 WHERE details::text ~ 'hunter|sealed-secret|after-rotation|beta';
SET ROLE regress_admin;
SELECT head_id > 0 AS has_head, length(head_hash), length(audit_key) FROM pq.audit_checkpoint();
SELECT ok, first_bad_id, rows_checked > 0 AS checked, last_checkpoint IS NOT NULL AS has_checkpoint, problem
  FROM pq.verify_audit_chain();
SELECT kid = substr(sha256(ml_dsa_public_key), 1, 16) AS kid_is_hash, length(ed25519_public_key)
  FROM pq.audit_verifying_keys;
RESET ROLE;
-- The checkpoint's signatures are FIPS 204 signatures an outsider checks with the public key.
SELECT pq_verify_with(k.ml_dsa_public_key,
                      int8send(c.head_id) || c.head_hash || int8send((extract(epoch FROM c.ts) * 1000000)::bigint),
                      c.ml_dsa_signature, convert_to('apg-pq audit-checkpoint v1', 'UTF8')) AS ml_dsa_valid
  FROM pq.audit_checkpoints c JOIN pq.audit_verifying_keys k ON k.kid = c.key_kid ORDER BY c.id DESC LIMIT 1;
-- Master key rotation rewraps the audit key; checkpoints go on under it.
SELECT versions_rewrapped > 0 AS rotated FROM pq.rotate_master_key();
SELECT head_id > 0 AS has_head FROM pq.audit_checkpoint();
SELECT ok FROM pq.verify_audit_chain();
-- Since 0.11.0 the audit rows of a SERIALIZABLE writer (and of a writer that
-- finds the chain lock held) wait in pq.audit_pending until the worker, the
-- next writer or pq.audit_flush() chains them, in the order written.
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT pq.config_set('acme', 'serializable.key', 'v1') AS version;
SELECT pq.config_set('acme', 'serializable.key', 'v2') AS version;
SELECT event, details->>'key' AS key, details->>'version' AS version FROM pq.audit_pending ORDER BY seq;
SELECT pq.audit_flush() AS chained;
SELECT count(*) AS still_pending FROM pq.audit_pending;
SELECT event, details->>'version' AS version FROM pq.audit_log ORDER BY id DESC LIMIT 2;
COMMIT;
SELECT ok FROM pq.verify_audit_chain();
SELECT ok FROM pq.config_verify('acme');

-- Failed decryptions count even though their statements abort.
SELECT pq.flush_counters() >= 0 AS flushed;
SET ROLE regress_app_a;
SELECT try($$ SELECT pq_decrypt(pq_encrypt('acme', 'x', 'right'), 'wrong') $$) AS wrong_aad;
SELECT try($$ SELECT pq_decrypt(pq_encrypt('acme', 'x', 'right'), 'wrong') $$) AS wrong_aad;
BEGIN;
SELECT try($$ SELECT pq_decrypt(pq_encrypt('acme', 'x', 'right'), 'wrong') $$) AS in_aborted_transaction;
ROLLBACK;
SELECT try($$ SELECT pq.decrypt_any(pq_encrypt('acme', 'x', 'right'), 'acme', 'wrong') $$) AS decrypt_any_wrong_aad;
SELECT try($$ SELECT pq.decrypt_any('\x0000', 'acme') $$) AS not_an_attempt;
SELECT pq_verify('acme', 'm', pq_sign('acme', 'n')) AS wrong_message;
RESET ROLE;
SELECT pq.flush_counters() > 0 AS flushed;
SELECT tenant, role_name, kind, sum(count) FROM pq.security_events WHERE role_name = 'regress_app_a'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
-- The compliance report.
SET ROLE regress_admin;
SELECT r->'tenant' AS tenant, r->'period'->'days' AS days,
       (r->'encryption_stats'->>'config_changes')::int > 0 AS config_changes,
       jsonb_array_length(r->'key_rotation_events') > 0 AS rotations,
       (r->'security_incidents'->>'failed_decrypts')::int >= 3 AS failed_decrypts,
       r->'compliance_status'->'audit_chain_verified' AS chain_verified,
       r->'compliance_status'->'ciphertexts_under_classical_crypto' AS classical,
       r->'compliance_status'->'algorithms_in_use' AS algorithms,
       r->'compliance_status'->'last_checkpoint' IS NOT NULL AS has_checkpoint
  FROM pq.compliance_report('acme', 7) r;
SELECT try($$ SELECT pq.compliance_report('acme', 0) $$) AS bad_period;
SELECT try($$ SELECT pq.compliance_report('no-such-tenant') $$) AS unknown_tenant;
SELECT count(*) AS secrets_in_report FROM pq.compliance_report('acme') r WHERE r::text ~ 'hunter|sealed-secret';
RESET ROLE;

-- Tampering, as a superuser who bypasses the triggers.
CREATE TEMP TABLE original AS
SELECT user_id FROM pq.config_records WHERE tenant = 'acme' AND key = 'db.password' AND version = 2;
SET session_replication_role = replica;
UPDATE pq.config_records SET user_id = 'mallory' WHERE tenant = 'acme' AND key = 'db.password' AND version = 2;
RESET session_replication_role;
SELECT ok, first_bad_key, first_bad_version, problem FROM pq.config_verify('acme');
SELECT version, signature_valid, chain_valid FROM pq.config_history('acme', 'db.password');
SET session_replication_role = replica;
UPDATE pq.config_records SET user_id = (SELECT user_id FROM original)
 WHERE tenant = 'acme' AND key = 'db.password' AND version = 2;
-- (restored: the chain verifies again)
RESET session_replication_role;
SELECT ok FROM pq.config_verify('acme');
-- The newest record of a key removed: the audit chain still names it.
SET session_replication_role = replica;
DELETE FROM pq.config_records WHERE tenant = 'acme' AND key = 'db.password' AND version = 3;
RESET session_replication_role;
SELECT ok, first_bad_key, first_bad_version, problem FROM pq.config_verify('acme');
SELECT pq.config_get('acme', 'db.password') AS rolled_back_value;
-- An audit row edited.
SET session_replication_role = replica;
UPDATE pq.audit_log SET actor = 'mallory' WHERE id = 2;
RESET session_replication_role;
SELECT ok, first_bad_id, problem FROM pq.verify_audit_chain();
