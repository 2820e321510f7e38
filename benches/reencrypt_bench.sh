#!/usr/bin/env bash
# Re-encryption throughput: the background worker's job against a plain
#   UPDATE t SET v = pq_encrypt(tenant, pq_decrypt(v))
# over the same rows on the same server (of an untracked copy, and of a
# tracked copy with the row trigger the job's table has), and the worker's
# memory before and after. Prints rows/s, the ratio (target >= 0.9) and the RSS.
#   benches/reencrypt_bench.sh [ROWS] [BATCH]   (defaults 1000000, 10000)
# Set APG_PQ_SKIP_INSTALL=1 to measure the build that is installed already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
rows=${1:-1000000}
batch=${2:-10000}
if [ -z "${APG_PQ_SKIP_INSTALL:-}" ]; then
  scripts/setup.sh
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
source scripts/cluster.sh
dir=$(cluster_scratch reencrypt)
port=${APG_PQ_BENCH_PORT:-25470}
trap 'cluster_discard "$dir"' EXIT
cluster_start "$dir/c" "$port" "log_statement = 'none'" "shared_buffers = '512MB'" "apg_pqcrypto.worker_naptime = 1" \
  "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
psql_() { cluster_psql "$port" -At -q "$@"; }
psql_ -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT 1 FROM pq.create_tenant('bench')" >/dev/null
echo "== $rows rows of 40-byte values"
psql_ -c "CREATE TABLE by_job (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO by_job SELECT i, pq_encrypt('bench', 'postgres://app:' || substr(md5(i::text), 1, 18) || '@db/app') FROM generate_series(1, $rows) i" \
  -c "CREATE TABLE by_update AS SELECT * FROM by_job" -c "ALTER TABLE by_update ADD PRIMARY KEY (id)" \
  -c "CREATE TABLE by_update_tracked AS SELECT * FROM by_job" -c "ALTER TABLE by_update_tracked ADD PRIMARY KEY (id)" \
  -c "VACUUM ANALYZE by_job" -c "VACUUM ANALYZE by_update" -c "VACUUM ANALYZE by_update_tracked" \
  -c "SELECT pq.track_column('by_job', 'v', tenant => 'bench')" \
  -c "SELECT pq.track_column('by_update_tracked', 'v', tenant => 'bench')" \
  -c "SELECT 1 FROM pq.rotate_tenant_key('bench', 'bench')" >/dev/null
# Private memory (RssAnon): VmRSS also counts the shared buffers the worker touched.
rss() { grep RssAnon "/proc/$1/status" | awk '{print $2}'; }
worker=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'")
rss_start=$(rss "$worker")

start=$(date +%s%N)
job=$(psql_ -c "SELECT pq.reencrypt('by_job', 'v', batch_size => $batch)")
until [ "$(psql_ -c "SELECT state FROM pq.job_queue WHERE id = $job")" = completed ]; do sleep 0.1; done
job_ms=$((($(date +%s%N) - start) / 1000000))
# The job's own time, from its first batch to its completion (without the
# wait for the worker to wake up and the count of the rows to do).
run_ms=$(psql_ -c "SELECT round(1000 * extract(epoch FROM finished_at - started_at)) FROM pq.job_queue WHERE id = $job")
rss_end=$(rss "$worker")
psql_ -c "CHECKPOINT" >/dev/null

start=$(date +%s%N)
psql_ -c "UPDATE by_update SET v = pq_encrypt('bench', pq_decrypt(v))" >/dev/null
update_ms=$((($(date +%s%N) - start) / 1000000))
psql_ -c "CHECKPOINT" >/dev/null
# The same UPDATE of a tracked copy: the row trigger every tracked column
# gets (enforcement) runs for each row, as it does for the job's writes;
# a BEFORE ROW trigger also makes PostgreSQL lock each row it updates.
start=$(date +%s%N)
psql_ -c "UPDATE by_update_tracked SET v = pq_encrypt('bench', pq_decrypt(v))" >/dev/null
tracked_ms=$((($(date +%s%N) - start) / 1000000))

check=$(psql_ -c "SELECT count(*) FROM by_job WHERE substr(v, 3, 16) = (SELECT kid FROM pq.tenant_keys WHERE tenant = 'bench' AND state = 'active')")
awk -v r="$rows" -v j="$job_ms" -v k="$run_ms" -v u="$update_ms" -v t="$tracked_ms" -v c="$check" -v a="$rss_start" -v b="$rss_end" -v bs="$batch" 'BEGIN {
  j /= 1000; k /= 1000; u /= 1000; t /= 1000
  printf "re-encryption job (batch %d): %.0f rows/s from queueing to completion (%.1f s)\n", bs, r / j, j
  printf "                              %.0f rows/s from its first batch to completion (%.1f s)\n", r / k, k
  printf "                              %d rows now under the active version\n", c
  printf "plain UPDATE:                 %.0f rows/s (%.1f s)\n", r / u, u
  printf "ratio job / UPDATE:           %.2f from queueing, %.2f from the first batch (target >= 0.9)\n", u / j, u / k
  printf "worker private memory:        %d kB at start, %d kB at end (RssAnon)\n", a, b
  printf "plain UPDATE, tracked table:  %.0f rows/s (%.1f s)\n", r / t, t
  printf "ratio: re-encryption job / UPDATE = %.2f\n", u / k
  printf "ratio: re-encryption job / UPDATE of a tracked table = %.2f\n", t / k
}'
