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
