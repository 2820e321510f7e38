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
    created_at      timestamptz NOT NULL DEFAULT now()
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
    state            text NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),
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

REVOKE ALL ON ALL TABLES IN SCHEMA pq FROM PUBLIC;
GRANT USAGE ON SCHEMA pq TO pq_admin, pq_user;
GRANT SELECT ON pq.tenants, pq.tenant_grants TO pq_admin;

-- pg_dump keeps the rows of these tables, so a restored database decrypts.
SELECT pg_catalog.pg_extension_config_dump('pq.master_keys', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_key_versions', '');
SELECT pg_catalog.pg_extension_config_dump('pq.tenant_grants', '');
