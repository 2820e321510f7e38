-- apg_pqcrypto 0.10.0 -> 0.11.0: audit writers never wait (docs/AUDIT.md).
-- - pq.audit_pending: audit rows whose writer found the chain lock held,
--   chained in order by the next holder of the lock, the worker or
--   pq.audit_flush().
-- - pq.audit_flush(): chains the pending rows now (pq_admin).
-- Configuration writers of different keys no longer wait for each other
-- (a lock per key instead of the chain lock: nothing to create here).
-- CNSA 2.0 suites (docs/FORMAT.md §3.4, §5): tenants of ML-KEM-1024 and
-- ML-DSA-87 (pq.create_tenant's new signature argument), a suite change at a
-- rotation (pq.rotate_tenant_key's kem and signature arguments),
-- pq_sign_with's algorithm argument, pq_algorithms(), the suite of each
-- version in pq.tenant_keys, and a policy that requires the CNSA 2.0 suites
-- (pq.tenant_policies.require_suite, shown by pq.policies); audit keys of
-- ML-DSA-87 + Ed25519 or ML-DSA-65 + SLH-DSA (apg_pqcrypto.audit_signature:
-- pq.audit_keys.algorithm and its SLH-DSA columns, and
-- pq.audit_checkpoints.slh_dsa_signature).
-- No stored key, envelope or audit row changes: every 0.10.0 value
-- decrypts and the chain verifies as before.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.10.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.11.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.11.0'" to load this file. \quit

CREATE TABLE pq.audit_pending (
    seq     bigserial PRIMARY KEY,
    ts      timestamptz NOT NULL,
    event   text NOT NULL,
    tenant  text,
    actor   text NOT NULL,
    details jsonb NOT NULL
);
REVOKE ALL ON pq.audit_pending FROM PUBLIC;
GRANT SELECT ON pq.audit_pending TO pq_admin;
SELECT pg_catalog.pg_extension_config_dump('pq.audit_pending', '');
SELECT pg_catalog.pg_extension_config_dump('pq.audit_pending_seq_seq', '');

CREATE  FUNCTION pq."audit_flush"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_flush_wrapper';
REVOKE ALL ON FUNCTION pq.audit_flush() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.audit_flush() TO pq_admin;

-- CNSA 2.0 suites. A tenant's kem and signature name the suites of its next
-- versions; each version's own are told by its keys' lengths.
ALTER TABLE pq.tenants
    DROP CONSTRAINT tenants_kem_check,
    ADD CONSTRAINT tenants_kem_check CHECK (kem IN ('ml-kem-768', 'ml-kem-1024', 'x-wing')),
    ADD COLUMN signature text NOT NULL DEFAULT 'ml-dsa-65' CHECK (signature IN ('ml-dsa-65', 'ml-dsa-87'));
ALTER TABLE pq.tenant_key_versions
    DROP CONSTRAINT tenant_key_versions_public_key_check,
    ADD CONSTRAINT tenant_key_versions_public_key_check CHECK (length(public_key) IN (1184, 1216, 1568)),
    DROP CONSTRAINT tenant_key_versions_verifying_key_check,
    ADD CONSTRAINT tenant_key_versions_verifying_key_check CHECK (length(verifying_key) IN (1952, 2592));

CREATE OR REPLACE VIEW pq.tenant_keys WITH (security_barrier) AS
SELECT tenant, version, state, kid, signing_kid, public_key, verifying_key,
       created_at, activated_at, retired_at, disabled_at, destroyed_at,
       CASE length(public_key) WHEN 1216 THEN 'x-wing' WHEN 1568 THEN 'ml-kem-1024' ELSE 'ml-kem-768' END AS kem,
       blind_index_retired_at,
       CASE length(verifying_key) WHEN 2592 THEN 'ml-dsa-87' ELSE 'ml-dsa-65' END AS signature
  FROM pq.tenant_key_versions
 WHERE pq.tenant_visible(tenant);

DROP FUNCTION pq.create_tenant(text, text);
CREATE  FUNCTION pq."create_tenant"(
	"tenant" TEXT, /* & str */
	"kem" TEXT DEFAULT 'ml-kem-768', /* & str */
	"signature" TEXT DEFAULT 'ml-dsa-65' /* & str */
) RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"version" INT,  /* i32 */
	"kid" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'create_tenant_suite_wrapper';
REVOKE ALL ON FUNCTION pq.create_tenant(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.create_tenant(text, text, text) TO pq_admin;

DROP FUNCTION pq.rotate_tenant_key(text, text, text);
CREATE  FUNCTION pq."rotate_tenant_key"(
	"tenant" TEXT, /* & str */
	"reason" TEXT, /* & str */
	"user_id" TEXT DEFAULT session_user, /* & str */
	"kem" TEXT DEFAULT '', /* & str */
	"signature" TEXT DEFAULT '' /* & str */
) RETURNS TABLE (
	"success" bool,  /* bool */
	"new_key_id" bytea,  /* Vec < u8 > */
	"new_version" INT,  /* i32 */
	"old_key_archived" bool  /* bool */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rotate_tenant_key_suite_wrapper';
REVOKE ALL ON FUNCTION pq.rotate_tenant_key(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.rotate_tenant_key(text, text, text, text, text) TO pq_admin;

DROP FUNCTION pq_sign_with(bytea, bytea, bytea);
CREATE  FUNCTION "pq_sign_with"(
	"secret_key" bytea, /* & [u8] */
	"message" bytea, /* & [u8] */
	"context" bytea DEFAULT '', /* & [u8] */
	"algorithm" TEXT DEFAULT 'ml-dsa-65' /* & str */
) RETURNS bytea /* Vec < u8 > */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_sign_with_suite_wrapper';

CREATE  FUNCTION "pq_algorithms"() RETURNS TABLE (
	"name" TEXT,  /* String */
	"kind" TEXT,  /* String */
	"standard" TEXT,  /* String */
	"category" INT,  /* i32 */
	"cnsa2" bool,  /* bool */
	"backend" TEXT,  /* String */
	"public_key_bytes" INT,  /* i32 */
	"secret_key_bytes" INT,  /* i32 */
	"output_bytes" INT,  /* i32 */
	"envelope_bytes" INT,  /* i32 */
	"envelope_kinds" TEXT  /* String */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_algorithms_wrapper';

-- A policy may require the CNSA 2.0 suites (pq.set_policy's require_suite).
ALTER TABLE pq.tenant_policies ADD COLUMN require_suite text CHECK (require_suite IN ('cnsa2'));
CREATE OR REPLACE VIEW pq.policies AS
SELECT p.tenant, p.rotation_interval, p.overlap_period, p.notification_before, p.auto_rotation, p.max_key_age,
       v.version AS active_version, v.activated_at,
       CASE WHEN p.auto_rotation THEN v.activated_at + make_interval(secs => p.rotation_interval) END AS next_rotation_at,
       CASE WHEN p.auto_rotation AND p.notification_before IS NOT NULL
            THEN v.activated_at + make_interval(secs => p.rotation_interval - p.notification_before) END AS notify_at,
       CASE WHEN p.max_key_age IS NOT NULL THEN v.activated_at + make_interval(secs => p.max_key_age) END AS max_age_at,
       p.updated_at, p.updated_by, p.require_suite
  FROM pq.tenant_policies p
  LEFT JOIN pq.tenant_key_versions v ON v.tenant = p.tenant AND v.state = 'active';

-- Audit keys of other algorithms (apg_pqcrypto.audit_signature): ML-DSA-87 +
-- Ed25519, or ML-DSA-65 + SLH-DSA-SHA2-128s.
ALTER TABLE pq.audit_keys
    DROP CONSTRAINT audit_keys_ml_dsa_public_key_check,
    ADD CONSTRAINT audit_keys_ml_dsa_public_key_check CHECK (length(ml_dsa_public_key) IN (1952, 2592)),
    ALTER COLUMN ed25519_public_key DROP NOT NULL,
    ALTER COLUMN wrapped_ed25519_seed DROP NOT NULL,
    ADD COLUMN algorithm text NOT NULL DEFAULT 'ml-dsa-65+ed25519'
        CHECK (algorithm IN ('ml-dsa-65+ed25519', 'ml-dsa-87+ed25519', 'slh-dsa+ml-dsa-65')),
    ADD COLUMN slh_dsa_public_key bytea CHECK (length(slh_dsa_public_key) = 32),
    ADD COLUMN wrapped_slh_dsa_seed bytea,
    ADD CONSTRAINT audit_keys_hedge CHECK (CASE WHEN algorithm = 'slh-dsa+ml-dsa-65'
        THEN slh_dsa_public_key IS NOT NULL AND wrapped_slh_dsa_seed IS NOT NULL AND ed25519_public_key IS NULL AND wrapped_ed25519_seed IS NULL
        ELSE ed25519_public_key IS NOT NULL AND wrapped_ed25519_seed IS NOT NULL AND slh_dsa_public_key IS NULL AND wrapped_slh_dsa_seed IS NULL END);
-- pq.audit_checkpoints is append-only: its triggers refuse UPDATE and
-- DELETE, not ALTER TABLE.
ALTER TABLE pq.audit_checkpoints
    DROP CONSTRAINT audit_checkpoints_ml_dsa_signature_check,
    ADD CONSTRAINT audit_checkpoints_ml_dsa_signature_check CHECK (length(ml_dsa_signature) IN (3309, 4627)),
    ALTER COLUMN ed25519_signature DROP NOT NULL,
    ADD COLUMN slh_dsa_signature bytea CHECK (length(slh_dsa_signature) = 7856),
    ADD CONSTRAINT audit_checkpoints_hedge CHECK ((ed25519_signature IS NULL) <> (slh_dsa_signature IS NULL));
CREATE OR REPLACE VIEW pq.audit_verifying_keys AS
SELECT kid, state, ml_dsa_public_key, ed25519_public_key, created_at, algorithm, slh_dsa_public_key FROM pq.audit_keys;

-- Master keys in HashiCorp Vault / OpenBao Transit and in KMIP servers: the
-- providers vault_transit and kmip need no schema; a Transit key rotation
-- is followed by pq.rewrap_master_key(), which moves each stored blob to
-- the key's newest version inside the server.
CREATE  FUNCTION pq."rewrap_master_key"() RETURNS TABLE (
	"mdk_id" bytea,  /* Vec < u8 > */
	"provider" TEXT,  /* String */
	"old_key_ref" TEXT,  /* String */
	"key_ref" TEXT,  /* String */
	"rewrapped" bool  /* bool */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rewrap_master_key_wrapper';
REVOKE ALL ON FUNCTION pq.rewrap_master_key() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.rewrap_master_key() TO pq_admin;

-- Scale-out on Citus: pq.citus_setup(), run once by a superuser on the
-- coordinator, makes the key-bearing and lifecycle tables reference
-- tables (docs/SCALE-OUT.md).
CREATE  FUNCTION pq."citus_setup"() RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"placement" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'citus_setup_wrapper';
REVOKE ALL ON FUNCTION pq.citus_setup() FROM PUBLIC;

-- Audit on Citus: a checkpoint names the Citus group of the node whose
-- chain it signs (0: the coordinator, or a single server); the coordinator
-- signs each worker node's chain head (docs/SCALE-OUT.md, Audit).
ALTER TABLE pq.audit_checkpoints ADD COLUMN IF NOT EXISTS node_group integer NOT NULL DEFAULT 0;
CREATE  FUNCTION pq."verify_cluster_audit"() RETURNS TABLE (
	"node_group" INT,  /* i32 */
	"node" TEXT,  /* String */
	"ok" bool,  /* core::option::Option<bool> */
	"first_bad_id" bigint,  /* core::option::Option<i64> */
	"rows_checked" bigint,  /* core::option::Option<i64> */
	"last_checkpoint" timestamp with time zone,  /* core::option::Option<pgrx::datum::time_stamp_with_timezone::TimestampWithTimeZone> */
	"problem" TEXT  /* core::option::Option<alloc::string::String> */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_cluster_audit_wrapper';
REVOKE ALL ON FUNCTION pq.verify_cluster_audit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.verify_cluster_audit() TO pq_admin, pq_monitor;
CREATE  FUNCTION pq."cluster_master_key_status"() RETURNS TABLE (
	"node_group" INT,  /* i32 */
	"node" TEXT,  /* String */
	"mdk_id" bytea,  /* core::option::Option<alloc::vec::Vec<u8>> */
	"state" TEXT,  /* core::option::Option<alloc::string::String> */
	"provider" TEXT,  /* core::option::Option<alloc::string::String> */
	"key_ref" TEXT,  /* core::option::Option<alloc::string::String> */
	"answered" bool,  /* core::option::Option<bool> */
	"last_success" timestamp with time zone,  /* core::option::Option<pgrx::datum::time_stamp_with_timezone::TimestampWithTimeZone> */
	"message" TEXT  /* core::option::Option<alloc::string::String> */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cluster_master_key_status_wrapper';
REVOKE ALL ON FUNCTION pq.cluster_master_key_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.cluster_master_key_status() TO pq_admin, pq_monitor;

-- Jobs on Citus distributed tables (docs/SCALE-OUT.md, Jobs): a tracked
-- column of a distributed table is claimed by a unique key of several
-- columns (pq.tracked_columns.key_columns); its job runs shard by shard on
-- the nodes that hold them, with each shard's progress in pq.job_shards
-- (a reference table once pq.citus_setup() has run: run it again after
-- this update on a Citus cluster). Statements are idempotent: Citus
-- replays this script on the workers after propagating its DDL.
ALTER TABLE pq.tracked_columns ADD COLUMN IF NOT EXISTS key_columns name[];
ALTER TABLE pq.job_queue ADD COLUMN IF NOT EXISTS distributed boolean NOT NULL DEFAULT false;
ALTER TABLE pq.job_queue ADD COLUMN IF NOT EXISTS shards_total integer;
ALTER TABLE pq.job_queue ADD COLUMN IF NOT EXISTS shards_done integer;
CREATE TABLE IF NOT EXISTS pq.job_shards (
    job_id              bigint NOT NULL,
    shardid             bigint NOT NULL,
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'running', 'paused', 'cancelled', 'completed', 'failed', 'gone')),
    node_group          integer,
    rows_total          bigint,
    rows_done           bigint NOT NULL DEFAULT 0,
    rows_failed         bigint NOT NULL DEFAULT 0,
    pass                integer NOT NULL DEFAULT 1,
    batch_errors        integer NOT NULL DEFAULT 0,
    cursor_key          text,
    last_error          text,
    started_at          timestamptz,
    updated_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    kind                text NOT NULL CHECK (kind IN ('reencrypt', 'migrate')),
    from_kind           text CHECK (from_kind IN ('pgp_sym', 'pgp_pub', 'raw', 'any')),
    tracked_id          integer NOT NULL,
    column_name         name NOT NULL,
    tenant              text,
    tenant_column       name,
    aad_column          name,
    distribution_column name NOT NULL,
    batch_size          integer NOT NULL CHECK (batch_size BETWEEN 1 AND 100000),
    PRIMARY KEY (job_id, shardid)
);
CREATE TABLE IF NOT EXISTS pq.job_shard_failures (
    job_id  bigint NOT NULL,
    shardid bigint NOT NULL,
    row_key text NOT NULL,
    reason  text NOT NULL,
    at      timestamptz NOT NULL,
    PRIMARY KEY (job_id, shardid, row_key)
);
REVOKE ALL ON pq.job_shards, pq.job_shard_failures FROM PUBLIC;
GRANT SELECT ON pq.job_shards, pq.job_shard_failures TO pq_admin;
GRANT SELECT ON pq.job_shards TO pq_monitor;
CREATE OR REPLACE VIEW pq.jobs AS
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

-- Re-encryption done in place (docs/OPERATIONS.md): a local re-encryption
-- job on a plain table goes through it range of blocks by range of blocks,
-- each with one UPDATE that calls pq_job_rewrite (which refuses outside
-- the job's own statement).
ALTER TABLE pq.job_queue ADD COLUMN IF NOT EXISTS cursor_block bigint;
ALTER TABLE pq.job_queue ADD COLUMN IF NOT EXISTS pass_end_block bigint;
CREATE FUNCTION "pq_job_rewrite"(
	"value" bytea, /* Option < & [u8] > */
	"aad" bytea, /* Option < & [u8] > */
	"tenant" TEXT /* Option < & str > */
) RETURNS bytea /* Vec < u8 > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_job_rewrite_wrapper';
