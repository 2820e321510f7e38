-- Decryption performs no writes: it works in a read-only transaction, also
-- when nothing is cached (key_cache_ttl = 0 makes every call load its keys),
-- and assigns no transaction id (which a hot standby could not give).
CREATE TABLE ro (e bytea, s bytea);
INSERT INTO ro VALUES (pq_encrypt('acme', 'read-only', 'k'), pq_seal(pq.tenant_public_key('acme'), 'sealed', 'k'));
SET apg_pqcrypto.key_cache_ttl = 0;
SET default_transaction_read_only = on;
BEGIN;
SELECT pq_decrypt_text(e, 'k'), pq_unseal_text(s, 'k') FROM ro;
SELECT pq_verify('acme', 'm', pq_sign('acme', 'm')) AS sign_verify_read_only;
SELECT pq_inspect(e)->>'tenant' FROM ro;
SELECT txid_current_if_assigned() IS NULL AS no_transaction_id;
COMMIT;
-- Encryption does not write either.
BEGIN;
SELECT length(pq_encrypt('acme', 'x')) AS encrypt_read_only;
COMMIT;
-- Creating a tenant does, and is refused.
SELECT try($$ SELECT pq.create_tenant('ro-tenant') $$);
RESET default_transaction_read_only;
RESET apg_pqcrypto.key_cache_ttl;
DROP TABLE ro;
