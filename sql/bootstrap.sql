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
    created_by text NOT NULL DEFAULT session_user
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
    public_key       bytea NOT NULL CHECK (length(public_key) = 1184),
    verifying_key    bytea NOT NULL CHECK (length(verifying_key) = 1952),
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz,
    disabled_at      timestamptz,
    destroyed_at     timestamptz,
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
    from_kind    text CHECK (from_kind IN ('pgp_sym', 'pgp_pub', 'raw', 'any'))
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
