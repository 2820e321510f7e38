-- Runs after every function exists: the pq_envelope domain, the view of
-- tenant keys, the invalidation triggers and privileges.

CREATE DOMAIN pq_envelope AS bytea CHECK (pq_envelope_check(VALUE));
COMMENT ON DOMAIN pq_envelope IS 'A well-formed apg_pqcrypto v1 envelope; anything else fails with 22023';

-- No secret columns, and only the tenants the caller sees: those it may
-- use (pq_admin members and superusers see all). security_barrier keeps
-- the filter ahead of any function a caller adds to the query.
CREATE VIEW pq.tenant_keys WITH (security_barrier) AS
SELECT tenant, version, state, kid, signing_kid, public_key, verifying_key,
       created_at, activated_at, retired_at, disabled_at, destroyed_at,
       CASE length(public_key) WHEN 1216 THEN 'x-wing' WHEN 1568 THEN 'ml-kem-1024' ELSE 'ml-kem-768' END AS kem,
       blind_index_retired_at,
       CASE length(verifying_key) WHEN 2592 THEN 'ml-dsa-87' ELSE 'ml-dsa-65' END AS signature
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
-- A policy's max_key_age decides whether a version may still encrypt.
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenant_policies
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation_replica AFTER INSERT OR UPDATE OR DELETE ON pq.tenant_policies
    FOR EACH ROW EXECUTE FUNCTION pq_key_tables_changed();
ALTER TABLE pq.tenant_policies ENABLE ALWAYS TRIGGER key_cache_invalidation,
                               ENABLE REPLICA TRIGGER key_cache_invalidation_replica;
REVOKE ALL ON FUNCTION pq_key_tables_changed() FROM PUBLIC;

-- Key administration.
REVOKE ALL ON FUNCTION pq.create_tenant(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq.grant_tenant(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq.revoke_tenant(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.create_tenant(text, text, text), pq.grant_tenant(text, text),
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

-- Key lifecycle (0.2.0).

-- Re-encryption jobs, like pg_stat_progress_*: counters, rate and ETA.
CREATE VIEW pq.jobs AS
SELECT j.id, j.kind, t.relid AS table_name, t.column_name, coalesce(j.tenant, t.tenant) AS tenant, j.state,
       j.rows_total, j.rows_done, j.rows_failed,
       CASE WHEN j.state = 'completed' THEN 100.0
            WHEN j.rows_total > 0 THEN round(100.0 * least(j.rows_done + j.rows_failed, j.rows_total) / j.rows_total, 1)
       END AS percent,
       r.rows_per_second,
       CASE WHEN j.state = 'running' AND r.rows_per_second > 0 AND j.rows_total IS NOT NULL
            THEN j.updated_at + make_interval(secs => greatest(j.rows_total - j.rows_done - j.rows_failed, 0) / r.rows_per_second)
       END AS eta,
       j.pass, j.batch_size, j.last_error, j.created_at, j.created_by, j.started_at, j.updated_at, j.finished_at,
       j.shards_total, j.shards_done
  FROM pq.job_queue j
  JOIN pq.tracked_columns t ON t.id = j.tracked_id
  CROSS JOIN LATERAL (
    SELECT CASE WHEN j.started_at IS NOT NULL AND j.rows_done > 0
                THEN round(j.rows_done / greatest(extract(epoch FROM coalesce(j.finished_at, j.updated_at) - j.started_at), 0.001), 1)
           END AS rows_per_second) r;

-- Each tenant's policy and when its next rotation, notification and
-- max_key_age fall.
CREATE VIEW pq.policies AS
SELECT p.tenant, p.rotation_interval, p.overlap_period, p.notification_before, p.auto_rotation, p.max_key_age,
       v.version AS active_version, v.activated_at,
       CASE WHEN p.auto_rotation THEN v.activated_at + make_interval(secs => p.rotation_interval) END AS next_rotation_at,
       CASE WHEN p.auto_rotation AND p.notification_before IS NOT NULL
            THEN v.activated_at + make_interval(secs => p.rotation_interval - p.notification_before) END AS notify_at,
       CASE WHEN p.max_key_age IS NOT NULL THEN v.activated_at + make_interval(secs => p.max_key_age) END AS max_age_at,
       p.updated_at, p.updated_by, p.require_suite
  FROM pq.tenant_policies p
  LEFT JOIN pq.tenant_key_versions v ON v.tenant = p.tenant AND v.state = 'active';

-- Ciphertexts per tenant, key version and tracked column (scans them all).
CREATE VIEW pq.key_usage AS SELECT * FROM pq.key_usage_counts();

GRANT SELECT ON pq.jobs, pq.policies, pq.key_usage TO pq_admin;

REVOKE ALL ON FUNCTION pq.rotate_tenant_key(text, text, text, text, text), pq.disable_key_version(text, integer, boolean),
                       pq.enable_key_version(text, integer), pq.destroy_key_version(text, integer, text, boolean),
                       pq.set_min_decryption_version(text, integer, boolean), pq.rotate_master_key(text),
                       pq.master_key_status(),
                       pq.track_column(regclass, text, text, text, text, text, text, integer, text), pq.untrack_column(regclass, text),
                       pq.key_usage_counts(), pq.reencrypt(regclass, text, integer), pq.reencrypt_tenant(text, integer),
                       pq.pause_job(bigint), pq.resume_job(bigint), pq.cancel_job(bigint), pq.set_policy(text, jsonb),
                       pq.rewrap(bytea, bytea)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.rotate_tenant_key(text, text, text, text, text), pq.disable_key_version(text, integer, boolean),
                          pq.enable_key_version(text, integer), pq.destroy_key_version(text, integer, text, boolean),
                          pq.set_min_decryption_version(text, integer, boolean), pq.rotate_master_key(text),
                          pq.master_key_status(),
                          pq.track_column(regclass, text, text, text, text, text, text, integer, text), pq.untrack_column(regclass, text),
                          pq.key_usage_counts(), pq.reencrypt(regclass, text, integer), pq.reencrypt_tenant(text, integer),
                          pq.pause_job(bigint), pq.resume_job(bigint), pq.cancel_job(bigint), pq.set_policy(text, jsonb)
    TO pq_admin;
REVOKE ALL ON FUNCTION pq.rewrap_master_key() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.rewrap_master_key() TO pq_admin;
-- Citus setup: superusers only (docs/SCALE-OUT.md).
REVOKE ALL ON FUNCTION pq.citus_setup() FROM PUBLIC;
-- rewrap opens and makes envelopes of a tenant: like pq_decrypt, it needs a grant on it.
GRANT EXECUTE ON FUNCTION pq.rewrap(bytea, bytea) TO pq_user, pq_admin;

-- Migration off classical crypto (0.4.0).

-- Registered classical keys, without the keys.
CREATE VIEW pq.classical_key_list AS
SELECT id, tenant, kind, options, wrapped_passphrase IS NOT NULL AS has_passphrase,
       public_key IS NOT NULL AS has_public_key, created_at, created_by
  FROM pq.classical_keys;

-- Migration jobs (as in pq.jobs) and migrations running in sessions
-- (pq.migrate_column_now, from shared memory while they run).
CREATE VIEW pq.migration_progress AS
SELECT 'job'::text AS source, j.id AS job, NULL::integer AS pid, j.table_name, j.column_name, j.tenant, j.state,
       j.rows_total, j.rows_done, j.rows_failed, j.percent, j.rows_per_second, j.eta, j.started_at, j.updated_at
  FROM pq.jobs j
 WHERE j.kind = 'migrate'
UNION ALL
SELECT 'session', s.job, s.pid, s.table_name::regclass, NULL, NULL, 'running',
       s.rows_total, s.rows_done, s.rows_failed,
       CASE WHEN s.rows_total > 0 THEN round(100.0 * least(s.rows_done + s.rows_failed, s.rows_total) / s.rows_total, 1) END,
       NULL, NULL, NULL, s.updated_at
  FROM pq.migration_sessions() s;

-- Rows a job could not re-encrypt or migrate (their key values), with the
-- reason; never a value.
GRANT SELECT ON pq.classical_key_list, pq.migration_progress, pq.job_failures TO pq_admin;

REVOKE ALL ON FUNCTION pq.register_classical_key(text, text, bytea, text, bytea, bytea), pq.drop_classical_key(integer),
                       pq.migrate_column(regclass, text, text, text, text, integer, text),
                       pq.migrate_column_now(regclass, text, text, text, text, integer, text),
                       pq.migration_status(text), pq.classical_counts(text), pq.retry_job(bigint),
                       pq.migration_sessions(),
                       pq.decrypt_any(bytea, text, bytea), pq.decrypt_any_text(bytea, text, text),
                       pq.encrypt_dual_mode(text, bytea, bytea), pq.encrypt_dual_mode(text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.register_classical_key(text, text, bytea, text, bytea, bytea), pq.drop_classical_key(integer),
                          pq.migrate_column(regclass, text, text, text, text, integer, text),
                          pq.migrate_column_now(regclass, text, text, text, text, integer, text),
                          pq.migration_status(text), pq.classical_counts(text), pq.retry_job(bigint),
                          pq.migration_sessions()
    TO pq_admin;
-- Like pq_decrypt and pq_encrypt: checked per tenant inside.
GRANT EXECUTE ON FUNCTION pq.decrypt_any(bytea, text, bytea), pq.decrypt_any_text(bytea, text, text),
                          pq.encrypt_dual_mode(text, bytea, bytea), pq.encrypt_dual_mode(text, text, text)
    TO pq_user, pq_admin;

-- Configuration store, audit trail and monitoring (0.5.0).

-- Keys, versions and metadata of the configuration store, for the tenants
-- the caller may see: never a value.
CREATE VIEW pq.config WITH (security_barrier) AS
SELECT r.tenant, r.key, r.version AS current_version, r.op = 'delete' AS deleted, r.op = 'set_sealed' AS sealed,
       r.user_id AS updated_by, r.ts AS updated_at, n.versions, f.ts AS created_at
  FROM (SELECT DISTINCT ON (tenant, key) * FROM pq.config_records ORDER BY tenant, key, version DESC) r
  JOIN (SELECT tenant, key, count(*) AS versions FROM pq.config_records GROUP BY tenant, key) n USING (tenant, key)
  JOIN pq.config_records f ON f.tenant = r.tenant AND f.key = r.key AND f.version = 1
 WHERE pq.tenant_visible(r.tenant);

-- Failed decryptions and signature failures per tenant, role and minute,
-- with whether the minute raised the alert.
CREATE VIEW pq.security_events AS
SELECT tenant, role_name, kind, minute, count, alerted FROM pq.security_counts;

-- The audit key's public half (an auditor's verifying keys).
CREATE VIEW pq.audit_verifying_keys AS
SELECT kid, state, ml_dsa_public_key, ed25519_public_key, created_at, algorithm, slh_dsa_public_key FROM pq.audit_keys;

GRANT SELECT ON pq.config TO pq_admin, pq_user;
GRANT SELECT ON pq.security_events, pq.audit_verifying_keys TO pq_admin;

REVOKE ALL ON FUNCTION pq.config_set(text, text, text, text), pq.config_set_sealed(text, text, bytea, bytea, text),
                       pq.config_delete(text, text, text), pq.config_get(text, text), pq.config_history(text, text),
                       pq.config_verify(text), pq.config_head(text, text),
                       pq.sign_config_change(text, text, bytea, bytea, text, timestamptz, bigint, bytea),
                       pq.verify_config_signature(text, text, bytea, bytea, text, timestamptz, bytea, bigint, bytea),
                       pq.config_register_signer(text, text, bytea), pq.config_drop_signer(text, text),
                       pq.audit_checkpoint(), pq.verify_audit_chain(), pq.flush_counters(),
                       pq.compliance_report(text, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.config_set(text, text, text, text), pq.config_set_sealed(text, text, bytea, bytea, text),
                          pq.config_delete(text, text, text), pq.config_get(text, text),
                          pq.config_history(text, text), pq.config_verify(text), pq.config_head(text, text),
                          pq.sign_config_change(text, text, bytea, bytea, text, timestamptz, bigint, bytea),
                          pq.verify_config_signature(text, text, bytea, bytea, text, timestamptz, bytea, bigint, bytea)
    TO pq_user, pq_admin;
GRANT EXECUTE ON FUNCTION pq.config_register_signer(text, text, bytea), pq.config_drop_signer(text, text),
                          pq.audit_checkpoint(), pq.verify_audit_chain(), pq.flush_counters(),
                          pq.compliance_report(text, integer)
    TO pq_admin;

-- Client side and transport (0.6.0): forward-secure sessions. The
-- functions check the caller's use of the session's tenant inside.
CREATE VIEW pq.sessions AS SELECT * FROM pq.session_list();
REVOKE ALL ON FUNCTION pq.session_begin(text, interval), pq.session_end(uuid), pq.session_list(),
                       pq_session_open(uuid, bytea, bytea), pq_session_open_text(uuid, bytea, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.session_begin(text, interval), pq.session_end(uuid), pq.session_list(),
                          pq_session_open(uuid, bytea, bytea), pq_session_open_text(uuid, bytea, text)
    TO pq_user, pq_admin;
GRANT SELECT ON pq.sessions TO pq_user, pq_admin;

-- Key escrow and disaster-recovery backups (0.7.0): pq_admin only (the
-- functions check it too).
REVOKE ALL ON FUNCTION pq.escrow_add_custodian(text, bytea), pq.configure_key_escrow(jsonb), pq.escrow_split(),
                       pq.escrow_request_recovery(text), pq.escrow_approve(uuid, bytea), pq.escrow_recover(uuid, bytea[]),
                       pq.escrow_status(), pq.export_key_backup(text, bytea, boolean), pq.restore_begin(),
                       pq.restore_key_backup(bytea, text, boolean), pq.escrow_add_approver(text, bytea),
                       pq.escrow_statement(uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.escrow_add_custodian(text, bytea), pq.configure_key_escrow(jsonb), pq.escrow_split(),
                          pq.escrow_request_recovery(text), pq.escrow_approve(uuid, bytea), pq.escrow_recover(uuid, bytea[]),
                          pq.escrow_status(), pq.export_key_backup(text, bytea, boolean), pq.restore_begin(),
                          pq.restore_key_backup(bytea, text, boolean), pq.escrow_add_approver(text, bytea),
                          pq.escrow_statement(uuid)
    TO pq_admin;

-- Blind indexes (0.9.0): terms under a tenant's keys, checked per tenant
-- inside like pq_encrypt; retiring an index key is key administration.
REVOKE ALL ON FUNCTION pq_blind_index(text, text, text, integer, text), pq_blind_index(text, bytea, text, integer),
                       pq_blind_indexes(text, text, text, integer, text), pq_blind_indexes(text, bytea, text, integer),
                       pq_encrypt_indexed(text, text, text, text, integer, text),
                       pq.retire_blind_index_key(text, integer, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq_blind_index(text, text, text, integer, text), pq_blind_index(text, bytea, text, integer),
                          pq_blind_indexes(text, text, text, integer, text), pq_blind_indexes(text, bytea, text, integer),
                          pq_encrypt_indexed(text, text, text, text, integer, text)
    TO pq_user;
GRANT EXECUTE ON FUNCTION pq.retire_blind_index_key(text, integer, boolean) TO pq_admin;
-- Exporting an index key to a client is granted separately: no role may
-- call it until a superuser grants EXECUTE (the caller also needs the
-- tenant's grant).
REVOKE ALL ON FUNCTION pq.export_index_key(text, text, bytea, integer) FROM PUBLIC;

-- Every stored key version checked end to end (0.9.0): pq_admin.
REVOKE ALL ON FUNCTION pq.verify_keys(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.verify_keys(text) TO pq_admin;

-- Operating it (0.10.0): crypto-shredding, enforced encryption, key DDL in
-- the audit chain (docs/OPERATIONS.md).
REVOKE ALL ON FUNCTION pq.shred_tenant(text, text), pq.enforcement_report(), pq.ddl_dropped(), pq.ddl_ended() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.shred_tenant(text, text), pq.enforcement_report() TO pq_admin;

-- The DDL audit's event triggers (src/audit/ddl.rs): their functions run as
-- the extension's owner, who alone may execute pq.ddl_dropped and
-- pq.ddl_ended; those read pg_event_trigger_dropped_objects() and
-- pg_event_trigger_ddl_commands(), so they do nothing outside an event
-- trigger. Dropping the extension drops them first.
CREATE FUNCTION pq.audit_sql_drop() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pq, pg_temp AS $$
BEGIN
    IF pg_catalog.to_regprocedure('pq.ddl_dropped()') IS NOT NULL THEN
        PERFORM pq.ddl_dropped();
    END IF;
END
$$;
CREATE FUNCTION pq.audit_ddl_end() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pq, pg_temp AS $$
BEGIN
    IF pg_catalog.to_regprocedure('pq.ddl_ended()') IS NOT NULL THEN
        PERFORM pq.ddl_ended();
    END IF;
END
$$;
REVOKE ALL ON FUNCTION pq.audit_sql_drop(), pq.audit_ddl_end() FROM PUBLIC;
CREATE EVENT TRIGGER pq_audit_sql_drop ON sql_drop EXECUTE FUNCTION pq.audit_sql_drop();
CREATE EVENT TRIGGER pq_audit_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'ALTER EXTENSION')
    EXECUTE FUNCTION pq.audit_ddl_end();

-- Latency and key cache statistics (0.10.0), read from shared memory
-- (journal::latency): pq_admin.
CREATE VIEW pq.stat_latency AS SELECT * FROM pq.stat_latency_rows();
CREATE VIEW pq.stat_cache AS SELECT * FROM pq.stat_cache_rows();
REVOKE ALL ON FUNCTION pq.stat_latency_rows(), pq.stat_cache_rows(), pq.stat_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.stat_latency_rows(), pq.stat_cache_rows(), pq.stat_reset() TO pq_admin;
GRANT SELECT ON pq.stat_latency, pq.stat_cache TO pq_admin;

-- A monitoring role (0.10.0): reads the statistics and health checks that
-- docs/monitoring/postgres_exporter.yml queries, administers nothing, uses
-- no tenant's keys.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pq_monitor') THEN
        CREATE ROLE pq_monitor NOLOGIN;
    END IF;
END
$$;
CREATE VIEW pq.key_ages AS
SELECT tenant, version, activated_at, now() - activated_at AS age FROM pq.tenant_key_versions WHERE state = 'active';
GRANT USAGE ON SCHEMA pq TO pq_monitor;
GRANT EXECUTE ON FUNCTION pq.stat_latency_rows(), pq.stat_cache_rows(), pq.verify_audit_chain(), pq.master_key_status()
    TO pq_monitor;
GRANT SELECT ON pq.stat_latency, pq.stat_cache, pq.security_events, pq.jobs, pq.audit_checkpoints TO pq_monitor;
GRANT SELECT ON pq.job_shards TO pq_monitor;
GRANT SELECT ON pq.key_ages TO pq_admin, pq_monitor;

-- 0.11.0: audit writers never wait; pq.audit_flush() chains what waits in
-- pq.audit_pending now.
REVOKE ALL ON FUNCTION pq.audit_flush() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.audit_flush() TO pq_admin;

-- The Citus cluster's audit check and master key status (docs/SCALE-OUT.md):
-- as pq.verify_audit_chain and pq.master_key_status.
REVOKE ALL ON FUNCTION pq.verify_cluster_audit(), pq.cluster_master_key_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.verify_cluster_audit(), pq.cluster_master_key_status() TO pq_admin, pq_monitor;
