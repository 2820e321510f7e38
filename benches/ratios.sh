#!/usr/bin/env bash
# Every ratio of the performance table (docs/PERFORMANCE.md, "The table") in
# one run on this machine: builds and installs the release extension once,
# then runs
#   sql_bench.sh        per-row paths against pgcrypto and the SQL floor
#                       (ours and the anchor back to back, ROUNDS rounds, median)
#   reencrypt_bench.sh  the re-encryption job against one plain UPDATE
#   migration_bench.sh  the migration job against one UPDATE doing the same
#   audit_bench.sh      pq.config_set per second from 1 and 8 clients
#   the core's criterion bench of ML-DSA-65 signing, against pq_sign in SQL
# and prints one table. Each step's full output goes to OUT/<step>.log.
#   benches/ratios.sh [OUT] [JOB_ROWS] [ROUNDS]   (defaults a new temporary
#   directory, 300000, 7)
# Set APG_PQ_SKIP_INSTALL=1 to measure the build that is installed already
# (another commit's, say).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
out=${1:-$(mktemp -d /tmp/apg_pq_ratios.XXXXXX)}
job_rows=${2:-300000}
rounds=${3:-7}
mkdir -p "$out"
if [ -z "${APG_PQ_SKIP_INSTALL:-}" ]; then
  scripts/setup.sh
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
export APG_PQ_SKIP_INSTALL=1
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), logs in $out"

run() { # run NAME COMMAND...: the step's output to its log, a line when it is done
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$out/$name.log" 2>&1 || { echo "$name failed: see $out/$name.log" >&2; tail -20 "$out/$name.log" >&2; exit 1; }
  echo "   $name done in $((SECONDS - t0)) s"
}
run sql benches/sql_bench.sh 100000 "$rounds"
run reencrypt benches/reencrypt_bench.sh "$job_rows" 10000
run migration benches/migration_bench.sh "$job_rows" 10000
run audit benches/audit_bench.sh 10
# The core's signing time: criterion's mean over hedged signatures of a
# 40-byte message (the number of rejection-sampling rounds varies with the
# randomness, so the mean is the expected time).
run core cargo bench -p apg-pqcrypto-core --bench core -- 'ml-dsa-65/sign_40B' --noplot

value() { sed -n "s/^$1 = \([0-9.]*\).*/\1/p" "$2" | tail -1; }
core_ns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean"]["point_estimate"])' \
  "${CARGO_TARGET_DIR:-$root/target}/criterion/ml-dsa-65/sign_40B/new/estimates.json")
sql_us=$(sed -n 's/^pq_sign through SQL (us per call): *\([0-9.]*\).*/\1/p' "$out/sql.log" | tail -1)

echo
printf '| %-46s | %9s | %-18s |\n' "measure" "this run" "goal"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..48})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..20})"
row() { printf '| %-46s | %9s | %-18s |\n' "$1" "$2" "$3"; }
row "pq_encrypt / pgcrypto encrypt aes (median)" "$(value 'ratio: pq_encrypt \/ pgcrypto encrypt aes' "$out/sql.log")" ">= 1.5"
row "pq_decrypt / pgcrypto decrypt aes (median)" "$(value 'ratio: pq_decrypt \/ pgcrypto decrypt aes' "$out/sql.log")" ">= 1.5"
row "pq_encrypt / digest sha256 (median)" "$(value 'ratio: pq_encrypt \/ digest sha256 (the SQL floor)' "$out/sql.log")" ">= 0.8"
row "re-encryption job / plain UPDATE" "$(value 'ratio: re-encryption job \/ UPDATE' "$out/reencrypt.log")" ">= 0.9"
row "re-encryption job / UPDATE of a tracked table" "$(value 'ratio: re-encryption job \/ UPDATE of a tracked table' "$out/reencrypt.log")" ">= 0.9"
row "migration job / one UPDATE" "$(value 'ratio: migration job \/ UPDATE' "$out/migration.log")" ">= 0.9"
row "migration job / UPDATE of a tracked table" "$(value 'ratio: migration job \/ UPDATE of a tracked table' "$out/migration.log")" ">= 0.9"
row "pq.config_set per second, 1 client" "$(value 'rate: pq.config_set, 1 client(s)' "$out/audit.log")" ""
row "pq.config_set per second, 8 clients" "$(value 'rate: pq.config_set, 8 client(s)' "$out/audit.log")" ">= 4000"
row "pq_sign in SQL / core sign" \
  "$(awk -v s="$sql_us" -v c="$core_ns" 'BEGIN { printf "%.2f", s * 1000 / c }')" "<= 1.2"
echo "(pq_sign through SQL ${sql_us} us per call; the core's mean $(awk -v c="$core_ns" 'BEGIN { printf "%.1f", c / 1000 }') us)"
