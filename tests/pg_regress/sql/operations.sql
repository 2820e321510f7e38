-- Operating it (0.10.0): enforced encryption of tracked columns, key DDL
-- in the audit chain, unusual-access alerts, crypto-shredding.
SELECT tenant FROM pq.create_tenant('ops_a');
SELECT tenant FROM pq.create_tenant('ops_b');
SELECT new_version FROM pq.rotate_tenant_key('ops_a', 'operations regress');
CREATE ROLE ops_writer LOGIN;
CREATE ROLE ops_reader LOGIN;
GRANT pq_user TO ops_writer, ops_reader;
SELECT pq.grant_tenant('ops_a', 'ops_writer'), pq.grant_tenant('ops_b', 'ops_writer'), pq.grant_tenant('ops_b', 'ops_reader');
CREATE TABLE ops_t (id int PRIMARY KEY, tenant text NOT NULL, v bytea, note text);
GRANT SELECT, INSERT, UPDATE ON ops_t TO ops_writer, ops_reader;
SELECT pq.track_column('ops_t', 'v', tenant_column => 'tenant', aad_column => 'note') > 0 AS tracked;
-- Every tracked column gets the enforcement trigger; it sorts last.
SELECT regexp_replace(tgname, '[0-9]+$', 'N') AS trigger FROM pg_trigger WHERE tgrelid = 'ops_t'::regclass AND NOT tgisinternal;

-- Enforcement off (the default): anything goes.
SHOW apg_pqcrypto.enforce_encryption;
INSERT INTO ops_t VALUES (1, 'ops_a', 'plain text', '1');
-- Only a superuser sets it (ALTER DATABASE / ALTER ROLE ... SET for the rollout).
SET ROLE ops_writer;
SET apg_pqcrypto.enforce_encryption = tracked;
RESET ROLE;
SET apg_pqcrypto.enforce_encryption = tracked;
SET ROLE ops_writer;
\set VERBOSITY default
INSERT INTO ops_t VALUES (2, 'ops_a', 'plain too', '2');
\set VERBOSITY terse
INSERT INTO ops_t VALUES (2, 'ops_a', pq_encrypt('ops_a', 'secret two', '2'), '2');
INSERT INTO ops_t VALUES (3, 'ops_a', pq_encrypt('ops_b', 'another tenant', '3'), '3');
INSERT INTO ops_t VALUES (3, 'ops_b', pq_seal(pq.tenant_public_key('ops_b'), 'sealed three', '3'), '3');
INSERT INTO ops_t VALUES (4, 'ops_a', pq_sign('ops_a', '\x01'::bytea), '4');
INSERT INTO ops_t VALUES (4, 'ops_a', '\x014b'::bytea || decode(repeat('ab', 16), 'hex') || sha256('x'::bytea), '4');
INSERT INTO ops_t VALUES (4, 'ops_a', NULL, '4');
-- An UPDATE that leaves a value (even plaintext) as it was passes: other
-- columns of rows not yet encrypted stay writable; changing the value or
-- moving it to another tenant does not.
UPDATE ops_t SET note = note WHERE id = 1;
UPDATE ops_t SET v = 'still plain' WHERE id = 1;
UPDATE ops_t SET tenant = 'ops_b' WHERE id = 1;
UPDATE ops_t SET tenant = 'ops_b' WHERE id = 2;
UPDATE ops_t SET v = pq_encrypt('ops_a', 'one', '1') WHERE id = 1;
RESET ROLE;
-- What the tracked columns hold: rows, NULLs, envelopes of the row's
-- tenant, values that are not envelopes, envelopes of another tenant
-- (two rows written while enforcement was off for this session).
SET apg_pqcrypto.enforce_encryption = off;
INSERT INTO ops_t VALUES (5, 'ops_b', 'written before the rollout', '5'), (6, 'ops_b', pq_encrypt('ops_a', 'misfiled', '6'), '6');
SET apg_pqcrypto.enforce_encryption = tracked;
SELECT * FROM pq.enforcement_report() WHERE table_name = 'public.ops_t';
UPDATE ops_t SET v = pq_encrypt('ops_a', 'four', '4') WHERE id = 4;
DELETE FROM ops_t WHERE id IN (5, 6);
SELECT * FROM pq.enforcement_report() WHERE table_name = 'public.ops_t';
SELECT id, pq_decrypt_text(v, note) FROM ops_t WHERE tenant = 'ops_a' ORDER BY id;
-- pq.rewrap under enforcement: an envelope of the same tenant passes.
SELECT new_version FROM pq.rotate_tenant_key('ops_a', 'operations regress');
UPDATE ops_t SET v = pq.rewrap(v, convert_to(note, 'UTF8')) WHERE tenant = 'ops_a' AND v IS NOT NULL;
SELECT id, (pq_inspect(v)->>'key_version')::int AS version, pq_decrypt_text(v, note) FROM ops_t WHERE tenant = 'ops_a' ORDER BY id;
-- A partitioned table: the trigger is cloned to its partitions, and a
-- write straight into a partition is checked too.
CREATE TABLE ops_p (id int, tenant text NOT NULL, v bytea, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE ops_p1 PARTITION OF ops_p FOR VALUES FROM (0) TO (100);
CREATE TABLE ops_p2 PARTITION OF ops_p FOR VALUES FROM (100) TO (200);
SELECT pq.track_column('ops_p', 'v', tenant_column => 'tenant') > 0 AS tracked;
INSERT INTO ops_p VALUES (1, 'ops_a', pq_encrypt('ops_a', 'one')), (150, 'ops_b', pq_encrypt('ops_b', 'two'));
INSERT INTO ops_p VALUES (2, 'ops_a', 'plain through the parent');
INSERT INTO ops_p2 VALUES (151, 'ops_b', 'plain into a partition');
UPDATE ops_p SET id = 160 WHERE id = 1;
SELECT tableoid::regclass, id, tenant FROM ops_p ORDER BY id;
RESET apg_pqcrypto.enforce_encryption;
SELECT count(*) > 0 AS runs FROM pq.enforcement_report();
SET ROLE ops_writer;
SELECT count(*) FROM pq.enforcement_report();
RESET ROLE;

-- Key DDL in the audit chain.
CREATE TEMP TABLE ops_start AS SELECT max(id) AS id FROM pq.audit_log;
CREATE TEMP TABLE mark AS SELECT max(id) AS id FROM pq.key_events;
CREATE FUNCTION ops_new_events() RETURNS TABLE (event text, details jsonb) LANGUAGE sql AS $$
    SELECT event, details FROM pq.key_events WHERE id > (SELECT id FROM mark) ORDER BY id $$;
-- GRANT and REVOKE on the extension's functions: exactly what changed.
GRANT EXECUTE ON FUNCTION pq.shred_tenant(text, text) TO ops_writer;
REVOKE EXECUTE ON FUNCTION pq.shred_tenant(text, text) FROM ops_writer;
GRANT EXECUTE ON FUNCTION ops_new_events() TO ops_writer;
-- DROP OWNED revokes a role's privileges too.
CREATE ROLE ops_gone;
GRANT EXECUTE ON FUNCTION pq.enforcement_report() TO ops_gone;
DROP OWNED BY ops_gone;
DROP ROLE ops_gone;
SELECT event, details->>'command' AS command, jsonb_array_length(details->'functions') AS functions,
       details->'functions'->0->>'function' AS function,
       details->'functions'->0->>'acl_after' ~ '(ops_writer|ops_gone)=X' AS granted
  FROM ops_new_events();
TRUNCATE mark; INSERT INTO mark SELECT max(id) FROM pq.key_events;
-- Role grants: of pq_user, pq_admin or a role holding tenant grants.
CREATE ROLE ops_member;
CREATE ROLE ops_other;
GRANT pq_user TO ops_member;
GRANT ops_reader TO ops_member;
GRANT ops_other TO ops_member;
REVOKE ops_reader FROM ops_member;
SELECT event, details FROM ops_new_events();
TRUNCATE mark; INSERT INTO mark SELECT max(id) FROM pq.key_events;
-- Settings of the extension, per system, database and role; provider
-- settings without their value; other settings not at all.
ALTER ROLE ops_writer SET apg_pqcrypto.enforce_encryption = tracked;
ALTER ROLE ops_writer IN DATABASE apg_pq_regress RESET apg_pqcrypto.enforce_encryption;
ALTER DATABASE apg_pq_regress SET apg_pqcrypto.audit_level = 'all';
ALTER DATABASE apg_pq_regress RESET apg_pqcrypto.audit_level;
ALTER DATABASE apg_pq_regress SET work_mem = '8MB';
ALTER DATABASE apg_pq_regress RESET work_mem;
ALTER SYSTEM SET apg_pqcrypto.kms_key_id = 'alias/not-in-the-audit-log';
ALTER SYSTEM RESET apg_pqcrypto.kms_key_id;
ALTER ROLE ops_writer RESET ALL;
SELECT event, details FROM ops_new_events();
SELECT count(*) AS leaked FROM pq.key_events WHERE details::text LIKE '%not-in-the-audit-log%';
TRUNCATE mark; INSERT INTO mark SELECT max(id) FROM pq.key_events;
-- ALTER TABLE of a tracked table is recorded when it touches what matters
-- to the keys (not an added column); renaming a column a tracking names is
-- refused; dropping the extension's trigger is recorded.
ALTER TABLE ops_t ADD COLUMN extra int;
ALTER TABLE ops_t RENAME COLUMN note TO aad;
ALTER TABLE ops_t RENAME COLUMN extra TO spare;
ALTER TABLE ops_t DISABLE TRIGGER ALL, ALTER COLUMN spare TYPE bigint;
ALTER TABLE ops_t ENABLE TRIGGER ALL;
DO $$ BEGIN
    EXECUTE format('DROP TRIGGER %I ON ops_t', (SELECT tgname FROM pg_trigger WHERE tgrelid = 'ops_t'::regclass AND tgname LIKE 'zz_pq_enforcement_%'));
END $$;
SELECT event, regexp_replace(details::text, '_[0-9]+ on', '_N on') AS details FROM ops_new_events();
TRUNCATE mark; INSERT INTO mark SELECT max(id) FROM pq.key_events;
-- Dropping a column a tracking names, or the table, untracks it.
CREATE TABLE ops_drop (id int PRIMARY KEY, v bytea);
SELECT pq.track_column('ops_drop', 'v', tenant => 'ops_b') > 0 AS tracked;
ALTER TABLE ops_t DROP COLUMN note;
DROP TABLE ops_drop;
SELECT event, details FROM ops_new_events();
SELECT count(*) AS still_tracked FROM pq.tracked_columns WHERE relid::text IN ('ops_t', 'ops_drop');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'ops_t'::regclass AND NOT tgisinternal;
-- The DDL records are in the audit chain (audit.sql left an earlier row
-- tampered with, so the chain as a whole does not verify here;
-- tests/integration/operations.sh verifies it).
SELECT event, count(*) FROM pq.audit_log
 WHERE event IN ('function_privileges_changed', 'role_membership_granted', 'role_membership_revoked', 'setting_changed',
                 'tracked_table_altered', 'tracked_trigger_dropped', 'tracked_column_dropped')
   AND id > (SELECT id FROM ops_start)
 GROUP BY event ORDER BY event;
-- The event triggers' functions do nothing outside an event trigger, and
-- no role but the owner may call them.
SELECT pq.ddl_dropped();
SET ROLE ops_writer;
SELECT pq.ddl_ended();
RESET ROLE;

-- Unusual access: ops_reader usually decrypts two values of ops_b a minute
-- (seven days of history); now it decrypts 150 in a minute, 75 times that.
INSERT INTO pq.usage_counts (tenant, role_name, operation, minute, count)
SELECT 'ops_b', 'ops_reader', 'decrypt', date_trunc('minute', now()) - interval '2 hours' - i * interval '7 minutes', 2
  FROM generate_series(0, 1000) i;
CREATE TABLE ops_many AS SELECT i, pq_encrypt('ops_b', 'value ' || i, i::text) AS v FROM generate_series(1, 150) i;
GRANT SELECT ON ops_many TO ops_reader;
SELECT pq.flush_counters() >= 0 AS flushed;
SET apg_pqcrypto.audit_level = 'all';
SET ROLE ops_reader;
SELECT count(pq_decrypt_text(v, i::text)) FROM ops_many;
RESET ROLE;
RESET apg_pqcrypto.audit_level;
SET client_min_messages = error;
SELECT pq.flush_counters() >= 150 AS flushed;
RESET client_min_messages;
SELECT tenant, role_name, kind, count, alerted FROM pq.security_events WHERE kind = 'unusual_access';
SELECT event, tenant, details->>'role' AS role, details->>'decrypts' AS decrypts, details->>'baseline_p99' AS baseline,
       details->>'factor' AS factor
  FROM pq.key_events WHERE event = 'unusual_access_alert';
-- Once per role, tenant and minute.
SELECT pq.flush_counters() >= 0 AS flushed;
SELECT count(*) FROM pq.key_events WHERE event = 'unusual_access_alert';

-- Latency and key cache statistics (shared memory, since pq.stat_reset):
-- 150 decryptions of ops_b, every one timed; then 160 sampled, one in 16
-- timed.
SET apg_pqcrypto.track_latency = 'all';
SELECT pq.stat_reset();
SELECT count(pq_decrypt_text(v, i::text)) FROM ops_many;
SELECT tenant, operation, calls, timed_calls, 0 < p50_ms AND p50_ms <= p95_ms AND p95_ms <= p99_ms AND p99_ms <= max_ms AS ordered,
       mean_ms <= max_ms AS mean_below_max, calls_per_minute > 0 AS rate, since IS NOT NULL AS since
  FROM pq.stat_latency WHERE tenant = 'ops_b' ORDER BY operation;
SELECT tenant, hits + misses AS lookups, evictions >= 0 AS evictions, unwraps <= misses AS unwraps, hit_ratio BETWEEN 0 AND 1 AS ratio
  FROM pq.stat_cache WHERE tenant = 'ops_b';
SET apg_pqcrypto.track_latency = 'sampled';
SELECT pq.stat_reset();
SELECT count(pq_decrypt_text(v, i::text)) FROM ops_many CROSS JOIN generate_series(1, 2) g WHERE i <= 80;
SELECT operation, calls, timed_calls FROM pq.stat_latency WHERE tenant = 'ops_b';
SET apg_pqcrypto.track_latency = 'off';
SELECT pq.stat_reset();
SELECT count(pq_decrypt_text(v, i::text)) FROM ops_many;
SELECT count(*) AS rows_when_off FROM pq.stat_latency;
RESET apg_pqcrypto.track_latency;
-- Only pq_admin and pq_monitor read them; a role may not switch the timing off.
SET ROLE ops_reader;
SELECT count(*) FROM pq.stat_latency;
SET apg_pqcrypto.track_latency = 'off';
RESET ROLE;
-- pq_monitor reads statistics and health, and administers nothing.
SELECT count(pq_decrypt_text(v, i::text)) FROM ops_many;
CREATE ROLE ops_monitor IN ROLE pq_monitor;
SET ROLE ops_monitor;
SELECT count(*) > 0 AS latency FROM pq.stat_latency;
SELECT count(*) > 0 AS cache FROM pq.stat_cache;
SELECT tenant, version, age >= interval '0' AS age FROM pq.key_ages WHERE tenant = 'ops_b';
SELECT rows_checked > 0 AS chain FROM pq.verify_audit_chain();
SELECT count(*) >= 0 AS events FROM pq.security_events;
SELECT count(*) >= 0 AS jobs FROM pq.jobs;
SELECT pq.stat_reset();
SELECT pq.shred_tenant('ops_b', confirm => 'ops_b');
SELECT count(*) FROM pq.tenant_key_versions;
SELECT count(*) FROM pq.tenant_keys;
RESET ROLE;
DROP ROLE ops_monitor;

-- Crypto-shredding.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE ops_s (id int PRIMARY KEY, tenant text NOT NULL, v bytea, aad text);
SELECT pq.track_column('ops_s', 'v', tenant_column => 'tenant', aad_column => 'aad') > 0 AS tracked;
INSERT INTO ops_s SELECT i, CASE WHEN i < 4 THEN 'ops_a' ELSE 'ops_b' END,
                         pq_encrypt(CASE WHEN i < 4 THEN 'ops_a' ELSE 'ops_b' END, 'value ' || i, i::text), i::text
  FROM generate_series(1, 5) i;
SELECT pq.config_set('ops_a', 'db.password', 'hunter2');
SELECT pq.register_classical_key('ops_a', 'pgp_sym', convert_to('old passphrase', 'UTF8')) > 0 AS registered;
SELECT count(*) AS sessions FROM pq.session_begin('ops_a', '1 hour');
CREATE TABLE ops_sealed AS SELECT pq_seal(pq.tenant_public_key('ops_a'), 'sealed to a') AS v,
                                  pq_sign('ops_a', '\x02'::bytea) AS s, pq_encrypt('ops_a', 'keyed') AS k;
SELECT pq.shred_tenant('ops_a', confirm => 'ops_b');
SET ROLE ops_writer;
SELECT pq.shred_tenant('ops_a', confirm => 'ops_a');
RESET ROLE;
SELECT jsonb_path_query_array(r->'versions_destroyed', '$[*].version') AS versions,
       jsonb_path_query_array(r->'versions_destroyed', '$[*].state') AS states,
       r->'classical_keys_deleted' AS classical, r->'tracked_ciphertexts_unreadable' AS unreadable,
       r->'tracked_columns_affected' AS columns, r->'config_values_unreadable' AS config, r->'sessions_ended' AS sessions,
       jsonb_typeof(r->'escrow_splits_holding_master_key') AS escrow, jsonb_typeof(r->'backup_bundles_holding_keys') AS backups,
       r->>'event_id' IS NOT NULL AS recorded
  FROM pq.shred_tenant('ops_a', confirm => 'ops_a') r;
SELECT event, tenant, details->'tracked_ciphertexts_unreadable' AS unreadable FROM pq.audit_log WHERE event = 'tenant_shredded';
-- Every version is destroyed, no wrapped secret is left, and nothing of
-- the tenant opens, encrypts or gets a new key again.
SELECT version, state, wrapped_kem_seed IS NULL AND wrapped_dsa_seed IS NULL AND sealed_dek IS NULL AS erased
  FROM pq.tenant_key_versions WHERE tenant = 'ops_a' ORDER BY version;
SELECT count(*) AS classical_left FROM pq.classical_keys WHERE tenant = 'ops_a';
SELECT count(*) AS sessions_left FROM pq.sessions WHERE tenant = 'ops_a';
SELECT shredded_at IS NOT NULL AS shredded FROM pq.tenants WHERE name = 'ops_a';
SELECT pq_decrypt_text(v, aad) FROM ops_s WHERE id = 2;
SELECT pq_decrypt_text(k) FROM ops_sealed;
SELECT pq_unseal_text(v) FROM ops_sealed;
SELECT pq.config_get('ops_a', 'db.password');
SELECT pq_encrypt('ops_a', 'new');
SELECT pq_blind_index('ops_a', 'x', 'ctx');
\set VERBOSITY sqlstate
SELECT pq.rotate_tenant_key('ops_a', 'undo');
SELECT pq.shred_tenant('ops_a', confirm => 'ops_a');
\set VERBOSITY terse
-- Signatures still verify (the verifying key is public), and the other
-- tenant is untouched.
SELECT pq_verify('ops_a', '\x02'::bytea, s) FROM ops_sealed;
SELECT id, pq_decrypt_text(v, aad) FROM ops_s WHERE tenant = 'ops_b' ORDER BY id;
SELECT tenant, bool_and(ok) AS ok FROM pq.verify_keys() WHERE tenant IN ('ops_a', 'ops_b') GROUP BY tenant ORDER BY tenant;
-- pq.key_usage shows what is left: the shredded tenant's ciphertexts
-- under destroyed versions.
SELECT * FROM pq.key_usage WHERE table_name = 'public.ops_s' ORDER BY tenant, version;

DROP TABLE ops_t, ops_s, ops_sealed, ops_many, ops_p;
DROP FUNCTION ops_new_events();
DROP OWNED BY ops_writer, ops_reader, ops_member, ops_other;
DROP ROLE ops_writer, ops_reader, ops_member, ops_other;

-- Scale-out: without Citus, pq.citus_setup() says what is missing (55000).
\set VERBOSITY default
SELECT * FROM pq.citus_setup();
\echo :LAST_ERROR_SQLSTATE
