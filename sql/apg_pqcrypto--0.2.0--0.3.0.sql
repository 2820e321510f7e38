-- apg_pqcrypto 0.2.0 -> 0.3.0: master keys in a PKCS#11 token or AWS KMS.
-- pq.master_keys gains the database system identifier each wrap is bound
-- to (NULL for the file wraps of earlier versions, which never used it);
-- pq.rotate_master_key takes the provider to move the master data key to;
-- pq.master_key_status() is new. No stored key or envelope changes: every
-- 0.2.0 value decrypts as before.
-- tests/integration/upgrade.sh installs 0.1.0 and 0.2.0, fills each, runs
-- ALTER EXTENSION apg_pqcrypto UPDATE and compares with a fresh 0.3.0.

\echo Use "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.3.0'" to load this file. \quit

ALTER TABLE pq.master_keys ADD COLUMN system_identifier text;

DROP FUNCTION pq.rotate_master_key();

-- apg_pqcrypto::master_keys::pq::rotate_master_key
CREATE  FUNCTION pq."rotate_master_key"(
	"provider" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"mdk_id" bytea,  /* Vec < u8 > */
	"provider" TEXT,  /* String */
	"key_ref" TEXT,  /* String */
	"versions_rewrapped" INT  /* i32 */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rotate_master_key_wrapper';

-- apg_pqcrypto::master_keys::pq::master_key_status
CREATE  FUNCTION pq."master_key_status"() RETURNS TABLE (
	"mdk_id" bytea,  /* Vec < u8 > */
	"state" TEXT,  /* String */
	"provider" TEXT,  /* String */
	"key_ref" TEXT,  /* String */
	"answered" bool,  /* Option < bool > */
	"last_success" timestamp with time zone,  /* Option < TimestampWithTimeZone > */
	"cache_age" interval,  /* Option < Interval > */
	"provider_calls" bigint,  /* i64 */
	"message" TEXT  /* Option < String > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'master_key_status_wrapper';

REVOKE ALL ON FUNCTION pq.rotate_master_key(text), pq.master_key_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.rotate_master_key(text), pq.master_key_status() TO pq_admin;
