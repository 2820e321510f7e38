# Eight clients encrypting, decrypting and updating a tracked table for
# 60 s while the tenant key rotates every few seconds and re-encryption
# jobs run: no error, no deadlock, every row decrypts afterwards. Then
# four clients signing while the master key is rotated again and again.
# checks: 10
dir="$base/stress"
port=$port_stress
seconds=${APG_PQ_STRESS_SECONDS:-60}
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('busy')" \
  -c "CREATE TABLE tracked (id int PRIMARY KEY, name text NOT NULL, v bytea)" \
  -c "INSERT INTO tracked SELECT i, 'n' || i, pq_encrypt('busy', 'value-' || i, 'n' || i) FROM generate_series(1, 10000) i" \
  -c "SELECT pq.track_column('tracked', 'v', tenant => 'busy', aad_column => 'name')" >/dev/null
cat >"$base/stress.sql" <<'SQL'
\set id random(1, 10000)
SELECT pq_decrypt_text(v, name) FROM tracked WHERE id = :id;
UPDATE tracked SET v = pq_encrypt('busy', 'value-' || :id, name) WHERE id = :id;
SELECT pq_decrypt_text(pq_encrypt('busy', 'x', 'k'), 'k');
SQL
pgbench -n -c 8 -j 2 -T "$seconds" -f "$base/stress.sql" -h 127.0.0.1 -p "$port" -U postgres postgres >"$base/stress.out" 2>&1 &
bench=$!
# Rotations every few seconds for as long as the clients run (however fast
# or slow the machine is); the clients' own counters say they were running.
while kill -0 "$bench" 2>/dev/null; do
  sleep 3
  kill -0 "$bench" 2>/dev/null || break
  q "$port" -c "SELECT pq.rotate_tenant_key('busy', 'stress')" -c "SELECT count(*) FROM pq.reencrypt_tenant('busy', 500)" >/dev/null
done
wait "$bench"
out=$(cat "$base/stress.out")
check_absent "no client aborted" "aborted" "$out"
check_contains "no transaction failed" "number of failed transactions: 0 " "$out"
echo "# $(echo "$out" | grep -E '^number of transactions actually processed|^tps' | tr '\n' ' ')"
rotations=$(q "$port" -c "SELECT count(*) FROM pq.key_events WHERE event = 'key_rotated' AND tenant = 'busy'")
[ "$rotations" -ge 3 ] && ok "$rotations rotations ran while the clients did" || fail "only $rotations rotations ran"
for _ in $(seq 1 120); do
  [ "$(q "$port" -c "SELECT count(*) FROM pq.job_queue WHERE state IN ('queued', 'running')")" = 0 ] && break
  sleep 0.5
done
check "the last re-encryption job finished" "0" "$(q "$port" -c "SELECT count(*) FROM pq.job_queue WHERE state NOT IN ('completed', 'cancelled')")"
check "no row failed to re-encrypt" "0" "$(q "$port" -c "SELECT count(*) FROM pq.job_failures")"
check "every row decrypts" "10000" "$(q "$port" -c "SELECT count(*) FROM tracked WHERE pq_decrypt_text(v, name) = 'value-' || id")"
check "every row is under the active version" "t" \
  "$(q "$port" -c "SELECT bool_and(substr(v, 3, 16) = (SELECT kid FROM pq.tenant_key_versions WHERE tenant = 'busy' AND state = 'active')) FROM tracked")"
check "no deadlock, no error in the server log" "" "$(grep -E 'deadlock|ERROR' "$dir/server.log" | head -3)"

# Signing while the master key moves: each call loads its version afresh
# (key_cache_ttl = 0) and the signing key after it, while master key
# rotations rewrap every seed under a new MDK and commit in between. The
# signing seed must be opened with the MDK its row names when it is read,
# not the one the version was loaded under. scripts/chaos.sh found that
# race ("the ML-DSA seed does not unwrap", 3 times in a 10-minute soak with
# 23 master key moves); it needs a rotation to commit inside one call, and
# 20 s of this did not hit it before the fix: this is the path under load,
# not a reproduction.
cat >"$base/sign.sql" <<'SQL'
\set k random(1, 50)
SELECT pq_verify('busy', '\x01'::bytea, pq_sign('busy', '\x01'::bytea));
SELECT pq.config_set('busy', 'k' || :k, 'value');
SQL
PGOPTIONS="-c apg_pqcrypto.key_cache_ttl=0" pgbench -n -c 4 -j 2 -T "${APG_PQ_STRESS_SIGN_SECONDS:-20}" -f "$base/sign.sql" \
  -h 127.0.0.1 -p "$port" -U postgres postgres >"$base/sign.out" 2>&1 &
bench=$!
moves=0
while kill -0 "$bench" 2>/dev/null; do
  q "$port" -c "SELECT 1 FROM pq.rotate_master_key('file')" >/dev/null && moves=$((moves + 1))
done
wait "$bench"
out=$(cat "$base/sign.out")
echo "# $moves master key rotations; $(echo "$out" | grep -E '^number of transactions actually processed|^number of failed' | tr '\n' ' ')"
check_contains "signing while the master key moves: no transaction failed" "number of failed transactions: 0 " "$out"
check "...and no stored key was reported damaged" "" "$(grep -E 'ERROR' "$dir/server.log" | head -3)"
cluster_stop "$dir"
