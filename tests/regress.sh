#!/usr/bin/env bash
# SQL regression suite with golden output (tests/pg_regress), run with
# PostgreSQL's pg_regress against a running cluster on 127.0.0.1:$1.
#   tests/regress.sh PORT            compare with tests/pg_regress/expected
#   APG_PQ_ACCEPT=1 tests/regress.sh PORT   copy the results over the expected files
set -euo pipefail
port=$1  # a cluster from scripts/cluster.sh, with apg_pqcrypto installed
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d /tmp/apg_pq_regress.XXXXXX)
tests=(setup encrypt sealed sign errors access domain readonly lifecycle migration audit client suites escrow blind verify operations api)
status=0
/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
  --host=127.0.0.1 --port="$port" --user=postgres --dbname=apg_pq_regress \
  --inputdir="$here/pg_regress" --outputdir="$out" "${tests[@]}" || status=$?
if [ -n "${APG_PQ_ACCEPT:-}" ]; then
  cp "$out"/results/*.out "$here/pg_regress/expected/"
  echo "expected output updated from $out/results"
elif [ "$status" != 0 ]; then
  cat "$out/regression.diffs" 2>/dev/null | head -200
  echo "results kept in $out"
fi
[ "$status" = 0 ] && [ -z "${APG_PQ_ACCEPT:-}" ] && rm -rf "$out"

exit "$status"
