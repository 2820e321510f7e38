-- Key lifecycle: rotation, version states, rewrap, tracked columns, jobs,
-- policies, master key rotation. (The background worker runs in another
-- database, so nothing here changes behind the test's back.)

-- Rotation: a new active version; the old one is retired.
SELECT tenant FROM pq.create_tenant('lc');
CREATE TEMP TABLE before_rotation AS
SELECT pq_encrypt('lc', 'keyed-1', 'k') AS keyed, pq_seal(pq.tenant_public_key('lc'), 'sealed-1', 'k') AS sealed,
       pq_sign('lc', 'message-1') AS signature;
SELECT success, length(new_key_id), new_version, old_key_archived FROM pq.rotate_tenant_key('lc', 'first rotation');
SELECT version, state, retired_at IS NOT NULL AS retired_at_set FROM pq.tenant_keys WHERE tenant = 'lc' ORDER BY version;
-- New values use version 2 at once; old ones still open.
SELECT pq_inspect(pq_encrypt('lc', 'x'))->>'key_version' AS encrypts_with;
SELECT pq_decrypt_text(keyed, 'k'), pq_unseal_text(sealed, 'k'), pq_verify('lc', 'message-1', signature) FROM before_rotation;
-- Only administrators rotate.
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.rotate_tenant_key('acme', 'not mine') $$);
RESET ROLE;
SELECT try($$ SELECT pq.rotate_tenant_key('no-such-tenant', 'x') $$);
-- A reason or user id longer than the event can record: 22023, nothing rotated.
SELECT try($$ SELECT pq.rotate_tenant_key('lc', repeat('r', 1025)) $$);
SELECT try($$ SELECT pq.rotate_tenant_key('lc', 'r', repeat('u', 257)) $$);
SELECT max(version) AS lc_versions FROM pq.tenant_keys WHERE tenant = 'lc';

-- Every state x every operation. Versions 1..4 of tenant st end up
-- destroyed, disabled, retired and active; each made a keyed, a sealed and
-- a signed value while it was active.
SELECT tenant FROM pq.create_tenant('st');
CREATE TEMP TABLE made (version int, keyed bytea, sealed bytea, signature bytea);
INSERT INTO made SELECT 1, pq_encrypt('st', 'v1', 'k'), pq_seal(pq.tenant_public_key('st'), 'v1', 'k'), pq_sign('st', 'm1');
SELECT new_version FROM pq.rotate_tenant_key('st', 'r');
INSERT INTO made SELECT 2, pq_encrypt('st', 'v2', 'k'), pq_seal(pq.tenant_public_key('st'), 'v2', 'k'), pq_sign('st', 'm2');
SELECT new_version FROM pq.rotate_tenant_key('st', 'r');
INSERT INTO made SELECT 3, pq_encrypt('st', 'v3', 'k'), pq_seal(pq.tenant_public_key('st'), 'v3', 'k'), pq_sign('st', 'm3');
SELECT new_version FROM pq.rotate_tenant_key('st', 'r');
INSERT INTO made SELECT 4, pq_encrypt('st', 'v4', 'k'), pq_seal(pq.tenant_public_key('st'), 'v4', 'k'), pq_sign('st', 'm4');
SELECT pq.destroy_key_version('st', 1, confirm => 'destroy st v1');
SELECT pq.disable_key_version('st', 2);
SELECT version, state FROM pq.tenant_keys WHERE tenant = 'st' ORDER BY version;
SELECT m.version, k.state,
       try(format($q$ SELECT pq_decrypt(%L::bytea, 'k'::bytea) $q$, m.keyed)) AS decrypt,
       try(format($q$ SELECT pq_unseal(%L::bytea, 'k'::bytea) $q$, m.sealed)) AS unseal,
       try(format($q$ SELECT pq_verify('st', %L, %L::bytea) $q$, 'm' || m.version, m.signature)) AS verify,
       try(format($q$ SELECT pq.rewrap(%L::bytea, 'k'::bytea) $q$, m.keyed)) AS rewrap
  FROM made m JOIN pq.tenant_keys k ON k.tenant = 'st' AND k.version = m.version
 ORDER BY m.version;
-- What verify returns (try shows only whether it raised).
SELECT m.version, pq_verify('st', convert_to('m' || m.version, 'UTF8'), m.signature) FROM made m WHERE m.version <> 2 ORDER BY 1;
-- Encryption and signing use the active version.
SELECT pq_inspect(pq_encrypt('st', 'x'))->>'key_version' AS encrypts_with,
       pq_inspect(pq_sign('st', 'x'))->>'key_version' AS signs_with;

-- State rules.
SELECT try($$ SELECT pq.disable_key_version('st', 4) $$) AS disable_active;
SELECT try($$ SELECT pq.destroy_key_version('st', 3, confirm => 'yes') $$) AS wrong_confirm;
SELECT try($$ SELECT pq.destroy_key_version('st', 4, confirm => 'destroy st v4') $$) AS destroy_active;
SELECT try($$ SELECT pq.enable_key_version('st', 1) $$) AS enable_destroyed;
SELECT try($$ SELECT pq.disable_key_version('st', 9) $$) AS unknown_version;
SELECT pq.disable_key_version('st', 2) AS disable_twice, pq.destroy_key_version('st', 1, confirm => 'destroy st v1') AS destroy_twice;
SELECT pq.enable_key_version('st', 2) AS enabled, pq_decrypt_text(keyed, 'k') AS decrypts_again FROM made WHERE version = 2;
SELECT pq.set_min_decryption_version('st', 4) AS disabled_below_4;
SELECT version, state FROM pq.tenant_keys WHERE tenant = 'st' ORDER BY version;
SELECT try($$ SELECT pq.set_min_decryption_version('st', 5) $$) AS above_active;

-- A version that the current value of a configuration key uses is neither
-- disabled nor destroyed without force (the value would be lost); setting
-- the value again moves it to the active version and frees the old one.
SELECT tenant FROM pq.create_tenant('cfgv');
SELECT pq.config_set('cfgv', 'db_url', 'postgres://a') AS v1, pq.config_set('cfgv', 'gone', 'x') AS g1;
SELECT pq.config_delete('cfgv', 'gone') AS deleted;
SELECT new_version FROM pq.rotate_tenant_key('cfgv', 'r');
SELECT try($$ SELECT pq.disable_key_version('cfgv', 1) $$) AS disable_in_use;
SELECT try($$ SELECT pq.destroy_key_version('cfgv', 1, confirm => 'destroy cfgv v1') $$) AS destroy_in_use;
SELECT pq.config_set('cfgv', 'db_url', pq.config_get('cfgv', 'db_url')) AS set_again;
SELECT pq.disable_key_version('cfgv', 1) AS disabled, pq.config_get('cfgv', 'db_url') AS still_reads;

-- rewrap keeps the kind, moves to the active version, never returns a plaintext.
SELECT pq_inspect(pq.rewrap(keyed, 'k')) - 'kid' - 'plaintext_length' AS keyed_rewrapped,
       pq_decrypt_text(pq.rewrap(keyed, 'k'), 'k') AS keyed_value,
       pq_inspect(pq.rewrap(sealed, 'k'))->>'kind' AS sealed_stays, pq_unseal_text(pq.rewrap(sealed, 'k'), 'k') AS sealed_value
  FROM before_rotation;
SELECT pq.rewrap(e, 'k') = e AS already_current FROM (SELECT pq_encrypt('lc', 'now', 'k') AS e) s;
SELECT try($$ SELECT pq.rewrap(keyed, 'wrong') FROM before_rotation $$) AS wrong_aad,
       try($$ SELECT pq.rewrap(signature) FROM before_rotation $$) AS signature;
GRANT SELECT ON before_rotation TO PUBLIC;
SET ROLE regress_app_b;
SELECT try($$ SELECT pq.rewrap(keyed, 'k') FROM before_rotation $$) AS other_tenant;
RESET ROLE;

-- Tracked columns, key usage, and a disable refused while ciphertexts remain.
SELECT tenant FROM pq.create_tenant('tr');
CREATE TABLE tracked (id int PRIMARY KEY, name text NOT NULL, value pq_envelope);
INSERT INTO tracked SELECT i, 'n' || i, pq_encrypt('tr', 'value-' || i, 'n' || i) FROM generate_series(1, 20) i;
SELECT pq.track_column('tracked', 'value', tenant => 'tr', aad_column => 'name') > 0 AS tracked;
SELECT new_version FROM pq.rotate_tenant_key('tr', 'r');
SELECT tenant, version, state, table_name, column_name, ciphertexts FROM pq.key_usage WHERE tenant = 'tr';
SELECT try($$ SELECT pq.disable_key_version('tr', 1) $$) AS in_use;
SELECT try($$ SELECT pq.destroy_key_version('tr', 1, confirm => 'destroy tr v1') $$) AS in_use;
-- Bad definitions: nothing is recorded.
CREATE TABLE no_key (value bytea);
CREATE VIEW tracked_view AS SELECT * FROM tracked;
SELECT try($$ SELECT pq.track_column('tracked', 'nope', tenant => 'tr') $$) AS unknown_column,
       try($$ SELECT pq.track_column('tracked', 'name', tenant => 'tr') $$) AS wrong_type,
       try($$ SELECT pq.track_column('no_key', 'value', tenant => 'tr') $$) AS no_key;
SELECT try($$ SELECT pq.track_column('tracked', 'value', tenant => 'tr', tenant_column => 'name') $$) AS both,
       try($$ SELECT pq.track_column('tracked', 'value') $$) AS neither,
       try($$ SELECT pq.track_column('tracked_view', 'value', tenant => 'tr') $$) AS a_view,
       try($$ SELECT pq.track_column('tracked', 'value', tenant => 'nobody') $$) AS unknown_tenant,
       try($$ SELECT pq.track_column('tracked', 'value', tenant => 'tr', aad_column => 'id') $$) AS aad_type;
SELECT try($$ SELECT pq.track_column('nope_table', 'value', tenant => 'tr') $$) AS unknown_table;
-- Tracking and re-encrypting take the rights an UPDATE of the column takes:
-- a pq_admin member cannot have the worker rewrite a table it may not update.
CREATE TABLE not_yours (id int PRIMARY KEY, value bytea);
GRANT SELECT ON not_yours TO regress_admin;
SET ROLE regress_admin;
SELECT try($$ SELECT pq.track_column('not_yours', 'value', tenant => 'tr') $$) AS without_update;
RESET ROLE;
GRANT UPDATE (value) ON not_yours TO regress_admin;
SET ROLE regress_admin;
SELECT pq.track_column('not_yours', 'value', tenant => 'tr') > 0 AS with_update;
RESET ROLE;
REVOKE UPDATE (value) ON not_yours FROM regress_admin;
SET ROLE regress_admin;
SELECT try($$ SELECT pq.reencrypt('not_yours', 'value') $$) AS after_revoke,
       try($$ SELECT count(*) FROM pq.reencrypt_tenant('tr') $$) AS tenant_after_revoke;
RESET ROLE;
SELECT pq.untrack_column('not_yours', 'value') AS untracked;
DROP TABLE not_yours;
SELECT count(*) AS tracked_columns FROM pq.tracked_columns;

-- Jobs: queued for the worker, controlled, visible in pq.jobs.
SELECT pq.reencrypt('tracked', 'value', batch_size => 5) AS job \gset
SELECT state, rows_done, batch_size, table_name, column_name, tenant FROM pq.jobs WHERE id = :job;
SELECT pq.pause_job(:job) AS paused, pq.pause_job(:job) AS paused_twice, pq.resume_job(:job) AS resumed,
       pq.cancel_job(:job) AS cancelled, pq.resume_job(:job) AS resume_cancelled;
SELECT state, finished_at IS NOT NULL AS finished FROM pq.jobs WHERE id = :job;
SELECT try($$ SELECT pq.reencrypt('no_key', 'value') $$) AS untracked,
       try($$ SELECT pq.reencrypt('tracked', 'value', batch_size => 0) $$) AS bad_batch;
SELECT count(*) AS jobs_for_tr FROM pq.reencrypt_tenant('tr');

-- Policies: validated, merged, shown with their due times.
SELECT pq.set_policy('tr', '{"rotation_interval": 86400, "notification_before": 3600, "overlap_period": 600}');
SELECT pq.set_policy('tr', '{"max_key_age": 172800, "overlap_period": null}');
SELECT tenant, rotation_interval, overlap_period, notification_before, auto_rotation, max_key_age, active_version,
       next_rotation_at IS NULL AS no_next_rotation, max_age_at - activated_at AS max_age
  FROM pq.policies WHERE tenant = 'tr';
SELECT try($$ SELECT pq.set_policy('tr', '{"rotation_intervall": 10}') $$) AS unknown_field,
       try($$ SELECT pq.set_policy('tr', '{"rotation_interval": -5}') $$) AS negative,
       try($$ SELECT pq.set_policy('tr', '{"rotation_interval": 99999999999}') $$) AS absurd;
SELECT try($$ SELECT pq.set_policy('tr', '{"notification_before": 86400}') $$) AS notify_after_due,
       try($$ SELECT pq.set_policy('lc', '{"auto_rotation": true}') $$) AS auto_without_interval,
       try($$ SELECT pq.set_policy('tr', '{"rotation_interval": "daily"}') $$) AS not_a_number,
       try($$ SELECT pq.set_policy('tr', '[1]') $$) AS not_an_object;
-- A version past max_key_age refuses to encrypt (and sign) until rotated.
SELECT pq.set_policy('tr', '{"max_key_age": 1}') ->> 'max_key_age' AS max_key_age;
SELECT pg_sleep(1.2);
SELECT try($$ SELECT pq_encrypt('tr', 'too old') $$) AS encrypt, try($$ SELECT pq_sign('tr', 'too old') $$) AS sign;
SELECT pq_decrypt_text(value, name) AS still_decrypts FROM tracked WHERE id = 1;
SELECT new_version FROM pq.rotate_tenant_key('tr', 'max age reached');
SELECT length(pq_encrypt('tr', 'fresh')) > 0 AS encrypts_after_rotation;

-- The master data key: a new one, every tenant secret rewrapped, no value touched.
SELECT versions_rewrapped > 0 AS rewrapped, length(mdk_id) FROM pq.rotate_master_key();
SELECT state, count(*) FROM pq.master_keys GROUP BY state ORDER BY state;
SELECT count(DISTINCT mdk_id) AS mdks_in_use FROM pq.tenant_key_versions WHERE wrapped_kem_seed IS NOT NULL;
SELECT count(*) AS still_decrypt FROM tracked WHERE pq_decrypt_text(value, name) = 'value-' || id;
SELECT pq_decrypt_text(keyed, 'k') FROM before_rotation;
SELECT pq_verify('lc', 'message-1', signature) FROM before_rotation;

-- Every change was recorded, with no secret.
SELECT event, version, reason FROM pq.key_events WHERE tenant = 'st' ORDER BY id;
SELECT count(*) FILTER (WHERE details::text ~ 'v1|value-') AS plaintext_in_events FROM pq.key_events;
SELECT pq.untrack_column('tracked', 'value') AS untracked, pq.untrack_column('tracked', 'value') AS untracked_twice;
DROP TABLE tracked, no_key CASCADE;

-- Master key providers (the pkcs11 and aws_kms ones are tested against a
-- real token and KMS-compatible server in tests/integration/providers.sh).
SELECT provider, versions_rewrapped > 0 AS rewrapped FROM pq.rotate_master_key('file');
SELECT * FROM pq.rotate_master_key('vault');
SELECT state, provider, length(key_ref) AS key_ref_len, answered, provider_calls > 0 AS called, message
  FROM pq.master_key_status() ORDER BY state, provider;
-- An unconfigured provider: PQ004, nothing changed.
SELECT count(*) AS master_keys_before FROM pq.master_keys;
SELECT * FROM pq.rotate_master_key('pkcs11');
SELECT * FROM pq.rotate_master_key('aws_kms');
SELECT * FROM pq.rotate_master_key('vault_transit');
SELECT * FROM pq.rotate_master_key('kmip');
-- A key file cannot rewrap inside a provider: every row stays as it is.
SELECT provider, key_ref = old_key_ref AS same_ref, rewrapped FROM pq.rewrap_master_key() ORDER BY mdk_id;
SELECT count(*) AS master_keys_after FROM pq.master_keys;
SELECT pq_decrypt_text(pq_encrypt('tr', 'still works'));
SET ROLE regress_app_a;
SELECT * FROM pq.master_key_status();
RESET ROLE;
