-- Blind indexes (docs/SEARCH.md, FORMAT.md §16): equality lookups by term
-- through an index, isolation by tenant and context, uniqueness, joins,
-- rotation without missed rows, retirement of an index key, errors.
SELECT tenant, version FROM pq.create_tenant('blind_a');
SELECT tenant, version FROM pq.create_tenant('blind_b');
SELECT pq.grant_tenant('blind_a', 'regress_app_a');
SELECT pq.grant_tenant('blind_b', 'regress_app_b');
CREATE TABLE blind_users (id int PRIMARY KEY, tenant text NOT NULL, email pq_envelope NOT NULL,
                          email_bidx bytea NOT NULL, UNIQUE (tenant, email_bidx));
GRANT SELECT, INSERT, UPDATE ON blind_users TO regress_app_a, regress_app_b;
SET ROLE regress_app_a;
INSERT INTO blind_users (id, tenant, email, email_bidx)
SELECT i, 'blind_a', e.envelope, e.term
  FROM generate_series(1, 2000) i,
       pq_encrypt_indexed('blind_a', 'User' || i || '@Example.com', 'email', aad => 'email', normalization => 'trim,casefold') e;
RESET ROLE;
ANALYZE blind_users;
SET ROLE regress_app_a;
-- The lookup is an index scan: the term is computed once, as an index condition.
EXPLAIN (COSTS OFF)
SELECT id FROM blind_users
 WHERE tenant = 'blind_a' AND email_bidx = pq_blind_index('blind_a', ' user42@EXAMPLE.COM ', 'email', normalization => 'trim,casefold');
SELECT id, pq_decrypt_text(email, 'email') FROM blind_users
 WHERE tenant = 'blind_a' AND email_bidx = pq_blind_index('blind_a', ' user42@EXAMPLE.COM ', 'email', normalization => 'trim,casefold');
-- Without the normalisation the stored term does not match.
SELECT count(*) FROM blind_users WHERE email_bidx = pq_blind_index('blind_a', ' user42@EXAMPLE.COM ', 'email');
-- = ANY with a list of values.
SELECT array_agg(id ORDER BY id) FROM blind_users
 WHERE tenant = 'blind_a'
   AND email_bidx = ANY (ARRAY(SELECT pq_blind_index('blind_a', v, 'email', normalization => 'casefold')
                                FROM unnest(ARRAY['user7@example.com', 'USER8@example.com', 'nobody@example.com']) v));
-- Uniqueness: a second row with the same normalised value is refused.
SELECT try($$ INSERT INTO blind_users (id, tenant, email, email_bidx)
              SELECT 9999, 'blind_a', envelope, term
                FROM pq_encrypt_indexed('blind_a', 'user5@example.com ', 'email', aad => 'email', normalization => 'trim,casefold') $$);
-- The term is the same for text and its UTF-8 bytes, and of any length asked.
SELECT pq_blind_index('blind_a', 'v', 'c') = pq_blind_index('blind_a', convert_to('v', 'UTF8'), 'c') AS text_is_bytes,
       length(pq_blind_index('blind_a', 'v', 'c', 16)) AS short, length(pq_blind_index('blind_a', 'v', 'c', 128)) AS mid,
       substr(pq_blind_index('blind_a', 'v', 'c'), 1, 2) = pq_blind_index('blind_a', 'v', 'c', 16) AS truncated;
-- Isolation: another context gives another term.
SELECT pq_blind_index('blind_a', 'v', 'email') <> pq_blind_index('blind_a', 'v', 'phone') AS contexts_differ;
-- Another tenant's terms are out of reach: 42501, the same as for an unknown tenant.
SELECT try($$ SELECT pq_blind_index('blind_b', 'v', 'email') $$) AS forbidden,
       try($$ SELECT pq_blind_index('no-such-tenant', 'v', 'email') $$) AS unknown,
       try($$ SELECT pq_blind_indexes('blind_b', 'v', 'email') $$) AS forbidden_all;
RESET ROLE;
SET ROLE regress_nobody;
SELECT try($$ SELECT pq_blind_index('blind_a', 'v', 'email') $$) AS no_execute;
RESET ROLE;
-- Two tenants, one value: different terms.
SELECT pq_blind_index('blind_a', 'v', 'email') <> pq_blind_index('blind_b', 'v', 'email') AS tenants_differ;
-- A join of two columns of one tenant under the same context.
CREATE TABLE blind_invites (code int PRIMARY KEY, email_bidx bytea NOT NULL);
INSERT INTO blind_invites VALUES (1, pq_blind_index('blind_a', 'user11@example.com', 'email')),
                                 (2, pq_blind_index('blind_a', 'stranger@example.com', 'email'));
SELECT i.code, u.id FROM blind_invites i JOIN blind_users u ON u.email_bidx = i.email_bidx ORDER BY i.code;
-- Rotation: new rows get terms under version 2; pq_blind_indexes gives
-- the terms of both live versions (active first), so no row is missed.
SELECT new_version FROM pq.rotate_tenant_key('blind_a', 'blind index regress');
SET ROLE regress_app_a;
INSERT INTO blind_users (id, tenant, email, email_bidx)
SELECT 5000, 'blind_a', envelope, term FROM pq_encrypt_indexed('blind_a', 'new@example.com', 'email', aad => 'email');
SELECT cardinality(pq_blind_indexes('blind_a', 'x', 'email')) AS live_versions,
       (pq_blind_indexes('blind_a', 'x', 'email'))[1] = pq_blind_index('blind_a', 'x', 'email') AS active_first;
SELECT array_agg(id ORDER BY id) FROM blind_users
 WHERE email_bidx = ANY (pq_blind_indexes('blind_a', 'user42@example.com', 'email', normalization => 'trim,casefold'))
    OR email_bidx = ANY (pq_blind_indexes('blind_a', 'new@example.com', 'email'));
-- While a tracked column still holds version 1 ciphertexts, its index key stays.
RESET ROLE;
SELECT pq.track_column('blind_users', 'email', tenant_column => 'tenant') > 0 AS tracked;
SELECT try($$ SELECT pq.retire_blind_index_key('blind_a', 1) $$) AS still_used;
SET ROLE regress_app_a;
-- The active version's term alone misses the old row until its term is recomputed.
SELECT count(*) FROM blind_users WHERE email_bidx = pq_blind_index('blind_a', 'user42@example.com', 'email', normalization => 'casefold');
UPDATE blind_users SET email = pq.rewrap(email, 'email'),
                       email_bidx = pq_blind_index('blind_a', pq_decrypt_text(email, 'email'), 'email', normalization => 'trim,casefold')
 WHERE tenant = 'blind_a' AND pq_inspect(email)->>'key_version' = '1';
SELECT count(*) FROM blind_users WHERE email_bidx = pq_blind_index('blind_a', 'user42@example.com', 'email', normalization => 'casefold');
RESET ROLE;
-- Retiring the old index key: refused for the active version, and by a
-- role that does not administer keys; then pq_blind_indexes gives one term.
SELECT try($$ SELECT pq.retire_blind_index_key('blind_a', 2) $$) AS active;
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.retire_blind_index_key('blind_a', 1) $$) AS not_admin;
RESET ROLE;
SELECT pq.retire_blind_index_key('blind_a', 1) AS retired, pq.retire_blind_index_key('blind_a', 1) AS again;
SELECT pq.untrack_column('blind_users', 'email');
SELECT version, state, blind_index_retired_at IS NOT NULL AS index_retired FROM pq.tenant_keys WHERE tenant = 'blind_a' ORDER BY version;
SELECT cardinality(pq_blind_indexes('blind_a', 'x', 'email')) AS live_versions;
SELECT event, version, actor FROM pq.key_events WHERE event = 'blind_index_key_retired' AND tenant = 'blind_a';
-- Exporting an index key to a client: granted to no role by default.
SET ROLE regress_app_a;
SELECT try($$ SELECT * FROM pq.export_index_key('blind_a', 'email', (SELECT public_key FROM pq_generate_keypair())) $$) AS not_granted;
RESET ROLE;
GRANT EXECUTE ON FUNCTION pq.export_index_key(text, text, bytea, integer) TO regress_app_a;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE blind_client AS SELECT public_key, secret_key FROM pq_generate_keypair('ml-kem-768');
GRANT SELECT ON blind_client TO regress_app_a;
SET ROLE regress_app_a;
CREATE TEMP TABLE exported AS
SELECT e.* FROM blind_client c, pq.export_index_key('blind_a', 'email', c.public_key) e;
-- The client opens it (FORMAT.md §16.5: user AAD = label || kid || context)
-- and computes terms with any HMAC-SHA-256: here pgcrypto's hmac().
SELECT e.key_version, e.kid = (SELECT kid FROM pq.tenant_keys WHERE tenant = 'blind_a' AND state = 'active') AS active_kid,
       hmac(convert_to('user42@example.com', 'UTF8'),
            pq_open(c.secret_key, e.key_envelope, convert_to('apg-pq v1 index key', 'UTF8') || e.kid || convert_to('email', 'UTF8')),
            'sha256') = pq_blind_index('blind_a', 'user42@example.com', 'email') AS client_term_matches
  FROM exported e, blind_client c;
SELECT try($$ SELECT length(pq_open(c.secret_key, e.key_envelope, convert_to('apg-pq v1 index key', 'UTF8') || e.kid || convert_to('phone', 'UTF8')))
                FROM exported e, blind_client c $$) AS other_context;
SELECT try($$ SELECT * FROM pq.export_index_key('blind_b', 'email', (SELECT public_key FROM blind_client)) $$) AS other_tenant,
       try($$ SELECT * FROM pq.export_index_key('blind_a', 'email', (SELECT public_key FROM blind_client), 1) $$) AS retired_index_key,
       try($$ SELECT * FROM pq.export_index_key('blind_a', 'email', '\x00') $$) AS bad_key;
RESET ROLE;
SELECT event, version, details->>'context' AS context FROM pq.key_events WHERE event = 'blind_index_key_exported' AND tenant = 'blind_a';
REVOKE EXECUTE ON FUNCTION pq.export_index_key(text, text, bytea, integer) FROM regress_app_a;
DROP TABLE blind_client;
-- Lookups only read: in a read-only transaction, without a transaction id.
BEGIN TRANSACTION READ ONLY;
SET LOCAL ROLE regress_app_a;
SELECT (SELECT id FROM blind_users WHERE email_bidx = ANY (pq_blind_indexes('blind_a', 'user9@example.com', 'email', normalization => 'trim,casefold'))) AS found,
       pg_current_xact_id_if_assigned() IS NULL AS no_xid;
COMMIT;
-- Short terms collide; the documented lookup re-checks the candidates by
-- decrypting them. 2,000 values in 2^16 terms: some terms are shared.
CREATE TABLE blind_short AS
SELECT i AS id, pq_encrypt('blind_a', 'v' || i) AS v, pq_blind_index('blind_a', 'v' || i, 'short', 16) AS t
  FROM generate_series(1, 2000) i;
CREATE INDEX ON blind_short (t);
SELECT count(*) > 0 AS shared_terms FROM (SELECT t FROM blind_short GROUP BY t HAVING count(*) > 1) s;
SELECT bool_and(n_index >= 2) AS index_alone_finds_more, bool_and(n_checked = 1) AS recheck_finds_one
  FROM (SELECT (SELECT count(*) FROM blind_short b WHERE b.t = pq_blind_index('blind_a', 'v' || a.id, 'short', 16)) AS n_index,
               (SELECT count(*) FROM blind_short b WHERE b.t = pq_blind_index('blind_a', 'v' || a.id, 'short', 16)
                                                  AND pq_decrypt_text(b.v) = 'v' || a.id) AS n_checked
          FROM blind_short a WHERE a.t IN (SELECT t FROM blind_short GROUP BY t HAVING count(*) > 1)) s;
DROP TABLE blind_short;
-- Bad arguments: 22023 with the rule.
SELECT try($$ SELECT pq_blind_index('blind_a', 'v', 'c', 12) $$) AS bits_12,
       try($$ SELECT pq_blind_index('blind_a', 'v', 'c', 264) $$) AS bits_264,
       try($$ SELECT pq_blind_index('blind_a', 'v', '') $$) AS empty_context,
       try($$ SELECT pq_blind_index('blind_a', 'v', repeat('c', 256)) $$) AS long_context,
       try($$ SELECT pq_blind_index('blind_a', 'v', 'c', normalization => 'lower') $$) AS normalization;
-- Volatility: lookups are STABLE (usable as index conditions), the encryption VOLATILE.
SELECT p.oid::regprocedure, p.provolatile, p.proparallel FROM pg_proc p
 WHERE p.proname IN ('pq_blind_index', 'pq_blind_indexes', 'pq_encrypt_indexed') ORDER BY p.oid::regprocedure::text;
DROP TABLE blind_users, blind_invites;
DROP EXTENSION pgcrypto;
