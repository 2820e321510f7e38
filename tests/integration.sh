#!/usr/bin/env bash
# Integration tests against real throwaway clusters, one file per topic
# under tests/integration/. Prints "N passed, M failed".
#   tests/integration.sh [TOPIC...]    (default: every topic)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/integration/lib.sh"
base=$(cluster_scratch it)
port0=${APG_PQ_IT_PORT:-25441}
# Quiet logs unless a topic asks otherwise: what remains in the log is what
# the server and the extension chose to say.
quiet=("log_statement = 'none'")
port_keyfile=$port0
port_revocation=$((port0 + 2))
port_dump=$((port0 + 4))
port_standby=$((port0 + 6))
port_replication=$((port0 + 8))
port_crash=$((port0 + 10))
port_memory=$((port0 + 12))
port_logs=$((port0 + 14))
port_upgrade=$((port0 + 16))
port_worker=$((port0 + 18))
port_stress=$((port0 + 20))
port_providers=$((port0 + 22))
port_providers_restore=$((port0 + 23))
port_migration=$((port0 + 24))
port_audit=$((port0 + 26))
port_cli=$((port0 + 28))
port_sessions=$((port0 + 30))
port_recovery=$((port0 + 32))
port_recovery_b=$((port0 + 33))
port_recovery_c=$((port0 + 34))
port_hostile=$((port0 + 36))
port_partitions=$((port0 + 38))
port_blind=$((port0 + 40))
port_operations=$((port0 + 42))
port_monitoring=$((port0 + 44))
port_inputs=$((port0 + 46))
port_chaos=$((port0 + 48))
port_keystores=$((port0 + 50))
port_citus=$((port0 + 52))   # and the next three: a coordinator and three workers

cleanup() {
  for d in "$base"/*/; do
    [ -f "$d/data/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1
  done
  cluster_discard_servers "$base"
  if [ "$failed" = 0 ]; then rm -rf "$base"; else echo "# logs kept in $base"; fi
  true
}
trap cleanup EXIT

skipped=()
topics=("$@")
[ ${#topics[@]} -gt 0 ] || topics=(keyfile revocation dump_restore standby replication crash memory logs upgrade worker stress providers migration audit cli sessions recovery hostile partitions blind operations monitoring inputs keystores citus chaos)
# Each topic declares how many checks it runs ("# checks: N"): a topic
# that stops early, or skips a block, fails here rather than passing with
# fewer checks.
for topic in "${topics[@]}"; do
  echo "# --- $topic"
  # (Names a topic's own variables will not clash with: topics are sourced.)
  it_file="$root/tests/integration/$topic.sh"
  it_expected=$(sed -n 's/^# checks: \([0-9]*\)$/\1/p' "$it_file" | head -1)
  it_before=$((passed + failed))
  it_skipped=""
  source "$it_file" || fail "$topic: could not start its clusters"
  it_ran=$((passed + failed - it_before))
  if [ -n "$it_skipped" ]; then
    # A topic whose requirement is missing says so and counts nothing.
    echo "$topic: SKIPPED ($it_skipped)"
    skipped+=("$topic")
  elif [ -z "$it_expected" ]; then
    fail "$topic: no '# checks: N' line"
  elif [ "$it_ran" != "$it_expected" ]; then
    fail "$topic ran $it_ran checks; it declares $it_expected"
  fi
done

echo "$passed passed, $failed failed${skipped[0]+, skipped: ${skipped[*]}}"
[ "$failed" = 0 ]
