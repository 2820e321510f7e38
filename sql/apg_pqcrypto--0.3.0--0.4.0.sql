-- apg_pqcrypto 0.3.0 -> 0.4.0: migration off classical crypto (pgcrypto).
-- New: pq.classical_keys (a tenant's pgcrypto keys, wrapped under the
-- master data key), pq.tenant_migrations, migrate jobs in pq.job_queue
-- (kind 'migrate', column from_kind), the functions pq.register_classical_key,
-- pq.drop_classical_key, pq.classify, pq.decrypt_any(_text),
-- pq.encrypt_dual_mode, pq.migrate_column(_now), pq.migration_status,
-- pq.classical_counts, pq.retry_job, pq.migration_trigger, and the views
-- pq.classical_key_list and pq.migration_progress. No stored key or
-- envelope changes: every 0.3.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0, 0.2.0 and 0.3.0, fills each,
-- runs ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.4.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.4.0'" to load this file. \quit

ALTER TABLE pq.job_queue
    DROP CONSTRAINT job_queue_kind_check,
    ADD CONSTRAINT job_queue_kind_check CHECK (kind IN ('reencrypt', 'migrate')),
    -- migrate jobs: the classical kind they read (any: whatever each value is)
    ADD COLUMN from_kind text CHECK (from_kind IN ('pgp_sym', 'pgp_pub', 'raw', 'any'));

-- A tenant's pgcrypto keys: the key (pgp_sym passphrase, pgp_pub secret
-- key, raw cipher key) and a pgp_pub key's passphrase wrapped under the
-- master data key (docs/FORMAT.md §6); a pgp_pub public key in clear for
-- dual-mode writes. Readable by no role but the extension's owner.
CREATE TABLE pq.classical_keys (
    id                 serial PRIMARY KEY,
    tenant             text NOT NULL REFERENCES pq.tenants (name) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('pgp_sym', 'pgp_pub', 'raw')),
    options            text NOT NULL DEFAULT '',
    mdk_id             bytea NOT NULL REFERENCES pq.master_keys (id),
    wrapped_key        bytea NOT NULL,
    wrapped_passphrase bytea,
    public_key         bytea,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text NOT NULL DEFAULT session_user
);

-- Tenants whose migration has started (no row: not_started).
CREATE TABLE pq.tenant_migrations (
    tenant       text PRIMARY KEY REFERENCES pq.tenants (name) ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'completed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

SELECT pg_catalog.pg_extension_config_dump('pq.classical_keys', '');
SELECT pg_catalog.pg_extension_config_dump('pq.classical_keys_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_migrations', '');

-- apg_pqcrypto::classical::pq::encrypt_dual_mode
CREATE  FUNCTION pq."encrypt_dual_mode"(
	"tenant" TEXT, /* & str */
	"value" bytea, /* & [u8] */
	"aad" bytea DEFAULT '' /* & [u8] */
) RETURNS bytea /* PgBytea */
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'encrypt_dual_mode_bytea_wrapper';

-- apg_pqcrypto::classical::pq::classify
CREATE  FUNCTION pq."classify"(
	"value" bytea /* & [u8] */
) RETURNS TEXT /* & '_ str */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'classify_wrapper';

-- apg_pqcrypto::classical::pq::decrypt_any_text
CREATE  FUNCTION pq."decrypt_any_text"(
	"value" bytea, /* & [u8] */
	"tenant" TEXT, /* & str */
	"aad" TEXT DEFAULT '' /* & str */
) RETURNS text /* PgText */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'decrypt_any_text_wrapper';

-- apg_pqcrypto::classical::pq::decrypt_any
CREATE  FUNCTION pq."decrypt_any"(
	"value" bytea, /* & [u8] */
	"tenant" TEXT, /* & str */
	"aad" bytea DEFAULT '' /* & [u8] */
) RETURNS bytea /* PgBytea */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'decrypt_any_wrapper';

-- apg_pqcrypto::classical::pq::encrypt_dual_mode
CREATE  FUNCTION pq."encrypt_dual_mode"(
	"tenant" TEXT, /* & str */
	"value" TEXT, /* & str */
	"aad" TEXT DEFAULT '' /* & str */
) RETURNS bytea /* PgBytea */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'encrypt_dual_mode_wrapper';

-- apg_pqcrypto::classical::pq::drop_classical_key
CREATE  FUNCTION pq."drop_classical_key"(
	"key_id" INT /* i32 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_classical_key_wrapper';

-- apg_pqcrypto::classical::pq::register_classical_key
CREATE  FUNCTION pq."register_classical_key"(
	"tenant" TEXT, /* Option < & str > */
	"kind" TEXT, /* Option < & str > */
	"key" bytea, /* Option < & [u8] > */
	"options" TEXT DEFAULT '', /* Option < & str > */
	"passphrase" bytea DEFAULT NULL, /* Option < & [u8] > */
	"public_key" bytea DEFAULT NULL /* Option < & [u8] > */
) RETURNS INT /* i32 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'register_classical_key_wrapper';

-- apg_pqcrypto::progress::pq::migration_sessions
CREATE  FUNCTION pq."migration_sessions"() RETURNS TABLE (
	"pid" INT,  /* i32 */
	"job" bigint,  /* i64 */
	"table_name" oid,  /* pg_sys :: Oid */
	"rows_done" bigint,  /* i64 */
	"rows_failed" bigint,  /* i64 */
	"rows_total" bigint,  /* i64 */
	"updated_at" timestamp with time zone  /* pgrx :: datum :: TimestampWithTimeZone */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migration_sessions_wrapper';

-- apg_pqcrypto::jobs::pq::retry_job
CREATE  FUNCTION pq."retry_job"(
	"job" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'retry_job_wrapper';

-- apg_pqcrypto::migration::pq::migrate_column
CREATE  FUNCTION pq."migrate_column"(
	"table" regclass, /* Option < PgRelation > */
	"column" TEXT, /* Option < & str > */
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"from_kind" TEXT DEFAULT NULL, /* Option < & str > */
	"aad_column" TEXT DEFAULT NULL, /* Option < & str > */
	"batch_size" INT DEFAULT 1000, /* i32 */
	"tenant_column" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_column_wrapper';

-- apg_pqcrypto::migration::pq::migrate_column_now
CREATE  FUNCTION pq."migrate_column_now"(
	"table" regclass, /* Option < PgRelation > */
	"column" TEXT, /* Option < & str > */
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"from_kind" TEXT DEFAULT NULL, /* Option < & str > */
	"aad_column" TEXT DEFAULT NULL, /* Option < & str > */
	"batch_size" INT DEFAULT 1000, /* i32 */
	"tenant_column" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"job" bigint,  /* i64 */
	"rows_migrated" bigint,  /* i64 */
	"rows_failed" bigint,  /* i64 */
	"rows_left" bigint,  /* i64 */
	"state" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_column_now_wrapper';

-- apg_pqcrypto::migration::pq::migration_status
CREATE  FUNCTION pq."migration_status"(
	"tenant" TEXT /* & str */
) RETURNS TABLE (
	"status" TEXT,  /* String */
	"tracked_columns" INT,  /* i32 */
	"classical_values" bigint,  /* i64 */
	"rows_migrated" bigint,  /* i64 */
	"rows_failed" bigint,  /* i64 */
	"jobs_pending" bigint,  /* i64 */
	"started_at" timestamp with time zone,  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
	"completed_at" timestamp with time zone  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migration_status_wrapper';

-- apg_pqcrypto::migration::pq::classical_counts
CREATE  FUNCTION pq."classical_counts"(
	"tenant" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"table_name" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"classical_values" bigint  /* i64 */
)
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'classical_counts_wrapper';

-- apg_pqcrypto::migration::pq::migration_trigger
CREATE FUNCTION pq."migration_trigger"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'migration_trigger_wrapper';

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
