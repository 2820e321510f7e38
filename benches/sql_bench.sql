\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION apg_pqcrypto;
CREATE EXTENSION pgcrypto;
SELECT 1 FROM pq.create_tenant('bench');
CREATE TABLE keys AS SELECT decode(:'pub', 'hex') AS pub, decode(:'sec', 'hex') AS sec,
                            gen_random_bytes(16) AS aes, pq.tenant_public_key('bench') AS ek;
-- The same ~40-byte configuration values for everybody.
CREATE TABLE data AS
SELECT i, 'postgres://app:' || substr(md5(i::text), 1, 16) || '@db/app' AS v
  FROM generate_series(1, :rows) i;
SELECT min(length(v)) AS min_len, max(length(v)) AS max_len, count(*) AS rows FROM data;
VACUUM ANALYZE data;

-- Rows per second of one run of `q`, which touches `n` rows.
CREATE FUNCTION timed(q text, n bigint) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE q;
    RETURN n / extract(epoch FROM clock_timestamp() - t0);
END $$;

-- Runs `q` `runs` times; keeps the fastest.
CREATE FUNCTION bench(label text, q text, n bigint, runs int DEFAULT 3)
RETURNS TABLE (op text, rows bigint, rows_per_s numeric) LANGUAGE plpgsql AS $$
DECLARE best float8 := 0;
BEGIN
    FOR r IN 1..runs LOOP
        best := greatest(best, timed(q, n));
    END LOOP;
    RETURN QUERY SELECT label, n, round(best::numeric, 0);
END $$;

-- Inputs for the decrypt side, made once, untimed.
CREATE TABLE enc AS
SELECT i, pq_encrypt('bench', v, 'k') AS pq_keyed,
       encrypt(convert_to(v, 'UTF8'), (SELECT aes FROM keys), 'aes') AS aes
  FROM data;
CREATE TABLE sealed AS
SELECT i, pq_seal((SELECT ek FROM keys), v) AS pq_sealed FROM data WHERE i <= least(:rows, 20000);
CREATE TABLE pgp AS
SELECT i, pgp_pub_encrypt(v, (SELECT pub FROM keys)) AS pgp FROM data WHERE i <= 200;

-- The ratios the performance issue tracks: each of ours and its anchor run
-- back to back, in turns (which goes first alternates), :rounds rounds; the
-- table shows each side's median rows/s and the median, lowest and highest
-- of the per-round ratios.
CREATE TEMP TABLE rounds (pair text, side text, round int, rows_per_s float8);
CREATE FUNCTION pair(name text, ours text, anchor text, n bigint, rounds int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM timed(ours, n), timed(anchor, n); -- warm both
    FOR r IN 1..rounds LOOP
        IF r % 2 = 1 THEN
            INSERT INTO rounds VALUES (name, 'ours', r, timed(ours, n));
            INSERT INTO rounds VALUES (name, 'anchor', r, timed(anchor, n));
        ELSE
            INSERT INTO rounds VALUES (name, 'anchor', r, timed(anchor, n));
            INSERT INTO rounds VALUES (name, 'ours', r, timed(ours, n));
        END IF;
    END LOOP;
END $$;
SELECT pair('pq_encrypt / pgcrypto encrypt aes',
            'SELECT count(pq_encrypt(''bench'', v, ''k'')) FROM data',
            'SELECT count(encrypt(convert_to(v, ''UTF8''), (SELECT aes FROM keys), ''aes'')) FROM data', :rows, :rounds);
SELECT pair('pq_decrypt / pgcrypto decrypt aes',
            'SELECT count(pq_decrypt(pq_keyed, ''k''::bytea)) FROM enc',
            'SELECT count(decrypt(aes, (SELECT aes FROM keys), ''aes'')) FROM enc', :rows, :rounds);
SELECT pair('pq_encrypt / digest sha256 (the SQL floor)',
            'SELECT count(pq_encrypt(''bench'', v, ''k'')) FROM data',
            'SELECT count(digest(v, ''sha256'')) FROM data', :rows, :rounds);
\echo 'Per-row ratios (median of the per-round ratios; lowest and highest round):'
WITH per_round AS (
    SELECT o.pair, o.rows_per_s AS ours, a.rows_per_s AS anchor, o.rows_per_s / a.rows_per_s AS ratio
      FROM rounds o JOIN rounds a ON a.pair = o.pair AND a.round = o.round AND a.side = 'anchor'
     WHERE o.side = 'ours')
SELECT p.pair AS ratio,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ours)::numeric, 0) AS ours_rows_s,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY anchor)::numeric, 0) AS anchor_rows_s,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio)::numeric, 2) AS median,
       round(min(ratio)::numeric, 2) AS lowest, round(max(ratio)::numeric, 2) AS highest,
       t.target
  FROM per_round p
  JOIN (VALUES ('pq_encrypt / pgcrypto encrypt aes', '>= 1.5'),
               ('pq_decrypt / pgcrypto decrypt aes', '>= 1.5'),
               ('pq_encrypt / digest sha256 (the SQL floor)', '>= 0.8')) AS t(pair, target) USING (pair)
 GROUP BY p.pair, t.target ORDER BY p.pair DESC;
\pset tuples_only on
\pset format unaligned
WITH per_round AS (
    SELECT o.pair, o.rows_per_s / a.rows_per_s AS ratio
      FROM rounds o JOIN rounds a ON a.pair = o.pair AND a.round = o.round AND a.side = 'anchor'
     WHERE o.side = 'ours')
SELECT 'ratio: ' || pair || ' = ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio)::numeric, 2)
  FROM per_round GROUP BY pair ORDER BY pair DESC;
\pset tuples_only off
\pset format aligned

-- Public-key and signing paths, best of a few runs.
CREATE TEMP TABLE results (op text, rows bigint, rows_per_s numeric);
INSERT INTO results SELECT * FROM bench('pq_seal', 'SELECT count(pq_seal((SELECT ek FROM keys), v)) FROM data WHERE i <= 20000', least(:rows, 20000));
INSERT INTO results SELECT * FROM bench('pgp_pub_encrypt rsa3072', 'SELECT count(pgp_pub_encrypt(v, (SELECT pub FROM keys))) FROM data WHERE i <= 2000', 2000);
INSERT INTO results SELECT * FROM bench('pq_unseal', 'SELECT count(pq_unseal(pq_sealed)) FROM sealed', least(:rows, 20000));
INSERT INTO results SELECT * FROM bench('pgp_pub_decrypt rsa3072', 'SELECT count(pgp_pub_decrypt(pgp, (SELECT sec FROM keys))) FROM pgp', 200, 1);
INSERT INTO results SELECT * FROM bench('pq_sign', 'SELECT count(pq_sign(''bench'', convert_to(v, ''UTF8''))) FROM data WHERE i <= 2000', 2000, 3);

SELECT op, rows, rows_per_s FROM results;
-- For benches/ratios.sh: microseconds per pq_sign call through SQL.
SELECT round(1e6 / rows_per_s, 1) AS pq_sign_us_per_call FROM results WHERE op = 'pq_sign' \gset
\echo 'pq_sign through SQL (us per call): ' :pq_sign_us_per_call

\echo 'Ratios (apg_pqcrypto / comparison; target in brackets):'
WITH r AS (SELECT op, rows_per_s AS x FROM results)
SELECT c.what, round(a.x / b.x, 2) AS ratio, c.target
  FROM (VALUES
    ('pq_seal / pgp_pub_encrypt', 'pq_seal', 'pgp_pub_encrypt rsa3072', '>= 2'),
    ('pq_unseal / pgp_pub_decrypt', 'pq_unseal', 'pgp_pub_decrypt rsa3072', '>= 100')
  ) AS c(what, num, den, target)
  JOIN r a ON a.op = c.num JOIN r b ON b.op = c.den;

-- The cost of pq.stat_latency on the per-row path: the same calls with
-- apg_pqcrypto.track_latency off, sampled (the default) and all, in turns.
CREATE TEMP TABLE timing (op text, mode text, rows_per_s numeric);
DO $$
DECLARE mode text; round int;
BEGIN
    FOR round IN 1..3 LOOP
        FOREACH mode IN ARRAY ARRAY['off', 'sampled', 'all'] LOOP
            PERFORM set_config('apg_pqcrypto.track_latency', mode, false);
            INSERT INTO timing SELECT 'pq_encrypt', mode, rows_per_s FROM bench('e', 'SELECT count(pq_encrypt(''bench'', v, ''k'')) FROM data', (SELECT count(*) FROM data), 1);
            INSERT INTO timing SELECT 'pq_decrypt', mode, rows_per_s FROM bench('d', 'SELECT count(pq_decrypt(pq_keyed, ''k''::bytea)) FROM enc', (SELECT count(*) FROM enc), 1);
        END LOOP;
    END LOOP;
    PERFORM set_config('apg_pqcrypto.track_latency', 'sampled', false);
END $$;
\echo 'Timing overhead (best of 3 turns; sampled / off is the default, target >= 0.97):'
SELECT op, round(max(rows_per_s) FILTER (WHERE mode = 'off'), 0) AS off,
       round(max(rows_per_s) FILTER (WHERE mode = 'sampled'), 0) AS sampled,
       round(max(rows_per_s) FILTER (WHERE mode = 'all'), 0) AS "all",
       round(max(rows_per_s) FILTER (WHERE mode = 'sampled') / max(rows_per_s) FILTER (WHERE mode = 'off'), 3) AS "sampled/off",
       round(max(rows_per_s) FILTER (WHERE mode = 'all') / max(rows_per_s) FILTER (WHERE mode = 'off'), 3) AS "all/off"
  FROM timing GROUP BY op ORDER BY op;

-- The enforcement trigger that pq.track_column puts on every tracked
-- column (0.10.0): inserts of pq_encrypt values into a plain table, into a
-- tracked one with apg_pqcrypto.enforce_encryption off, and with it on.
CREATE TABLE ins_plain (i int PRIMARY KEY, v bytea);
CREATE TABLE ins_tracked (i int PRIMARY KEY, v bytea);
SELECT pq.track_column('ins_tracked', 'v', 'bench') > 0 AS tracked;
CREATE TEMP TABLE inserts (target text, mode text, rows_per_s numeric);
DO $$
DECLARE round int;
BEGIN
    FOR round IN 1..3 LOOP
        PERFORM set_config('apg_pqcrypto.enforce_encryption', 'off', false);
        TRUNCATE ins_plain;
        INSERT INTO inserts SELECT 'plain table', 'off', rows_per_s FROM bench('p', 'INSERT INTO ins_plain SELECT i, pq_encrypt(''bench'', v, ''k'') FROM data', (SELECT count(*) FROM data), 1);
        TRUNCATE ins_tracked;
        INSERT INTO inserts SELECT 'tracked table', 'off', rows_per_s FROM bench('t', 'INSERT INTO ins_tracked SELECT i, pq_encrypt(''bench'', v, ''k'') FROM data', (SELECT count(*) FROM data), 1);
        PERFORM set_config('apg_pqcrypto.enforce_encryption', 'tracked', false);
        TRUNCATE ins_tracked;
        INSERT INTO inserts SELECT 'tracked table', 'tracked', rows_per_s FROM bench('e', 'INSERT INTO ins_tracked SELECT i, pq_encrypt(''bench'', v, ''k'') FROM data', (SELECT count(*) FROM data), 1);
    END LOOP;
    PERFORM set_config('apg_pqcrypto.enforce_encryption', 'off', false);
END $$;
\echo 'Inserts of pq_encrypt values (best of 3 turns), relative to the plain table:'
SELECT target, mode, max(rows_per_s) AS rows_per_s,
       round(max(rows_per_s) / (SELECT max(rows_per_s) FROM inserts WHERE target = 'plain table'), 3) AS ratio
  FROM inserts GROUP BY target, mode ORDER BY ratio DESC;
