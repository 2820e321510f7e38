-- Term computation against pgcrypto's hmac(value, key, 'sha256'), the same
-- values, the same run.
\pset footer off
SET client_min_messages = warning;
CREATE TABLE vals AS SELECT 'user' || i || '@example.com' AS v FROM generate_series(1, 200000) i;
CREATE TABLE hkey AS SELECT gen_random_bytes(32) AS k;
VACUUM ANALYZE vals;
WITH t AS (
  SELECT bench_ms('SELECT count(pq_blind_index(''bench'', v, ''email'')) FROM vals', 3) AS ours,
         bench_ms('SELECT count(hmac(convert_to(v, ''UTF8''), (SELECT k FROM hkey), ''sha256'')) FROM vals', 3) AS pgcrypto,
         bench_ms('SELECT count(pq_blind_index(''bench'', v, ''email'', normalization => ''trim,casefold'')) FROM vals', 3) AS folded)
SELECT round(200000 / (ours / 1000)) AS pq_blind_index_rows_per_s,
       round(200000 / (folded / 1000)) AS trim_casefold_rows_per_s,
       round(200000 / (pgcrypto / 1000)) AS pgcrypto_hmac_rows_per_s,
       round((pgcrypto / ours)::numeric, 2) AS "ratio (target >= 0.8)"
  FROM t;

-- Writing rows with their terms: the application passes both
-- (pq_encrypt_indexed), or a tracked column's trigger makes the term from
-- the envelope (pq.track_column(..., blind_index_column => ...)).
CREATE TABLE by_app (id int PRIMARY KEY, v bytea, b bytea);
CREATE TABLE by_trigger (id int PRIMARY KEY, v bytea, b bytea);
SELECT pq.track_column('by_trigger', 'v', tenant => 'bench', blind_index_column => 'b', context => 'email') > 0 AS tracked;
WITH t AS (
  SELECT bench_ms('TRUNCATE by_app; INSERT INTO by_app SELECT row_number() OVER (), e.envelope, e.term FROM vals, pq_encrypt_indexed(''bench'', v, ''email'') e', 3) AS app,
         bench_ms('TRUNCATE by_trigger; INSERT INTO by_trigger SELECT row_number() OVER (), pq_encrypt(''bench'', v) FROM vals', 3) AS trig,
         bench_ms('TRUNCATE by_app; INSERT INTO by_app SELECT row_number() OVER (), pq_encrypt(''bench'', v), NULL FROM vals', 3) AS plain)
SELECT round(200000 / (plain / 1000)) AS insert_pq_encrypt_no_term_rows_per_s,
       round(200000 / (app / 1000)) AS insert_pq_encrypt_indexed_rows_per_s,
       round(200000 / (trig / 1000)) AS insert_through_trigger_rows_per_s
  FROM t;
SELECT count(*) = 200000 AS trigger_terms_right FROM by_trigger WHERE b = pq_blind_index('bench', pq_decrypt_text(v), 'email');
