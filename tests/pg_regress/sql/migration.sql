-- Migration off pgcrypto: classification, classical keys, decrypt_any,
-- dual-mode writes, migration functions and their errors. (The 100,000-row
-- migrations, kill -9 and concurrent writers are in
-- tests/integration/migration.sh.)

-- Without pgcrypto: a clear 55000 with a hint, nothing stored.
SELECT tenant FROM pq.create_tenant('mg');
SELECT try($$ SELECT pq.register_classical_key('mg', 'pgp_sym', 'pw') $$);
SELECT try($$ SELECT pq.decrypt_any('\xc30d04070302b66e00000000000000d23c01'::bytea, 'mg') $$);
CREATE EXTENSION pgcrypto;

-- pq.classify names what a value is, without a key.
SELECT pq.classify(pgp_sym_encrypt('x', 'pw')) AS sym, pq.classify(encrypt('x', 'k', 'aes')) AS raw,
       pq.classify(pq_encrypt('mg', 'x')) AS keyed, pq.classify(pq_seal(pq.tenant_public_key('mg'), 'x')) AS sealed,
       pq.classify(pq_sign('mg', 'x')) AS signature, pq.classify('plain text') AS unknown, pq.classify('') AS empty,
       pq.classify(NULL) IS NULL AS null_is_null;

-- Registering keys: checked, stored wrapped, listed without secrets.
SELECT pq.register_classical_key('mg', 'pgp_sym', 'old passphrase') AS sym_key \gset
SELECT pq.register_classical_key('mg', 'raw', '\x000102030405060708090a0b0c0d0e0f', 'mode=ecb, padding=pkcs') AS raw_key \gset
SELECT kind, options, has_passphrase, has_public_key FROM pq.classical_key_list WHERE tenant = 'mg' ORDER BY id;
SELECT try($$ SELECT pq.register_classical_key('mg', 'rsa', 'x') $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'raw', 'k', 'mode=ctr') $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'raw', 'k', 'iv=zz') $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'pgp_pub', 'not a key') $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'pgp_sym', 'pw', passphrase => 'x') $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'pgp_sym', '\x00ff'::bytea) $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'pgp_sym', 'pw', 'cipher-algo=rot13') $$);
SELECT try($$ SELECT pq.register_classical_key('mg', 'pgp_sym', '') $$);
SELECT try($$ SELECT pq.register_classical_key(NULL, 'pgp_sym', 'pw') $$);
SELECT try($$ SELECT pq.register_classical_key('no-such-tenant', 'pgp_sym', 'pw') $$);
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.register_classical_key('acme', 'pgp_sym', 'pw') $$);
SELECT try($$ SELECT * FROM pq.classical_keys $$);
RESET ROLE;

-- decrypt_any: every kind, the AAD for envelopes, clear errors otherwise.
SELECT pq.decrypt_any_text(pgp_sym_encrypt('from pgp_sym', 'old passphrase'), 'mg') AS sym,
       pq.decrypt_any_text(encrypt('from raw', '\x000102030405060708090a0b0c0d0e0f', 'aes-ecb/pad:pkcs'), 'mg') AS raw,
       pq.decrypt_any_text(pq_encrypt('mg', 'from pq', 'a'), 'mg', 'a') AS keyed,
       pq.decrypt_any_text(pq_seal(pq.tenant_public_key('mg'), 'from sealed', 'a'), 'mg', 'a') AS sealed;
SELECT try($$ SELECT pq.decrypt_any(pgp_sym_encrypt('x', 'other passphrase'), 'mg') $$);
SELECT try($$ SELECT pq.decrypt_any(pq_encrypt('mg', 'x', 'a'), 'mg', 'b') $$);
SELECT try($$ SELECT pq.decrypt_any(pq_encrypt('acme', 'x'), 'mg') $$);
SELECT try($$ SELECT pq.decrypt_any(pq_sign('mg', 'x'), 'mg') $$);
SELECT try($$ SELECT pq.decrypt_any('plain text', 'mg') $$);
SELECT try($$ SELECT pq.decrypt_any(pgp_sym_encrypt('x', 'pw'), 'no-such-tenant') $$);
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.decrypt_any(pgp_sym_encrypt('x', 'old passphrase'), 'mg') $$);
RESET ROLE;

-- Raw output has no integrity check (with padding none, any key
-- "decrypts" anything): a value recognised as OpenPGP or as an envelope of
-- a stored key is never guessed to be raw.
SELECT tenant FROM pq.create_tenant('mg3');
SELECT pq.register_classical_key('mg3', 'raw', '\x000102030405060708090a0b0c0d0e0f', 'padding=none') > 0 AS registered;
SELECT pq.classify(v), length(v) % 8 AS blocks, try(format('SELECT pq.decrypt_any(%L::bytea, %L)', v, 'mg3'))
  FROM (SELECT pgp_sym_encrypt(repeat('x', n), 'unknown') AS v FROM generate_series(1, 16) n) s WHERE length(v) % 8 = 0 LIMIT 1;
SELECT pq.classify(v), length(v) % 8 AS blocks, try(format('SELECT pq.decrypt_any(%L::bytea, %L)', v, 'mg3'))
  FROM (SELECT pq_encrypt('acme', 'xx') AS v) s;
SELECT length(pq.decrypt_any(encrypt('\x00112233445566778899aabbccddeeff', '\x000102030405060708090a0b0c0d0e0f', 'aes-cbc/pad:none'), 'mg3')) AS raw_still_reads;

-- Dual-mode writes: classical (the newest key) before the migration starts.
SELECT pq.classify(pq.encrypt_dual_mode('mg', 'written')) AS before_start,
       convert_from(decrypt(pq.encrypt_dual_mode('mg', 'written'), '\x000102030405060708090a0b0c0d0e0f', 'aes-ecb/pad:pkcs'), 'UTF8');
SELECT status, tracked_columns, classical_values FROM pq.migration_status('mg');

-- Migrating a column in this session: mixed values, one foreign-key row.
CREATE TABLE legacy (id int PRIMARY KEY, who text, v bytea);
INSERT INTO legacy SELECT i, 'w' || i, CASE i % 4 WHEN 0 THEN pgp_sym_encrypt('v' || i, 'old passphrase')
                                              WHEN 1 THEN encrypt(convert_to('v' || i, 'UTF8'), '\x000102030405060708090a0b0c0d0e0f', 'aes-ecb/pad:pkcs')
                                              WHEN 2 THEN pq_encrypt('mg', 'v' || i, 'w' || i) END
  FROM generate_series(1, 40) i;
UPDATE legacy SET v = pgp_sym_encrypt('v7', 'foreign passphrase') WHERE id = 7;
SET client_min_messages = warning;
SELECT rows_migrated, rows_failed, rows_left, state FROM pq.migrate_column_now('legacy', 'v', tenant => 'mg', aad_column => 'who', batch_size => 7);
RESET client_min_messages;
SELECT row_key, reason FROM pq.job_failures WHERE job_id = (SELECT max(id) FROM pq.job_queue);
SELECT count(*) FILTER (WHERE pq_decrypt_text(v, who) = 'v' || id) AS decrypt, count(*) FILTER (WHERE v IS NULL) AS nulls FROM legacy WHERE id <> 7;
SELECT status, tracked_columns, classical_values, rows_migrated, rows_failed, jobs_pending FROM pq.migration_status('mg');
SELECT tenant, table_name, column_name, classical_values FROM pq.classical_counts('mg');
SELECT pq.classify(pq.encrypt_dual_mode('mg', 'written')) AS after_start;
SELECT try($$ SELECT pq.drop_classical_key($$ || :sym_key || $$) $$);
SELECT pq.register_classical_key('mg', 'pgp_sym', 'foreign passphrase') > 0 AS registered;
-- A finished job can be queued again for the worker (which runs in
-- another database here, so it is cancelled), or the migration run again.
SELECT max(id) AS first_job FROM pq.job_queue \gset
SELECT pq.retry_job(:first_job) AS retried, pq.retry_job(:first_job) AS twice;
SELECT state, rows_failed FROM pq.job_queue WHERE id = :first_job;
SELECT pq.cancel_job(:first_job);
SET client_min_messages = warning;
SELECT rows_migrated, rows_failed, state FROM pq.migrate_column_now('legacy', 'v', tenant => 'mg', aad_column => 'who');
RESET client_min_messages;
SELECT status, classical_values, rows_failed FROM pq.migration_status('mg');
SELECT count(*) AS failures_left FROM pq.job_failures;
SELECT pq.drop_classical_key(:sym_key) AS dropped, pq.drop_classical_key(:sym_key) AS again;

-- The dual-mode trigger: classical writes become envelopes once started.
CREATE TRIGGER dual BEFORE INSERT OR UPDATE OF v ON legacy FOR EACH ROW EXECUTE FUNCTION pq.migration_trigger('v');
INSERT INTO legacy VALUES (100, 'w100', encrypt(convert_to('new', 'UTF8'), '\x000102030405060708090a0b0c0d0e0f', 'aes-ecb/pad:pkcs'));
SELECT pq.classify(v), pq_decrypt_text(v, who) FROM legacy WHERE id = 100;
SELECT try($$ INSERT INTO legacy VALUES (101, 'w101', pgp_sym_encrypt('x', 'unknown')) $$);
SELECT try($$ INSERT INTO legacy VALUES (102, 'w102', 'plain text') $$);
CREATE TABLE untracked (id int PRIMARY KEY, v bytea);
CREATE TRIGGER dual BEFORE INSERT ON untracked FOR EACH ROW EXECUTE FUNCTION pq.migration_trigger('v');
SELECT try($$ INSERT INTO untracked VALUES (1, '\x01') $$);
DROP TRIGGER dual ON untracked;
CREATE TRIGGER dual2 BEFORE INSERT ON untracked FOR EACH ROW EXECUTE FUNCTION pq.migration_trigger();
SELECT try($$ INSERT INTO untracked VALUES (2, '\x01') $$);
DROP TABLE untracked;

-- A column holding several tenants' values, named in another column.
SELECT tenant FROM pq.create_tenant('mg2');
SELECT pq.register_classical_key('mg', 'pgp_sym', 'mg passphrase') > 0 AND pq.register_classical_key('mg2', 'pgp_sym', 'mg2 passphrase') > 0 AS registered;
CREATE TABLE shared (id int PRIMARY KEY, owner text, v bytea);
INSERT INTO shared SELECT i, CASE WHEN i % 2 = 0 THEN 'mg' ELSE 'mg2' END,
       pgp_sym_encrypt('s' || i, CASE WHEN i % 2 = 0 THEN 'mg passphrase' ELSE 'mg2 passphrase' END)
  FROM generate_series(1, 20) i;
INSERT INTO shared VALUES (21, NULL, pgp_sym_encrypt('s21', 'mg passphrase')), (22, 'mg', pgp_sym_encrypt('s22', 'mg2 passphrase'));
SET client_min_messages = warning;
SELECT rows_migrated, rows_failed, state FROM pq.migrate_column_now('shared', 'v', tenant_column => 'owner');
RESET client_min_messages;
SELECT row_key, reason FROM pq.job_failures WHERE job_id = (SELECT max(id) FROM pq.job_queue) ORDER BY row_key;
SELECT owner, count(*) FILTER (WHERE pq_decrypt_text(v) = 's' || id) AS decrypt, count(*) FILTER (WHERE (pq_inspect(v)->>'tenant') = owner) AS own_tenant
  FROM shared WHERE id <= 20 GROUP BY owner ORDER BY owner;
SELECT status FROM pq.migration_status('mg2');
-- A tracked column keeps its tenant and AAD column.
SELECT try($$ SELECT pq.migrate_column_now('shared', 'v', tenant => 'mg') $$);
SELECT try($$ SELECT pq.migrate_column_now('legacy', 'v', tenant => 'mg') $$);

-- Bad requests: clear errors, nothing queued.
SELECT count(*) AS jobs_before FROM pq.job_queue \gset
CREATE TABLE notbytea (id int PRIMARY KEY, v text);
CREATE TABLE nokey (v bytea);
CREATE TABLE wrongkey (id int PRIMARY KEY, v bytea);
INSERT INTO wrongkey SELECT i, pgp_sym_encrypt('x', 'nobody knows') FROM generate_series(1, 30) i;
SELECT try($$ SELECT pq.migrate_column('notbytea', 'v', tenant => 'mg') $$);
SELECT try($$ SELECT pq.migrate_column('nokey', 'v', tenant => 'mg') $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v', tenant => 'mg') $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v', tenant => 'mg', from_kind => 'raw') $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v', tenant => 'mg', from_kind => 'des') $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'nosuch', tenant => 'mg') $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v') $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v', tenant => 'mg', batch_size => 0) $$);
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v', tenant => 'no-such-tenant') $$);
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.migrate_column('wrongkey', 'v', tenant => 'acme') $$);
SELECT try($$ SELECT * FROM pq.migration_status('acme') $$);
RESET ROLE;
SELECT count(*) - :jobs_before AS queued FROM pq.job_queue;
SELECT count(*) AS tracked FROM pq.tracked_columns WHERE relid IN ('notbytea'::regclass, 'nokey'::regclass, 'wrongkey'::regclass);
-- A tracked table dropped without untracking holds nothing: usage, status
-- and counts go on.
CREATE TABLE dropped_later (id int PRIMARY KEY, v bytea);
SELECT pq.track_column('dropped_later', 'v', tenant => 'mg') > 0 AS tracked;
DROP TABLE dropped_later;
SELECT count(*) > 0 AS key_usage_works FROM pq.key_usage;
SELECT status, tracked_columns FROM pq.migration_status('mg');
SELECT count(*) AS counted FROM pq.classical_counts('mg');
DROP TABLE notbytea, nokey, wrongkey, legacy, shared;
DROP EXTENSION pgcrypto;
