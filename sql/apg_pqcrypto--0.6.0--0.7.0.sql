-- apg_pqcrypto 0.6.0 -> 0.7.0: key escrow and disaster-recovery backups.
-- New tables: pq.escrow_custodians, pq.escrow_config, pq.escrow_shares,
-- pq.recovery_keys, pq.escrow_requests, pq.escrow_approvals, pq.backups.
-- New functions (pq_admin only): pq.escrow_add_custodian,
-- pq.configure_key_escrow, pq.escrow_split, pq.escrow_request_recovery,
-- pq.escrow_approve, pq.escrow_recover, pq.escrow_status,
-- pq.export_key_backup, pq.restore_begin, pq.restore_key_backup.
-- No stored key or envelope changes: every 0.6.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.6.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.7.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.7.0'" to load this file. \quit

-- Key escrow and disaster-recovery backups (0.7.0). Nothing here opens
-- without a key held elsewhere: share records are sealed to custodians,
-- recovery and restore keys are wrapped by the master key provider, and
-- bundles never touch a table (pq.backups records exports and restores).
CREATE TABLE pq.escrow_custodians (
    name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    -- ML-KEM-768 (1184 bytes) or X-Wing (1216 bytes), made with apg-pq keygen.
    public_key bytea NOT NULL CHECK (length(public_key) IN (1184, 1216)),
    kid        bytea NOT NULL UNIQUE CHECK (length(kid) = 16),
    added_at   timestamptz NOT NULL DEFAULT now(),
    added_by   text NOT NULL DEFAULT session_user
);

-- pq.configure_key_escrow: one row.
CREATE TABLE pq.escrow_config (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    enabled            boolean NOT NULL,
    threshold          integer NOT NULL CHECK (threshold BETWEEN 2 AND 255),
    total_shares       integer NOT NULL CHECK (total_shares BETWEEN threshold AND 255),
    trustees           text[] NOT NULL CHECK (cardinality(trustees) = total_shares),
    min_approval_time  interval NOT NULL CHECK (min_approval_time >= interval '0'),
    approvers_required integer NOT NULL CHECK (approvers_required BETWEEN 1 AND 255),
    audit_log          boolean NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text NOT NULL DEFAULT session_user
);

-- Share records ('E', FORMAT.md §14.1) of every split, sealed to their custodians.
CREATE TABLE pq.escrow_shares (
    escrow_id     bytea NOT NULL CHECK (length(escrow_id) = 16),
    share_index   integer NOT NULL CHECK (share_index BETWEEN 1 AND 255),
    custodian     text NOT NULL,
    custodian_kid bytea NOT NULL CHECK (length(custodian_kid) = 16),
    mdk_id        bytea NOT NULL CHECK (length(mdk_id) = 16),
    threshold     integer NOT NULL,
    total_shares  integer NOT NULL,
    record        bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL DEFAULT session_user,
    PRIMARY KEY (escrow_id, share_index)
);

-- One-time KEM keys of escrow recovery requests and restores. The seed is
-- wrapped (FORMAT.md §6, purpose "recovery key seed") under a random key
-- that the configured master key provider wraps like a master data key
-- (§6.1, key_id its id); both are dropped when the key has been used.
CREATE TABLE pq.recovery_keys (
    kid               bytea PRIMARY KEY CHECK (length(kid) = 16),
    purpose           text NOT NULL CHECK (purpose IN ('escrow recovery', 'restore')),
    public_key        bytea NOT NULL,
    provider          text NOT NULL,
    provider_key_id   text NOT NULL,
    key_id            bytea NOT NULL CHECK (length(key_id) = 16),
    wrapped_key       bytea,
    system_identifier text NOT NULL,
    wrapped_seed      bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL DEFAULT session_user,
    used_at           timestamptz,
    CHECK ((used_at IS NULL) = (wrapped_key IS NOT NULL AND wrapped_seed IS NOT NULL))
);

CREATE TABLE pq.escrow_requests (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    escrow_id    bytea NOT NULL CHECK (length(escrow_id) = 16),
    mdk_id       bytea NOT NULL CHECK (length(mdk_id) = 16),
    request_kid  bytea NOT NULL REFERENCES pq.recovery_keys (kid),
    reason       text NOT NULL,
    requested_by text NOT NULL DEFAULT session_user,
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- The escrow's recovery_policy when the request was made: changing the
    -- policy later does not shorten a pending request's wait.
    ready_at     timestamptz NOT NULL,
    approvers_required integer NOT NULL CHECK (approvers_required >= 1),
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'recovered')),
    recovered_at timestamptz,
    recovered_by text
);

CREATE TABLE pq.escrow_approvals (
    request_id  uuid NOT NULL REFERENCES pq.escrow_requests (id),
    approver    text NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, approver)
);

-- Every export and restore of a key backup (never the bundle).
CREATE TABLE pq.backups (
    id               bigserial PRIMARY KEY,
    operation        text NOT NULL CHECK (operation IN ('export', 'restore')),
    backup_id        bytea NOT NULL CHECK (length(backup_id) = 16),
    tenants          text[] NOT NULL,
    sealed_to        bytea NOT NULL CHECK (length(sealed_to) = 16),
    include_metadata boolean NOT NULL,
    versions         integer NOT NULL,
    classical_keys   integer NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text NOT NULL DEFAULT session_user,
    details          jsonb NOT NULL DEFAULT '{}'
);

REVOKE ALL ON pq.escrow_custodians, pq.escrow_config, pq.escrow_shares, pq.recovery_keys, pq.escrow_requests,
              pq.escrow_approvals, pq.backups FROM PUBLIC;
GRANT SELECT ON pq.escrow_custodians, pq.escrow_config, pq.escrow_shares, pq.escrow_requests, pq.escrow_approvals,
                pq.backups TO pq_admin;

SELECT pg_catalog.pg_extension_config_dump('pq.escrow_custodians', '');
SELECT pg_catalog.pg_extension_config_dump('pq.escrow_config', '');
SELECT pg_catalog.pg_extension_config_dump('pq.escrow_shares', '');
SELECT pg_catalog.pg_extension_config_dump('pq.recovery_keys', '');
SELECT pg_catalog.pg_extension_config_dump('pq.escrow_requests', '');
SELECT pg_catalog.pg_extension_config_dump('pq.escrow_approvals', '');
SELECT pg_catalog.pg_extension_config_dump('pq.backups', '');
SELECT pg_catalog.pg_extension_config_dump('pq.backups_id_seq', '');

-- apg_pqcrypto::escrow::pq::escrow_approve
CREATE  FUNCTION pq."escrow_approve"(
	"request_id" uuid /* Uuid */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_approve_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_split
CREATE  FUNCTION pq."escrow_split"() RETURNS TABLE (
	"escrow_id" bytea,  /* Vec < u8 > */
	"share_index" INT,  /* i32 */
	"custodian" TEXT,  /* String */
	"custodian_kid" bytea,  /* Vec < u8 > */
	"record" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_split_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_recover
CREATE  FUNCTION pq."escrow_recover"(
	"request_id" uuid, /* Uuid */
	"resealed_shares" bytea[] /* Array < & [u8] > */
) RETURNS TABLE (
	"mdk_id" bytea,  /* Vec < u8 > */
	"provider" TEXT,  /* String */
	"key_ref" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_recover_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_request_recovery
CREATE  FUNCTION pq."escrow_request_recovery"(
	"reason" TEXT /* & str */
) RETURNS TABLE (
	"request_id" uuid,  /* Uuid */
	"request_public_key" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_request_recovery_wrapper';

-- apg_pqcrypto::escrow::pq::configure_key_escrow
CREATE  FUNCTION pq."configure_key_escrow"(
	"config" jsonb /* JsonB */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'configure_key_escrow_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_status
CREATE  FUNCTION pq."escrow_status"() RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_status_wrapper';

-- apg_pqcrypto::escrow::pq::escrow_add_custodian
CREATE  FUNCTION pq."escrow_add_custodian"(
	"name" TEXT, /* & str */
	"public_key" bytea /* & [u8] */
) RETURNS bytea /* Vec < u8 > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'escrow_add_custodian_wrapper';

-- apg_pqcrypto::backup::pq::restore_begin
CREATE  FUNCTION pq."restore_begin"() RETURNS TABLE (
	"restore_public_key" bytea,  /* Vec < u8 > */
	"kid" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'restore_begin_wrapper';

-- apg_pqcrypto::backup::pq::export_key_backup
CREATE  FUNCTION pq."export_key_backup"(
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"recipient_public_key" bytea DEFAULT NULL, /* Option < & [u8] > */
	"include_metadata" bool DEFAULT true /* bool */
) RETURNS bytea /* Vec < u8 > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'export_key_backup_wrapper';

-- apg_pqcrypto::backup::pq::restore_key_backup
CREATE  FUNCTION pq."restore_key_backup"(
	"bundle" bytea, /* & [u8] */
	"target_tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"overwrite" bool DEFAULT false /* bool */
) RETURNS TABLE (
	"source_tenant" TEXT,  /* String */
	"tenant" TEXT,  /* String */
	"versions" INT,  /* i32 */
	"classical_keys" INT  /* i32 */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'restore_key_backup_wrapper';

-- Key escrow and disaster-recovery backups (0.7.0): pq_admin only (the
-- functions check it too).
REVOKE ALL ON FUNCTION pq.escrow_add_custodian(text, bytea), pq.configure_key_escrow(jsonb), pq.escrow_split(),
                       pq.escrow_request_recovery(text), pq.escrow_approve(uuid), pq.escrow_recover(uuid, bytea[]),
                       pq.escrow_status(), pq.export_key_backup(text, bytea, boolean), pq.restore_begin(),
                       pq.restore_key_backup(bytea, text, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.escrow_add_custodian(text, bytea), pq.configure_key_escrow(jsonb), pq.escrow_split(),
                          pq.escrow_request_recovery(text), pq.escrow_approve(uuid), pq.escrow_recover(uuid, bytea[]),
                          pq.escrow_status(), pq.export_key_backup(text, bytea, boolean), pq.restore_begin(),
                          pq.restore_key_backup(bytea, text, boolean)
    TO pq_admin;
