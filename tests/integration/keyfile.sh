# The file provider: the development key, and every check on the key file,
# with messages that name no path or key id (those go to the server log).
# checks: 60
dir="$base/keyfile"
port=$port_keyfile
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
sed -i "/apg_pqcrypto.master_key_file/d" "$dir/data/postgresql.conf"
as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -w restart -l "$dir/server.log" >/dev/null
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE ROLE it_plain LOGIN IN ROLE pq_user" >/dev/null

echo "# the development key"
out=$(cluster_psql "$port" -At -c "SELECT version FROM pq.create_tenant('acme')" 2>&1)
check_contains "dev key: WARNING on first use" "WARNING:  apg_pqcrypto created a development master key file" "$out"
devkey="$dir/data/apg_pqcrypto_dev_master.key"
check "dev key: mode 0600" "600" "$(stat -c %a "$devkey" 2>/dev/null)"
check "dev key: 32 bytes" "32" "$(stat -c %s "$devkey" 2>/dev/null)"
check "dev key: created atomically (no temporary file left)" "" "$(ls "$dir/data" | grep 'dev_master.key.tmp')"
check "dev key: round trip" "v" "$(q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'v'))")"
q "$port" -c "SELECT pq.grant_tenant('acme', 'it_plain')" >/dev/null

# key_error SQL ROLE: the whole client-side text of the error (message,
# hint), from a new session (so nothing is cached).
key_error() {
  psql -X -At -q -v VERBOSITY=verbose -h 127.0.0.1 -p "$port" -U "${2:-it_plain}" postgres -c "$1" 2>&1
}
use_key_file() { # use_key_file PATH: point the setting at PATH and reload
  sed -i "/apg_pqcrypto.master_key_file/d" "$dir/data/postgresql.conf"
  echo "apg_pqcrypto.master_key_file = '$1'" | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
  q "$port" -c "SELECT pg_reload_conf()" >/dev/null
}
# expect_pq004 NAME WHAT: PQ004 saying WHAT, without the path, with the path in the log.
expect_pq004() {
  local out
  out=$(key_error "SELECT pq_encrypt('acme', 'v')" postgres)
  check_contains "$1: PQ004" "PQ004" "$out"
  check_contains "$1: says what failed" "$2" "$out"
  check_absent "$1: no path in the message" "$base" "$out"
  out=$(key_error "SELECT pq_encrypt('acme', 'v')")
  check_contains "$1: PQ004 for an ordinary role" "PQ004" "$out"
  check_absent "$1: no path for an ordinary role" "$base" "$out"
  check_contains "$1: the path is in the server log" "master key file \"$3\"" "$(tail -50 "$dir/server.log")"
}

echo "# key file checks, on the open descriptor"
chmod 644 "$devkey"
q "$port" -c "SELECT pg_reload_conf()" >/dev/null
expect_pq004 "group-readable key file" "is accessible by group or others" "$devkey"
check_contains "group-readable key file: hint says chmod 600" "chmod 600" "$(key_error "SELECT pq_encrypt('acme', 'v')")"
chmod 600 "$devkey"

ln -s "$devkey" "$base/link.key"
use_key_file "$base/link.key"
expect_pq004 "symbolic link" "is a symbolic link" "$base/link.key"

cp "$devkey" "$base/root-owned.key"; chmod 600 "$base/root-owned.key"; chown root: "$base/root-owned.key"
use_key_file "$base/root-owned.key"
expect_pq004 "key file of another owner" "cannot be read by the server" "$base/root-owned.key"
chmod 644 "$base/root-owned.key"; chmod 755 "$base"
expect_pq004 "readable key file of another owner" "is not owned by the server's operating-system user" "$base/root-owned.key"

mkdir -m 700 "$base/dir.key"; chown postgres: "$base/dir.key"
use_key_file "$base/dir.key"
expect_pq004 "a directory" "is not a regular file" "$base/dir.key"

head -c 4096 /dev/urandom > "$base/big.key"; chmod 600 "$base/big.key"; chown postgres: "$base/big.key"
use_key_file "$base/big.key"
expect_pq004 "an oversized file" "is too long" "$base/big.key"

printf 'short' > "$base/short.key"; chmod 600 "$base/short.key"; chown postgres: "$base/short.key"
use_key_file "$base/short.key"
expect_pq004 "a malformed file" "does not hold a 32-byte key" "$base/short.key"

use_key_file "$base/missing.key"
expect_pq004 "a missing file" "does not exist" "$base/missing.key"

head -c 32 /dev/urandom > "$base/other.key"; chmod 600 "$base/other.key"; chown postgres: "$base/other.key"
use_key_file "$base/other.key"
out=$(key_error "SELECT pq_encrypt('acme', 'v')")
check_contains "another key file: PQ004" "PQ004" "$out"
mdk_id=$(q "$port" -c "SELECT encode(id, 'hex') FROM pq.master_keys")
check_absent "another key file: no key id in the message" "$mdk_id" "$out"
check_contains "another key file: key ids in the server log" "$mdk_id" "$(tail -20 "$dir/server.log")"

check "key file setting: not settable in a session" "55P02" "$(sqlstate "$port" "SET apg_pqcrypto.master_key_file = '/tmp/x'")"
check "key file setting: hidden from ordinary roles" "42501" "$(sqlstate "$port" "SHOW apg_pqcrypto.master_key_file" it_plain)"
sed -i "/apg_pqcrypto.master_key_file/d" "$dir/data/postgresql.conf"
q "$port" -c "SELECT pg_reload_conf()" >/dev/null
check "back to the development key: works" "v" "$(q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'v'))")"
cluster_stop "$dir"
