#!/usr/bin/env bash
# The demo: builds and installs apg_pqcrypto into the local PostgreSQL 15,
# makes a SoftHSM2 token with an AES-256 key (an HSM to move the master key
# into), starts a throwaway cluster with the library preloaded, runs
# scripts/demo.sql, and stops the cluster. Installs what it needs first (scripts/setup.sh).
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
source scripts/providers.sh
echo "== a SoftHSM2 token with a sensitive, non-extractable AES-256 key (in $dir/hsm)"
softhsm_setup "$dir/hsm"
echo "== starting a throwaway cluster on 127.0.0.1:$port (data in $dir/cluster)"
cluster_start "$dir/cluster" "$port" "log_statement = 'none'" \
  "apg_pqcrypto.pkcs11_module = '$SOFTHSM_MODULE'" "apg_pqcrypto.pkcs11_token_label = 'apg-pq'" \
  "apg_pqcrypto.pkcs11_pin_file = '$SOFTHSM_DIR/pin'" "apg_pqcrypto.pkcs11_key_label = 'apg-pq-kek'"
cluster_psql "$port" -q -f scripts/demo.sql
echo "== done; stopping the cluster"
