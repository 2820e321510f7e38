#!/usr/bin/env bash
# Every test of apg_pqcrypto, tier by tier:
#   1. core crate: Wycheproof vectors, known-answer vectors, property tests
#   2. #[pg_test]s inside PostgreSQL (cargo pgrx test)
#   3. SQL regression suite with golden output (pg_regress)
#   4. integration: key files, dump/restore, invalidation, crash, logs
# Installs what it needs first (scripts/setup.sh). Run as root or a sudoer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
source scripts/cluster.sh
work=$(cluster_scratch test)
port=${APG_PQ_TEST_PORT:-54331}
trap 'cluster_stop "$work/regress" 2>/dev/null; true' EXIT

echo "== 1/4 core crate"
cargo test -p apg-pqcrypto-core
python3 tests/verify_kat.py

echo "== 2/4 #[pg_test] (cargo pgrx test)"
mkdir -p "$work/pgrx"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pgrx"
cargo pgrx test pg15 --runas postgres --pgdata "$work/pgrx/data"

echo "== 3/4 SQL regression suite"
cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config >/dev/null
cluster_start "$work/regress" "$port"
tests/regress.sh "$port"
cluster_stop "$work/regress"

echo "== 4/4 integration"
APG_PQ_IT_PORT=$((port + 1)) tests/integration.sh

echo "== all tiers passed"
