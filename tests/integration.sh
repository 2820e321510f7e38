#!/usr/bin/env bash
# Integration tests against real throwaway clusters: the master key file,
# pg_dump/pg_restore, cache invalidation across sessions, a killed backend,
# and a server log free of secrets. Prints "N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/cluster.sh"
base=$(cluster_scratch it)
port=${APG_PQ_IT_PORT:-54341}
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "not ok - $1"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
q() { cluster_psql "$port" -At -q "$@" 2>&1; }
sqlstate() { # the SQLSTATE of a failing statement, or "ok"
  local code
  code=$(cluster_psql "$port" -At -q -v VERBOSITY=verbose -c "$1" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)
  echo "${code:-ok}"
}
cleanup() { cluster_stop "$base/c1"; cluster_stop "$base/c2"; }
trap cleanup EXIT

# Quiet logs: no statement text (PostgreSQL itself would log literals), so
# what remains in the log is what the server and the extension chose to say.
quiet=("log_statement = 'none'" "log_min_error_statement = 'panic'")

echo "# cluster 1: the development key path (no apg_pqcrypto.master_key_file)"
cluster_start "$base/c1" "$port" "${quiet[@]}" || exit 1
sed -i "/apg_pqcrypto.master_key_file/d" "$base/c1/data/postgresql.conf"
as_postgres "$PGBIN/pg_ctl" -D "$base/c1/data" -w restart -l "$base/c1/server.log" >/dev/null
q -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
out=$(cluster_psql "$port" -At -c "SELECT version FROM pq.create_tenant('acme')" 2>&1)
case "$out" in
  *"WARNING:  apg_pqcrypto created a development master key file"*) ok "dev key: WARNING on first use" ;;
  *) fail "dev key: WARNING on first use: $out" ;;
esac
devkey="$base/c1/data/apg_pqcrypto_dev_master.key"
check "dev key: mode 0600" "600" "$(stat -c %a "$devkey" 2>/dev/null)"
check "dev key: 32 bytes" "32" "$(stat -c %s "$devkey" 2>/dev/null)"
check "dev key: round trip" "v" "$(q -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'v'))")"

echo "# key file permissions and contents"
chmod 644 "$devkey"
q -c "SELECT pg_reload_conf()" >/dev/null
check "group-readable key file: PQ004" "PQ004" "$(sqlstate "SELECT pq_decrypt(pq_encrypt('acme', 'v'))")"
hint=$(cluster_psql "$port" -At -c "SET apg_pqcrypto.key_cache_ttl = 0; SELECT pq_encrypt('acme', 'v')" 2>&1 | grep HINT)
case "$hint" in *"chmod 600"*) ok "group-readable key file: hint says chmod 600" ;; *) fail "hint: $hint" ;; esac
chmod 600 "$devkey"

other="$base/other.key"
head -c 32 /dev/urandom >"$other"; chmod 600 "$other"; chown postgres: "$other"
echo "apg_pqcrypto.master_key_file = '$other'" | as_postgres tee -a "$base/c1/data/postgresql.conf" >/dev/null
q -c "SELECT pg_reload_conf()" >/dev/null
check "another key file: PQ004" "PQ004" "$(sqlstate "SET apg_pqcrypto.key_cache_ttl = 0; SELECT pq_encrypt('acme', 'v')")"
echo "apg_pqcrypto.master_key_file = '$base/missing.key'" | as_postgres tee -a "$base/c1/data/postgresql.conf" >/dev/null
q -c "SELECT pg_reload_conf()" >/dev/null
check "missing key file: PQ004" "PQ004" "$(sqlstate "SET apg_pqcrypto.key_cache_ttl = 0; SELECT pq_encrypt('acme', 'v')")"
printf 'short' >"$other"
echo "apg_pqcrypto.master_key_file = '$other'" | as_postgres tee -a "$base/c1/data/postgresql.conf" >/dev/null
q -c "SELECT pg_reload_conf()" >/dev/null
check "malformed key file: PQ004" "PQ004" "$(sqlstate "SET apg_pqcrypto.key_cache_ttl = 0; SELECT pq_encrypt('acme', 'v')")"
q -c "CREATE ROLE it_plain LOGIN" >/dev/null
check "key file setting: not settable in a session" "55P02" "$(sqlstate "SET apg_pqcrypto.master_key_file = '/tmp/x'")"
check "key file setting: hidden from ordinary roles" "42501" \
  "$(sqlstate "SET ROLE it_plain; SHOW apg_pqcrypto.master_key_file")"
# Back to the development key.
sed -i "/apg_pqcrypto.master_key_file/d" "$base/c1/data/postgresql.conf"
q -c "SELECT pg_reload_conf()" >/dev/null
check "restored key file works" "v" "$(q -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'v'))")"
cluster_stop "$base/c1"

echo "# cluster 2: a configured key file"
cluster_start "$base/c2" "$port" "${quiet[@]}" || exit 1
q -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('globex')" >/dev/null
q -c "CREATE TABLE app_config (name text PRIMARY KEY, value pq_envelope)" \
  -c "INSERT INTO app_config SELECT 'k' || i, pq_encrypt('acme', 'secret-value-' || i, 'k' || i) FROM generate_series(1, 200) i" \
  -c "INSERT INTO app_config VALUES ('sealed', pq_seal(pq.tenant_public_key('globex'), 'sealed-value', 'sealed'))" >/dev/null

echo "# pg_dump / pg_restore keeps everything decryptable"
pg_dump -h 127.0.0.1 -p "$port" -U postgres -Fc -f "$base/dump.pgc" postgres 2>"$base/dump.err"
check "pg_dump succeeds" "0" "$?"
q -c "CREATE DATABASE restored" >/dev/null
pg_restore -h 127.0.0.1 -p "$port" -U postgres -d restored "$base/dump.pgc" 2>"$base/restore.err"
check "pg_restore succeeds" "" "$(grep -v '^$' "$base/restore.err" | head -3)"
check "restored: keyed values decrypt" "200" \
  "$(q -d restored -c "SELECT count(*) FROM app_config WHERE name <> 'sealed' AND pq_decrypt_text(value, name) = 'secret-value-' || substr(name, 2)")"
check "restored: sealed value decrypts" "sealed-value" \
  "$(q -d restored -c "SELECT pq_decrypt_text(value, name) FROM app_config WHERE name = 'sealed'")"
check "restored: same keys" "t" \
  "$(q -d restored -c "SELECT (SELECT array_agg(kid ORDER BY tenant) FROM pq.tenant_keys) IS NOT NULL AND (SELECT count(*) FROM pq.tenant_keys) = 2")"
check "restored: new values encrypt" "new" "$(q -d restored -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'new'))")"

echo "# a grant revoked in one session takes effect in another's next transaction"
q -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_app')" >/dev/null
out=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U it_app postgres 2>&1 <<EOF
SELECT pq_decrypt_text(pq_encrypt('acme', 'cached'));
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pq.revoke_tenant('acme', 'it_app')" postgres >/dev/null
\set VERBOSITY verbose
SELECT pq_encrypt('acme', 'after revoke');
EOF
)
case "$out" in cached*"42501"*) ok "revocation reaches a session with cached keys" ;; *) fail "revocation: $out" ;; esac
out=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 <<EOF
SELECT length(pq_encrypt('globex', 'cached')) > 0;
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "UPDATE pq.tenant_key_versions SET state = 'retired' WHERE tenant = 'globex'" postgres >/dev/null
\set VERBOSITY verbose
SELECT pq_encrypt('globex', 'after retirement');
EOF
)
case "$out" in t*"PQ003"*) ok "a key retired by hand reaches a session with cached keys" ;; *) fail "retirement: $out" ;; esac
q -c "UPDATE pq.tenant_key_versions SET state = 'active' WHERE tenant = 'globex'" >/dev/null

echo "# a killed backend loses nothing that was committed"
q -c "CREATE TABLE crash_t (id int, v bytea)" \
  -c "INSERT INTO crash_t SELECT i, pq_encrypt('acme', 'row-' || i) FROM generate_series(1, 100) i" >/dev/null
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -c "SELECT pg_sleep(60)" postgres >/dev/null 2>&1 &
sleep 1
victim=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' LIMIT 1")
kill -9 "$victim" 2>/dev/null
wait 2>/dev/null
for _ in $(seq 1 30); do q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
check "after crash recovery: rows decrypt" "100" \
  "$(q -c "SELECT count(*) FROM crash_t WHERE pq_decrypt_text(v) = 'row-' || id")"
check "after crash recovery: keys intact" "2" "$(q -c "SELECT count(*) FROM pq.tenant_keys WHERE state = 'active'")"

echo "# the server log names no plaintext and no key"
q -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'canary-plaintext-7f3a', 'k'), 'wrong')" >/dev/null 2>&1
q -c "SELECT pq_decrypt_text(pq_encrypt('acme', '\xff'::bytea))" >/dev/null 2>&1
kek_hex=$(od -An -tx1 "$base/c2/master.key" | tr -d ' \n')
log="$base/c2/server.log"
if grep -q -e "canary-plaintext" -e "secret-value" -e "sealed-value" "$log"; then fail "log has plaintext"; else ok "log has no plaintext"; fi
if grep -qi -e "${kek_hex:0:16}" "$log"; then fail "log has key bytes"; else ok "log has no key-file bytes"; fi
check "log has the errors themselves" "t" "$(grep -q 'decryption failed' "$log" && echo t)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
