-- apg_pqcrypto 0.10.0 -> 0.11.0: audit writers never wait (docs/AUDIT.md).
-- - pq.audit_pending: audit rows whose writer found the chain lock held,
--   chained in order by the next holder of the lock, the worker or
--   pq.audit_flush().
-- - pq.audit_flush(): chains the pending rows now (pq_admin).
-- Configuration writers of different keys no longer wait for each other
-- (a lock per key instead of the chain lock: nothing to create here).
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
