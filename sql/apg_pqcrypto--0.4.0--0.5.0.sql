-- apg_pqcrypto 0.4.0 -> 0.5.0: the signed configuration store, the
-- hash-chained audit trail, counters and compliance reports.
-- New: pq.config_signers, pq.config_records, pq.audit_log, pq.audit_keys,
-- pq.audit_checkpoints, pq.usage_counts, pq.security_counts (append-only
-- triggers on the first three kinds), the views pq.config,
-- pq.security_events and pq.audit_verifying_keys, and the functions
-- pq.config_set, pq.config_set_sealed, pq.config_delete, pq.config_get,
-- pq.config_history, pq.config_verify, pq.config_register_signer,
-- pq.config_drop_signer, pq.sign_config_change, pq.verify_config_signature,
-- pq.audit_checkpoint, pq.verify_audit_chain, pq.flush_counters and
-- pq.compliance_report. No stored key or envelope changes: every 0.4.0
-- value decrypts as before. The lifecycle events recorded before the
-- update (pq.key_events) open the audit chain, in their order, so the
-- chain covers the history the database already had.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.4.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.5.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.5.0'" to load this file. \quit

-- Canonical encodings and hashes: docs/FORMAT.md §11; what is recorded and
-- how to verify it: docs/AUDIT.md.

-- Client ML-DSA-65 keys allowed to sign sealed values of a tenant
-- (pq.config_set_sealed).
CREATE TABLE pq.config_signers (
    tenant        text NOT NULL REFERENCES pq.tenants (name) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
    public_key    bytea NOT NULL CHECK (length(public_key) = 1952),
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text NOT NULL DEFAULT session_user,
    PRIMARY KEY (tenant, name)
);

-- Every version of every configuration key: the stored envelope (NULL
-- for a deletion), the canonical change record's fields, its hash, and
-- its ML-DSA-65 signature (a signature envelope, whose kid names the
-- tenant key version that signed). For sealed values, the client's
-- signer, its public key and its signature. Append-only (see
-- pq.refuse_change below). No foreign key to pq.tenants: its check would
-- lock the tenant's row while the writer holds the audit chain's lock, and
-- a key rotation (which locks that row, then appends to the chain) would
-- wait behind every writer; the functions check the tenant instead.
CREATE TABLE pq.config_records (
    tenant            text NOT NULL,
    key               text NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 255),
    version           bigint NOT NULL CHECK (version > 0),
    op                text NOT NULL CHECK (op IN ('set', 'set_sealed', 'delete')),
    envelope          bytea,
    user_id           text NOT NULL,
    ts                timestamptz NOT NULL,
    old_hash          bytea CHECK (length(old_hash) = 32),
    new_hash          bytea CHECK (length(new_hash) = 32),
    prev_hash         bytea CHECK (length(prev_hash) = 32),
    record_hash       bytea NOT NULL CHECK (length(record_hash) = 32),
    signature         bytea NOT NULL,
    signer            text,
    signer_public_key bytea,
    client_signature  bytea,
    PRIMARY KEY (tenant, key, version),
    CHECK ((op = 'delete') = (envelope IS NULL)),
    CHECK ((op = 'set_sealed') = (client_signature IS NOT NULL))
);

-- The hash-chained audit trail: every key, tenant, grant, config,
-- provider and master key event. Ids are 1, 2, 3, ... without gaps, in
-- commit order. Append-only.
CREATE TABLE pq.audit_log (
    id        bigint PRIMARY KEY CHECK (id > 0),
    ts        timestamptz NOT NULL,
    event     text NOT NULL,
    tenant    text,
    actor     text NOT NULL,
    details   jsonb NOT NULL,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    row_hash  bytea NOT NULL UNIQUE CHECK (length(row_hash) = 32)
);
CREATE INDEX audit_log_tenant ON pq.audit_log (tenant, ts);

-- The system audit key (DESIGN.md "system keys"): ML-DSA-65 and Ed25519
-- seeds wrapped under the master data key; the public keys in clear.
CREATE TABLE pq.audit_keys (
    kid                  bytea PRIMARY KEY CHECK (length(kid) = 16),
    state                text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    ml_dsa_public_key    bytea NOT NULL CHECK (length(ml_dsa_public_key) = 1952),
    ed25519_public_key   bytea NOT NULL CHECK (length(ed25519_public_key) = 32),
    mdk_id               bytea NOT NULL REFERENCES pq.master_keys (id),
    wrapped_ml_dsa_seed  bytea NOT NULL,
    wrapped_ed25519_seed bytea NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX audit_keys_one_active ON pq.audit_keys ((true)) WHERE state = 'active';

-- Signed heads of the audit chain. Append-only.
CREATE TABLE pq.audit_checkpoints (
    id                bigserial PRIMARY KEY,
    head_id           bigint NOT NULL CHECK (head_id >= 0),
    head_hash         bytea NOT NULL CHECK (length(head_hash) = 32),
    ts                timestamptz NOT NULL,
    key_kid           bytea NOT NULL REFERENCES pq.audit_keys (kid),
    ml_dsa_signature  bytea NOT NULL CHECK (length(ml_dsa_signature) = 3309),
    ed25519_signature bytea NOT NULL CHECK (length(ed25519_signature) = 64)
);

-- Counts of encrypt/decrypt/sign/verify per tenant, role, operation and
-- minute (apg_pqcrypto.audit_level = all; role '' under keys), flushed
-- from shared memory by the worker: never a row per call.
CREATE TABLE pq.usage_counts (
    tenant    text NOT NULL,
    role_name text NOT NULL,
    operation text NOT NULL CHECK (operation IN ('encrypt', 'decrypt', 'sign', 'verify')),
    minute    timestamptz NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant, role_name, operation, minute)
);

-- Failed decryptions and signature failures per tenant ('' when the key
-- id is unknown), role, kind and minute, counted in shared memory also
-- when the caller's transaction aborts; flushed by the worker.
CREATE TABLE pq.security_counts (
    tenant    text NOT NULL,
    role_name text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('failed_decrypt', 'failed_verify')),
    minute    timestamptz NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    alerted   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, role_name, kind, minute)
);

-- UPDATE, DELETE and TRUNCATE of the append-only tables are refused for
-- every role, the owner included. (A superuser can still bypass triggers;
-- pq.verify_audit_chain and pq.config_verify detect what that changes.)
CREATE FUNCTION pq.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'permission denied: % is append-only', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME
        USING ERRCODE = '42501', HINT = 'Records are never changed; a deleted configuration key is a new record.';
END
$$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pq.audit_log
    FOR EACH ROW EXECUTE FUNCTION pq.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pq.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION pq.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pq.config_records
    FOR EACH ROW EXECUTE FUNCTION pq.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pq.config_records
    FOR EACH STATEMENT EXECUTE FUNCTION pq.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pq.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION pq.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON pq.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION pq.refuse_change();
REVOKE ALL ON FUNCTION pq.refuse_change() FROM PUBLIC;

REVOKE ALL ON pq.config_signers, pq.config_records, pq.audit_log, pq.audit_keys, pq.audit_checkpoints,
              pq.usage_counts, pq.security_counts FROM PUBLIC;
GRANT SELECT ON pq.config_signers, pq.config_records, pq.audit_log, pq.audit_checkpoints, pq.usage_counts, pq.security_counts
    TO pq_admin;

SELECT pg_catalog.pg_extension_config_dump('pq.config_signers', '');
SELECT pg_catalog.pg_extension_config_dump('pq.config_records', '');
SELECT pg_catalog.pg_extension_config_dump('pq.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('pq.audit_keys', '');
SELECT pg_catalog.pg_extension_config_dump('pq.audit_checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('pq.audit_checkpoints_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pq.usage_counts', '');
SELECT pg_catalog.pg_extension_config_dump('pq.security_counts', '');

-- The events recorded before this update open the chain (docs/FORMAT.md
-- §11.4: the same canonical encoding the extension uses; details carry
-- the event's version and reason, as new events do, and its key_events id).
DO $$
DECLARE
    e record;
    prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    n bigint := 0;
    details jsonb;
    enc bytea;
    h bytea;
    str_event bytea; str_actor bytea; str_details bytea; opt_tenant bytea;
BEGIN
    FOR e IN SELECT * FROM pq.key_events ORDER BY id LOOP
        n := n + 1;
        details := e.details || jsonb_build_object('key_event', e.id);
        IF e.version IS NOT NULL THEN details := details || jsonb_build_object('version', e.version); END IF;
        IF e.reason IS NOT NULL THEN details := details || jsonb_build_object('reason', e.reason); END IF;
        str_event := int4send(octet_length(convert_to(e.event, 'UTF8'))) || convert_to(e.event, 'UTF8');
        str_actor := int4send(octet_length(convert_to(e.actor, 'UTF8'))) || convert_to(e.actor, 'UTF8');
        str_details := int4send(octet_length(convert_to(details::text, 'UTF8'))) || convert_to(details::text, 'UTF8');
        opt_tenant := CASE WHEN e.tenant IS NULL THEN '\x00'::bytea
                           ELSE '\x01'::bytea || int4send(octet_length(convert_to(e.tenant, 'UTF8'))) || convert_to(e.tenant, 'UTF8') END;
        enc := int8send(n) || int8send((extract(epoch FROM date_trunc('microseconds', e.at)) * 1000000)::bigint)
               || str_event || opt_tenant || str_actor || str_details;
        h := sha256(convert_to('apg-pq audit v1', 'UTF8') || prev || enc);
        INSERT INTO pq.audit_log (id, ts, event, tenant, actor, details, prev_hash, row_hash)
        VALUES (n, e.at, e.event, e.tenant, e.actor, details, prev, h);
        prev := h;
    END LOOP;
END
$$;

-- apg_pqcrypto::compliance::pq::compliance_report
CREATE  FUNCTION pq."compliance_report"(
	"tenant" TEXT, /* & str */
	"period_days" INT DEFAULT 30 /* i32 */
) RETURNS jsonb /* pgrx :: JsonB */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'compliance_report_wrapper';

-- apg_pqcrypto::config::pq::config_register_signer
CREATE  FUNCTION pq."config_register_signer"(
	"tenant" TEXT, /* & str */
	"name" TEXT, /* & str */
	"public_key" bytea /* & [u8] */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_register_signer_wrapper';

-- apg_pqcrypto::config::pq::config_get
CREATE  FUNCTION pq."config_get"(
	"tenant" TEXT, /* & str */
	"key" TEXT /* & str */
) RETURNS text /* PgText */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_get_wrapper';

-- apg_pqcrypto::config::pq::config_verify
CREATE  FUNCTION pq."config_verify"(
	"tenant" TEXT /* & str */
) RETURNS TABLE (
	"ok" bool,  /* bool */
	"records_checked" bigint,  /* i64 */
	"first_bad_key" TEXT,  /* Option < String > */
	"first_bad_version" bigint,  /* Option < i64 > */
	"problem" TEXT  /* Option < String > */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_verify_wrapper';

-- apg_pqcrypto::config::pq::verify_config_signature
CREATE  FUNCTION pq."verify_config_signature"(
	"tenant" TEXT, /* Option < & str > */
	"config_key" TEXT, /* Option < & str > */
	"old_value" bytea, /* Option < & [u8] > */
	"new_value" bytea, /* Option < & [u8] > */
	"user_id" TEXT, /* Option < & str > */
	"ts" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"signature" bytea, /* Option < & [u8] > */
	"version" bigint DEFAULT 1, /* Option < i64 > */
	"prev_hash" bytea DEFAULT NULL /* Option < & [u8] > */
) RETURNS bool /* bool */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_config_signature_wrapper';

-- apg_pqcrypto::config::pq::config_set
CREATE  FUNCTION pq."config_set"(
	"tenant" TEXT, /* & str */
	"key" TEXT, /* & str */
	"value" TEXT, /* & str */
	"user_id" TEXT DEFAULT session_user /* & str */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_set_wrapper';

-- apg_pqcrypto::config::pq::config_delete
CREATE  FUNCTION pq."config_delete"(
	"tenant" TEXT, /* & str */
	"key" TEXT, /* & str */
	"user_id" TEXT DEFAULT session_user /* & str */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_delete_wrapper';

-- apg_pqcrypto::config::pq::config_drop_signer
CREATE  FUNCTION pq."config_drop_signer"(
	"tenant" TEXT, /* & str */
	"name" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_drop_signer_wrapper';

-- apg_pqcrypto::config::pq::config_history
CREATE  FUNCTION pq."config_history"(
	"tenant" TEXT, /* & str */
	"key" TEXT /* & str */
) RETURNS TABLE (
	"version" bigint,  /* i64 */
	"op" TEXT,  /* String */
	"user_id" TEXT,  /* String */
	"ts" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"signer" TEXT,  /* Option < String > */
	"signature_valid" bool,  /* bool */
	"chain_valid" bool,  /* bool */
	"problem" TEXT  /* Option < String > */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_history_wrapper';

-- apg_pqcrypto::config::pq::sign_config_change
CREATE  FUNCTION pq."sign_config_change"(
	"tenant" TEXT, /* Option < & str > */
	"config_key" TEXT, /* Option < & str > */
	"old_value" bytea, /* Option < & [u8] > */
	"new_value" bytea, /* Option < & [u8] > */
	"user_id" TEXT, /* Option < & str > */
	"ts" timestamp with time zone, /* Option < TimestampWithTimeZone > */
	"version" bigint DEFAULT 1, /* Option < i64 > */
	"prev_hash" bytea DEFAULT NULL /* Option < & [u8] > */
) RETURNS bytea /* Vec < u8 > */
VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sign_config_change_wrapper';

-- apg_pqcrypto::config::pq::config_set_sealed
CREATE  FUNCTION pq."config_set_sealed"(
	"tenant" TEXT, /* & str */
	"key" TEXT, /* & str */
	"envelope" bytea, /* & [u8] */
	"signature" bytea, /* & [u8] */
	"user_id" TEXT DEFAULT session_user /* & str */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'config_set_sealed_wrapper';

-- apg_pqcrypto::audit::pq::verify_audit_chain
CREATE  FUNCTION pq."verify_audit_chain"() RETURNS TABLE (
	"ok" bool,  /* bool */
	"first_bad_id" bigint,  /* Option < i64 > */
	"rows_checked" bigint,  /* i64 */
	"last_checkpoint" timestamp with time zone,  /* Option < pgrx :: datum :: TimestampWithTimeZone > */
	"problem" TEXT  /* Option < String > */
)
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_audit_chain_wrapper';

-- apg_pqcrypto::audit::pq::audit_checkpoint
CREATE  FUNCTION pq."audit_checkpoint"() RETURNS TABLE (
	"head_id" bigint,  /* i64 */
	"head_hash" bytea,  /* Vec < u8 > */
	"audit_key" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_checkpoint_wrapper';

-- apg_pqcrypto::monitor::pq::flush_counters
CREATE  FUNCTION pq."flush_counters"() RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'flush_counters_wrapper';

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
SELECT kid, state, ml_dsa_public_key, ed25519_public_key, created_at FROM pq.audit_keys;

GRANT SELECT ON pq.config TO pq_admin, pq_user;
GRANT SELECT ON pq.security_events, pq.audit_verifying_keys TO pq_admin;

REVOKE ALL ON FUNCTION pq.config_set(text, text, text, text), pq.config_set_sealed(text, text, bytea, bytea, text),
                       pq.config_delete(text, text, text), pq.config_get(text, text), pq.config_history(text, text),
                       pq.config_verify(text),
                       pq.sign_config_change(text, text, bytea, bytea, text, timestamptz, bigint, bytea),
                       pq.verify_config_signature(text, text, bytea, bytea, text, timestamptz, bytea, bigint, bytea),
                       pq.config_register_signer(text, text, bytea), pq.config_drop_signer(text, text),
                       pq.audit_checkpoint(), pq.verify_audit_chain(), pq.flush_counters(),
                       pq.compliance_report(text, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.config_set(text, text, text, text), pq.config_set_sealed(text, text, bytea, bytea, text),
                          pq.config_delete(text, text, text), pq.config_get(text, text),
                          pq.config_history(text, text), pq.config_verify(text),
                          pq.sign_config_change(text, text, bytea, bytea, text, timestamptz, bigint, bytea),
                          pq.verify_config_signature(text, text, bytea, bytea, text, timestamptz, bytea, bigint, bytea)
    TO pq_user, pq_admin;
GRANT EXECUTE ON FUNCTION pq.config_register_signer(text, text, bytea), pq.config_drop_signer(text, text),
                          pq.audit_checkpoint(), pq.verify_audit_chain(), pq.flush_counters(),
                          pq.compliance_report(text, integer)
    TO pq_admin;
