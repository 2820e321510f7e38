-- Signatures with tenant keys.
SELECT length(pq_sign('acme', 'config v1')) AS envelope_len;
SELECT pq_verify('acme', 'config v1', pq_sign('acme', 'config v1')) AS valid;
SELECT pq_verify('acme', 'config v2', pq_sign('acme', 'config v1')) AS other_message;
SELECT pq_verify('acme', 'm', pq_sign('acme', 'm', 'ctx'), 'ctx') AS with_context,
       pq_verify('acme', 'm', pq_sign('acme', 'm', 'ctx')) AS context_missing;
-- Another tenant's signature is not this tenant's.
SELECT pq_verify('globex', 'm', pq_sign('acme', 'm')) AS cross_tenant;
SELECT pq_inspect(pq_sign('acme', 'm')) - 'kid' AS inspect_signature;
-- The inner signature is plain FIPS 204 under the published verifying key.
SELECT pq_verify_with(pq.tenant_verifying_key('acme'), 'm', substr(pq_sign('acme', 'm'), 19)) AS fips204;
-- Raw keys.
CREATE TEMP TABLE sk AS SELECT * FROM pq_generate_keypair('ML-DSA-65');
SELECT length(public_key), length(secret_key), length(kid) FROM sk;
SELECT length(pq_sign_with(secret_key, 'm')) AS sig_len FROM sk;
SELECT pq_verify_with(public_key, 'm', pq_sign_with(secret_key, 'm', 'c'), 'c') AS valid,
       pq_verify_with(public_key, 'n', pq_sign_with(secret_key, 'm', 'c'), 'c') AS wrong_message,
       pq_verify_with(public_key, 'm', '\x00'::bytea) AS garbage_signature
  FROM sk;
SELECT try($$ SELECT pq_sign_with(secret_key, 'm', decode(repeat('00', 256), 'hex')) FROM sk $$);
SELECT try($$ SELECT pq_sign_with('\x00'::bytea, 'm') $$);
SELECT try($$ SELECT pq_verify_with('\x00'::bytea, 'm', '\x00'::bytea) $$);
SELECT try($$ SELECT pq_verify('acme', 'm', '\x0147'::bytea) $$);
SELECT try($$ SELECT pq_verify('acme', 'm', pq_encrypt('acme', 'x')) $$);
SELECT try($$ SELECT pq_sign('nobody', 'm') $$);
