-- apg_pqcrypto 0.8.0 -> 0.9.0: blind indexes (docs/SEARCH.md, FORMAT.md §16).
-- - pq_blind_index and pq_blind_indexes (text with a normalisation, and
--   bytea), pq_encrypt_indexed: equality search over encrypted values by
--   terms under each tenant key version's blind index key.
-- - pq.tenant_key_versions.blind_index_retired_at and
--   pq.retire_blind_index_key: a retired version's index key stays live
--   (pq_blind_indexes gives its terms) until it is retired; the
--   pq.tenant_keys view shows the column.
-- - pq.track_column(..., blind_index_column, context, bits, normalization):
--   a trigger (pq.blind_index_trigger) keeps a column of terms, and
--   re-encryption and migration jobs move the terms with the values
--   (pq.tracked_columns.blind_index_*); the old track_column(regclass,
--   text, text, text, text) is replaced (same arguments first).
-- - pq.export_index_key: an index key sealed to a client, for client-side
--   terms (apg-pq index-key, apg-pq index-term); granted to no role.
-- - pq.verify_keys: every stored key version checked end to end (the
--   worker runs it every apg_pqcrypto.verify_keys_interval).
-- No stored key or envelope changes: every 0.8.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0 to 0.8.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.9.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.9.0'" to load this file. \quit

ALTER TABLE pq.tenant_key_versions ADD COLUMN blind_index_retired_at timestamptz;

ALTER TABLE pq.tracked_columns
    ADD COLUMN blind_index_column        name,
    ADD COLUMN blind_index_context       text,
    ADD COLUMN blind_index_bits          integer,
    ADD COLUMN blind_index_normalization text,
    ADD CONSTRAINT tracked_columns_blind_index_check CHECK (
        (blind_index_column IS NULL AND blind_index_context IS NULL AND blind_index_bits IS NULL
         AND blind_index_normalization IS NULL)
        OR (blind_index_column IS NOT NULL AND blind_index_context IS NOT NULL
            AND blind_index_bits BETWEEN 16 AND 256 AND blind_index_bits % 8 = 0
            AND blind_index_normalization IN ('exact', 'trim', 'casefold', 'trim,casefold')));

DROP FUNCTION pq.track_column(regclass, text, text, text, text);
CREATE  FUNCTION pq."track_column"(
	"table" regclass, /* Option < PgRelation > */
	"column" TEXT, /* Option < & str > */
	"tenant" TEXT DEFAULT NULL, /* Option < & str > */
	"tenant_column" TEXT DEFAULT NULL, /* Option < & str > */
	"aad_column" TEXT DEFAULT NULL, /* Option < & str > */
	"blind_index_column" TEXT DEFAULT NULL, /* Option < & str > */
	"context" TEXT DEFAULT NULL, /* Option < & str > */
	"bits" INT DEFAULT 256, /* i32 */
	"normalization" TEXT DEFAULT 'exact' /* & str */
) RETURNS INT /* i32 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'track_column_wrapper';
REVOKE ALL ON FUNCTION pq.track_column(regclass, text, text, text, text, text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.track_column(regclass, text, text, text, text, text, text, integer, text) TO pq_admin;

CREATE  FUNCTION pq."export_index_key"(
	"tenant" TEXT, /* & str */
	"context" TEXT, /* & str */
	"recipient_public_key" bytea, /* & [u8] */
	"version" INT DEFAULT NULL /* Option < i32 > */
) RETURNS TABLE (
	"key_version" INT,  /* i32 */
	"kid" bytea,  /* Vec < u8 > */
	"key_envelope" bytea  /* PgBytea */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'export_index_key_wrapper';

CREATE FUNCTION pq."blind_index_trigger"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'blind_index_trigger_wrapper';

CREATE  FUNCTION "pq_blind_index"(
	"tenant" TEXT, /* & str */
	"value" TEXT, /* & str */
	"context" TEXT, /* & str */
	"bits" INT DEFAULT 256, /* i32 */
	"normalization" TEXT DEFAULT 'exact' /* & str */
) RETURNS bytea /* Vec < u8 > */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_blind_index_wrapper';

CREATE  FUNCTION "pq_blind_index"(
	"tenant" TEXT, /* & str */
	"value" bytea, /* & [u8] */
	"context" TEXT, /* & str */
	"bits" INT DEFAULT 256 /* i32 */
) RETURNS bytea /* Vec < u8 > */
STRICT STABLE PARALLEL RESTRICTED 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_blind_index_bytea_wrapper';

CREATE  FUNCTION "pq_blind_indexes"(
	"tenant" TEXT, /* & str */
	"value" TEXT, /* & str */
	"context" TEXT, /* & str */
	"bits" INT DEFAULT 256, /* i32 */
	"normalization" TEXT DEFAULT 'exact' /* & str */
) RETURNS bytea[] /* Vec < Vec < u8 > > */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_blind_indexes_wrapper';

CREATE  FUNCTION "pq_blind_indexes"(
	"tenant" TEXT, /* & str */
	"value" bytea, /* & [u8] */
	"context" TEXT, /* & str */
	"bits" INT DEFAULT 256 /* i32 */
) RETURNS bytea[] /* Vec < Vec < u8 > > */
STRICT STABLE PARALLEL RESTRICTED 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_blind_indexes_bytea_wrapper';
CREATE  FUNCTION "pq_encrypt_indexed"(
	"tenant" TEXT, /* & str */
	"plaintext" TEXT, /* & str */
	"context" TEXT, /* & str */
	"aad" TEXT DEFAULT '', /* & str */
	"bits" INT DEFAULT 256, /* i32 */
	"normalization" TEXT DEFAULT 'exact' /* & str */
) RETURNS TABLE (
	"envelope" bytea,  /* PgBytea */
	"term" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pq_encrypt_indexed_wrapper';
CREATE  FUNCTION pq."retire_blind_index_key"(
	"tenant" TEXT, /* & str */
	"version" INT, /* i32 */
	"force" bool DEFAULT false /* bool */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'retire_blind_index_key_wrapper';


CREATE OR REPLACE VIEW pq.tenant_keys WITH (security_barrier) AS
SELECT tenant, version, state, kid, signing_kid, public_key, verifying_key,
       created_at, activated_at, retired_at, disabled_at, destroyed_at,
       CASE length(public_key) WHEN 1216 THEN 'x-wing' ELSE 'ml-kem-768' END AS kem,
       blind_index_retired_at
  FROM pq.tenant_key_versions
 WHERE pq.tenant_visible(tenant);

-- Blind indexes (0.9.0): terms under a tenant's keys, checked per tenant
-- inside like pq_encrypt; retiring an index key is key administration.
REVOKE ALL ON FUNCTION pq_blind_index(text, text, text, integer, text), pq_blind_index(text, bytea, text, integer),
                       pq_blind_indexes(text, text, text, integer, text), pq_blind_indexes(text, bytea, text, integer),
                       pq_encrypt_indexed(text, text, text, text, integer, text),
                       pq.retire_blind_index_key(text, integer, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq_blind_index(text, text, text, integer, text), pq_blind_index(text, bytea, text, integer),
                          pq_blind_indexes(text, text, text, integer, text), pq_blind_indexes(text, bytea, text, integer),
                          pq_encrypt_indexed(text, text, text, text, integer, text)
    TO pq_user;
GRANT EXECUTE ON FUNCTION pq.retire_blind_index_key(text, integer, boolean) TO pq_admin;
-- Exporting an index key to a client is granted separately: no role may
-- call it until a superuser grants EXECUTE (the caller also needs the
-- tenant's grant).
REVOKE ALL ON FUNCTION pq.export_index_key(text, text, bytea, integer) FROM PUBLIC;

CREATE  FUNCTION pq."verify_keys"(
	"tenant" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"version" INT,  /* i32 */
	"state" TEXT,  /* String */
	"ok" bool,  /* bool */
	"problem" TEXT  /* Option < String > */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_keys_wrapper';
/* </end connected objects> */


-- Every stored key version checked end to end (0.9.0): pq_admin.
REVOKE ALL ON FUNCTION pq.verify_keys(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.verify_keys(text) TO pq_admin;
