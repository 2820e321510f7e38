-- Client side and transport (0.6.0): X-Wing tenants, batch sealing and
-- forward-secure sessions. docs/FORMAT.md §3.2, §3.3, §13; docs/CLIENT.md.

-- X-Wing tenants: the suite is chosen at creation and kept by rotations.
SELECT tenant, version, length(kid) FROM pq.create_tenant('hybrid', kem => 'x-wing');
SELECT try($$ SELECT pq.create_tenant('bad-kem', kem => 'kyber') $$);
SELECT try($$ SELECT pq.create_tenant('bad-kem', kem => 'X-WING') $$);
SELECT count(*) AS created FROM pq.tenants WHERE name = 'bad-kem';
SELECT tenant, kem, length(public_key) FROM pq.tenant_keys WHERE tenant IN ('acme', 'hybrid') ORDER BY tenant;
SELECT name, kem FROM pq.tenants WHERE name IN ('acme', 'hybrid') ORDER BY name;
SELECT substr(sealed_dek, 2, 1) AS dek_kind, length(sealed_dek) FROM pq.tenant_key_versions WHERE tenant = 'hybrid';
SELECT pq.grant_tenant('hybrid', 'regress_app_a');
SET ROLE regress_app_a;
-- Sealed to the tenant's X-Wing key by anyone, opened by pq_unseal.
SELECT substr(e, 2, 1) AS kind, length(e) - 1166 AS plaintext_len,
       pq_unseal_text(e, 'api_key') AS opened
  FROM pq_seal(pq.tenant_public_key('hybrid'), 'hybrid secret', 'api_key') e;
SELECT pq_inspect(pq_seal(pq.tenant_public_key('hybrid'), 'x', 'k')) - 'kid' AS inspect_x_wing;
SELECT try($$ SELECT pq_unseal(pq_seal(pq.tenant_public_key('hybrid'), 'x', 'k'), 'other'::bytea) $$);
-- Keyed envelopes and signatures of an X-Wing tenant work as for any tenant.
SELECT pq_decrypt_text(pq_encrypt('hybrid', 'keyed under an X-Wing version', 'k'), 'k');
SELECT pq_verify('hybrid', 'm', pq_sign('hybrid', 'm'));
-- Relabelling an 'S' envelope as 'X' (and the reverse) never opens.
SELECT try($$ SELECT pq_unseal(overlay(pq_seal(pq.tenant_public_key('acme'), 'x') PLACING 'X' FROM 2 FOR 1)) $$);
SELECT try($$ SELECT pq_unseal(overlay(pq_seal(pq.tenant_public_key('hybrid'), 'x') PLACING 'S' FROM 2 FOR 1)) $$);
RESET ROLE;
CREATE TABLE hybrid_values AS SELECT pq_seal(pq.tenant_public_key('hybrid'), 'before rotation', 'row') AS sealed,
                                     pq_encrypt('hybrid', 'keyed before rotation', 'row') AS keyed;
SELECT new_version FROM pq.rotate_tenant_key('hybrid', 'regress');
SELECT version, state, kem FROM pq.tenant_keys WHERE tenant = 'hybrid' ORDER BY version;
SELECT pq_unseal_text(sealed, 'row'), pq_decrypt_text(keyed, 'row') FROM hybrid_values;
-- pq.rewrap moves an 'X' envelope to the new version, still 'X'.
SELECT substr(r, 2, 1) AS kind, (pq_inspect(r)->>'key_version')::int AS version, pq_unseal_text(r, 'row')
  FROM (SELECT pq.rewrap(sealed, 'row'::bytea) r FROM hybrid_values) x;
-- A master key rotation rewraps X-Wing seeds under their own purpose.
SELECT versions_rewrapped >= 2 AS rewrapped FROM pq.rotate_master_key();
SELECT pq_unseal_text(sealed, 'row'), pq_decrypt_text(keyed, 'row') FROM hybrid_values;

-- Raw X-Wing key pairs.
CREATE TEMP TABLE xkp AS SELECT * FROM pq_generate_keypair('x-wing');
SELECT length(public_key), length(secret_key), kid = substr(sha256(public_key), 1, 16) AS kid_ok FROM xkp;
SELECT convert_from(pq_open(secret_key, pq_seal(public_key, 'raw x-wing', 'a'), 'a'::bytea), 'UTF8') FROM xkp;
SELECT try($$ SELECT pq_open(k.secret_key, pq_seal(x.public_key, 'x'::text)) FROM xkp x, pq_generate_keypair('ml-kem-768') k $$);
SELECT try($$ SELECT pq_seal('\x00'::bytea || public_key, 'x') FROM xkp $$);

-- Batches: one encapsulation, one item per value, each opened by itself.
SET ROLE regress_app_a;
CREATE TEMP TABLE batch AS
SELECT ord, item FROM unnest(pq_seal_batch(pq.tenant_public_key('acme'),
                                           ARRAY['one', 'two', NULL, '']::bytea[],
                                           ARRAY['r1', 'r2', 'r3', 'r4']::bytea[])) WITH ORDINALITY AS t(item, ord);
GRANT SELECT ON batch TO PUBLIC;
SELECT ord, substr(item, 2, 1) AS kind, pq_inspect(item)->'batch_index' AS idx, pq_inspect(item)->'batch_count' AS cnt,
       convert_from(pq_unseal(item, ('r' || ord)::bytea), 'UTF8') AS opened
  FROM batch ORDER BY ord;
SELECT count(DISTINCT substr(item, 27, 1088)) AS kem_ciphertexts, count(DISTINCT substr(item, 1115, 12)) AS nonces
  FROM batch WHERE item IS NOT NULL;
-- Each item binds its own AAD: another row's AAD does not open it.
SELECT try($$ SELECT pq_unseal(item, 'r2'::bytea) FROM batch WHERE ord = 1 $$);
SELECT try($$ SELECT pq_unseal(overlay(item PLACING '\x05'::bytea FROM 22 FOR 1), 'r1'::bytea) FROM batch WHERE ord = 1 $$);
SELECT try($$ SELECT pq_decrypt(item, 'r1'::bytea) FROM batch WHERE ord = 1 $$);
-- X-Wing batches ('W'), no AADs.
SELECT substr(i, 2, 1) AS kind, length(i) - 1174 AS plaintext_len, pq_unseal_text(i)
  FROM unnest(pq_seal_batch(pq.tenant_public_key('hybrid'), ARRAY['a', 'bb']::bytea[])) i;
SELECT try($$ SELECT pq_seal_batch(pq.tenant_public_key('acme'), ARRAY['a', 'b']::bytea[], ARRAY['x']::bytea[]) $$);
SELECT try($$ SELECT pq_seal_batch('\x00'::bytea, ARRAY['a']::bytea[]) $$);
SELECT pq_seal_batch(pq.tenant_public_key('acme'), ARRAY[]::bytea[]) AS empty_batch,
       pq_seal_batch(NULL, ARRAY['a']::bytea[]) AS null_key, pq_seal_batch(pq.tenant_public_key('acme'), NULL) AS null_values;
-- Another tenant's role cannot open acme's items.
RESET ROLE;
SET ROLE regress_app_b;
SELECT try($$ SELECT pq_unseal(item, 'r1'::bytea) FROM batch WHERE ord = 1 $$);
RESET ROLE;

-- Forward-secure sessions: the ephemeral secret lives in shared memory only.
SET ROLE regress_app_a;
CREATE TEMP TABLE s AS SELECT * FROM pq.session_begin('acme', '10 minutes');
SELECT length(public_key), kid = substr(sha256(public_key), 1, 16) AS kid_ok,
       expires_at BETWEEN now() + interval '9 minutes' AND now() + interval '11 minutes' AS expires_ok FROM s;
CREATE TEMP TABLE sv AS SELECT pq_seal(public_key, 'for this session only', 'k') AS e FROM s;
GRANT SELECT ON s, sv TO PUBLIC;
SELECT pq_session_open_text(session_id, e, 'k') FROM s, sv;
SELECT convert_from(pq_session_open(session_id, i, 'b'::bytea), 'UTF8')
  FROM s, unnest(pq_seal_batch((SELECT public_key FROM s), ARRAY['batch to a session']::bytea[], ARRAY['b']::bytea[])) i;
SELECT try(format($q$ SELECT pq_session_open(%L, %L::bytea, 'other'::bytea) $q$, session_id, e)) FROM s, sv;
-- No tenant key opens a session's envelope.
SELECT try(format($q$ SELECT pq_unseal(%L::bytea, 'k'::bytea) $q$, e)) FROM sv;
-- Another envelope than the session's: unknown kid.
SELECT try(format($q$ SELECT pq_session_open(%L, pq_seal(pq.tenant_public_key('acme'), 'x'), ''::bytea) $q$, session_id)) FROM s;
SELECT tenant, kem, opened >= 2 AS opened, p.kid = s.kid AS same_kid FROM pq.sessions p JOIN s USING (session_id);
RESET ROLE;
-- Another tenant's role neither sees nor uses the session.
SET ROLE regress_app_b;
SELECT count(*) AS visible FROM pq.sessions p JOIN s USING (session_id);
SELECT try(format($q$ SELECT pq_session_open(%L, %L::bytea, 'k'::bytea) $q$, session_id, e)) FROM s, sv;
SELECT try(format($q$ SELECT pq.session_end(%L) $q$, session_id)) FROM s;
SELECT try($$ SELECT pq.session_begin('acme') $$);
RESET ROLE;
SET ROLE regress_nobody;
SELECT try($$ SELECT pq.session_begin('acme') $$);
SELECT try($$ SELECT count(*) FROM pq.sessions $$);
RESET ROLE;
SET ROLE regress_app_a;
SELECT pq.session_end(session_id) AS ended, pq.session_end(session_id) AS ended_again FROM s;
SELECT try(format($q$ SELECT pq_session_open(%L, %L::bytea, 'k'::bytea) $q$, session_id, e)) FROM s, sv;
SELECT count(*) AS live FROM pq.sessions p JOIN s USING (session_id);
-- Expiry: a one-second session.
CREATE TEMP TABLE s2 AS SELECT * FROM pq.session_begin('hybrid', '1 second');
SELECT length(public_key) AS x_wing_session_key FROM s2;
CREATE TEMP TABLE sv2 AS SELECT pq_seal(public_key, 'short-lived') AS e FROM s2;
SELECT pq_session_open_text(session_id, e) FROM s2, sv2;
SELECT pg_sleep(1.2);
SELECT try(format($q$ SELECT pq_session_open(%L, %L::bytea) $q$, session_id, e)) FROM s2, sv2;
SELECT count(*) AS live FROM pq.sessions p JOIN s2 USING (session_id);
SELECT try($$ SELECT pq.session_begin('acme', '0 seconds') $$);
SELECT try($$ SELECT pq.session_begin('acme', '8 days') $$);
SELECT try($$ SELECT pq.session_begin('acme', '-1 hour') $$);
RESET ROLE;
DROP TABLE hybrid_values;
