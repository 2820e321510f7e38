-- One table size (:rows): a lookup by term vs a decrypt-and-compare scan.
\pset footer off
SET client_min_messages = warning;
DROP TABLE IF EXISTS users;
CREATE TABLE users (id int PRIMARY KEY, email bytea NOT NULL, email_bidx bytea NOT NULL);
INSERT INTO users
SELECT i, e.envelope, e.term
  FROM generate_series(1, :rows) i, pq_encrypt_indexed('bench', 'user' || i || '@example.com', 'email') e;
CREATE INDEX ON users (email_bidx);
VACUUM ANALYZE users;
-- 100 lookups of different values, each its own statement (plan, term,
-- index scan, decryption of the row found): milliseconds per lookup.
CREATE TEMP TABLE probes AS SELECT 'user' || (1 + (i * 7919) % :rows) || '@example.com' AS v FROM generate_series(1, 100) i;
CREATE OR REPLACE FUNCTION lookups() RETURNS void LANGUAGE plpgsql AS $$
DECLARE p text; found text;
BEGIN
    FOR p IN SELECT v FROM probes LOOP
        EXECUTE 'SELECT pq_decrypt_text(email) FROM users WHERE email_bidx = pq_blind_index(''bench'', $1, ''email'')'
           INTO found USING p;
        IF found IS DISTINCT FROM p THEN RAISE EXCEPTION 'lookup of % found %', p, found; END IF;
    END LOOP;
END $$;
SELECT :rows AS rows,
       round((bench_ms('SELECT lookups()') / 100)::numeric, 3) AS lookup_ms,
       round(bench_ms('SELECT count(*) FROM users WHERE pq_decrypt_text(email) = ''user7@example.com''', 1)::numeric, 1) AS scan_ms;
DROP TABLE probes;
