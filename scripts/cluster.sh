# Throwaway PostgreSQL 15 clusters for the demo, the tests and the benchmark.
# Source this file, then:
#   cluster_scratch NAME      -> a new directory for clusters
#   cluster_start DIR PORT [extra postgresql.conf lines...]
#   cluster_psql PORT [psql args...]
#   cluster_stop DIR
#   cluster_discard SCRATCH   -> stops every cluster under SCRATCH and removes it
#   CLUSTER_ENV=(VAR=value ...) -> environment of the clusters started next
#   hex FILE                  -> the file's bytes in lower-case hex (for psql)
#   unhex FILE                -> writes the hex read on stdin to FILE as bytes
# Clusters run as the postgres OS user (PostgreSQL refuses root), listen on
# 127.0.0.1 only, and preload apg_pqcrypto.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# A fresh directory under /tmp that the postgres user can enter.
cluster_scratch() {
  local d
  d=$(mktemp -d "/tmp/apg_pq_$1.XXXXXX")
  chmod 755 "$d"
  echo "$d"
}

hex() { od -An -tx1 -v "$1" | tr -d ' \n'; }
unhex() { python3 -c "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))" >"$1"; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi
}

cluster_start() {
  local dir=$1 port=$2; shift 2
  cluster_stop "$dir" 2>/dev/null || true
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_postgres "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  # A real key file, as production has (the development key path is tested
  # on its own in tests/integration.sh).
  head -c 32 /dev/urandom > "$dir/master.key"
  chmod 600 "$dir/master.key"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/master.key"
  {
    echo "apg_pqcrypto.master_key_file = '$dir/master.key'"
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir'"
    echo "shared_preload_libraries = 'apg_pqcrypto'"
    echo "fsync = off"
    echo "log_min_messages = info"
    echo "log_statement = 'all'"
    for line in "$@"; do echo "$line"; done
  } | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
  # A client's ephemeral port can hold the port for a moment: retry while
  # the log says it is in use. (The default ports of the scripts, 25430 to
  # 25499, are below Linux's ephemeral range, 32768 and up, so that a
  # client connection never takes one for its lifetime.)
  local attempt
  for attempt in 1 2 3 4 5; do
    as_postgres env ${CLUSTER_ENV[@]+"${CLUSTER_ENV[@]}"} "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
      && return 0
    grep -q "Address already in use" "$dir/server.log" 2>/dev/null && [ "$attempt" -lt 5 ] || break
    sleep 1
  done
  cat "$dir/server.log"
  return 1
}

cluster_psql() {
  local port=$1; shift
  psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

cluster_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

# Stops the test servers started beside clusters (scripts/providers.sh).
cluster_discard_servers() {
  local pid
  while read -r pid; do
    kill -CONT "$(cat "$pid")" 2>/dev/null; kill "$(cat "$pid")" 2>/dev/null; rm -f "$pid"
  done < <(find "$1" -maxdepth 5 \( -name moto.pid -o -name bao.pid -o -name kmip.pid \) 2>/dev/null)
}

cluster_discard() {
  local scratch=$1 pid
  while read -r pid; do
    as_postgres "$PGBIN/pg_ctl" -D "$(dirname "$pid")" -m immediate -w stop >/dev/null 2>&1
  done < <(find "$scratch" -maxdepth 5 -name postmaster.pid 2>/dev/null)
  cluster_discard_servers "$scratch"
  rm -rf "$scratch"
}
