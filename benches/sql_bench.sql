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

-- Runs `q` (which touches `n` rows) `runs` times; keeps the fastest.
CREATE FUNCTION bench(label text, q text, n bigint, runs int DEFAULT 3)
RETURNS TABLE (op text, rows bigint, rows_per_s numeric) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best float8 := 'infinity'; s float8;
BEGIN
    FOR r IN 1..runs LOOP
        t0 := clock_timestamp();
        EXECUTE q;
        s := extract(epoch FROM clock_timestamp() - t0);
        best := least(best, s);
    END LOOP;
    RETURN QUERY SELECT label, n, round((n / best)::numeric, 0);
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

CREATE TEMP TABLE results (op text, rows bigint, rows_per_s numeric);
INSERT INTO results SELECT * FROM bench('digest sha256 (floor)', 'SELECT count(digest(v, ''sha256'')) FROM data', :rows);
INSERT INTO results SELECT * FROM bench('pq_encrypt (keyed)', 'SELECT count(pq_encrypt(''bench'', v, ''k'')) FROM data', :rows);
INSERT INTO results SELECT * FROM bench('pgcrypto encrypt aes', 'SELECT count(encrypt(convert_to(v, ''UTF8''), (SELECT aes FROM keys), ''aes'')) FROM data', :rows);
INSERT INTO results SELECT * FROM bench('pq_decrypt (keyed)', 'SELECT count(pq_decrypt(pq_keyed, ''k''::bytea)) FROM enc', :rows);
INSERT INTO results SELECT * FROM bench('pgcrypto decrypt aes', 'SELECT count(decrypt(aes, (SELECT aes FROM keys), ''aes'')) FROM enc', :rows);
INSERT INTO results SELECT * FROM bench('pq_seal', 'SELECT count(pq_seal((SELECT ek FROM keys), v)) FROM data WHERE i <= 20000', least(:rows, 20000));
INSERT INTO results SELECT * FROM bench('pgp_pub_encrypt rsa3072', 'SELECT count(pgp_pub_encrypt(v, (SELECT pub FROM keys))) FROM data WHERE i <= 2000', 2000);
INSERT INTO results SELECT * FROM bench('pq_unseal', 'SELECT count(pq_unseal(pq_sealed)) FROM sealed', least(:rows, 20000));
INSERT INTO results SELECT * FROM bench('pgp_pub_decrypt rsa3072', 'SELECT count(pgp_pub_decrypt(pgp, (SELECT sec FROM keys))) FROM pgp', 200, 1);
INSERT INTO results SELECT * FROM bench('pq_sign', 'SELECT count(pq_sign(''bench'', convert_to(v, ''UTF8''))) FROM data WHERE i <= 500', 500, 1);

SELECT op, rows, rows_per_s FROM results;

\echo 'Ratios (apg_pqcrypto / comparison; target in brackets):'
WITH r AS (SELECT op, rows_per_s AS x FROM results)
SELECT c.what, round(a.x / b.x, 2) AS ratio, c.target
  FROM (VALUES
    ('pq_encrypt / encrypt aes', 'pq_encrypt (keyed)', 'pgcrypto encrypt aes', '>= 1.0'),
    ('pq_decrypt / decrypt aes', 'pq_decrypt (keyed)', 'pgcrypto decrypt aes', '>= 1.0'),
    ('pq_seal / pgp_pub_encrypt', 'pq_seal', 'pgp_pub_encrypt rsa3072', '>= 2'),
    ('pq_unseal / pgp_pub_decrypt', 'pq_unseal', 'pgp_pub_decrypt rsa3072', '>= 100'),
    ('pq_encrypt / digest floor', 'pq_encrypt (keyed)', 'digest sha256 (floor)', '>= 0.5')
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
