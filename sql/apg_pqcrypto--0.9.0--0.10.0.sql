-- apg_pqcrypto 0.9.0 -> 0.10.0: operating it (docs/OPERATIONS.md).
-- - pq.shred_tenant and pq.tenants.shredded_at: crypto-shredding of a
--   whole tenant, with an audited record of what it destroyed and of the
--   copies it cannot reach.
-- - apg_pqcrypto.enforce_encryption, pq.enforcement_trigger (now on every
--   tracked column: this script adds it to the columns tracked before) and
--   pq.enforcement_report.
-- - Key DDL in the audit chain: the event triggers pq_audit_sql_drop and
--   pq_audit_ddl_end with pq.audit_sql_drop, pq.audit_ddl_end,
--   pq.ddl_dropped and pq.ddl_ended (the rest is the library's
--   ProcessUtility hook).
-- - Unusual-access alerts: pq.security_counts takes the kind
--   'unusual_access'.
-- - Latency and key cache statistics: the views pq.stat_latency and
--   pq.stat_cache (pq.stat_latency_rows, pq.stat_cache_rows, shared
--   memory) and pq.stat_reset; the role pq_monitor and the view
--   pq.key_ages for a monitoring role that administers nothing.
-- No stored key or envelope changes: every 0.9.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.9.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.10.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.10.0'" to load this file. \quit

ALTER TABLE pq.tenants ADD COLUMN shredded_at timestamptz;

ALTER TABLE pq.security_counts DROP CONSTRAINT security_counts_kind_check,
    ADD CONSTRAINT security_counts_kind_check CHECK (kind IN ('failed_decrypt', 'failed_verify', 'unusual_access'));

CREATE  FUNCTION pq."shred_tenant"(
	"tenant" TEXT, /* & str */
	"confirm" TEXT /* & str */
) RETURNS jsonb /* pgrx :: JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'shred_tenant_wrapper';

CREATE FUNCTION pq."enforcement_trigger"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'enforcement_trigger_wrapper';

CREATE  FUNCTION pq."enforcement_report"() RETURNS TABLE (
	"table_name" TEXT,  /* String */
	"column_name" TEXT,  /* String */
	"rows" bigint,  /* i64 */
	"nulls" bigint,  /* i64 */
	"envelopes" bigint,  /* i64 */
	"not_envelopes" bigint,  /* i64 */
	"other_tenant" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'enforcement_report_wrapper';

CREATE  FUNCTION pq."ddl_dropped"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ddl_dropped_wrapper';

CREATE  FUNCTION pq."ddl_ended"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ddl_ended_wrapper';

-- Columns tracked before 0.10.0 get the enforcement trigger that
-- pq.track_column now puts on every tracked column (named as it names it).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT c.id, c.relid, c.column_name FROM pq.tracked_columns c
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid = c.relid) ORDER BY c.id
    LOOP
        EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION pq.enforcement_trigger(%L)',
                                  'zz_pq_enforcement_' || t.id, t.relid::regclass, t.column_name);
    END LOOP;
END
$$;

-- As sql/finalize.sql has them for a fresh install.
REVOKE ALL ON FUNCTION pq.shred_tenant(text, text), pq.enforcement_report(), pq.ddl_dropped(), pq.ddl_ended() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.shred_tenant(text, text), pq.enforcement_report() TO pq_admin;

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

CREATE  FUNCTION pq."stat_latency_rows"() RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"operation" TEXT,  /* String */
	"calls" bigint,  /* i64 */
	"timed_calls" bigint,  /* i64 */
	"mean_ms" double precision,  /* Option < f64 > */
	"p50_ms" double precision,  /* Option < f64 > */
	"p95_ms" double precision,  /* Option < f64 > */
	"p99_ms" double precision,  /* Option < f64 > */
	"max_ms" double precision,  /* Option < f64 > */
	"calls_per_minute" double precision,  /* Option < f64 > */
	"since" timestamp with time zone  /* Option < TimestampWithTimeZone > */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'stat_latency_rows_wrapper';

CREATE  FUNCTION pq."stat_cache_rows"() RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"hits" bigint,  /* i64 */
	"misses" bigint,  /* i64 */
	"evictions" bigint,  /* i64 */
	"unwraps" bigint,  /* i64 */
	"hit_ratio" double precision  /* Option < f64 > */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'stat_cache_rows_wrapper';

CREATE  FUNCTION pq."stat_reset"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'stat_reset_wrapper';

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
GRANT SELECT ON pq.key_ages TO pq_admin, pq_monitor;
