-- Sealed envelopes: made with a public key, by a client or by pq_seal, and
-- opened with pq_unseal. They are confidential but prove nothing about who
-- made them, so pq_decrypt (which opens what the server made) refuses them.
SELECT pq_unseal_text(pq_seal(pq.tenant_public_key('acme'), 'from a client', 'api_key'), 'api_key');
SELECT pq_unseal(pq_seal(pq.tenant_public_key('acme'), '\x00ff'::bytea, '\x01'::bytea), '\x01'::bytea) AS unseal_bytea;
SELECT try($$ SELECT pq_decrypt(pq_seal(pq.tenant_public_key('acme'), 'planted', 'k'), 'k'::bytea) $$);
SELECT try($$ SELECT pq_decrypt_text(pq_seal(pq.tenant_public_key('acme'), 'planted', 'k'), 'k') $$);
-- And pq_unseal refuses keyed envelopes and signatures.
SELECT try($$ SELECT pq_unseal(pq_encrypt('acme', 'keyed', 'k'), 'k'::bytea) $$);
SELECT try($$ SELECT pq_unseal(pq_sign('acme', 'm')) $$);
-- A stored DEK is sealed under its own HKDF label: no AAD opens it.
SELECT try(format($q$ SELECT pq_unseal(%L::bytea, %L::bytea) $q$, sealed_dek, aad))
  FROM pq.tenant_key_versions, (VALUES (''), ('apg-pq v1 dek'), ('apg-pq v1 sealed')) a(aad)
 WHERE tenant = 'acme' ORDER BY aad;
SELECT try(format($q$ SELECT pq_decrypt(%L::bytea, 'apg-pq v1 dek'::bytea) $q$, sealed_dek))
  FROM pq.tenant_key_versions WHERE tenant = 'acme';
SELECT length(pq_seal(pq.tenant_public_key('acme'), repeat('a', 40))) AS sealed_len_40;
SELECT pq_inspect(pq_seal(pq.tenant_public_key('acme'), 'x', 'k')) - 'kid' AS inspect_sealed;
-- Raw key pairs, no server keys involved.
CREATE TEMP TABLE kp AS SELECT * FROM pq_generate_keypair('ml-kem-768');
SELECT length(public_key), length(secret_key), length(kid) FROM kp;
SELECT kid = substr(sha256(public_key), 1, 16) AS kid_is_sha256_prefix FROM kp;
SELECT convert_from(pq_open(secret_key, pq_seal(public_key, 'raw', 'aad'), 'aad'::bytea), 'UTF8') FROM kp;
SELECT pq_open(secret_key, pq_seal(public_key, '\xdeadbeef'::bytea)) FROM kp;
-- Another key, another AAD: one opaque error.
SELECT try($$ SELECT pq_open(k2.secret_key, pq_seal(kp.public_key, 'x'::text)) FROM kp, pq_generate_keypair() k2 $$);
SELECT try($$ SELECT pq_open(secret_key, pq_seal(public_key, 'x', 'a'), 'b'::bytea) FROM kp $$);
-- A sealed envelope to a raw key is not a tenant's: unknown kid.
SELECT try($$ SELECT pq_unseal(pq_seal(public_key, 'x'::text)) FROM kp $$);
-- pq_open takes sealed envelopes only.
SELECT try($$ SELECT pq_open(secret_key, pq_encrypt('acme', 'x')) FROM kp $$);
-- Bad keys.
SELECT try($$ SELECT pq_seal('\x00'::bytea, 'x'::text) $$);
SELECT try($$ SELECT pq_seal(decode(repeat('ff', 1184), 'hex'), 'x'::text) $$);
SELECT try($$ SELECT pq_open(decode(repeat('00', 2400), 'hex'), pq_seal(public_key, 'x'::text)) FROM kp $$);
SELECT try($$ SELECT pq_open('\x0102'::bytea, pq_seal(public_key, 'x'::text)) FROM kp $$);
SELECT try($$ SELECT pq_generate_keypair('rsa-2048') $$);
