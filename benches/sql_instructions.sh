#!/usr/bin/env bash
# Instructions per call, counted by valgrind's callgrind in a single-user
# PostgreSQL: repeatable on a noisy host, unlike the timings of
# benches/sql_bench.sh. For each function, the query runs once with the
# call and once without it over the same rows; the difference divided by
# the row count is the cost of one call (argument handling, the function
# itself, the result). Prints a table and ratios against pgcrypto.
#   benches/sql_instructions.sh [ROWS]   (default 20000)
# Set APG_PQ_SKIP_INSTALL=1 to measure the build that is installed already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
rows=${1:-20000}
if [ -z "${APG_PQ_SKIP_INSTALL:-}" ]; then
  scripts/setup.sh
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
source scripts/cluster.sh
dir=$(cluster_scratch instr)
port=${APG_PQ_BENCH_PORT:-25460}
cluster_start "$dir/c" "$port" "log_statement = 'none'"
trap 'cluster_discard "$dir"' EXIT
cluster_psql "$port" -q <<SQL >/dev/null
CREATE EXTENSION apg_pqcrypto;
CREATE EXTENSION pgcrypto;
SELECT 1 FROM pq.create_tenant('bench');
CREATE TABLE data AS
SELECT i, 'postgres://app:' || substr(md5(i::text), 1, 16) || '@db/app' AS v, '\x00112233445566778899aabbccddeeff'::bytea AS k
  FROM generate_series(1, $rows) i;
CREATE TABLE enc AS
SELECT v, k, pq_encrypt('bench', v, 'k') AS e, encrypt(convert_to(v, 'UTF8'), k, 'aes') AS a FROM data;
-- Warm the key cache's source pages and the tables.
SELECT count(pq_decrypt(e, 'k'::bytea)) FROM enc;
SQL
cluster_stop "$dir/c"
trap 'rm -rf "$dir"' EXIT

# instructions SQL: total instructions of a single-user backend running SQL.
instructions() {
  local out="$dir/c/cg.$RANDOM"
  echo "$1" | as_postgres valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$PGBIN/postgres" --single -D "$dir/c/data" -j postgres >/dev/null 2>"$out.log"
  sed -n 's/^summary: //p' "$out"
}
# per_call NAME WITH WITHOUT: instructions per row of WITH minus WITHOUT.
per_call() {
  local with without
  with=$(instructions "$2")
  without=$(instructions "$3")
  printf '%-32s %12d\n' "$1" $(((with - without) / rows))
  eval "ipc_${4}=$(((with - without) / rows))"
}
echo "instructions per call, $rows rows ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
per_call "pq_encrypt (keyed)" "SELECT count(pq_encrypt('bench', v, 'k')) FROM enc;" "SELECT count(v) FROM enc;" pqenc
per_call "pgcrypto encrypt aes" "SELECT count(encrypt(convert_to(v, 'UTF8'), k, 'aes')) FROM enc;" "SELECT count(convert_to(v, 'UTF8')) FROM enc;" aesenc
per_call "pq_decrypt (keyed)" "SELECT count(pq_decrypt(e, 'k'::bytea)) FROM enc;" "SELECT count(e) FROM enc;" pqdec
per_call "pgcrypto decrypt aes" "SELECT count(decrypt(a, k, 'aes')) FROM enc;" "SELECT count(a) FROM enc;" aesdec
echo "ratio pgcrypto/apg_pqcrypto (above 1: apg_pqcrypto needs fewer instructions)"
awk -v a="$ipc_aesenc" -v b="$ipc_pqenc" 'BEGIN { printf "  encrypt  %.2f\n", a / b }'
awk -v a="$ipc_aesdec" -v b="$ipc_pqdec" 'BEGIN { printf "  decrypt  %.2f\n", a / b }'
