# The signed configuration store and the audit trail under load and under
# attack: eight clients writing config values (READ COMMITTED, REPEATABLE
# READ and SERIALIZABLE) while the tenant key rotates and the worker makes
# checkpoints leave a chain without gaps or forks that verifies in the
# server and offline (tests/verify_audit.py, Python's cryptography); failed
# decryptions in aborted transactions are counted and raise the alert; a
# superuser who edits, deletes, reorders or truncates rows behind the
# triggers' back is caught, with the first bad row named.
# checks: 73
dir="$base/audit"
port=$port_audit
seconds=${APG_PQ_AUDIT_SECONDS:-30}
python=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}/bin/python
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" "apg_pqcrypto.audit_checkpoint_interval = 3" \
  "apg_pqcrypto.alert_failed_decrypts_per_minute = 5" "apg_pqcrypto.audit_level = all" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('cfg')" -c "CREATE ROLE it_cfg LOGIN IN ROLE pq_user" \
  -c "CREATE ROLE it_auditor LOGIN IN ROLE pq_admin" -c "SELECT pq.grant_tenant('cfg', 'it_cfg')" >/dev/null

# --- eight writers, three isolation levels, rotations meanwhile
for level in "READ COMMITTED" "REPEATABLE READ" "SERIALIZABLE"; do
  f="$base/audit_${level// /_}.sql"
  printf '%s\n' '\set k random(1, 40)' "BEGIN ISOLATION LEVEL $level;" \
    "SELECT pq.config_set('cfg', 'key-' || :k, 'value-' || :k || '-' || :client_id || '-' || random(), 'client-' || :client_id);" \
    "SELECT pq.config_get('cfg', 'key-' || :k);" 'COMMIT;' >"$f"
done
(
  end=$((SECONDS + seconds))
  while [ $SECONDS -lt "$end" ]; do
    sleep 4
    q "$port" -c "SELECT pq.rotate_tenant_key('cfg', 'rotation under load')" >/dev/null
  done
) &
rotator=$!
out=$(pgbench -n -c 8 -j 2 -T "$seconds" --max-tries=20 -U it_cfg -h 127.0.0.1 -p "$port" \
  -f "$base/audit_READ_COMMITTED.sql@2" -f "$base/audit_REPEATABLE_READ.sql@1" -f "$base/audit_SERIALIZABLE.sql@1" postgres 2>&1)
wait "$rotator"
check_absent "no writer aborted" "aborted" "$out"
check_contains "no transaction failed (serialization retries allowed)" "number of failed transactions: 0 " "$out"
echo "# $(echo "$out" | grep -E '^number of transactions actually processed|^tps|^number of transactions retried' | tr '\n' ' ')"
changes=$(q "$port" -c "SELECT count(*) FROM pq.config_records WHERE tenant = 'cfg'")
[ "$changes" -ge 100 ] && ok "$changes config changes were written" || fail "only $changes config changes"
check "audit ids have no gaps" "t" "$(q "$port" -c "SELECT count(*) = max(id) AND min(id) = 1 FROM pq.audit_log")"
check "no forks: every row has its own predecessor" "t" \
  "$(q "$port" -c "SELECT count(DISTINCT prev_hash) = count(*) FROM pq.audit_log")"
wait_for "$port" "SELECT NOT EXISTS (SELECT 1 FROM pq.audit_pending)" && ok "the worker chained every row left pending" \
  || fail "rows stay pending: $(q "$port" -c "SELECT count(*) FROM pq.audit_pending")"
check "every change is in the audit chain once" "$changes" \
  "$(q "$port" -c "SELECT count(*) FROM pq.audit_log WHERE tenant = 'cfg' AND event = 'config_set'")"
check "a key's changes are chained in the order of its versions" "t" \
  "$(q "$port" -c "SELECT bool_and(v > pv) FROM (SELECT (details->>'version')::int AS v, lag((details->>'version')::int) OVER (PARTITION BY details->>'key' ORDER BY id) AS pv
                    FROM pq.audit_log WHERE tenant = 'cfg' AND event = 'config_set') s WHERE pv IS NOT NULL")"
check "config versions have no gaps" "t" \
  "$(q "$port" -c "SELECT bool_and(n = maxv) FROM (SELECT key, count(*) AS n, max(version) AS maxv FROM pq.config_records GROUP BY key) s")"
rotations=$(q "$port" -c "SELECT count(*) FROM pq.audit_log WHERE event = 'key_rotated'")
[ "$rotations" -ge 2 ] && ok "$rotations key rotations were chained meanwhile" || fail "only $rotations rotations"
check "records are signed by more than one key version" "t" \
  "$(q "$port" -c "SELECT count(DISTINCT substr(signature, 3, 16)) > 1 FROM pq.config_records")"
check "the config store verifies in the server" "t|$changes" "$(q "$port" -c "SELECT ok, records_checked FROM pq.config_verify('cfg')")"
wait_for "$port" "SELECT count(*) >= 2 FROM pq.audit_checkpoints" && ok "the worker made checkpoints" || fail "no worker checkpoints"
check "the audit chain verifies in the server" "t||t" \
  "$(q "$port" -c "SELECT ok, first_bad_id, last_checkpoint IS NOT NULL FROM pq.verify_audit_chain()")"
out=$("$python" "$root/tests/verify_audit.py" check --port "$port" --user it_auditor --tenant cfg 2>&1)
check_contains "verified offline by an auditor role (cryptography: ML-DSA-65, Ed25519)" "verified: " "$out"
echo "# $out" | tail -1

# --- other audit suites (apg_pqcrypto.audit_signature): after a change the
# next checkpoint retires the audit key and signs with a new key of those
# algorithms; every checkpoint, old and new, verifies online and offline.
last_checkpoint="SELECT k.algorithm, length(c.ml_dsa_signature), c.ed25519_signature IS NOT NULL, length(c.slh_dsa_signature),
                        (SELECT count(*) FROM pq.audit_keys WHERE state = 'active')
                   FROM pq.audit_checkpoints c JOIN pq.audit_keys k ON k.kid = c.key_kid ORDER BY c.id DESC LIMIT 1"
for suite in "ml-dsa-87+ed25519|4627|t||1" "slh-dsa+ml-dsa-65|3309|f|7856|1" "ml-dsa-65+ed25519|3309|t||1"; do
  name=${suite%%|*}
  q "$port" -c "ALTER SYSTEM SET apg_pqcrypto.audit_signature = '$name'" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
  q "$port" -c "SELECT head_id FROM pq.audit_checkpoint()" >/dev/null
  check "audit_signature = $name: the next checkpoint is signed by a new key of it" "$suite" "$(q "$port" -c "$last_checkpoint")"
  check "... every checkpoint verifies in the server" "t|" "$(q "$port" -c "SELECT ok, first_bad_id FROM pq.verify_audit_chain()")"
  check_contains "... and offline" "verified: " "$("$python" "$root/tests/verify_audit.py" check --port "$port" --user it_auditor --tenant cfg 2>&1)"
done
# A flipped bit in the SLH-DSA signature (a superuser bypassing the
# append-only triggers) is caught by both verifiers.
slh_id=$(q "$port" -c "SELECT max(id) FROM pq.audit_checkpoints WHERE slh_dsa_signature IS NOT NULL")
q "$port" -c "SET session_replication_role = replica" \
  -c "UPDATE pq.audit_checkpoints SET slh_dsa_signature = set_byte(slh_dsa_signature, 4000, get_byte(slh_dsa_signature, 4000) # 1) WHERE id = $slh_id" >/dev/null
check "a tampered SLH-DSA checkpoint signature fails in the server" "f|checkpoint $slh_id has an invalid signature" \
  "$(q "$port" -c "SELECT ok, problem FROM pq.verify_audit_chain()")"
check_contains "... and offline" "checkpoint $slh_id: the SLH-DSA signature does not verify" \
  "$("$python" "$root/tests/verify_audit.py" check --port "$port" --user it_auditor --tenant cfg 2>&1)"
q "$port" -c "SET session_replication_role = replica" \
  -c "UPDATE pq.audit_checkpoints SET slh_dsa_signature = set_byte(slh_dsa_signature, 4000, get_byte(slh_dsa_signature, 4000) # 1) WHERE id = $slh_id" >/dev/null
check "three audit keys retired, each still verifying its checkpoints" "3" \
  "$(q "$port" -c "SELECT count(*) FROM pq.audit_keys WHERE state = 'retired'")"
q "$port" -c "ALTER SYSTEM SET apg_pqcrypto.audit_signature = 'rsa'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
check "an unknown audit_signature: 22023 at the next checkpoint" "22023" "$(sqlstate "$port" "SELECT pq.audit_checkpoint()")"
q "$port" -c "ALTER SYSTEM RESET apg_pqcrypto.audit_signature" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
check "the application reads every key" "40" \
  "$(qas "$port" it_cfg -c "SELECT count(*) FROM pq.config WHERE pq.config_get(tenant, key) LIKE 'value-%'")"

# --- writers never wait for the chain: a transaction holds its lock while
# others write config values and rotate under every isolation level with
# lock_timeout = 2s; their rows wait in pq.audit_pending, count for
# config_verify, and are chained in order after the holder commits.
before=$(q "$port" -c "SELECT max(id) FROM pq.audit_log")
( psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "BEGIN" -c "LOCK TABLE pq.audit_chain_lock IN EXCLUSIVE MODE" \
    -c "SELECT pg_sleep(8)" -c "COMMIT" >/dev/null 2>&1 ) &
holder=$!
wait_for "$port" "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'pq.audit_chain_lock'::regclass AND granted)" \
  && ok "a transaction holds the chain lock" || fail "the holder did not get the chain lock"
written=""
for level in "READ COMMITTED" "REPEATABLE READ" "SERIALIZABLE"; do
  written+=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U it_cfg postgres -c "SET lock_timeout = '2s'" -c "BEGIN ISOLATION LEVEL $level" \
    -c "SELECT pq.config_set('cfg', 'unblocked', '$level')" -c "SELECT pq.config_set('cfg', 'unblocked', '$level again')" -c "COMMIT" 2>&1 | tr '\n' ' ')
done
check "config writers under every isolation level commit while the chain lock is held" "1 2 3 4 5 6 " "$written"
check "a key rotation does too" "t" "$(q "$port" -c "SET lock_timeout = '2s'" -c "SELECT new_version > 1 FROM pq.rotate_tenant_key('cfg', 'while held')")"
check "their rows wait in pq.audit_pending, in the order written" "7|config_set,config_set,config_set,config_set,config_set,config_set,key_rotated" \
  "$(q "$port" -c "SELECT count(*), string_agg(event, ',' ORDER BY seq) FROM pq.audit_pending")"
check "pending rows count as in the trail for config_verify" "t" "$(q "$port" -c "SELECT ok FROM pq.config_verify('cfg')")"
check "pq.audit_flush waits for the holder (lock_timeout)" "55P03" "$(sqlstate "$port" "SET lock_timeout = '300ms'; SELECT pq.audit_flush()")"
check "pq.audit_flush is pq_admin's" "42501" "$(sqlstate "$port" "SELECT pq.audit_flush()" it_cfg)"
check "pq_user cannot read pq.audit_pending" "42501" "$(sqlstate "$port" "SELECT count(*) FROM pq.audit_pending" it_cfg)"
wait "$holder"
wait_for "$port" "SELECT NOT EXISTS (SELECT 1 FROM pq.audit_pending)" && ok "after the holder committed, the worker chained them" \
  || fail "rows stay pending after the holder: $(q "$port" -c "SELECT count(*) FROM pq.audit_pending")"
check "chained after the head, in the order written, keeping their writers' times" \
  "$((before + 7))|config_set,config_set,config_set,config_set,config_set,config_set,key_rotated|t" \
  "$(q "$port" -c "SELECT max(id), string_agg(event, ',' ORDER BY id), bool_and(ts < now() - interval '1 second') FROM pq.audit_log WHERE id > $before")"
check "the values are the last written" "SERIALIZABLE again|6" \
  "$(qas "$port" it_cfg -c "SELECT pq.config_get('cfg', 'unblocked'), (SELECT current_version FROM pq.config WHERE key = 'unblocked')")"
check "the chain and the config store still verify" "t|t" \
  "$(q "$port" -c "SELECT (SELECT ok FROM pq.verify_audit_chain()), (SELECT ok FROM pq.config_verify('cfg'))" )"

# --- failed decryptions in aborted transactions, the alert and its NOTIFY
# The listener is a role with no privilege at all: LISTEN checks none.
q "$port" -c "CREATE ROLE it_nobody LOGIN" >/dev/null
( psql -X -h 127.0.0.1 -p "$port" -U it_nobody postgres -c "LISTEN pq_security_event" -c "SELECT pg_sleep(12)" \
    -c "SELECT 1" >"$base/audit_listen.out" 2>&1 ) &
listener=$!
sleep 1
for i in $(seq 1 8); do
  psql -X -q -h 127.0.0.1 -p "$port" -U it_cfg postgres \
    -c "BEGIN" -c "SELECT pq.config_set('cfg', 'in-aborted-$i', 'x')" -c "SELECT pq_decrypt(pq_encrypt('cfg', 'x', 'right'), 'wrong')" \
    >/dev/null 2>&1
done
wait_for "$port" "SELECT coalesce(sum(count), 0) >= 8 FROM pq.security_events WHERE tenant = 'cfg' AND role_name = 'it_cfg' AND kind = 'failed_decrypt'" \
  && ok "failed decryptions of aborted transactions are counted" || fail "failed decryptions not counted: $(q "$port" -c "SELECT * FROM pq.security_events")"
check "nothing of the aborted transactions was stored" "0" "$(q "$port" -c "SELECT count(*) FROM pq.config_records WHERE key LIKE 'in-aborted-%'")"
wait "$listener"
note=$(grep -m1 'Asynchronous notification "pq_security_event"' "$base/audit_listen.out")
alert_id=$(echo "$note" | sed -n 's/.*payload "{"event_id":\([0-9]*\)}".*/\1/p')
[ -n "$alert_id" ] && ok "the burst sent NOTIFY pq_security_event with an opaque event id" \
  || fail "the burst sent NOTIFY pq_security_event with an opaque event id: $(cat "$base/audit_listen.out")"
check_absent "the payload names no tenant" "cfg" "$note"
check "pq_admin reads the alert behind the id" "failed_decrypt_alert|cfg|t" \
  "$(q "$port" -c "SELECT event, tenant, (details->>'failed_decrypts')::int > 5 FROM pq.key_events WHERE id = 0$alert_id")"
check "the alert is in the audit chain too" "1" "$(q "$port" -c "SELECT count(*) FROM pq.audit_log WHERE event = 'failed_decrypt_alert' AND tenant = 'cfg'")"
check_contains "the burst is a WARNING in the server log" 'failed decryptions for tenant "cfg" in the minute' "$(cat "$dir/server.log")"
check "usage is counted per role at audit_level = all" "t" \
  "$(q "$port" -c "SELECT sum(count) > 0 FROM pq.usage_counts WHERE tenant = 'cfg' AND role_name = 'it_cfg' AND operation = 'encrypt'")"
q "$port" -c "SET log_statement = 'all'" -c "SELECT 'audit-log-canary'" \
  -c "SELECT pq.config_set('cfg', 'logged', 'value-1-logged-literal')" >/dev/null
check_contains "control: the config_set was logged (log_statement = 'all')" "audit-log-canary" "$(cat "$dir/server.log")"
check_contains "control: ... redacted" "pq.config_set(<redacted>)" "$(cat "$dir/server.log")"
check_absent "no value in the server log" "value-1-" "$(cat "$dir/server.log")"

# --- tampering by a superuser who bypasses the triggers
q "$port" -c "ALTER SYSTEM SET apg_pqcrypto.audit_checkpoint_interval = 0" -c "SELECT pg_reload_conf()" >/dev/null
sleep 2
q "$port" -c "SELECT head_id FROM pq.audit_checkpoint()" >/dev/null
q "$port" -c "CREATE TABLE saved_audit AS SELECT * FROM pq.audit_log" \
  -c "CREATE TABLE saved_records AS SELECT * FROM pq.config_records" >/dev/null
restore() {
  q "$port" -c "SET session_replication_role = replica" -c "DELETE FROM pq.audit_log" -c "INSERT INTO pq.audit_log SELECT * FROM saved_audit" \
    -c "DELETE FROM pq.config_records" -c "INSERT INTO pq.config_records SELECT * FROM saved_records" >/dev/null
}
tamper() { q "$port" -c "SET session_replication_role = replica" -c "$1" >/dev/null; }
chain() { q "$port" -c "SELECT ok, first_bad_id FROM pq.verify_audit_chain()"; }
offline() { "$python" "$root/tests/verify_audit.py" check --port "$port" --user it_auditor --tenant cfg 2>&1 | tail -1; }
check "the untampered state verifies" "t|" "$(chain)"

tamper "UPDATE pq.audit_log SET actor = 'mallory' WHERE id = 10"
check "an edited audit row is named" "f|10" "$(chain)"
check "... and offline" "FAILED: audit row 10 was changed: its hash does not match its contents" "$(offline)"
restore
check "restored, the chain verifies again" "t|" "$(chain)"

tamper "DELETE FROM pq.audit_log WHERE id = 12"
check "a deleted audit row is named" "f|12" "$(chain)"
check "... and offline" "FAILED: audit row 12 is missing" "$(offline)"
restore

tamper "UPDATE pq.audit_log a SET ts = b.ts, event = b.event, tenant = b.tenant, actor = b.actor, details = b.details
          FROM saved_audit b WHERE (a.id, b.id) IN ((20, 21), (21, 20))"
check "two reordered audit rows: the first is named" "f|20" "$(chain)"
check "... and offline" "FAILED: audit row 20 was changed: its hash does not match its contents" "$(offline)"
restore

head=$(q "$port" -c "SELECT max(head_id) FROM pq.audit_checkpoints")
tamper "DELETE FROM pq.audit_log WHERE id > $head - 3"
check "a truncated tail is caught by the last checkpoint" "f|$((head - 2))" "$(chain)"
check_contains "... and offline" "FAILED: audit rows $((head - 2)) to " "$(offline)"
restore

tamper "UPDATE pq.audit_checkpoints SET head_hash = '\\x$(printf '0%.0s' $(seq 1 64))' WHERE id = (SELECT max(id) FROM pq.audit_checkpoints)"
check_contains "a forged checkpoint is caught" "invalid signature" "$(q "$port" -c "SELECT problem FROM pq.verify_audit_chain()")"
check_contains "... and offline" "signature does not verify" "$(offline)"
tamper "DELETE FROM pq.audit_checkpoints WHERE id = (SELECT max(id) FROM pq.audit_checkpoints)"

key=$(q "$port" -c "SELECT key FROM pq.config_records WHERE version = 3 ORDER BY key LIMIT 1")
tamper "UPDATE pq.config_records SET envelope = (SELECT envelope FROM saved_records WHERE key = '$key' AND version = 1)
          WHERE key = '$key' AND version = 3"
check "a config value rolled back to an old envelope is named" "f|$key|3" \
  "$(q "$port" -c "SELECT ok, first_bad_key, first_bad_version FROM pq.config_verify('cfg')")"
check "... and offline" "FAILED: config record '$key' version 3: the stored value does not match new_hash" "$(offline)"
restore
tamper "DELETE FROM pq.config_records WHERE key = '$key' AND version = 2"
check "a deleted config version is named" "f|$key|3" \
  "$(q "$port" -c "SELECT ok, first_bad_key, first_bad_version FROM pq.config_verify('cfg')")"
restore
tamper "UPDATE pq.config_records a SET op = b.op, envelope = b.envelope, user_id = b.user_id, ts = b.ts, old_hash = b.old_hash,
                 new_hash = b.new_hash, prev_hash = b.prev_hash, record_hash = b.record_hash, signature = b.signature
          FROM saved_records b WHERE a.tenant = b.tenant AND a.key = b.key AND a.key = '$key'
           AND (a.version, b.version) IN ((2, 3), (3, 2))"
check "two reordered config versions are named" "f|$key|2" \
  "$(q "$port" -c "SELECT ok, first_bad_key, first_bad_version FROM pq.config_verify('cfg')")"
restore
check "restored, everything verifies again" "t|t" \
  "$(q "$port" -c "SELECT (SELECT ok FROM pq.config_verify('cfg')), (SELECT ok FROM pq.verify_audit_chain())")"
check "... and offline" "verified:" "$(offline | cut -d' ' -f1)"

# A checkpoint's line in the server log is written when it commits: one
# rolled back never happened, and its head is in no log.
rolled=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "BEGIN" -c "SELECT pq.create_tenant('rolled_back') IS NOT NULL" \
           -c "SELECT encode(head_hash, 'hex') FROM pq.audit_checkpoint()" -c "ROLLBACK" 2>&1 | tail -1)
kept=$(q "$port" -c "SELECT encode(head_hash, 'hex') FROM pq.audit_checkpoint()")
[ ${#rolled} = 64 ] && [ ${#kept} = 64 ] && ok "two checkpoints made, one rolled back" || fail "two checkpoints made: [$rolled] [$kept]"
check_absent "the rolled-back checkpoint's head is not in the server log" "head_hash=$rolled" "$(cat "$dir/server.log")"
check_contains "the committed one's is" "head_hash=$kept" "$(cat "$dir/server.log")"
cluster_stop "$dir"
