-- apg_pqcrypto 0.1.0 -> 0.2.0: the key lifecycle.
-- Version states gain 'disabled'; new tables for lifecycle events,
-- rotation policies, tracked columns and re-encryption jobs; new functions
-- (rotation, version states, rewrap, master key rotation, tracking, jobs,
-- policies) and views (pq.jobs, pq.policies, pq.key_usage). No stored
-- key or envelope changes: every 0.1.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0, fills it, runs ALTER
-- EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.2.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.2.0'" to load this file. \quit

ALTER TABLE pq.tenant_key_versions DROP CONSTRAINT tenant_key_versions_state_check;
ALTER TABLE pq.tenant_key_versions
    ADD CONSTRAINT tenant_key_versions_state_check CHECK (state IN ('active', 'retired', 'disabled', 'destroyed')),
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN destroyed_at timestamptz;

-- Key lifecycle (0.2.0): events, policies, tracked columns, jobs.

-- Every lifecycle event, never a secret: rotations, state changes, policy
-- changes, jobs, master key rotations. The audit trail chains and signs it.
CREATE TABLE pq.key_events (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    event   text NOT NULL,
    tenant  text,
    version integer,
    actor   text NOT NULL DEFAULT session_user,
    reason  text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX key_events_tenant ON pq.key_events (tenant, at);

-- Rotation policy per tenant (seconds), as pq.set_policy validates it.
CREATE TABLE pq.tenant_policies (
    tenant              text PRIMARY KEY REFERENCES pq.tenants (name) ON DELETE CASCADE,
    rotation_interval   bigint CHECK (rotation_interval > 0),
    overlap_period      bigint CHECK (overlap_period >= 0),
    notification_before bigint CHECK (notification_before > 0),
    auto_rotation       boolean NOT NULL DEFAULT false,
    max_key_age         bigint CHECK (max_key_age > 0),
    notified_version    integer,
    reencrypted_version integer,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          text NOT NULL DEFAULT session_user
);

-- Where a tenant's ciphertexts live: a bytea column, the tenant (fixed or
-- from another column), the AAD column, and the single-column key that
-- re-encryption claims rows by.
CREATE TABLE pq.tracked_columns (
    id            serial PRIMARY KEY,
    relid         regclass NOT NULL,
    column_name   name NOT NULL,
    tenant        text REFERENCES pq.tenants (name) ON DELETE CASCADE,
    tenant_column name,
    aad_column    name,
    key_column    name NOT NULL,
    tracked_at    timestamptz NOT NULL DEFAULT now(),
    tracked_by    text NOT NULL DEFAULT session_user,
    UNIQUE (relid, column_name),
    CHECK ((tenant IS NULL) <> (tenant_column IS NULL))
);

-- Work for the background worker, batch by batch.
CREATE TABLE pq.job_queue (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('reencrypt')),
    tracked_id   integer NOT NULL REFERENCES pq.tracked_columns (id) ON DELETE CASCADE,
    tenant       text,
    batch_size   integer NOT NULL CHECK (batch_size BETWEEN 1 AND 100000),
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'paused', 'cancelled', 'completed', 'failed')),
    rows_total   bigint,
    rows_done    bigint NOT NULL DEFAULT 0,
    rows_failed  bigint NOT NULL DEFAULT 0,
    pass         integer NOT NULL DEFAULT 1,
    batch_errors integer NOT NULL DEFAULT 0,
    cursor_key   text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT session_user,
    started_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX job_queue_pending ON pq.job_queue (id) WHERE state IN ('queued', 'running');

-- Rows a job could not re-encrypt, with the reason; never a plaintext.
CREATE TABLE pq.job_failures (
    job_id  bigint NOT NULL REFERENCES pq.job_queue (id) ON DELETE CASCADE,
    row_key text NOT NULL,
    reason  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, row_key)
);

REVOKE ALL ON pq.key_events, pq.tenant_policies, pq.tracked_columns, pq.job_queue, pq.job_failures FROM PUBLIC;
GRANT SELECT ON pq.key_events, pq.tenant_policies, pq.tracked_columns, pq.job_queue, pq.job_failures TO pq_admin;
SELECT pg_catalog.pg_extension_config_dump('pq.key_events', '');
SELECT pg_catalog.pg_extension_config_dump('pq.key_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_policies', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tracked_columns', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tracked_columns_id_seq', '');

-- No secret columns, and only the tenants the caller sees: those it may
-- use (pq_admin members and superusers see all). security_barrier keeps
-- the filter ahead of any function a caller adds to the query.
CREATE OR REPLACE VIEW pq.tenant_keys WITH (security_barrier) AS
SELECT tenant, version, state, kid, signing_kid, public_key, verifying_key,
       created_at, activated_at, retired_at, disabled_at, destroyed_at
  FROM pq.tenant_key_versions
 WHERE pq.tenant_visible(tenant);

-- A policy's max_key_age decides whether a version may still encrypt.
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenant_policies
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation_replica AFTER INSERT OR UPDATE OR DELETE ON pq.tenant_policies
    FOR EACH ROW EXECUTE FUNCTION pq_key_tables_changed();
ALTER TABLE pq.tenant_policies ENABLE ALWAYS TRIGGER key_cache_invalidation,
                               ENABLE REPLICA TRIGGER key_cache_invalidation_replica;

-- New functions (as cargo-pgrx generates them for 0.2.0).

-- apg_pqcrypto::jobs::pq::cancel_job
CREATE  FUNCTION pq."cancel_job"(
	"job" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cancel_job_wrapper';

-- apg_pqcrypto::lifecycle::pq::destroy_key_version
CREATE  FUNCTION pq."destroy_key_version"(
	"tenant" TEXT, /* & str */
	"version" INT, /* i32 */
	"confirm" TEXT, /* & str */
	"force" bool DEFAULT false /* bool */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'destroy_key_version_wrapper';

-- apg_pqcrypto::lifecycle::pq::disable_key_version
CREATE  FUNCTION pq."disable_key_version"(
	"tenant" TEXT, /* & str */
	"version" INT, /* i32 */
	"force" bool DEFAULT false /* bool */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'disable_key_version_wrapper';

-- apg_pqcrypto::lifecycle::pq::enable_key_version
CREATE  FUNCTION pq."enable_key_version"(
	"tenant" TEXT, /* & str */
	"version" INT /* i32 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enable_key_version_wrapper';

-- apg_pqcrypto::tracking::pq::key_usage_counts
CREATE  FUNCTION pq."key_usage_counts"() RETURNS TABLE (
	"tenant" TEXT,  /* Option < String > */
	"version" INT,  /* Option < i32 > */
	"state" TEXT,  /* Option < String > */
	"table_name" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"ciphertexts" bigint  /* i64 */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'key_usage_counts_wrapper';

-- apg_pqcrypto::jobs::pq::pause_job
CREATE  FUNCTION pq."pause_job"(
	"job" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pause_job_wrapper';

-- apg_pqcrypto::jobs::pq::reencrypt_tenant
CREATE  FUNCTION pq."reencrypt_tenant"(
	"tenant" TEXT, /* & str */
	"batch_size" INT DEFAULT 1000 /* i32 */
) RETURNS SETOF bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reencrypt_tenant_wrapper';

-- apg_pqcrypto::jobs::pq::reencrypt
CREATE  FUNCTION pq."reencrypt"(
	"table" regclass, /* PgRelation */
	"column" TEXT, /* & str */
	"batch_size" INT DEFAULT 1000 /* i32 */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reencrypt_wrapper';

-- apg_pqcrypto::jobs::pq::resume_job
CREATE  FUNCTION pq."resume_job"(
	"job" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'resume_job_wrapper';

-- apg_pqcrypto::lifecycle::pq::rewrap
CREATE  FUNCTION pq."rewrap"(
	"envelope" bytea, /* & [u8] */
	"aad" bytea DEFAULT '' /* & [u8] */
) RETURNS bytea /* PgBytea */
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rewrap_wrapper';

-- apg_pqcrypto::lifecycle::pq::rotate_master_key
CREATE  FUNCTION pq."rotate_master_key"() RETURNS TABLE (
	"mdk_id" bytea,  /* Vec < u8 > */
	"versions_rewrapped" INT  /* i32 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rotate_master_key_wrapper';

-- apg_pqcrypto::lifecycle::pq::rotate_tenant_key
CREATE  FUNCTION pq."rotate_tenant_key"(
	"tenant" TEXT, /* & str */
	"reason" TEXT, /* & str */
	"user_id" TEXT DEFAULT session_user /* & str */
) RETURNS TABLE (
	"success" bool,  /* bool */
	"new_key_id" bytea,  /* Vec < u8 > */
	"new_version" INT,  /* i32 */
	"old_key_archived" bool  /* bool */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rotate_tenant_key_wrapper';

-- apg_pqcrypto::lifecycle::pq::set_min_decryption_version
CREATE  FUNCTION pq."set_min_decryption_version"(
	"tenant" TEXT, /* & str */
	"version" INT, /* i32 */
	"force" bool DEFAULT false /* bool */
) RETURNS INT /* i32 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_min_decryption_version_wrapper';

-- apg_pqcrypto::policy::pq::set_policy
CREATE  FUNCTION pq."set_policy"(
	"tenant" TEXT, /* & str */
	"policy" jsonb /* pgrx :: JsonB */
) RETURNS jsonb /* pgrx :: JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_policy_wrapper';

-- apg_pqcrypto::tracking::pq::track_column
CREATE  FUNCTION pq."track_column"(
	"table" regclass, /* Option < PgRelation > */
	"column" TEXT, /* Option < & str > */
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"tenant_column" TEXT DEFAULT NULL, /* Option < & str > */
	"aad_column" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS INT /* i32 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'track_column_wrapper';

-- apg_pqcrypto::tracking::pq::untrack_column
CREATE  FUNCTION pq."untrack_column"(
	"table" regclass, /* PgRelation */
	"column" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'untrack_column_wrapper';

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
       j.pass, j.batch_size, j.last_error, j.created_at, j.created_by, j.started_at, j.updated_at, j.finished_at
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
       p.updated_at, p.updated_by
  FROM pq.tenant_policies p
  LEFT JOIN pq.tenant_key_versions v ON v.tenant = p.tenant AND v.state = 'active';

-- Ciphertexts per tenant, key version and tracked column (scans them all).
CREATE VIEW pq.key_usage AS SELECT * FROM pq.key_usage_counts();

GRANT SELECT ON pq.jobs, pq.policies, pq.key_usage TO pq_admin;

REVOKE ALL ON FUNCTION pq.rotate_tenant_key(text, text, text), pq.disable_key_version(text, integer, boolean),
                       pq.enable_key_version(text, integer), pq.destroy_key_version(text, integer, text, boolean),
                       pq.set_min_decryption_version(text, integer, boolean), pq.rotate_master_key(),
                       pq.track_column(regclass, text, text, text, text), pq.untrack_column(regclass, text),
                       pq.key_usage_counts(), pq.reencrypt(regclass, text, integer), pq.reencrypt_tenant(text, integer),
                       pq.pause_job(bigint), pq.resume_job(bigint), pq.cancel_job(bigint), pq.set_policy(text, jsonb),
                       pq.rewrap(bytea, bytea)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.rotate_tenant_key(text, text, text), pq.disable_key_version(text, integer, boolean),
                          pq.enable_key_version(text, integer), pq.destroy_key_version(text, integer, text, boolean),
                          pq.set_min_decryption_version(text, integer, boolean), pq.rotate_master_key(),
                          pq.track_column(regclass, text, text, text, text), pq.untrack_column(regclass, text),
                          pq.key_usage_counts(), pq.reencrypt(regclass, text, integer), pq.reencrypt_tenant(text, integer),
                          pq.pause_job(bigint), pq.resume_job(bigint), pq.cancel_job(bigint), pq.set_policy(text, jsonb)
    TO pq_admin;
-- rewrap opens and makes envelopes of a tenant: like pq_decrypt, it needs a grant on it.
GRANT EXECUTE ON FUNCTION pq.rewrap(bytea, bytea) TO pq_user, pq_admin;
