#!/usr/bin/env bash
# Side-by-side SQL benchmark: apg_pqcrypto against pgcrypto on one server in
# one run, over the same ~40-byte values. Prints rows/s and ratios: the
# per-row ones as the median of ROUNDS rounds, ours and pgcrypto's back to back.
#   benches/sql_bench.sh [ROWS] [ROUNDS]      (defaults 100000, 7)
# Set APG_PQ_SKIP_INSTALL=1 to measure the build that is installed already.
# Builds and installs the release extension, starts a throwaway cluster,
# generates an RSA-3072 OpenPGP key with gpg for pgp_pub_*, stops the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rows=${1:-100000}
rounds=${2:-7}
source scripts/env.sh
require_root
if [ -z "${APG_PQ_SKIP_INSTALL:-}" ]; then
  scripts/setup.sh
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
source scripts/cluster.sh
dir=$(cluster_scratch bench)
port=${APG_PQ_BENCH_PORT:-25450}
trap 'GNUPGHOME="$dir/gnupg" gpgconf --kill gpg-agent 2>/dev/null; cluster_discard "$dir"' EXIT
cluster_start "$dir/cluster" "$port" "log_statement = 'none'" "shared_buffers = '256MB'"

export GNUPGHOME="$dir/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --gen-key 2>/dev/null <<'KEY'
Key-Type: RSA
Key-Length: 3072
Subkey-Type: RSA
Subkey-Length: 3072
Name-Real: apg_pqcrypto bench
Expire-Date: 0
%no-protection
%commit
KEY
pub=$(gpg --export | od -An -tx1 -v | tr -d ' \n')
sec=$(gpg --export-secret-keys | od -An -tx1 -v | tr -d ' \n')

cluster_psql "$port" -q -v rows="$rows" -v rounds="$rounds" -v pub="$pub" -v sec="$sec" -f benches/sql_bench.sql
