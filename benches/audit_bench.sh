#!/usr/bin/env bash
# The configuration store and the cost of audit_level, on one throwaway
# server: pq.config_set and pq.config_get per second from 1 and from 8
# clients (pgbench), and pq_encrypt throughput at audit_level = keys
# against audit_level = all (alternating runs, the ratio of the medians).
#   benches/audit_bench.sh [SECONDS per run]      (default 10)
# APG_PQ_CLIENTS="1 2 4 8" sets the client counts (default "1 8");
# APG_PQ_FSYNC=on measures with fsync on (the throwaway clusters run with
# fsync off: commits then cost no flush, and only CPU is measured).
# ML-DSA-65 sign/verify of both backends: cargo bench -p apg-pqcrypto-core -- ml-dsa-65/
# Set APG_PQ_SKIP_INSTALL=1 to measure the build that is installed already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-10}
source scripts/env.sh
require_root
if [ -z "${APG_PQ_SKIP_INSTALL:-}" ]; then
  scripts/setup.sh
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
source scripts/cluster.sh
dir=$(cluster_scratch auditbench)
port=${APG_PQ_BENCH_PORT:-25452}
trap 'cluster_discard "$dir"' EXIT
cluster_start "$dir/cluster" "$port" "log_statement = 'none'" "shared_buffers = '256MB'" "max_connections = 50" \
  "fsync = ${APG_PQ_FSYNC:-off}"
cluster_psql "$port" -q -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('bench')" \
  -c "SELECT pq.config_set('bench', 'key-' || i, 'initial value of key ' || i) FROM generate_series(1, 100) i" >/dev/null

printf '%s\n' '\set k random(1, 100)' "SELECT pq.config_set('bench', 'key-' || :k, 'a new value of about forty bytes ' || :k);" >"$dir/set.sql"
printf '%s\n' '\set k random(1, 100)' "SELECT pq.config_get('bench', 'key-' || :k);" >"$dir/get.sql"
printf '%s\n' "SELECT pq_encrypt('bench', 'a configuration value of forty bytes.', 'k');" >"$dir/encrypt.sql"

tps() { # tps SCRIPT CLIENTS [PGOPTIONS]
  PGOPTIONS="${3:-}" pgbench -n -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T "$seconds" -f "$1" -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 \
    | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "== configuration store ($seconds s per run, 100 keys, ~40-byte values, fsync ${APG_PQ_FSYNC:-off})"
printf '%-34s %12s\n' "operation" "per second"
for c in ${APG_PQ_CLIENTS:-1 8}; do
  set_tps=$(tps "$dir/set.sql" "$c")
  printf '%-34s %12.0f\n' "pq.config_set, $c client(s)" "$set_tps"
  printf 'rate: pq.config_set, %d client(s) = %.0f\n' "$c" "$set_tps"
  printf '%-34s %12.0f\n' "pq.config_get, $c client(s)" "$(tps "$dir/get.sql" "$c")"
done
echo "chain after the runs: $(cluster_psql "$port" -At -c "SELECT count(*) || ' audit rows, verified ' || (SELECT ok FROM pq.verify_audit_chain()) FROM pq.audit_log")"

echo "== pq_encrypt at audit_level = keys and all (8 clients, 3 alternating runs each)"
keys=() all=()
for _ in 1 2 3; do
  keys+=("$(tps "$dir/encrypt.sql" 8 "-c apg_pqcrypto.audit_level=keys")")
  all+=("$(tps "$dir/encrypt.sql" 8 "-c apg_pqcrypto.audit_level=all")")
done
k=$(median "${keys[@]}") a=$(median "${all[@]}")
echo "keys: ${keys[*]}  (median $k)"
echo "all:  ${all[*]}  (median $a)"
awk -v k="$k" -v a="$a" 'BEGIN { printf "cost of audit_level = all: %.1f%% (target: under 10%%)\n", (k - a) / k * 100 }'
