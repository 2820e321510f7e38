# A hostile database owner against the worker and against superusers'
# calls: functions and an operator planted in `public` and in a schema of
# its own, ahead of pg_catalog's (exact argument types, or the same types
# earlier in the path), and the database's search_path pointed at them with
# ALTER DATABASE. Each planted object records who ran it and tries to make
# its owner a superuser. The worker (bootstrap superuser) then applies a
# rotation policy, re-encrypts, migrates a pgcrypto column, flushes counters
# and checkpoints the audit chain in that database, and a superuser whose
# session has the hostile path calls pq.decrypt_any, pq.encrypt_dual_mode
# and pq.migrate_column_now: nothing planted may run. The control at the end
# shows that each plant does fire when PostgreSQL resolves an unqualified
# name under that path (DESIGN.md §7).
# checks: 19
dir="$base/hostile"
port=$port_hostile
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" "apg_pqcrypto.worker_database = 'victim'" \
  "apg_pqcrypto.audit_checkpoint_interval = 1" "apg_pqcrypto.migration_batch_delay = 0" || return 1
q "$port" -c "CREATE ROLE dbowner LOGIN" -c "CREATE DATABASE victim OWNER dbowner" >/dev/null
qv() { q "$port" -d victim "$@"; }
qv -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE EXTENSION pgcrypto" >/dev/null

# The plants, as the database owner (PostgreSQL 15: it owns schema public).
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U dbowner victim >/dev/null <<'SQL'
CREATE SCHEMA evil;
CREATE TABLE public.planted (fn text, who text, su boolean);
GRANT INSERT ON public.planted TO PUBLIC;
-- Records the call and, when its caller is a superuser, makes dbowner one.
CREATE FUNCTION evil.fire(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.planted SELECT fn, current_user::text, rolsuper FROM pg_catalog.pg_roles
   WHERE rolname OPERATOR(pg_catalog.=) current_user;
  BEGIN
    EXECUTE 'ALTER ROLE dbowner SUPERUSER';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
END $$;
CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('quote_ident'); RETURN pg_catalog.quote_ident($1::text); END $$;
CREATE FUNCTION public.make_interval(secs bigint) RETURNS interval LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('make_interval'); RETURN pg_catalog.make_interval(secs => $1::float8); END $$;
CREATE FUNCTION evil.to_char(timestamp, text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('to_char'); RETURN pg_catalog.to_char($1, $2); END $$;
CREATE FUNCTION evil.to_regprocedure(text) RETURNS regprocedure LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('to_regprocedure'); RETURN pg_catalog.to_regprocedure($1); END $$;
CREATE FUNCTION evil.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('unnest'); RETURN QUERY SELECT * FROM pg_catalog.unnest($1); END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.name_eq(name, name) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.fire('name ='); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.name_eq);
ALTER DATABASE victim SET search_path = evil, public, pg_catalog;
SQL
ok "the database owner planted its functions and operator"
check "the database's sessions get the hostile path" "evil, public, pg_catalog" "$(qv -c "SHOW search_path")"

echo "# the worker reconnects under the hostile path and does every kind of work"
# (It starts before the database exists and retries every 5 s.)
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker' AND datname = 'victim'" \
  || fail "the worker connected to the database"
old_pid=$(q "$port" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'")
q "$port" -c "SELECT pg_terminate_backend($old_pid)" >/dev/null
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker' AND pid <> $old_pid AND datname = 'victim'" \
  && ok "the worker restarted in the hostile database" || fail "the worker restarted in the hostile database"
qv -c "SELECT pq.create_tenant('acme')" -c "CREATE TABLE cfg (id int PRIMARY KEY, name text NOT NULL, v bytea)" \
  -c "INSERT INTO cfg SELECT i, 'k' || i, pq_encrypt('acme', 'value-' || i, 'k' || i) FROM generate_series(1, 50) i" \
  -c "SELECT pq.track_column('cfg', 'v', tenant => 'acme', aad_column => 'name')" \
  -c "CREATE TABLE legacy (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO legacy SELECT i, public.pgp_sym_encrypt('legacy-' || i, 'old pass') FROM generate_series(1, 30) i" \
  -c "SELECT pq.register_classical_key('acme', 'pgp_sym', 'old pass')" \
  -c "SELECT pq.migrate_column('legacy', 'v', tenant => 'acme')" \
  -c "SELECT pq.set_policy('acme', '{\"rotation_interval\": 4, \"notification_before\": 1, \"overlap_period\": 0, \"auto_rotation\": true}')" >/dev/null
check "the application's session also runs under the hostile path" "evil, public, pg_catalog" "$(qv -c "SHOW search_path")"
for _ in $(seq 1 300); do
  [ "$(qv -c "SELECT count(*) FILTER (WHERE event = 'key_rotated' AND actor = 'apg_pqcrypto worker') > 0
                     AND count(*) FILTER (WHERE kind = 'reencrypt' AND state = 'completed') > 0
                     AND count(*) FILTER (WHERE kind = 'migrate' AND state = 'completed') > 0
                FROM pq.key_events, pq.jobs")" = t ] && break
  sleep 0.2
done
check "the worker notified, rotated, and completed a re-encryption and the migration" "t|t|t|t" \
  "$(qv -c "SELECT bool_or(event = 'rotation_notified'), bool_or(event = 'key_rotated' AND actor = 'apg_pqcrypto worker')
              FROM pq.key_events" \
        -c "SELECT bool_or(kind = 'reencrypt' AND state = 'completed'), bool_or(kind = 'migrate' AND state = 'completed')
              FROM pq.jobs" | tr '\n' '|' | sed 's/|$//')"
qv -c "SELECT id, kind, state, rows_done, rows_failed, last_error FROM pq.jobs" | sed 's/^/# job /' 
qv -c "SELECT pq.set_policy('acme', '{\"auto_rotation\": false}')" >/dev/null
check "every value decrypts, migrated rows included" "50|30" \
  "$(qv -c "SELECT (SELECT count(*) FROM cfg WHERE pq_decrypt_text(v, name) = 'value-' || id),
                   (SELECT count(*) FROM legacy WHERE pq_decrypt_text(v) = 'legacy-' || id)")"
for _ in $(seq 1 50); do
  [ "$(qv -c "SELECT count(*) > 0 FROM pq.audit_checkpoints")" = t ] && break
  sleep 0.2
done
check "the worker checkpointed the audit chain" "t" "$(qv -c "SELECT count(*) > 0 FROM pq.audit_checkpoints")"

echo "# a superuser's session under the hostile path"
out=$(qv -c "SELECT pq.decrypt_any_text(public.pgp_sym_encrypt('any', 'old pass'), 'acme')" \
         -c "SELECT pq.classify(pq.encrypt_dual_mode('acme', 'dual'))" \
         -c "CREATE TABLE legacy2 (id int PRIMARY KEY, v bytea)" \
         -c "INSERT INTO legacy2 SELECT i, public.pgp_sym_encrypt('l2-' || i, 'old pass') FROM generate_series(1, 10) i" \
         -c "SELECT rows_migrated FROM pq.migrate_column_now('legacy2', 'v', tenant => 'acme')" 2>&1 | grep -v '^NOTICE')
check "pq.decrypt_any, pq.encrypt_dual_mode and pq.migrate_column_now work" "$(printf 'any\npq_keyed\n10')" "$out"

echo "# a role with LOGIN only cannot freeze key administration or the worker"
q "$port" -c "CREATE ROLE nobody LOGIN" >/dev/null
# It holds the advisory lock that serialised the audit chain before 0.8.0 …
psql -X -q -h 127.0.0.1 -p "$port" -U nobody victim -c "SELECT pg_advisory_lock(1886470485, 1)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
wait_for "$port" "SELECT count(*) = 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND a.usename = 'nobody'" \
  && ok "nobody holds the old advisory lock" || fail "nobody holds the old advisory lock"
check "key administration and config writes go on (statement_timeout 5 s)" "2|1|t" \
  "$(qv -c "SET statement_timeout = '5s'" -c "SELECT pq.create_tenant('freeze') IS NOT NULL" -c "SELECT new_version FROM pq.rotate_tenant_key('freeze', 'x')" \
        -c "SELECT pq.config_set('freeze', 'k', 'v')" -c "SELECT head_id > 0 FROM pq.audit_checkpoint()" 2>&1 | tail -3 | tr '\n' '|' | sed 's/|$//')"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
# … and cannot take the one that does now.
check "LOCK TABLE pq.audit_chain_lock is refused to every role but the owner" "42501" \
  "$(psql -X -At -q -v VERBOSITY=verbose -h 127.0.0.1 -p "$port" -U nobody victim -c "BEGIN" -c "LOCK TABLE pq.audit_chain_lock IN ACCESS SHARE MODE" 2>&1 \
     | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')"
# A lock held on a tracked table (its owner may) delays a job, and the
# worker goes on: it waits 10 s at most, counts no failure, and finishes later.
qv -c "SELECT pq.rotate_tenant_key('acme', 'locked table')" >/dev/null
job=$(qv -c "WITH j AS (SELECT pq.reencrypt('cfg', 'v') AS id) SELECT id FROM j WHERE pq.pause_job(id)")
psql -X -q -h 127.0.0.1 -p "$port" -U postgres victim -c "BEGIN" -c "LOCK TABLE cfg IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(14)" >/dev/null 2>&1 &
locker=$!
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(14)'" || fail "the table is locked"
qv -c "SELECT pq.resume_job($job)" >/dev/null
for _ in $(seq 1 150); do grep -aq "job $job waits for a lock" "$dir/server.log" && break; sleep 0.2; done
check_contains "the worker gave up waiting for the table and said so" "job $job waits for a lock" "$(grep -a "waits for a lock" "$dir/server.log")"
check "the job did not count a failure" "0" "$(qv -c "SELECT batch_errors FROM pq.job_queue WHERE id = $job")"
before=$(qv -c "SELECT count(*) FROM pq.audit_checkpoints")
qv -c "SELECT pq.create_tenant('meanwhile')" >/dev/null
check "the worker's next round checkpoints the chain while the table is still locked (it is not stalled)" "t" \
  "$(for _ in $(seq 1 20); do r=$(qv -c "SELECT count(*) > $before FROM pq.audit_checkpoints"); [ "$r" = t ] && break; sleep 0.2; done; echo "$r")"
wait "$locker" 2>/dev/null
for _ in $(seq 1 150); do [ "$(qv -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.2; done
check "once the lock is gone, the job completes" "completed|50|0" "$(qv -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"

check "no planted function or operator ran" "0" "$(qv -c "SELECT count(*) FROM public.planted")"
check "the database owner did not become a superuser" "f" "$(q "$port" -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'")"

echo "# control: each plant fires when a superuser's query resolves the name under the hostile path"
control=$(qv -c "SELECT pg_catalog.length(quote_ident('x'::name)) > 0" \
             -c "SELECT make_interval(secs => 1::bigint) IS NOT NULL" \
             -c "SELECT to_char(TIMESTAMP '2020-01-01', 'YYYY') IS NOT NULL" \
             -c "SELECT to_regprocedure('pg_catalog.now()') IS NOT NULL" \
             -c "SELECT count(*) > 0 FROM unnest(ARRAY['a']::text[])" \
             -c "SELECT now() IS NOT NULL" \
             -c "SELECT count(*) > 0 FROM pg_catalog.pg_extension WHERE extname = 'pgcrypto'" >/dev/null 2>&1
           qv -c "SELECT string_agg(DISTINCT fn, ',' ORDER BY fn) FROM public.planted")
check "control: every plant fired" "make_interval,name =,now,quote_ident,to_char,to_regprocedure,unnest" "$control"
check "control: and made its owner a superuser" "t" "$(q "$port" -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'")"
q "$port" -c "ALTER ROLE dbowner NOSUPERUSER" >/dev/null
cluster_stop "$dir"
