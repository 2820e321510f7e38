#!/usr/bin/env bash
# Every test of apg_pqcrypto, tier by tier:
#   1. source rules (tests/source_check.sh); core crate: Wycheproof
#      vectors, known-answer vectors, property tests, and the vectors
#      re-derived by an independent implementation; the
#      apg-pq command line's unit tests; the fuzz targets build; docker/
#      against the install steps;
#      providers crate: the file, PKCS#11 (a SoftHSM2 token), AWS KMS
#      (moto_server on loopback), Vault Transit (an OpenBao server) and
#      KMIP (PyKMIP's server) providers, without PostgreSQL
#   2. #[pg_test]s inside PostgreSQL (cargo pgrx test)
#   3. SQL regression suite with golden output (pg_regress)
#   4. integration: key files, revocation under every isolation level,
#      dump/restore, hot standby, logical replication, crash recovery,
#      memory limits, the server log, upgrades, the worker, master keys in
#      a SoftHSM2 token, a KMS-compatible server, OpenBao Transit and a
#      KMIP server (keystores), the audit trail, the
#      apg-pq command line against a server (X-Wing, batches, streams,
#      forward-secure sessions)
# Installs what it needs first (scripts/setup.sh). Run as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
scripts/setup.sh
source scripts/cluster.sh
work=$(cluster_scratch test)
port=${APG_PQ_TEST_PORT:-25431}
trap 'cluster_discard "$work"' EXIT

echo "== 1/4 core and providers crates"
tests/source_check.sh
cargo test -p apg-pqcrypto-core
"$APG_PQ_VENV/bin/python" tests/verify_kat.py
APG_PQ_VENV="$APG_PQ_VENV" APG_PQ_MOTO_SERVER="$APG_PQ_VENV/bin/moto_server" cargo test -p apg-pqcrypto-providers
cargo test -p apg-pq
# The fuzz targets compile (running them is docs/FUZZING.md's campaign).
cargo build -q --manifest-path fuzz/Cargo.toml
tests/docker_check.sh

echo "== tier 1 took $SECONDS s"; SECONDS=0
echo "== 2/4 #[pg_test] (cargo pgrx test)"
mkdir -p "$work/pgrx"
chown postgres: "$work/pgrx"
cargo pgrx test pg15 --runas postgres --pgdata "$work/pgrx/data"

echo "== tier 2 took $SECONDS s"; SECONDS=0
echo "== 3/4 SQL regression suite"
cargo pgrx install --pg-config "$PG_CONFIG" >/dev/null
cluster_start "$work/regress" "$port"
tests/regress.sh "$port"
cluster_stop "$work/regress"

echo "== tier 3 took $SECONDS s"; SECONDS=0
echo "== 4/4 integration"
APG_PQ_IT_PORT=$((port + 10)) tests/integration.sh

echo "== tier 4 took $SECONDS s"
echo "== all tiers passed"
