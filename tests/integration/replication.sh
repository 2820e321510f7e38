# Logical replication of the key tables: the subscriber applies rows with
# session_replication_role = replica, and its invalidation triggers (ENABLE
# ALWAYS) still fire, so its sessions see grants and revocations made on
# the publisher.
# checks: 5
pub="$base/publisher"
sub="$base/subscriber"
port=$port_replication
sport=$((port + 1))
cluster_start "$pub" "$port" "${quiet[@]}" "wal_level = logical" || return 1
cluster_start "$sub" "$sport" "${quiet[@]}" || return 1
cp "$pub/master.key" "$sub/master.key"   # the subscriber unwraps the same master data key
q "$sport" -c "SELECT pg_reload_conf()" >/dev/null
for p in "$port" "$sport"; do
  q "$p" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" \
    -c "CREATE TABLE t (name text PRIMARY KEY, v bytea)" -c "GRANT SELECT ON t TO it_app" >/dev/null
done
q "$port" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.grant_tenant('acme', 'it_app')" \
  -c "INSERT INTO t VALUES ('a', pq_encrypt('acme', 'replicated', 'a'))" \
  -c "CREATE PUBLICATION keys FOR TABLE pq.master_keys, pq.tenants, pq.tenant_key_versions, pq.tenant_grants, t" >/dev/null
q "$sport" -c "CREATE SUBSCRIPTION keys CONNECTION 'host=127.0.0.1 port=$port user=postgres dbname=postgres' PUBLICATION keys" >/dev/null 2>&1
# each table is copied by its own sync worker: wait until all are ready
wait_for "$sport" "SELECT count(*) = 5 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel" \
  || fail "subscriber: initial copy"
check "subscriber: the triggers fire under replication" "AAAAARRRRR" \
  "$(q "$sport" -c "SELECT string_agg(tgenabled::text, '' ORDER BY tgname, tgrelid) FROM pg_trigger WHERE tgname LIKE 'key_cache_invalidation%'")"
check "subscriber: decrypts replicated rows" "replicated" "$(qas "$sport" it_app -c "SELECT pq_decrypt_text(v, name) FROM t")"

cat >"$base/revoke_and_apply.sh" <<SH
psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pq.revoke_tenant('acme', 'it_app')" postgres >/dev/null
for _ in \$(seq 1 150); do
  [ "\$(psql -X -At -q -h 127.0.0.1 -p $sport -U postgres -c "SELECT count(*) FROM pq.tenant_grants" postgres)" = 0 ] && break
  sleep 0.2
done
SH
out=$(qas "$sport" it_app <<SQL
SELECT 'cached', pq_decrypt_text(v, name) FROM t;
\! bash $base/revoke_and_apply.sh
SELECT 'after', pq_decrypt_text(v, name) FROM t;
SELECT 'later', pq_decrypt_text(v, name) FROM t;
SQL
)
check_contains "subscriber: decrypted before" "cached|replicated" "$out"
check_absent "subscriber: a replicated revocation reaches a session with cached keys" "after|replicated" "$out"
check_absent "subscriber: and stays" "later|replicated" "$out"
q "$sport" -c "DROP SUBSCRIPTION keys" >/dev/null 2>&1
cluster_stop "$sub"
cluster_stop "$pub"
