#!/usr/bin/env bash
# Blind index benchmark (docs/SEARCH.md): an equality lookup by term through
# a B-tree index against a decrypt-and-compare scan, on 10k, 100k and 1M
# rows, and term computation against pgcrypto's hmac(), in one run on one
# server. Prints milliseconds per lookup, rows/s and ratios.
#   benches/search_bench.sh [SIZES]      (default "10000 100000 1000000")
# Builds and installs the release extension, starts a throwaway cluster,
# stops it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sizes=${1:-10000 100000 1000000}
source scripts/env.sh
require_root
scripts/setup.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
source scripts/cluster.sh
dir=$(cluster_scratch search_bench)
port=${APG_PQ_BENCH_PORT:-25451}
trap 'cluster_discard "$dir"' EXIT
cluster_start "$dir/cluster" "$port" "log_statement = 'none'" "shared_buffers = '512MB'"
cluster_psql "$port" -q -f benches/search_bench_setup.sql
for n in $sizes; do
  cluster_psql "$port" -q -v rows="$n" -f benches/search_bench.sql
done
cluster_psql "$port" -q -f benches/search_bench_terms.sql
