#!/usr/bin/env bash
# The demo: builds and installs apg_pqcrypto into the local PostgreSQL 15,
# starts a throwaway cluster with the library preloaded, runs scripts/demo.sql,
# and stops the cluster. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
scripts/setup.sh
echo "== building and installing apg_pqcrypto (release)"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
source scripts/cluster.sh
dir=$(cluster_scratch demo)
port=${APG_PQ_DEMO_PORT:-54330}
trap 'cluster_discard "$dir"' EXIT
echo "== starting a throwaway cluster on 127.0.0.1:$port (data in $dir/cluster)"
cluster_start "$dir/cluster" "$port" "log_statement = 'none'"
cluster_psql "$port" -q -f scripts/demo.sql
echo "== done; stopping the cluster"
