# Helpers for the integration tests (sourced by tests/integration.sh).
# Each topic file starts the clusters it needs on its own ports, under
# $base, and stops them before it ends.
source "$root/scripts/cluster.sh"

# code CMD...: the exit code of CMD, its output dropped.
code() { "$@" >/dev/null 2>&1; echo $?; }

passed=${passed:-0}
failed=${failed:-0}

ok() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "not ok - $1"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
check_contains() { # check_contains NAME NEEDLE HAYSTACK
  case "$3" in *"$2"*) ok "$1" ;; *) fail "$1: [$2] not in [$3]" ;; esac
}
check_absent() { # check_absent NAME NEEDLE HAYSTACK
  case "$3" in *"$2"*) fail "$1: [$2] found in [$3]" ;; *) ok "$1" ;; esac
}

# q PORT [psql args]: a query's output, as postgres.
q() { local p=$1; shift; cluster_psql "$p" -At -q "$@" 2>&1; }
# qas PORT ROLE [psql args]: a query's output, as ROLE.
qas() { local p=$1 r=$2; shift 2; psql -X -At -q -h 127.0.0.1 -p "$p" -U "$r" postgres "$@" 2>&1; }
# sqlstate PORT SQL [ROLE]: the SQLSTATE of a failing statement, or "ok".
sqlstate() {
  local code
  code=$(psql -X -At -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h 127.0.0.1 -p "$1" -U "${3:-postgres}" -c "$2" postgres 2>&1 \
    | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)
  echo "${code:-ok}"
}
# wait_for PORT SQL: polls until SQL returns t (30 s at most).
wait_for() {
  for _ in $(seq 1 150); do
    [ "$(q "$1" -c "$2")" = t ] && return 0
    sleep 0.2
  done
  return 1
}

# The helpers below act on the topic's cluster at $port.
# reload_conf SQL...: runs the statements and pg_reload_conf, then waits
# until a new session has the reloaded configuration (pg_conf_load_time of
# a new backend is the postmaster's last load).
reload_conf() {
  local before
  before=$(q "$port" -c "SELECT pg_conf_load_time()")
  q "$port" "$@" -c "SELECT pg_reload_conf()" >/dev/null
  wait_for "$port" "SELECT pg_conf_load_time() > '$before'" || fail "the server did not reload its configuration"
}
set_conf() { reload_conf -c "ALTER SYSTEM SET apg_pqcrypto.$1 = '$2'"; }   # set_conf NAME VALUE
reset_conf() { reload_conf -c "ALTER SYSTEM RESET apg_pqcrypto.$1"; }       # reset_conf NAME
# errtext SQL: what psql prints for SQL in a new session, errors verbose.
errtext() { psql -X -At -q -v VERBOSITY=verbose -h 127.0.0.1 -p "$port" -U postgres postgres -c "$1" 2>&1; }
