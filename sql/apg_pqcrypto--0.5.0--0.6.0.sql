-- apg_pqcrypto 0.5.0 -> 0.6.0: the client side and transport.
-- New: X-Wing tenants (pq.tenants.kem, chosen by pq.create_tenant's new
-- kem argument; X-Wing public keys of 1216 bytes in
-- pq.tenant_key_versions; pq.tenant_keys shows each version's kem),
-- pq_seal_batch, and forward-secure sessions (pq.session_begin,
-- pq_session_open, pq_session_open_text, pq.session_end, pq.session_list
-- and the pq.sessions view; their keys live in shared memory only, so no
-- table). pq_seal, pq_open, pq_unseal, pq_inspect and pq_generate_keypair
-- keep their signatures and take X-Wing keys and the new envelope kinds.
-- No stored key or envelope changes: every 0.5.0 tenant stays ML-KEM-768
-- and every 0.5.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.5.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.6.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.6.0'" to load this file. \quit

ALTER TABLE pq.tenants
    ADD COLUMN kem text NOT NULL DEFAULT 'ml-kem-768' CHECK (kem IN ('ml-kem-768', 'x-wing'));
ALTER TABLE pq.tenant_key_versions
    DROP CONSTRAINT tenant_key_versions_public_key_check,
    ADD CONSTRAINT tenant_key_versions_public_key_check CHECK (length(public_key) IN (1184, 1216));

-- pq.create_tenant gains its kem argument.
DROP FUNCTION pq.create_tenant(text);
-- apg_pqcrypto::tenants::pq::create_tenant
CREATE  FUNCTION pq."create_tenant"(
	"tenant" TEXT, /* & str */
	"kem" TEXT DEFAULT 'ml-kem-768' /* & str */
) RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"version" INT,  /* i32 */
	"kid" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'create_tenant_kem_wrapper';

-- apg_pqcrypto::envelope::pq_seal_batch
CREATE  FUNCTION "pq_seal_batch"(
	"public_key" bytea, /* Option < & [u8] > */
	"values" bytea[], /* :: std :: option :: Option < Array < & [u8] > > */
	"aads" bytea[] DEFAULT NULL /* :: std :: option :: Option < Array < & [u8] > > */
) RETURNS bytea[] /* Option < PgByteaArray > */
VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_seal_batch_wrapper';

-- apg_pqcrypto::sessions::pq_session_open
CREATE  FUNCTION "pq_session_open"(
	"session_id" uuid, /* pgrx :: Uuid */
	"envelope" bytea, /* & [u8] */
	"aad" bytea DEFAULT '' /* & [u8] */
) RETURNS bytea /* PgBytea */
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_session_open_wrapper';

-- apg_pqcrypto::sessions::pq_session_open_text
CREATE  FUNCTION "pq_session_open_text"(
	"session_id" uuid, /* pgrx :: Uuid */
	"envelope" bytea, /* & [u8] */
	"aad" TEXT DEFAULT '' /* & str */
) RETURNS text /* crate :: datum :: PgText */
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_session_open_text_wrapper';

-- apg_pqcrypto::sessions::pq::session_begin
CREATE  FUNCTION pq."session_begin"(
	"tenant" TEXT, /* & str */
	"lifetime" interval DEFAULT '1 hour' /* Interval */
) RETURNS TABLE (
	"session_id" uuid,  /* pgrx :: Uuid */
	"public_key" bytea,  /* Vec < u8 > */
	"kid" bytea,  /* Vec < u8 > */
	"expires_at" timestamp with time zone  /* TimestampWithTimeZone */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'session_begin_wrapper';

-- apg_pqcrypto::sessions::pq::session_end
CREATE  FUNCTION pq."session_end"(
	"session_id" uuid /* pgrx :: Uuid */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'session_end_wrapper';

-- apg_pqcrypto::sessions::pq::session_list
CREATE  FUNCTION pq."session_list"() RETURNS TABLE (
	"session_id" uuid,  /* pgrx :: Uuid */
	"tenant" TEXT,  /* String */
	"kem" TEXT,  /* String */
	"kid" bytea,  /* Vec < u8 > */
	"public_key" bytea,  /* Vec < u8 > */
	"created_at" timestamp with time zone,  /* TimestampWithTimeZone */
	"expires_at" timestamp with time zone,  /* TimestampWithTimeZone */
	"opened" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'session_list_wrapper';

REVOKE ALL ON FUNCTION pq.create_tenant(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.create_tenant(text, text) TO pq_admin;

CREATE OR REPLACE VIEW pq.tenant_keys WITH (security_barrier) AS
SELECT tenant, version, state, kid, signing_kid, public_key, verifying_key,
       created_at, activated_at, retired_at, disabled_at, destroyed_at,
       CASE length(public_key) WHEN 1216 THEN 'x-wing' ELSE 'ml-kem-768' END AS kem
  FROM pq.tenant_key_versions
 WHERE pq.tenant_visible(tenant);

-- Client side and transport (0.6.0): forward-secure sessions. The
-- functions check the caller's use of the session's tenant inside.
CREATE VIEW pq.sessions AS SELECT * FROM pq.session_list();
REVOKE ALL ON FUNCTION pq.session_begin(text, interval), pq.session_end(uuid), pq.session_list(),
                       pq_session_open(uuid, bytea, bytea), pq_session_open_text(uuid, bytea, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.session_begin(text, interval), pq.session_end(uuid), pq.session_list(),
                          pq_session_open(uuid, bytea, bytea), pq_session_open_text(uuid, bytea, text)
    TO pq_user, pq_admin;
GRANT SELECT ON pq.sessions TO pq_user, pq_admin;
