-- apg_pqcrypto: key tables, roles and the pq_envelope domain.
-- Secrets in these tables are wrapped: seeds under the master data key,
-- the master data key under the provider's key, the DEK sealed to its own
-- version's ML-KEM key. See docs/FORMAT.md and docs/KEY-MANAGEMENT.md.

CREATE SCHEMA IF NOT EXISTS pq;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pq_admin') THEN
        CREATE ROLE pq_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pq_user') THEN
        CREATE ROLE pq_user NOLOGIN;
    END IF;
END
$$;

CREATE TABLE pq.master_keys (
    id              bytea PRIMARY KEY CHECK (length(id) = 16),
    provider        text NOT NULL,
    provider_key_id text NOT NULL,
    wrapped_key     bytea NOT NULL,
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The database system identifier the wrap is bound to (PKCS#11 AES-GCM
    -- AAD, KMS encryption context); NULL for file wraps made before 0.3.0.
    system_identifier text
);
CREATE UNIQUE INDEX master_keys_one_active ON pq.master_keys ((true)) WHERE state = 'active';

CREATE TABLE pq.tenants (
    name       text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT session_user,
    -- The KEM of new key versions (0.6.0): chosen at creation, changed by
    -- pq.rotate_tenant_key(kem => ...) (0.11.0: and ML-KEM-1024).
    kem        text NOT NULL DEFAULT 'ml-kem-768' CHECK (kem IN ('ml-kem-768', 'ml-kem-1024', 'x-wing')),
    -- 0.10.0: when pq.shred_tenant destroyed every key of the tenant (it
    -- gets no new keys after).
    shredded_at timestamptz,
    -- 0.11.0: the signature suite of new key versions.
    signature  text NOT NULL DEFAULT 'ml-dsa-65' CHECK (signature IN ('ml-dsa-65', 'ml-dsa-87'))
);

CREATE TABLE pq.tenant_key_versions (
    tenant           text NOT NULL REFERENCES pq.tenants (name),
    version          integer NOT NULL CHECK (version > 0),
    state            text NOT NULL CHECK (state IN ('active', 'retired', 'disabled', 'destroyed')),
    kid              bytea NOT NULL UNIQUE CHECK (length(kid) = 16),
    signing_kid      bytea NOT NULL UNIQUE CHECK (length(signing_kid) = 16),
    mdk_id           bytea NOT NULL REFERENCES pq.master_keys (id),
    wrapped_kem_seed bytea,
    wrapped_dsa_seed bytea,
    sealed_dek       bytea,
    -- ML-KEM-768 (1184 bytes), X-Wing (1216 bytes, 0.6.0) or ML-KEM-1024
    -- (1568 bytes, 0.11.0); ML-DSA-65 (1952 bytes) or ML-DSA-87 (2592, 0.11.0).
    public_key       bytea NOT NULL CHECK (length(public_key) IN (1184, 1216, 1568)),
    verifying_key    bytea NOT NULL CHECK (length(verifying_key) IN (1952, 2592)),
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz,
    disabled_at      timestamptz,
    destroyed_at     timestamptz,
    -- 0.9.0: when pq.retire_blind_index_key ended the version's blind index
    -- key (pq_blind_indexes no longer gives its terms).
    blind_index_retired_at timestamptz,
    PRIMARY KEY (tenant, version),
    CHECK (state = 'destroyed' OR (wrapped_kem_seed IS NOT NULL AND wrapped_dsa_seed IS NOT NULL AND sealed_dek IS NOT NULL))
);
CREATE UNIQUE INDEX tenant_key_versions_one_active ON pq.tenant_key_versions (tenant) WHERE state = 'active';

-- A grant counts while the role has both the OID and the name it had when
-- granted: a dropped role's grant never passes to a new role of the same
-- name, nor to an unrelated role that later gets its OID. regrole is dumped
-- and replicated as the role's name, so a restore or a subscriber maps it
-- to its own role of that name.
CREATE TABLE pq.tenant_grants (
    tenant     text NOT NULL REFERENCES pq.tenants (name) ON DELETE CASCADE,
    role       regrole NOT NULL,
    role_name  name NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, role)
);

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
    updated_by          text NOT NULL DEFAULT session_user,
    -- 0.11.0: 'cnsa2' makes new key material ML-KEM-1024 + ML-DSA-87 only.
    require_suite       text CHECK (require_suite IN ('cnsa2'))
);

-- Where a tenant's ciphertexts live: a bytea column, the tenant (fixed or
-- from another column), the AAD column, and the single-column key that
-- re-encryption claims rows by (on a Citus distributed table, 0.11.0: a
-- unique key of several columns, one of them the distribution column, in
-- key_columns; key_column is its first).
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
    -- 0.9.0: the column that keeps each row's blind index term, and how
    -- the term is made (docs/SEARCH.md).
    blind_index_column        name,
    blind_index_context       text,
    blind_index_bits          integer,
    blind_index_normalization text,
    key_columns               name[],
    UNIQUE (relid, column_name),
    CHECK ((tenant IS NULL) <> (tenant_column IS NULL)),
    CONSTRAINT tracked_columns_blind_index_check CHECK (
        (blind_index_column IS NULL AND blind_index_context IS NULL AND blind_index_bits IS NULL
         AND blind_index_normalization IS NULL)
        OR (blind_index_column IS NOT NULL AND blind_index_context IS NOT NULL
            AND blind_index_bits BETWEEN 16 AND 256 AND blind_index_bits % 8 = 0
            AND blind_index_normalization IN ('exact', 'trim', 'casefold', 'trim,casefold')))
);

-- Work for the background worker, batch by batch.
CREATE TABLE pq.job_queue (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('reencrypt', 'migrate')),
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
    finished_at  timestamptz,
    -- migrate jobs: the classical kind they read (any: whatever each value is)
    from_kind    text CHECK (from_kind IN ('pgp_sym', 'pgp_pub', 'raw', 'any')),
    -- 0.11.0: a job on a Citus distributed table runs shard by shard on the
    -- nodes that hold them (pq.job_shards); its counters here add theirs up.
    distributed  boolean NOT NULL DEFAULT false,
    shards_total integer,
    shards_done  integer,
    -- 0.11.0: a re-encryption done in place goes through the table's
    -- blocks; the pass has got to cursor_block and ends before pass_end_block.
    cursor_block   bigint,
    pass_end_block bigint
);
CREATE INDEX job_queue_pending ON pq.job_queue (id) WHERE state IN ('queued', 'running');

-- Rows a job could not re-encrypt, with the reason; never a plaintext.
-- A row is known by its relation (the tracked table, a partition or an
-- inheritance child: 0.8.0) and its key.
CREATE TABLE pq.job_failures (
    job_id  bigint NOT NULL REFERENCES pq.job_queue (id) ON DELETE CASCADE,
    row_key text NOT NULL,
    reason  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    relid   oid NOT NULL,
    PRIMARY KEY (job_id, relid, row_key)
);

REVOKE ALL ON ALL TABLES IN SCHEMA pq FROM PUBLIC;
GRANT USAGE ON SCHEMA pq TO pq_admin, pq_user;
GRANT SELECT ON pq.tenants, pq.tenant_grants, pq.key_events, pq.tenant_policies, pq.tracked_columns,
                pq.job_queue, pq.job_failures TO pq_admin;

-- pg_dump keeps the rows of these tables, so a restored database decrypts.
-- Migration off classical crypto (0.4.0).

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

SELECT pg_catalog.pg_extension_config_dump('pq.master_keys', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_key_versions', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_grants', '');
SELECT pg_catalog.pg_extension_config_dump('pq.key_events', '');
SELECT pg_catalog.pg_extension_config_dump('pq.key_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_policies', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tracked_columns', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tracked_columns_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pq.classical_keys', '');
SELECT pg_catalog.pg_extension_config_dump('pq.classical_keys_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_migrations', '');

-- Configuration store, audit trail and monitoring (0.5.0).
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
    -- The message the client signed (FORMAT.md §11.3): 2 binds the record
    -- it replaces (0.8.0); 1, before, does not. Read for set_sealed only.
    client_signature_format smallint CHECK (client_signature_format IN (1, 2)),
    PRIMARY KEY (tenant, key, version),
    CHECK ((op = 'delete') = (envelope IS NULL)),
    CHECK ((op = 'set_sealed') = (client_signature IS NOT NULL))
);

-- The hash-chained audit trail: every key, tenant, grant, config,
-- provider and master key event. Ids are 1, 2, 3, ... without gaps, in
-- the order rows were chained (commit order before 0.11.0; since, rows
-- can wait in pq.audit_pending first). Append-only.
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
    -- ML-DSA-65 (1952 bytes) or, 0.11.0, ML-DSA-87 (2592).
    ml_dsa_public_key    bytea NOT NULL CHECK (length(ml_dsa_public_key) IN (1952, 2592)),
    -- The hedge: Ed25519, or (0.11.0) SLH-DSA in the columns below.
    ed25519_public_key   bytea CHECK (length(ed25519_public_key) = 32),
    mdk_id               bytea NOT NULL REFERENCES pq.master_keys (id),
    wrapped_ml_dsa_seed  bytea NOT NULL,
    wrapped_ed25519_seed bytea,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- 0.11.0: apg_pqcrypto.audit_signature when the key was made.
    algorithm            text NOT NULL DEFAULT 'ml-dsa-65+ed25519'
                         CHECK (algorithm IN ('ml-dsa-65+ed25519', 'ml-dsa-87+ed25519', 'slh-dsa+ml-dsa-65')),
    slh_dsa_public_key   bytea CHECK (length(slh_dsa_public_key) = 32),
    wrapped_slh_dsa_seed bytea,
    CONSTRAINT audit_keys_hedge CHECK (CASE WHEN algorithm = 'slh-dsa+ml-dsa-65'
        THEN slh_dsa_public_key IS NOT NULL AND wrapped_slh_dsa_seed IS NOT NULL AND ed25519_public_key IS NULL AND wrapped_ed25519_seed IS NULL
        ELSE ed25519_public_key IS NOT NULL AND wrapped_ed25519_seed IS NOT NULL AND slh_dsa_public_key IS NULL AND wrapped_slh_dsa_seed IS NULL END)
);
CREATE UNIQUE INDEX audit_keys_one_active ON pq.audit_keys ((true)) WHERE state = 'active';

-- Signed heads of the audit chain. Append-only.
CREATE TABLE pq.audit_checkpoints (
    id                bigserial PRIMARY KEY,
    head_id           bigint NOT NULL CHECK (head_id >= 0),
    head_hash         bytea NOT NULL CHECK (length(head_hash) = 32),
    ts                timestamptz NOT NULL,
    key_kid           bytea NOT NULL REFERENCES pq.audit_keys (kid),
    ml_dsa_signature  bytea NOT NULL CHECK (length(ml_dsa_signature) IN (3309, 4627)),
    ed25519_signature bytea CHECK (length(ed25519_signature) = 64),
    -- 0.11.0: the SLH-DSA-SHA2-128s signature of a slh-dsa+ml-dsa-65 key.
    slh_dsa_signature bytea CHECK (length(slh_dsa_signature) = 7856),
    -- 0.11.0: the Citus group of the node whose chain this signs (0: the
    -- coordinator, or a single server). docs/SCALE-OUT.md, Audit.
    node_group        integer NOT NULL DEFAULT 0,
    CONSTRAINT audit_checkpoints_hedge CHECK ((ed25519_signature IS NULL) <> (slh_dsa_signature IS NULL))
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
    -- 0.10.0: unusual_access, a role's decryptions above its baseline.
    kind      text NOT NULL CHECK (kind IN ('failed_decrypt', 'failed_verify', 'unusual_access')),
    minute    timestamptz NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    alerted   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, role_name, kind, minute)
);

-- UPDATE, DELETE and TRUNCATE of the append-only tables are refused for
-- every role, the owner included. (A superuser can still bypass triggers;
-- pq.verify_audit_chain and pq.config_verify detect what that changes.)
CREATE FUNCTION pq.refuse_change() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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

-- One approval per session user and per approver key (0.8.0: the
-- approver's ML-DSA-65 signature over the request's statement, FORMAT.md
-- §14.2; approvals made before 0.8.0 have none and do not count).
CREATE TABLE pq.escrow_approvals (
    request_id   uuid NOT NULL REFERENCES pq.escrow_requests (id),
    approver     text NOT NULL,
    approved_at  timestamptz NOT NULL DEFAULT now(),
    approver_kid bytea CHECK (length(approver_kid) = 16),
    signature    bytea CHECK (length(signature) = 3309),
    PRIMARY KEY (request_id, approver),
    UNIQUE (request_id, approver_kid),
    CHECK ((approver_kid IS NULL) = (signature IS NULL))
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

-- 0.8.0. Serialises the writers of the audit chain (catalog::lock_audit_chain):
-- LOCK TABLE checks privileges before it waits, and no role but the
-- extension's owner has any on this table, so no other role can hold the
-- lock (an advisory lock could be held by any role). Never has rows.
CREATE TABLE pq.audit_chain_lock ();
REVOKE ALL ON pq.audit_chain_lock FROM PUBLIC;

-- 0.11.0. Audit rows whose writer found the chain lock held (journal::chain):
-- written in the writer's transaction, and chained in seq order by the next
-- holder of the lock, the worker or pq.audit_flush(), which delete them
-- here. Not hash-chained until then.
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

-- 0.11.0. Jobs on Citus distributed tables (docs/SCALE-OUT.md, Jobs): one
-- row per job and shard, which pq.citus_setup() makes a reference table, so
-- that every node sees them; the node that holds a shard's placement runs
-- its batches, and a shard move hands the shard's progress (its cursor
-- over the claim key) to the node it moves to. The job's definition is
-- copied in: the coordinator's tracked_columns and job_queue are not on the
-- workers. State 'gone': the shard no longer exists (split).
CREATE TABLE pq.job_shards (
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
-- Rows of a shard a job could not re-encrypt or migrate: the row's claim
-- key as text (array text for several columns), never a plaintext.
CREATE TABLE pq.job_shard_failures (
    job_id  bigint NOT NULL,
    shardid bigint NOT NULL,
    row_key text NOT NULL,
    reason  text NOT NULL,
    at      timestamptz NOT NULL,
    PRIMARY KEY (job_id, shardid, row_key)
);
REVOKE ALL ON pq.job_shards, pq.job_shard_failures FROM PUBLIC;
GRANT SELECT ON pq.job_shards, pq.job_shard_failures TO pq_admin;

-- Approvers of escrow recoveries (0.8.0): their ML-DSA-65 public keys
-- (apg-pq keygen --algorithm ml-dsa-65), which custodians pin at the
-- ceremony and check in a request's statement before re-sealing a share.
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
