-- benches/search_bench.sh: the extension, a tenant and the timing helper.
SET client_min_messages = warning;
CREATE EXTENSION apg_pqcrypto;
CREATE EXTENSION pgcrypto;
SELECT 1 FROM pq.create_tenant('bench');
-- Runs `q` `runs` times; the fastest run, in milliseconds.
CREATE FUNCTION bench_ms(q text, runs int DEFAULT 5) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best float8 := 'infinity';
BEGIN
    FOR r IN 1..runs LOOP
        t0 := clock_timestamp();
        EXECUTE q;
        best := least(best, 1000 * extract(epoch FROM clock_timestamp() - t0));
    END LOOP;
    RETURN best;
END $$;
