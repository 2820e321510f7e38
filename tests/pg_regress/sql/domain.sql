-- pq_envelope columns admit only well-formed v1 envelopes; anything else
-- fails at INSERT with 22023.
CREATE TABLE config (name text PRIMARY KEY, value pq_envelope NOT NULL);
INSERT INTO config VALUES ('db', pq_encrypt('acme', 'postgres://…', 'db'));
INSERT INTO config VALUES ('api', pq_seal(pq.tenant_public_key('acme'), 'k-123', 'api'));
INSERT INTO config VALUES ('sig', pq_sign('acme', 'config'));
SELECT try($$ INSERT INTO config VALUES ('plain', convert_to('plaintext', 'UTF8')) $$);
SELECT try($$ INSERT INTO config VALUES ('short', '\x014b00'::bytea) $$);
SELECT try($$ INSERT INTO config VALUES ('v2', '\x024b' || decode(repeat('00', 70), 'hex')) $$);
SELECT try($$ UPDATE config SET value = '\x00'::bytea WHERE name = 'db' $$);
SELECT name, pq_inspect(value)->>'kind' AS kind FROM config ORDER BY name;
SELECT name, CASE pq_inspect(value)->>'kind' WHEN 'keyed' THEN pq_decrypt_text(value, name)
                                             WHEN 'sealed' THEN pq_unseal_text(value, name) END
  FROM config WHERE name IN ('db', 'api') ORDER BY name;
DROP TABLE config;
