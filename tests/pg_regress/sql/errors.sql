-- Every error has its documented SQLSTATE and names no secret.
CREATE TEMP TABLE good AS SELECT pq_encrypt('acme', 'value', 'k') AS e;
-- Malformed: 22023.
SELECT try($$ SELECT pq_decrypt(''::bytea) $$);
SELECT try($$ SELECT pq_decrypt('\x01'::bytea) $$);
SELECT try($$ SELECT pq_decrypt('\x02' || substr(e, 2)) FROM good $$);
SELECT try($$ SELECT pq_decrypt('\x015a' || substr(e, 3)) FROM good $$);
-- Truncated: shorter than header plus tag is malformed; a cut body fails authentication.
SELECT try($$ SELECT pq_decrypt(substr(e, 1, 61)) FROM good $$);
SELECT try($$ SELECT pq_decrypt(substr(e, 1, length(e) - 1), 'k'::bytea) FROM good $$);
-- Tampered: any flipped bit, in header, salt, nonce, body or tag.
-- (bits in the version and kind bytes: 22023; in the kid: PQ002; after it: PQ001)
SELECT left(r, 5) AS sqlstate, count(*) AS flips
  FROM good, generate_series(0, length(e) * 8 - 1, 5) AS bit,
       LATERAL (SELECT try(format($q$ SELECT pq_decrypt(%L::bytea, 'k'::bytea) $q$, set_bit(e, bit, 1 - get_bit(e, bit))))) AS t(r)
 GROUP BY 1 ORDER BY 1;
-- A flipped kid names a key that does not exist.
SELECT try($$ SELECT pq_decrypt(set_bit(e, 20, 1 - get_bit(e, 20)), 'k'::bytea) FROM good $$);
-- Wrong AAD: PQ001, the same error as a wrong key.
SELECT try($$ SELECT pq_decrypt(e, 'K'::bytea) FROM good $$);
SELECT try($$ SELECT pq_decrypt(e) FROM good $$);
-- Unknown tenant: 42704 to a superuser (who sees every tenant); others get
-- 42501 (access.sql). Messages repeat at most 64 characters of a name.
SELECT try($$ SELECT pq_encrypt('nobody', 'x') $$);
SELECT try($$ SELECT pq.tenant_public_key('nobody') $$);
SELECT try($$ SELECT pq_encrypt(repeat('n', 100000), 'x') $$);
-- A signature envelope does not decrypt: the kind is checked before any key lookup.
SELECT try($$ SELECT pq_decrypt(pq_sign('acme', 'm')) $$);
SELECT try($$ SELECT pq_decrypt('\x0147' || decode(repeat('00', 3325), 'hex')) $$);
-- Binary plaintext through pq_decrypt_text: 22021.
SELECT try($$ SELECT pq_decrypt_text(pq_encrypt('acme', '\xff00'::bytea)) $$);
-- Admin input checks.
SELECT try($$ SELECT pq.create_tenant('acme') $$);
SELECT try($$ SELECT pq.create_tenant('') $$);
SELECT try($$ SELECT pq.grant_tenant('acme', 'no_such_role') $$);
-- The messages above name no plaintext: 'value' never appears.
SELECT bool_or(r LIKE '%value%') AS leaked FROM (
  SELECT try(format($q$ SELECT pq_decrypt(%L::bytea, 'x'::bytea) $q$, e)) FROM good
  UNION ALL SELECT try(format($q$ SELECT pq_decrypt_text(%L::bytea, 'K') $q$, e)) FROM good) s(r);
-- Key states (set by hand here; rotation sets them in practice): a retired
-- version still decrypts but no longer encrypts; a destroyed one does nothing.
SELECT pq.create_tenant('umbrella') IS NOT NULL AS created;
CREATE TEMP TABLE old AS SELECT pq_encrypt('umbrella', 'before retirement', 'k') AS e;
UPDATE pq.tenant_key_versions SET state = 'retired', retired_at = now() WHERE tenant = 'umbrella';
SELECT try($$ SELECT pq_encrypt('umbrella', 'x') $$);
SELECT pq_decrypt_text(e, 'k') AS retired_still_decrypts FROM old;
UPDATE pq.tenant_key_versions
   SET state = 'destroyed', wrapped_kem_seed = NULL, wrapped_dsa_seed = NULL, sealed_dek = NULL
 WHERE tenant = 'umbrella';
SELECT try($$ SELECT pq_decrypt_text(e, 'k') FROM old $$);
-- Not text in the database encoding (NUL included): 22021.
SELECT try($$ SELECT pq_decrypt_text(pq_encrypt('acme', '\x610062'::bytea)) $$);
