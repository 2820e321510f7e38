# The background worker and the lifecycle under crashes: scheduled rotation
# with its notification first, a 100,000-row re-encryption job that
# survives kill -9 of the worker, kill -9 in the middle of a tenant key and
# a master key rotation, the shared generation counter, and READ COMMITTED
# batches under any default isolation.
# checks: 59
dir="$base/worker"
port=$port_worker
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
worker_pid() { q "$port" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'"; }
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'" \
  && ok "the worker runs, visible in pg_stat_activity" || fail "the worker runs"

echo "# a 2-second rotation policy: rotated on schedule, announced before"
q "$port" -c "SELECT pq.create_tenant('sched')" >/dev/null
listen=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 <<SQL
LISTEN pq_key_rotation;
SELECT pq.set_policy('sched', '{"rotation_interval": 2, "notification_before": 1, "auto_rotation": true}') IS NOT NULL;
$(for _ in $(seq 1 200); do
    echo "SELECT 'active ' || version FROM pq.tenant_keys WHERE tenant = 'sched' AND state = 'active';"
    echo "SELECT version >= 2 AS rotated FROM pq.tenant_keys WHERE tenant = 'sched' AND state = 'active' \\gset"
    echo "\\if :rotated"; echo "\\q"; echo "\\endif"
    echo "SELECT pg_sleep(0.15);"
  done)
SQL
)
first_note=$(echo "$listen" | grep -n 'Asynchronous notification "pq_key_rotation"' | head -1 | cut -d: -f1)
first_v2=$(echo "$listen" | grep -n '^active 2$' | head -1 | cut -d: -f1)
[ -n "$first_note" ] && [ -n "$first_v2" ] && [ "$first_note" -lt "$first_v2" ] \
  && ok "the LISTEN client was notified before the rotation" || fail "notification before rotation: $listen"
note=$(echo "$listen" | grep -m1 Asynchronous)
check_absent "the notification names no tenant" "sched" "$note"
note_id=$(echo "$note" | sed -n 's/.*payload "{"event_id":\([0-9]*\)}".*/\1/p')
check "its event id leads pq_admin to tenant, version and due time" "rotation_notified|sched|1|2|t" \
  "$(q "$port" -c "SELECT event, tenant, version, details->>'next_version', details ? 'due_at' FROM pq.key_events WHERE id = 0$note_id")"
late=$(q "$port" -c "SELECT extract(epoch FROM e.at - v.activated_at) BETWEEN 2 AND 15 FROM pq.key_events e
                      JOIN pq.tenant_key_versions v ON v.tenant = 'sched' AND v.version = 1
                     WHERE e.event = 'key_rotated' AND e.tenant = 'sched' AND e.version = 2")
check "rotated 2 s after activation, not before (the worker's naptime and a slow machine may add to it)" "t" "$late"
q "$port" -c "SELECT pq.set_policy('sched', '{\"auto_rotation\": false}')" >/dev/null

echo "# a 100,000-row re-encryption job survives kill -9 of the worker"
q "$port" -c "SELECT pq.create_tenant('jobt')" \
  -c "CREATE TABLE big (id int PRIMARY KEY, name text NOT NULL, v bytea)" \
  -c "INSERT INTO big SELECT i, 'n' || i, pq_encrypt('jobt', 'value-' || i, 'n' || i) FROM generate_series(1, 100000) i" \
  -c "SELECT pq.track_column('big', 'v', tenant => 'jobt', aad_column => 'name')" \
  -c "SELECT pq.rotate_tenant_key('jobt', 'before the job')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('big', 'v', batch_size => 500)")
wait_for "$port" "SELECT rows_done >= 10000 FROM pq.jobs WHERE id = $job" || fail "the job started"
reinits() { grep -c "all server processes terminated; reinitializing" "$dir/server.log"; }
state_before=$(q "$port" -c "SELECT j.state || '|' || (j.rows_done < 100000) || '|' || (q.cursor_block > 0 AND q.cursor_key IS NULL)
                              FROM pq.jobs j JOIN pq.job_queue q USING (id) WHERE id = $job")
done_before=$(q "$port" -c "SELECT rows_done FROM pq.jobs WHERE id = $job")
pid=$(worker_pid)
kill -9 "$pid" && ok "killed the worker (pid $pid) at $done_before rows" || fail "kill the worker"
check "the job was running in place (a block cursor), not finished, when the worker died" "running|true|true" "$state_before"
for _ in $(seq 1 60); do q "$port" -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
check "the server went through crash recovery" "1" "$(reinits)"
for _ in $(seq 1 240); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "the job completed after the worker restarted" "completed|100000|0" \
  "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "the worker came back" "1" "$(q "$port" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'")"
check "every row decrypts to its value" "100000" "$(q "$port" -c "SELECT count(*) FROM big WHERE pq_decrypt_text(v, name) = 'value-' || id")"
check "every row is under the new version" "2|100000" "$(q "$port" -c "SELECT version, ciphertexts FROM pq.key_usage WHERE tenant = 'jobt'")"
check "the job's events" "job_queued job_started job_completed" \
  "$(q "$port" -c "SELECT string_agg(event, ' ' ORDER BY id) FROM pq.key_events WHERE event LIKE 'job%' AND details->>'job' = '$job'")"
check "done in place throughout, across the kill: no range of it went row by row" "0" \
  "$(grep -c "of public.big are re-encrypted row by row" "$dir/server.log")"
check "pq_job_rewrite refuses outside a job's own statement" "42501" \
  "$(q "$port" -c "DO \$\$BEGIN PERFORM pq_job_rewrite(v, 'n1', 'jobt') FROM big WHERE id = 1;
        EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END\$\$" 2>&1 | sed -n 's/.*NOTICE: *//p')"

echo "# a failing row is recorded with its reason, and the job goes on"
q "$port" -c "SELECT pq.rotate_tenant_key('jobt', 'again')" \
  -c "UPDATE big SET name = 'moved' WHERE id = 7" -c "UPDATE big SET v = '\\x0102'::bytea WHERE id = 8" \
  -c "UPDATE big SET v = pq_encrypt('sched', 'foreign', 'n9') WHERE id = 9" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('big', 'v', batch_size => 5000)")
for _ in $(seq 1 120); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "completed with three failures" "completed|99997|3" "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "each failure has its reason" \
  "7|authentication failed (wrong AAD or damaged value),8|not a v1 envelope,9|an envelope of another tenant" \
  "$(q "$port" -c "SELECT string_agg(row_key || '|' || reason, ',' ORDER BY row_key) FROM pq.job_failures WHERE job_id = $job")"
check_absent "no plaintext in the failures" "value-" "$(q "$port" -c "SELECT string_agg(reason, ' ') FROM pq.job_failures")"
check_contains "the ranges with those rows went row by row, and the log says so" "of public.big are re-encrypted row by row (55000)" \
  "$(cat "$dir/server.log")"

echo "# the worker touches a tracked table with its owner's rights, never a superuser's"
# The owner may use tenant 'own' only; its trigger also tries to decrypt a
# value of tenant 'jobt' while the job writes (it got the plaintext with
# the worker's access until 0.11.0: the access check saw the worker).
foreign=$(q "$port" -c "SELECT v FROM big WHERE id = 1")
q "$port" -c "SELECT pq.create_tenant('own')" -c "CREATE ROLE tbl_owner" -c "GRANT pq_user TO tbl_owner" \
  -c "SELECT pq.grant_tenant('own', 'tbl_owner')" \
  -c "CREATE TABLE public.seen (who text, su text, foreign_value text)" -c "CREATE TABLE public.owned (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO owned SELECT i, pq_encrypt('own', 'o-' || i) FROM generate_series(1, 20) i" \
  -c "CREATE FUNCTION public.note() RETURNS trigger LANGUAGE plpgsql AS \$\$DECLARE got text; BEGIN
        BEGIN got := public.pq_decrypt_text('$foreign'::bytea, 'n1'); EXCEPTION WHEN OTHERS THEN got := SQLSTATE; END;
        INSERT INTO public.seen SELECT current_user, rolsuper::text, got FROM pg_roles WHERE rolname = current_user; RETURN NEW; END\$\$" \
  -c "CREATE TRIGGER note BEFORE UPDATE ON owned FOR EACH ROW EXECUTE FUNCTION public.note()" \
  -c "ALTER TABLE owned OWNER TO tbl_owner" -c "ALTER TABLE seen OWNER TO tbl_owner" \
  -c "SELECT pq.track_column('owned', 'v', tenant => 'own')" -c "SELECT pq.rotate_tenant_key('own', 'owner rights')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('owned', 'v')")
for _ in $(seq 1 60); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "the job completed" "completed|20|0" "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "the table's trigger ran as the table's owner, not as a superuser" "20|tbl_owner|false" \
  "$(q "$port" -c "SELECT count(*), string_agg(DISTINCT who, ','), string_agg(DISTINCT su, ',') FROM seen")"
check "the trigger could not decrypt another tenant's value during the job (done in place)" "42501" \
  "$(q "$port" -c "SELECT string_agg(DISTINCT foreign_value, ',') FROM seen")"
check "every row decrypts" "20" "$(q "$port" -c "SELECT count(*) FROM owned WHERE pq_decrypt_text(v) = 'o-' || id")"
check "that job was done in place" "0" "$(grep -c "of public.owned are re-encrypted row by row" "$dir/server.log")"
# A row that cannot be re-encrypted sends its range the careful way (rows
# claimed, then written back): the trigger runs there as the owner too.
q "$port" -c "TRUNCATE seen" -c "INSERT INTO owned VALUES (21, '\\x0102')" -c "SELECT pq.rotate_tenant_key('own', 'careful way')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('owned', 'v')")
for _ in $(seq 1 60); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "the careful way: completed with the one failure" "completed|20|1" "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "the careful way: the trigger ran as the owner and could not decrypt the other tenant's value" "20|tbl_owner|42501" \
  "$(q "$port" -c "SELECT count(*), string_agg(DISTINCT who, ','), string_agg(DISTINCT foreign_value, ',') FROM seen")"
q "$port" -c "DELETE FROM owned WHERE id = 21" >/dev/null
# A row the application holds: the in-place UPDATE waits 100 ms for it,
# then its range goes the careful way (SKIP LOCKED) and a later pass gets it.
q "$port" -c "SELECT pq.rotate_tenant_key('own', 'held row')" >/dev/null
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "BEGIN" -c "SELECT 1 FROM owned WHERE id = 5 FOR UPDATE" \
  -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null 2>&1 &
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(2)'" || fail "the row holder started"
job=$(q "$port" -c "SELECT pq.reencrypt('owned', 'v')")
for _ in $(seq 1 60); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "a held row: the job waited for it in a later pass and completed" "completed|20|0|t" \
  "$(q "$port" -c "SELECT state, rows_done, rows_failed, pass > 1 FROM pq.jobs WHERE id = $job")"
check "a held row: every row is under the active version" "20" \
  "$(q "$port" -c "SELECT count(*) FROM owned WHERE substr(v, 3, 16) = (SELECT kid FROM pq.tenant_keys WHERE tenant = 'own' AND state = 'active')")"
# A DO INSTEAD rule would turn an in-place UPDATE into something else: such
# a table goes the careful way, whose write-back cannot be rewritten away.
q "$port" -c "CREATE TABLE ruled (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO ruled SELECT i, pq_encrypt('own', 'r-' || i) FROM generate_series(1, 5) i" \
  -c "CREATE RULE no_updates AS ON UPDATE TO ruled DO INSTEAD NOTHING" \
  -c "SELECT pq.track_column('ruled', 'v', tenant => 'own')" -c "SELECT pq.rotate_tenant_key('own', 'rule')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('ruled', 'v')")
for _ in $(seq 1 60); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = failed ] && break; sleep 0.5; done
check "a table with a DO INSTEAD rule: the job fails and says why, instead of finding nothing to do forever" "failed|0|t" \
  "$(q "$port" -c "SELECT state, rows_done, last_error LIKE '%rule%' FROM pq.jobs WHERE id = $job")"
q "$port" -c "SELECT pq.untrack_column('ruled', 'v')" -c "DROP TABLE ruled" >/dev/null
q "$port" -c "ALTER TABLE owned ENABLE ROW LEVEL SECURITY" -c "ALTER TABLE owned FORCE ROW LEVEL SECURITY" \
  -c "CREATE POLICY some ON owned USING (id > 5)" -c "SELECT pq.rotate_tenant_key('own', 'hidden rows')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('owned', 'v')")
for _ in $(seq 1 60); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = failed ] && break; sleep 0.5; done
check "a policy that hides rows from the owner fails the job instead of skipping them" "failed|0" \
  "$(q "$port" -c "SELECT state, rows_done FROM pq.jobs WHERE id = $job")"
check_contains "and says why" "row-level security" "$(q "$port" -c "SELECT last_error FROM pq.jobs WHERE id = $job")"

echo "# kill -9 in the middle of a tenant key rotation"
q "$port" -c "SELECT pq.create_tenant('crash')" -c "CREATE TABLE c (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO c SELECT i, pq_encrypt('crash', 'c-' || i) FROM generate_series(1, 50) i" >/dev/null
# Hold the event log, so the rotation stops after retiring and creating versions, before it commits.
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "BEGIN" -c "LOCK TABLE pq.key_events IN EXCLUSIVE MODE" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'" || fail "the lock holder started"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "SELECT pq.rotate_tenant_key('crash', 'interrupted')" >/dev/null 2>&1 &
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pq.rotate_tenant_key(''crash''%' AND wait_event_type = 'Lock'" \
  && ok "the rotation is waiting halfway" || fail "the rotation is waiting halfway"
victim=$(q "$port" -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pq.rotate_tenant_key(''crash''%'")
check "the waiting rotation had written already (retired the version, made the next): it holds a transaction id" "t" \
  "$(q "$port" -c "SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = 0$victim")"
kill -9 "$victim" && ok "killed the rotating backend (pid $victim)" || fail "kill the rotating backend"
wait 2>/dev/null
for _ in $(seq 1 60); do q "$port" -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
check "the server went through crash recovery again" "2" "$(reinits)"
check "after the crash: exactly one active version, the old one" "1|1" \
  "$(q "$port" -c "SELECT count(*), max(version) FROM pq.tenant_key_versions WHERE tenant = 'crash' AND state = 'active'")"
check "after the crash: everything decrypts" "50" "$(q "$port" -c "SELECT count(*) FROM c WHERE pq_decrypt_text(v) = 'c-' || id")"
check "after the crash: rotation works" "2" "$(q "$port" -c "SELECT new_version FROM pq.rotate_tenant_key('crash', 'again')")"

echo "# kill -9 in the middle of a master key rotation"
q "$port" -c "SELECT pq.create_tenant('zzz')" >/dev/null
mdk_before=$(q "$port" -c "SELECT encode(id, 'hex') FROM pq.master_keys WHERE state = 'active'")
# Hold the last tenant's key row, so the rotation stops after rewrapping the others.
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "BEGIN" \
  -c "SELECT 1 FROM pq.tenant_key_versions WHERE tenant = 'zzz' FOR UPDATE" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'" || fail "the lock holder started"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "SELECT pq.rotate_master_key()" >/dev/null 2>&1 &
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pq.rotate_master_key()%' AND wait_event_type = 'Lock'" \
  && ok "the master key rotation is waiting halfway" || fail "the master key rotation is waiting halfway"
victim=$(q "$port" -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pq.rotate_master_key()%'")
check "the waiting master key rotation had written already (the new key, rewrapped versions): it holds a transaction id" "t" \
  "$(q "$port" -c "SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = 0$victim")"
kill -9 "$victim" && ok "killed the rotating backend (pid $victim)" || fail "kill the master key rotation"
wait 2>/dev/null
for _ in $(seq 1 60); do q "$port" -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
check "the server went through crash recovery again" "3" "$(reinits)"
check "after the crash: the same single active master key" "$mdk_before|1" \
  "$(q "$port" -c "SELECT encode(id, 'hex'), (SELECT count(*) FROM pq.master_keys WHERE state = 'active') FROM pq.master_keys WHERE state = 'active'")"
check "after the crash: every version under it" "t" \
  "$(q "$port" -c "SELECT bool_and(encode(mdk_id, 'hex') = '$mdk_before') FROM pq.tenant_key_versions WHERE wrapped_kem_seed IS NOT NULL")"
check "after the crash: everything decrypts" "50|99997" \
  "$(q "$port" -c "SELECT (SELECT count(*) FROM c WHERE pq_decrypt_text(v) = 'c-' || id), (SELECT count(*) FROM big WHERE id NOT IN (7, 8, 9) AND pq_decrypt_text(v, name) = 'value-' || id)")"
check "after the crash: the master key rotates" "t" "$(q "$port" -c "SELECT versions_rewrapped > 0 FROM pq.rotate_master_key()")"
check "and everything still decrypts" "50" "$(q "$port" -c "SELECT count(*) FROM c WHERE pq_decrypt_text(v) = 'c-' || id")"

echo "# the shared generation: a rotation reaches another session's next encryption, mid-transaction"
out=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 <<SQL
BEGIN;
SELECT 'before ' || (pq_inspect(pq_encrypt('crash', 'x'))->>'key_version');
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pq.rotate_tenant_key('crash', 'generation')" postgres >/dev/null
SELECT 'after ' || (pq_inspect(pq_encrypt('crash', 'x'))->>'key_version');
COMMIT;
SQL
)
check "the next encryption in the same transaction uses the new version" "before 2 after 3" "$(echo $out)"

echo "# signals: SIGHUP reloads the worker's settings, SIGTERM stops it between batches and it comes back"
q "$port" -c "ALTER SYSTEM SET apg_pqcrypto.worker_naptime = 3" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 50); do grep -q "apg_pqcrypto worker reloaded its settings (naptime 3 s)" "$dir/server.log" && break; sleep 0.2; done
check_contains "SIGHUP: the worker reloaded the new naptime" "reloaded its settings (naptime 3 s)" "$(cat "$dir/server.log")"
old_pid=$(worker_pid)
q "$port" -c "SELECT pg_terminate_backend($old_pid)" >/dev/null
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker' AND pid <> $old_pid" \
  && ok "SIGTERM: the worker stopped and the postmaster started it again" || fail "the worker restarts after pg_terminate_backend"
check_contains "SIGTERM: it said it was stopping" "apg_pqcrypto worker stopping" "$(cat "$dir/server.log")"
check_absent "SIGTERM: no crash, no reinitialisation after the first kill -9" "terminated by signal 15" "$(cat "$dir/server.log")"

echo "# the worker checks every stored key version (pq.verify_keys) at start and every verify_keys_interval"
check_contains "at start: every version verified, none failed" "apg_pqcrypto worker verified" "$(grep 'key versions: 0 failed' "$dir/server.log")"
q "$port" -c "SELECT pq.create_tenant('verify_w')" \
  -c "CREATE TABLE saved_dek AS SELECT sealed_dek FROM pq.tenant_key_versions WHERE tenant = 'verify_w'" \
  -c "UPDATE pq.tenant_key_versions SET sealed_dek = (SELECT sealed_dek FROM pq.tenant_key_versions WHERE tenant = 'crash' AND state = 'active')
       WHERE tenant = 'verify_w'" \
  -c "ALTER SYSTEM SET apg_pqcrypto.verify_keys_interval = 1" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do grep -q 'tenant "verify_w" (active) failed verification' "$dir/server.log" && break; sleep 0.2; done
check_contains "a damaged version: one WARNING naming the version and what failed" \
  'WARNING:  apg_pqcrypto worker: key version 1 of tenant "verify_w" (active) failed verification: the sealed DEK does not open' "$(cat "$dir/server.log")"
q "$port" -c "UPDATE pq.tenant_key_versions SET sealed_dek = (SELECT sealed_dek FROM saved_dek) WHERE tenant = 'verify_w'" \
  -c "ALTER SYSTEM RESET apg_pqcrypto.verify_keys_interval" -c "SELECT pg_reload_conf()" >/dev/null
check "put back, the version passes pq.verify_keys" "t" "$(q "$port" -c "SELECT ok FROM pq.verify_keys('verify_w')")"

echo "# the worker's transactions are READ COMMITTED whatever the database's default isolation"
# (a shard batch on Citus relies on it: docs/SCALE-OUT.md, Jobs)
q "$port" -c "ALTER DATABASE postgres SET default_transaction_isolation = 'serializable'" >/dev/null
old_pid=$(worker_pid)
q "$port" -c "SELECT pg_terminate_backend($old_pid)" >/dev/null
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker' AND pid <> $old_pid" \
  && ok "the worker reconnected under default_transaction_isolation = serializable" || fail "the worker did not come back"
q "$port" -c "SELECT pq.create_tenant('iso')" -c "CREATE TABLE iso_seen (level text)" \
  -c "CREATE TABLE iso_t (id int PRIMARY KEY, v bytea)" \
  -c "CREATE FUNCTION iso_note() RETURNS trigger LANGUAGE plpgsql
        AS \$\$BEGIN INSERT INTO public.iso_seen VALUES (current_setting('transaction_isolation')); RETURN NEW; END\$\$" \
  -c "CREATE TRIGGER iso_note BEFORE UPDATE ON iso_t FOR EACH ROW EXECUTE FUNCTION iso_note()" \
  -c "INSERT INTO iso_t SELECT i, pq_encrypt('iso', 'x' || i) FROM generate_series(1, 10) i" \
  -c "SELECT pq.track_column('iso_t', 'v', tenant => 'iso')" -c "SELECT pq.rotate_tenant_key('iso', 'isolation')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('iso_t', 'v')")
wait_for "$port" "SELECT state = 'completed' FROM pq.jobs WHERE id = 0$job" || fail "the job on iso_t did not complete"
check "sessions get the database's default" "serializable" "$(q "$port" -c "SHOW transaction_isolation")"
check "the worker's batch ran READ COMMITTED (as the table's trigger saw it)" "read committed|10" \
  "$(q "$port" -c "SELECT level, count(*) FROM iso_seen GROUP BY 1")"
q "$port" -c "ALTER DATABASE postgres RESET default_transaction_isolation" >/dev/null
cluster_stop "$dir"
check "a fast shutdown stops the worker cleanly" "3" "$(grep -c "apg_pqcrypto worker stopping" "$dir/server.log")"
