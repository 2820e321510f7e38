#!/usr/bin/env bash
# Migration throughput: the background worker migrating ROWS values written
# by pgp_sym_encrypt(…, 's2k-mode=1') to keyed envelopes, against pgcrypto's
# pgp_sym_decrypt alone over the same rows on the same server, and the
# worker's private memory before and after. Prints rows/s, the ratio
# (target >= 0.8), and, for scale, a plain UPDATE of the same rows.
#   benches/migration_bench.sh [ROWS] [BATCH]   (defaults 1000000, 10000)
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
dir=$(cluster_scratch migration)
port=${APG_PQ_BENCH_PORT:-25472}
trap 'cluster_discard "$dir"' EXIT
cluster_start "$dir/c" "$port" "log_statement = 'none'" "shared_buffers = '512MB'" "apg_pqcrypto.worker_naptime = 1" \
  "apg_pqcrypto.migration_batch_delay = 0" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
psql_() { cluster_psql "$port" -At -q "$@"; }
psql_ -c "CREATE EXTENSION pgcrypto" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT 1 FROM pq.create_tenant('bench')" \
  -c "SELECT 1 FROM pq.register_classical_key('bench', 'pgp_sym', 'bench passphrase', 's2k-mode=1')" >/dev/null
echo "== $rows rows of 40-byte values, pgp_sym_encrypt with s2k-mode=1"
psql_ -c "CREATE TABLE legacy (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO legacy SELECT i, pgp_sym_encrypt('postgres://app:' || substr(md5(i::text), 1, 18) || '@db/app', 'bench passphrase', 's2k-mode=1')
        FROM generate_series(1, $rows) i" \
  -c "CREATE TABLE updated AS SELECT * FROM legacy" -c "ALTER TABLE updated ADD PRIMARY KEY (id)" \
  -c "CREATE TABLE updated_tracked AS SELECT * FROM legacy" -c "ALTER TABLE updated_tracked ADD PRIMARY KEY (id)" \
  -c "SELECT pq.track_column('updated_tracked', 'v', tenant => 'bench')" \
  -c "VACUUM ANALYZE legacy" -c "VACUUM ANALYZE updated" -c "VACUUM ANALYZE updated_tracked" -c "CHECKPOINT" >/dev/null
rss() { grep RssAnon "/proc/$1/status" | awk '{print $2}'; }
worker=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'")
rss_start=$(rss "$worker")

# pgcrypto alone: every row decrypted, nothing written (the floor of any migration).
start=$(date +%s%N)
psql_ -c "SELECT count(pgp_sym_decrypt_bytea(v, 'bench passphrase')) FROM legacy" >/dev/null
decrypt_ms=$((($(date +%s%N) - start) / 1000000))

# For scale: the same rows migrated by one UPDATE (one transaction, no job).
start=$(date +%s%N)
psql_ -c "UPDATE updated SET v = pq_encrypt('bench', pgp_sym_decrypt_bytea(v, 'bench passphrase'))" >/dev/null
update_ms=$((($(date +%s%N) - start) / 1000000))
psql_ -c "CHECKPOINT" >/dev/null
# The same UPDATE of a tracked copy: the row trigger every tracked column
# gets runs for each row, as it does for the job's writes.
start=$(date +%s%N)
psql_ -c "UPDATE updated_tracked SET v = pq_encrypt('bench', pgp_sym_decrypt_bytea(v, 'bench passphrase'))" >/dev/null
tracked_ms=$((($(date +%s%N) - start) / 1000000))
psql_ -c "CHECKPOINT" >/dev/null

job=$(psql_ -c "SELECT pq.migrate_column('legacy', 'v', tenant => 'bench', from_kind => 'pgp_sym', batch_size => $batch)")
# The worker's memory once the job runs (pgcrypto and OpenSSL loaded, the
# first batches done) and at the end: flat means no growth per batch.
until [ "$(psql_ -c "SELECT rows_done >= $rows / 10 FROM pq.job_queue WHERE id = $job")" = t ]; do sleep 0.1; done
rss_running=$(rss "$worker")
until [ "$(psql_ -c "SELECT state FROM pq.job_queue WHERE id = $job")" = completed ]; do sleep 0.1; done
run_ms=$(psql_ -c "SELECT round(1000 * extract(epoch FROM finished_at - started_at)) FROM pq.job_queue WHERE id = $job")
rss_end=$(rss "$worker")
check=$(psql_ -c "SELECT count(*) FROM legacy WHERE pq.classify(v) = 'pq_keyed'")
awk -v r="$rows" -v d="$decrypt_ms" -v k="$run_ms" -v u="$update_ms" -v t="$tracked_ms" -v c="$check" -v a="$rss_start" -v m="$rss_running" -v b="$rss_end" -v bs="$batch" 'BEGIN {
  d /= 1000; k /= 1000; u /= 1000; t /= 1000
  printf "pgp_sym_decrypt alone:          %.0f rows/s (%.1f s)\n", r / d, d
  printf "migration job (batch %d):    %.0f rows/s from its first batch to completion (%.1f s); %d rows now keyed envelopes\n", bs, r / k, k, c
  printf "ratio job / decrypt alone:      %.2f (target >= 0.8)\n", d / k
  printf "one UPDATE doing the same:      %.0f rows/s (%.1f s); ratio job / UPDATE %.2f\n", r / u, u, u / k
  printf "worker private memory:          %d kB before the job, %d kB at 10%%, %d kB at the end (RssAnon)\n", a, m, b
  printf "the same UPDATE, tracked copy: %.0f rows/s (%.1f s)\n", r / t, t
  printf "ratio: migration job / UPDATE = %.2f\n", u / k
  printf "ratio: migration job / UPDATE of a tracked table = %.2f\n", t / k
}'
