-- Keyed envelopes under a tenant's active key.
SELECT pq_decrypt_text(pq_encrypt('acme', 'postgres://app:s3cret@db/app', 'database_url'), 'database_url');
-- Text and bytea forms agree: text means its UTF-8 bytes.
SELECT pq_decrypt(pq_encrypt('acme', 'v', 'k'), 'k'::bytea) = 'v'::bytea AS text_is_utf8;
SELECT pq_decrypt(pq_encrypt('acme', '\x00ff10'::bytea, '\x01'::bytea), '\x01'::bytea);
SELECT pq_decrypt_text(pq_encrypt('acme', 'grüße, 世界', 'ключ'), 'ключ');
-- Empty values and empty AAD; the default AAD is empty.
SELECT pq_decrypt_text(pq_encrypt('acme', ''), '') = '' AS empty_round_trip;
SELECT pq_decrypt_text(pq_encrypt('acme', 'x')) AS default_aad;
-- 62 bytes of overhead per value.
SELECT length(pq_encrypt('acme', repeat('a', 40))) AS keyed_len_40;
-- A large value.
SELECT pq_decrypt_text(pq_encrypt('acme', repeat('0123456789', 100000)), '') = repeat('0123456789', 100000) AS large_ok;
-- Two encryptions of one value differ (fresh salt and nonce).
SELECT pq_encrypt('acme', 'same') <> pq_encrypt('acme', 'same') AS randomized;
-- STRICT: NULL in, NULL out.
SELECT pq_encrypt('acme', NULL::text) IS NULL AS null_plaintext, pq_decrypt(NULL) IS NULL AS null_envelope;
-- The envelope names its version and kind and the tenant's kid.
SELECT get_byte(e, 0) AS version, chr(get_byte(e, 1)) AS kind,
       substr(e, 3, 16) = (SELECT kid FROM pq.tenant_keys WHERE tenant = 'acme') AS names_kid
  FROM (SELECT pq_encrypt('acme', 'v') AS e) s;
-- pq_inspect tells what an envelope is, never its content.
SELECT pq_inspect(pq_encrypt('acme', 'hello', 'k')) - 'kid' AS inspect_keyed;
SELECT pq_inspect(pq_encrypt('acme', 'hello', 'k'))->>'kid' = encode((SELECT kid FROM pq.tenant_keys WHERE tenant = 'acme'), 'hex') AS inspect_kid;
-- A ciphertext moved to another configuration key does not decrypt.
SELECT try($$ SELECT pq_decrypt_text(pq_encrypt('acme', 'secret', 'smtp_password'), 'db_password') $$);
