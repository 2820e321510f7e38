#!/usr/bin/env bash
# Citus: decryption of a table distributed by tenant over two workers
# against the same table on one plain server, and re-encryption in rows/s
# on both, in one run: by the UPDATE rule of docs/SCALE-OUT.md, and by a
# re-encryption job (pq.reencrypt; on Citus run shard by shard by the
# workers' background workers).
#   benches/citus_bench.sh [ROWS] [ROUNDS]   (defaults 1000000, 3; the median is printed)
# Needs Citus installed for PostgreSQL 15 (docs/SCALE-OUT.md); builds and
# installs the release library. On a machine with few cores every node
# shares them: what the run shows there is that the work runs in the
# workers' shard tasks (the per-node task counts), not a speed-up.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
rows=${1:-1000000}
rounds=${2:-3}
if [ ! -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
  echo "citus_bench: Citus is not installed for PostgreSQL 15 (docs/SCALE-OUT.md)" >&2
  exit 1
fi
scripts/setup.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
source scripts/cluster.sh
dir=$(cluster_scratch citus_bench)
port=${APG_PQ_BENCH_PORT:-25620}
trap 'cluster_discard "$dir"' EXIT
conf=("shared_preload_libraries = 'citus,apg_pqcrypto'" "max_prepared_transactions = 20" "wal_level = logical"
      "log_statement = 'none'" "shared_buffers = '512MB'" "apg_pqcrypto.worker_naptime = 1")
for n in 0 1 2; do
  cluster_start "$dir/n$n" $((port + n)) "${conf[@]}"
  [ "$n" = 0 ] || cp "$dir/n0/master.key" "$dir/n$n/master.key"
  cluster_psql $((port + n)) -q -c "CREATE EXTENSION citus"
done
single=$((port + 3))
cluster_start "$dir/single" "$single" "log_statement = 'none'" "shared_buffers = '512MB'" "apg_pqcrypto.worker_naptime = 1"
c=$port
psql_() { local p=$1; shift; cluster_psql "$p" -At -q "$@"; }
psql_ $c -c "SELECT citus_set_coordinator_host('127.0.0.1', $c)" -c "SELECT citus_add_node('127.0.0.1', $((port + 1)))" \
  -c "SELECT citus_add_node('127.0.0.1', $((port + 2)))" -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
psql_ $c -c "SELECT count(*) FROM pq.citus_setup()" >/dev/null
psql_ "$single" -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
tenants="SELECT count(*) FROM generate_series(1, 100) i, pq.create_tenant('t' || i)"
# On Citus every unique key includes the distribution column, and a job
# claims rows by that key; on one server a job claims by one column.
table_citus="CREATE TABLE cfg (tenant text NOT NULL, name text NOT NULL, value bytea, PRIMARY KEY (tenant, name))"
table_single="CREATE TABLE cfg (id bigserial PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, value bytea, UNIQUE (tenant, name))"
load="INSERT INTO cfg (tenant, name, value) SELECT 't' || (i % 100 + 1), 'k' || i,
             pq_encrypt('t' || (i % 100 + 1), 'postgres://app:' || substr(md5(i::text), 1, 18) || '@db/app', 'k' || i)
        FROM generate_series(1, $rows) i"
psql_ $c -c "$tenants" -c "$table_citus" -c "SELECT create_distributed_table('cfg', 'tenant')" -c "$load" -c "VACUUM ANALYZE cfg" >/dev/null
psql_ "$single" -c "$tenants" -c "$table_single" -c "$load" -c "VACUUM ANALYZE cfg" >/dev/null

# Seconds of one statement, run on port $1 after a warm-up; the median of $rounds.
timed() {
  local p=$1 sql=$2 times=()
  psql_ "$p" -c "$sql" >/dev/null
  for _ in $(seq 1 "$rounds"); do
    times+=("$(psql_ "$p" -f - <<SQL | tail -1
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$sql
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3);
SQL
)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p"
}
decrypt="SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) LIKE 'postgres://%') FROM cfg;"
reencrypt_single="UPDATE cfg SET value = pq_encrypt(tenant, pq_decrypt(value, name::bytea), name::bytea);"
reencrypt_citus="WITH n AS MATERIALIZED (SELECT tenant, name, pq_encrypt(tenant, pq_decrypt(value, name::bytea), name::bytea) AS value FROM cfg)
                 UPDATE cfg SET value = n.value FROM n WHERE cfg.tenant = n.tenant AND cfg.name = n.name;"
d_single=$(timed "$single" "$decrypt")
d_citus=$(timed $c "$decrypt")
r_single=$(timed "$single" "$reencrypt_single")
r_citus=$(timed $c "$reencrypt_citus")
# Seconds from queueing a re-encryption job of every row (after rotating
# every tenant) to its completion, on port $1; once.
job_seconds() {
  local p=$1 job t0
  psql_ "$p" -c "SELECT count(*) FROM generate_series(1, 100) i, pq.rotate_tenant_key('t' || i, 'bench')" >/dev/null
  t0=$(date +%s.%N)
  job=$(psql_ "$p" -c "SELECT pq.reencrypt('cfg', 'value')")
  until [ "$(psql_ "$p" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ]; do sleep 0.2; done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'
}
for p in "$single" $c; do psql_ "$p" -c "SELECT pq.track_column('cfg', 'value', tenant_column => 'tenant', aad_column => 'name')" >/dev/null; done
j_single=$(job_seconds "$single")
j_citus=$(job_seconds $c)
tasks=$(psql_ $c -c "SET citus.explain_all_tasks = on" -c "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF) $decrypt" \
          | grep -o 'port=[0-9]*' | sort | uniq -c | awk '{printf "%s %s tasks; ", $2, $1}')

echo "# $(date -u +%F), $(nproc) cores, $rows rows over 100 tenants, median of $rounds"
printf '%-44s %12s %12s %8s\n' measure "one server" "2 workers" ratio
awk -v ds="$d_single" -v dc="$d_citus" -v rs="$r_single" -v rc="$r_citus" -v js="$j_single" -v jc="$j_citus" -v n="$rows" 'BEGIN {
  printf "%-44s %12s %12s %8.2f\n", "decrypt every row: seconds", ds, dc, ds / dc
  printf "%-44s %12d %12d %8.2f\n", "re-encrypt every row (UPDATE rule): rows/s", n / rs, n / rc, rs / rc
  printf "%-44s %12d %12d %8.2f\n", "re-encrypt every row (job): rows/s", n / js, n / jc, js / jc
}'
echo "# where the decryption ran: $tasks"
