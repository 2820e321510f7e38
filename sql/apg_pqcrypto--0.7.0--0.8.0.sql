-- apg_pqcrypto 0.7.0 -> 0.8.0: the security review, round two.
-- - pq.refuse_change (the append-only tables' trigger) pins its search_path.
-- - pq.job_failures knows a failed row by its relation and key (partitions,
--   inheritance trees); earlier failures are given their tracked table.
-- - pq.config_records.client_signature_format: 2 for a client signature
--   that binds the record it replaces (FORMAT.md §11.3); every record
--   stored before is format 1.
-- - pq.audit_chain_lock: what serialises the audit chain's writers, instead
--   of an advisory lock any role could hold.
-- - Escrow approvals are signed by approvers' own ML-DSA-65 keys
--   (pq.escrow_approvers, pq.escrow_add_approver, pq.escrow_approve(uuid,
--   bytea), pq.escrow_statement; pq.escrow_request_recovery also returns
--   the statement to sign). Approvals made before 0.8.0 carry no signature
--   and no longer count: a pending request needs new, signed approvals.
-- - pq.config_head(tenant, key).
-- - pq_open is STABLE (never folded into a plan).
-- No stored key or envelope changes: every 0.7.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.7.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.8.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.8.0'" to load this file. \quit

ALTER FUNCTION pq.refuse_change() SET search_path = pg_catalog, pg_temp;

ALTER TABLE pq.job_failures ADD COLUMN relid oid;
UPDATE pq.job_failures f SET relid = t.relid
  FROM pq.job_queue j JOIN pq.tracked_columns t ON t.id = j.tracked_id
 WHERE f.job_id = j.id;
UPDATE pq.job_failures SET relid = 0 WHERE relid IS NULL;
ALTER TABLE pq.job_failures ALTER COLUMN relid SET NOT NULL;
ALTER TABLE pq.job_failures DROP CONSTRAINT job_failures_pkey, ADD PRIMARY KEY (job_id, relid, row_key);

-- Every record stored so far is format 1 (the default fills them without
-- rewriting the append-only table); new records say their format.
ALTER TABLE pq.config_records
    ADD COLUMN client_signature_format smallint DEFAULT 1 CHECK (client_signature_format IN (1, 2));
ALTER TABLE pq.config_records ALTER COLUMN client_signature_format DROP DEFAULT;
-- The view's `*` was expanded when it was made: again, with the new column
-- (its output columns do not change).
CREATE OR REPLACE VIEW pq.config WITH (security_barrier) AS
SELECT r.tenant, r.key, r.version AS current_version, r.op = 'delete' AS deleted, r.op = 'set_sealed' AS sealed,
       r.user_id AS updated_by, r.ts AS updated_at, n.versions, f.ts AS created_at
  FROM (SELECT DISTINCT ON (tenant, key) * FROM pq.config_records ORDER BY tenant, key, version DESC) r
  JOIN (SELECT tenant, key, count(*) AS versions FROM pq.config_records GROUP BY tenant, key) n USING (tenant, key)
  JOIN pq.config_records f ON f.tenant = r.tenant AND f.key = r.key AND f.version = 1
 WHERE pq.tenant_visible(r.tenant);

CREATE TABLE pq.audit_chain_lock ();
REVOKE ALL ON pq.audit_chain_lock FROM PUBLIC;

CREATE TABLE pq.escrow_approvers (
    name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    public_key bytea NOT NULL CHECK (length(public_key) = 1952),
    kid        bytea NOT NULL UNIQUE CHECK (length(kid) = 16),
    added_at   timestamptz NOT NULL DEFAULT now(),
    added_by   text NOT NULL DEFAULT session_user
);
REVOKE ALL ON pq.escrow_approvers FROM PUBLIC;
GRANT SELECT ON pq.escrow_approvers TO pq_admin;
SELECT pg_catalog.pg_extension_config_dump('pq.escrow_approvers', '');

ALTER TABLE pq.escrow_approvals
    ADD COLUMN approver_kid bytea CHECK (length(approver_kid) = 16),
    ADD COLUMN signature bytea CHECK (length(signature) = 3309),
    ADD UNIQUE (request_id, approver_kid),
    ADD CHECK ((approver_kid IS NULL) = (signature IS NULL));

-- apg_pqcrypto::envelope::pq_open
ALTER FUNCTION pq_open(bytea, bytea, bytea) STABLE;

DROP FUNCTION pq.escrow_approve(uuid);
-- apg_pqcrypto::escrow::pq::escrow_approve
CREATE  FUNCTION pq."escrow_approve"(
	"request_id" uuid, /* Uuid */
	"signature" bytea /* & [u8] */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_approve_wrapper';

DROP FUNCTION pq.escrow_request_recovery(text);
-- apg_pqcrypto::escrow::pq::escrow_request_recovery
CREATE  FUNCTION pq."escrow_request_recovery"(
	"reason" TEXT /* & str */
) RETURNS TABLE (
	"request_id" uuid,  /* Uuid */
	"request_public_key" bytea,  /* Vec < u8 > */
	"statement" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_request_recovery_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_add_approver
CREATE  FUNCTION pq."escrow_add_approver"(
	"name" TEXT, /* & str */
	"public_key" bytea /* & [u8] */
) RETURNS bytea /* Vec < u8 > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_add_approver_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_statement
CREATE  FUNCTION pq."escrow_statement"(
	"request_id" uuid /* Uuid */
) RETURNS bytea /* Vec < u8 > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_statement_wrapper';

-- apg_pqcrypto::config::pq::config_head
CREATE  FUNCTION pq."config_head"(
	"tenant" TEXT, /* & str */
	"key" TEXT /* & str */
) RETURNS TABLE (
	"version" bigint,  /* i64 */
	"record_hash" bytea  /* Vec < u8 > */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_head_wrapper';

REVOKE ALL ON FUNCTION pq.escrow_approve(uuid, bytea), pq.escrow_request_recovery(text), pq.escrow_add_approver(text, bytea),
                       pq.escrow_statement(uuid), pq.config_head(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.escrow_approve(uuid, bytea), pq.escrow_request_recovery(text),
                          pq.escrow_add_approver(text, bytea), pq.escrow_statement(uuid)
    TO pq_admin;
GRANT EXECUTE ON FUNCTION pq.config_head(text, text) TO pq_user, pq_admin;
