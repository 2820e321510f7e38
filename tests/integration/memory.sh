# Memory: caught errors leave nothing behind, and a value too large for the
# memory the server may use is an ERROR, never an aborted backend.
# checks: 13
dir="$base/memory"
port=$port_memory
cluster_start "$dir" "$port" "${quiet[@]}" "shared_buffers = '16MB'" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" >/dev/null

echo "# 100,000 caught errors in one session leave its RSS within 1 MB"
errors_loop() { # errors_loop N: N caught PQ001 errors (the custom SQLSTATE path)
  echo "DO \$\$ DECLARE e bytea := pq_encrypt('acme', 'v', 'k'); BEGIN
          FOR i IN 1..$1 LOOP
            BEGIN PERFORM pq_decrypt(e, 'wrong'::bytea); EXCEPTION WHEN OTHERS THEN NULL; END;
          END LOOP; END \$\$;"
}
rss="SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\\s+(\\d+) kB'))[1]"
out=$(q "$port" <<SQL
$(errors_loop 20000)
$rss;
$(errors_loop 100000)
$rss;
SQL
)
before=$(echo "$out" | sed -n 1p)
after=$(echo "$out" | sed -n 2p)
growth=$((after - before))
[ "$growth" -lt 1024 ] && ok "RSS grew ${growth} kB over 100,000 caught errors" \
  || fail "RSS grew ${growth} kB over 100,000 caught errors (from $before to $after kB)"

echo "# a result over the 1 GB bytea limit: 54000 before anything is allocated"
check "a batch of a million items (more than 1 GB of envelopes): 54000" "54000" \
  "$(sqlstate "$port" "SELECT cardinality(pq_seal_batch(pq.tenant_public_key('acme'), (SELECT array_agg('\\x01'::bytea) FROM generate_series(1, 1000000))))")"

echo "# a 400 MB value under a virtual-memory limit: ERROR, no crash recovery"
# The envelope for pq_decrypt, made while there is no limit.
q "$port" -c "CREATE TABLE big AS SELECT pq_encrypt('acme', repeat('x', 400000000)) AS e" >/dev/null
check "a 400 MB envelope exists" "400000062" "$(q "$port" -c "SELECT length(e) FROM big")"
base_kb=$(q "$port" -c "SELECT length(pq_decrypt(pq_encrypt('acme', 'warm'))) > 0" \
  -c "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmSize:\\s+(\\d+) kB'))[1]" | tail -1)
cluster_stop "$dir"
# Room for one 400 MB value (the input PostgreSQL builds), not for a second (our result).
limit_kb=$((base_kb + 600 * 1024))
as_postgres bash -c "ulimit -v $limit_kb; exec $PGBIN/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -t 60 start" >/dev/null
# (The subquery keeps the planner from folding repeat() into a constant,
# which would copy the 400 MB value once more before the call.)
for name in pq_encrypt pq_seal pq_decrypt; do
  case $name in
    pq_encrypt) sql="SELECT length(pq_encrypt('acme', repeat('x', (SELECT 400000000))))" ;;
    pq_seal) sql="SELECT length(pq_seal(pq.tenant_public_key('acme'), repeat('x', (SELECT 400000000))))" ;;
    pq_decrypt) sql="SELECT length(pq_decrypt(e)) FROM big" ;;
  esac
  out=$(psql -X -At -q -v VERBOSITY=verbose -h 127.0.0.1 -p "$port" -U postgres -c "$sql" postgres 2>&1)
  check_contains "$name of 400 MB under ulimit -v: 53200" "53200" "$out"
  check_contains "$name of 400 MB under ulimit -v: the extension's own error" "out of memory for a value of this size" "$out"
done
check "the server still answers" "1" "$(q "$port" -c "SELECT 1")"
check "no backend crashed" "" "$(grep -E 'terminated by signal|reinitializing' "$dir/server.log")"
q "$port" -c "DROP TABLE big" >/dev/null
cluster_stop "$dir"

echo "# no locked memory allowed (ulimit -l 0): keys still work, one WARNING per backend"
as_postgres bash -c "ulimit -l 0; exec $PGBIN/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -t 60 start" >/dev/null
out=$(q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'unlocked'))" \
  -c "SET apg_pqcrypto.key_cache_ttl = 0" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'again'))")
check_contains "unlocked keys still work" "again" "$out"
check "one WARNING about locking" "1" "$(echo "$out" | grep -c 'could not lock its cached keys')"
cluster_stop "$dir"
