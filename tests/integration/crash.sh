# A backend killed with SIGKILL while inside the extension's functions: the
# server goes through crash recovery, and nothing committed is lost; a
# tenant created in a transaction that was still open is gone.
# checks: 9
dir="$base/crash"
port=$port_crash
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" \
  -c "CREATE TABLE crash_t (id int, v bytea)" \
  -c "INSERT INTO crash_t SELECT i, pq_encrypt('acme', 'row-' || i) FROM generate_series(1, 100) i" >/dev/null

# An open transaction that created a tenant, and a long call into pq_decrypt.
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1 <<'SQL' &
BEGIN;
SELECT pq.create_tenant('uncommitted');
SELECT count(pq_decrypt(v)) FROM crash_t, generate_series(1, 100000000);
SQL
victim=""
for _ in $(seq 1 100); do
  victim=$(q "$port" -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT count(pq_decrypt(v))%' AND state = 'active' AND now() - query_start > interval '300 ms'")
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] && ok "the backend is inside pq_decrypt" || fail "the backend is inside pq_decrypt"
kill -9 "$victim"
check "kill -9 delivered" "0" "$?"
wait 2>/dev/null
for _ in $(seq 1 60); do q "$port" -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
log=$(cat "$dir/server.log")
check_contains "the server noticed the killed backend" "was terminated by signal 9" "$log"
check_contains "the server went through crash recovery" "all server processes terminated; reinitializing" "$log"
check_contains "recovery completed" "database system is ready to accept connections" "$(echo "$log" | tail -5)"
check "after crash recovery: committed rows decrypt" "100" \
  "$(q "$port" -c "SELECT count(*) FROM crash_t WHERE pq_decrypt_text(v) = 'row-' || id")"
check "after crash recovery: committed keys intact" "acme" "$(q "$port" -c "SELECT string_agg(tenant, ',') FROM pq.tenant_keys")"
check "after crash recovery: the open transaction's tenant is gone" "0" \
  "$(q "$port" -c "SELECT count(*) FROM pq.tenants WHERE name = 'uncommitted'")"
check "after crash recovery: new values encrypt" "new" "$(q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'new'))")"
cluster_stop "$dir"
