# Blind index columns kept by tracked columns (docs/SEARCH.md): the trigger
# sets each row's term on INSERT and UPDATE as the writing role, overwrites
# a forged term, refuses another tenant's envelope and a role without the
# grant, and lets such a role update other columns; after a rotation the
# worker's re-encryption job moves the terms with the values (shown paused
# mid-way: = ANY (pq_blind_indexes(...)) finds every row, the active term
# alone does not), then retires the old index key; a pgcrypto column
# migrates with its terms; partitions get the trigger; untrack drops it.
# checks: 25
dir="$base/blind"
port=$port_blind
# Every statement is logged (log_statement = 'all'): the values the
# application encrypts and looks up must reach the log redacted.
cluster_start "$dir" "$port" "apg_pqcrypto.worker_naptime = 1" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE EXTENSION pgcrypto" \
  -c "SELECT pq.create_tenant('acme'), pq.create_tenant('globex')" \
  -c "CREATE ROLE app LOGIN IN ROLE pq_user" -c "CREATE ROLE other LOGIN" \
  -c "SELECT pq.grant_tenant('acme', 'app'), pq.grant_tenant('globex', 'app')" \
  -c "CREATE TABLE cfg (id int PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, value bytea, value_bidx bytea, note text)" \
  -c "CREATE INDEX ON cfg (value_bidx)" -c "GRANT ALL ON cfg TO app, other" >/dev/null
wait_job() { # wait_job JOB STATE
  for _ in $(seq 1 300); do
    [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $1")" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
# terms_right: rows whose term is the term of their own value under their
# envelope's version (checked through pq_blind_indexes, whose first term is
# the active version's) - and, separately, under the active version alone.
terms_right() {
  qas "$port" app -c "SELECT count(*) FILTER (WHERE value_bidx = ANY (pq_blind_indexes(tenant, pq_decrypt_text(value, name), 'value', normalization => 'trim,casefold'))),
                             count(*) FILTER (WHERE value_bidx = pq_blind_index(tenant, pq_decrypt_text(value, name), 'value', normalization => 'trim,casefold'))
                        FROM cfg WHERE value IS NOT NULL"
}

echo "# a tracked column with a blind index column, written by the application"
check "track_column with a blind index column creates the trigger (and the enforcement one)" "1|zz_pq_blind_index_1|zz_pq_enforcement_1" \
  "$(q "$port" -c "SELECT pq.track_column('cfg', 'value', tenant_column => 'tenant', aad_column => 'name', blind_index_column => 'value_bidx', context => 'value', normalization => 'trim,casefold')" \
        -c "SELECT tgname FROM pg_trigger WHERE tgrelid = 'cfg'::regclass AND NOT tgisinternal ORDER BY tgname" | tr '\n' '|' | sed 's/|$//')"
qas "$port" app -c "INSERT INTO cfg (id, tenant, name, value)
                    SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'k' || i,
                           pq_encrypt(CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'Token-' || i, 'k' || i)
                      FROM generate_series(1, 400) i" >/dev/null
check "every inserted row got the term of its own value (application-side check)" "400|400" "$(terms_right)"
q "$port" -c "ANALYZE cfg" >/dev/null
check "a lookup by a differently written value finds its row through the term's index (no sequential scan)" "42|1|0" \
  "$(qas "$port" app -c "SELECT id FROM cfg WHERE value_bidx = pq_blind_index('acme', '  TOKEN-42 ', 'value', normalization => 'trim,casefold')")|$(qas "$port" app \
        -c "EXPLAIN SELECT id FROM cfg WHERE value_bidx = pq_blind_index('acme', 'token-42', 'value', normalization => 'trim,casefold')" | grep -c 'cfg_value_bidx_idx')|$(qas "$port" app \
        -c "EXPLAIN SELECT id FROM cfg WHERE value_bidx = pq_blind_index('acme', 'token-42', 'value', normalization => 'trim,casefold')" | grep -c 'Seq Scan')"
check "a forged term is overwritten by the right one" "42" \
  "$(qas "$port" app -c "UPDATE cfg SET value_bidx = '\\x00' WHERE id = 42" \
        -c "SELECT id FROM cfg WHERE value_bidx = pq_blind_index('acme', 'token-42', 'value', normalization => 'trim,casefold')")"
check "a value re-encrypted by the application gets its new term" "t" \
  "$(qas "$port" app -c "UPDATE cfg SET value = pq_encrypt('acme', 'Rotated-42', 'k42') WHERE id = 42" \
        -c "SELECT value_bidx = pq_blind_index('acme', 'rotated-42', 'value', normalization => 'trim,casefold') FROM cfg WHERE id = 42")"
check "another tenant's envelope in a row is refused (22023)" "22023" \
  "$(sqlstate "$port" "UPDATE cfg SET value = pq_encrypt('globex', 'x', 'k44') WHERE id = 44" app)"
check "a NULL value has a NULL term" "t" \
  "$(qas "$port" app -c "UPDATE cfg SET value = NULL WHERE id = 46" -c "SELECT value_bidx IS NULL FROM cfg WHERE id = 46")"
check "a role without the tenant's grant updates other columns of the row" "ok" \
  "$(sqlstate "$port" "UPDATE cfg SET note = 'seen' WHERE id = 48" other)"
check "... but cannot forge a term (42501: the trigger decrypts as that role)" "42501" \
  "$(sqlstate "$port" "UPDATE cfg SET value_bidx = '\\x01' WHERE id = 48" other)"
check "... nor write a value of a tenant it was not granted" "42501" \
  "$(sqlstate "$port" "INSERT INTO cfg (id, tenant, name, value) SELECT 9000, 'acme', 'k', value FROM cfg WHERE id = 50" other)"

echo "# rotation: the worker's job moves values and terms; half-way (rows held by another session), lookups miss nothing"
q "$port" -c "SELECT new_version FROM pq.rotate_tenant_key('acme', 'blind test')" >/dev/null
# Another session holds half of acme's rows: the job skips them (SKIP LOCKED)
# and keeps running until they are free.
PGAPPNAME=blind_locker psql -X -q -h 127.0.0.1 -p "$port" -U postgres \
  -c "BEGIN" -c "SELECT id FROM cfg WHERE tenant = 'acme' AND id % 4 = 0 FOR UPDATE" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
locker=$!
wait_for "$port" "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'blind_locker' AND state = 'active'" || fail "the locking session did not start"
job=$(q "$port" -c "SELECT pq.reencrypt('cfg', 'value', batch_size => 20)")
wait_for "$port" "SELECT rows_done >= 99 FROM pq.jobs WHERE id = $job" || fail "the job did not re-encrypt the free rows"
check "half-way: the job runs, with half of acme's rows re-encrypted" "running|t|t" \
  "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job" \
        -c "SELECT count(*) FILTER (WHERE pq_inspect(value)->>'key_version' = '2') > 0,
                   count(*) FILTER (WHERE pq_inspect(value)->>'key_version' = '1') > 0 FROM cfg WHERE tenant = 'acme'" | tr '\n' '|' | sed 's/|$//')"
check "half-way: every acme row is found by = ANY (pq_blind_indexes(...)), the active term alone finds fewer" "t|t" \
  "$(qas "$port" app -c "SELECT count(*) FILTER (WHERE value_bidx = ANY (pq_blind_indexes('acme', pq_decrypt_text(value, name), 'value', normalization => 'trim,casefold'))) = count(*),
                                count(*) FILTER (WHERE value_bidx = pq_blind_index('acme', pq_decrypt_text(value, name), 'value', normalization => 'trim,casefold')) < count(*)
                           FROM cfg WHERE tenant = 'acme' AND value IS NOT NULL")"
check "half-way: each moved row's term is under the version of its envelope" "0" \
  "$(qas "$port" app -c "SELECT count(*) FROM cfg WHERE tenant = 'acme' AND pq_inspect(value)->>'key_version' = '2'
                            AND value_bidx IS DISTINCT FROM pq_blind_index('acme', pq_decrypt_text(value, name), 'value', normalization => 'trim,casefold')")"
q "$port" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'blind_locker'" >/dev/null
wait "$locker" 2>/dev/null
wait_job "$job" completed || fail "the re-encryption job did not complete"
check "the job completed with every row written, none failed" "completed|0" \
  "$(q "$port" -c "SELECT state, rows_failed FROM pq.jobs WHERE id = $job")"
check "after the job every term is the active version's" "399|399" "$(terms_right)"
check "the old index key was retired when the job completed (event, view), pq_blind_indexes gives one term" "1|t|1" \
  "$(q "$port" -c "SELECT count(*) FROM pq.key_events WHERE event = 'blind_index_key_retired' AND tenant = 'acme' AND version = 1" \
        -c "SELECT blind_index_retired_at IS NOT NULL FROM pq.tenant_keys WHERE tenant = 'acme' AND version = 1" \
        -c "SELECT cardinality(pq_blind_indexes('acme', 'x', 'value'))" | tr '\n' '|' | sed 's/|$//')"
check "globex, untouched by the rotation, keeps one live version" "1" \
  "$(q "$port" -c "SELECT cardinality(pq_blind_indexes('globex', 'x', 'value'))")"

echo "# a pgcrypto column migrated with its blind index column"
q "$port" -c "CREATE TABLE legacy (id int PRIMARY KEY, v bytea, v_bidx bytea)" \
  -c "INSERT INTO legacy SELECT i, pgp_sym_encrypt('legacy-' || i, 'old secret'), NULL FROM generate_series(1, 60) i" \
  -c "SELECT pq.register_classical_key('globex', 'pgp_sym', 'old secret')" \
  -c "SELECT pq.track_column('legacy', 'v', tenant => 'globex', blind_index_column => 'v_bidx')" >/dev/null
check "the migration writes envelopes and their terms" "1|60|0" \
  "$(q "$port" -c "SELECT job, rows_migrated, rows_failed FROM pq.migrate_column_now('legacy', 'v', tenant => 'globex')" | tail -1 | sed 's/^[0-9]*/1/')"
check "every migrated row's term is the term of its plaintext (context = the column's name)" "60" \
  "$(q "$port" -c "SELECT count(*) FROM legacy WHERE v_bidx = pq_blind_index('globex', 'legacy-' || id, 'v')")"

echo "# a partitioned table: the trigger is cloned to its partitions"
q "$port" -c "CREATE TABLE pt (id int PRIMARY KEY, v bytea, v_bidx bytea) PARTITION BY RANGE (id)" \
  -c "CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (100)" -c "CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (100) TO (200)" \
  -c "SELECT pq.track_column('pt', 'v', tenant => 'acme', blind_index_column => 'v_bidx', bits => 64)" \
  -c "INSERT INTO pt SELECT i, pq_encrypt('acme', 'p' || i) FROM generate_series(1, 199) i" >/dev/null
check "rows in both partitions get 64-bit terms" "199" \
  "$(q "$port" -c "SELECT count(*) FROM pt WHERE v_bidx = pq_blind_index('acme', 'p' || id, 'v', 64)")"

echo "# refusals and untracking"
q "$port" -c "CREATE ROLE admin2 LOGIN IN ROLE pq_admin" -c "CREATE TABLE nt (id int PRIMARY KEY, v bytea, b bytea)" \
  -c "GRANT SELECT, UPDATE ON nt TO admin2" >/dev/null
check "a blind index column needs the TRIGGER privilege on the table (42501)" "42501" \
  "$(sqlstate "$port" "SELECT pq.track_column('nt', 'v', tenant => 'acme', blind_index_column => 'b')" admin2)"
check "a blind index column that is not bytea (42804), or the value column itself (22023)" "42804|22023" \
  "$(sqlstate "$port" "SELECT pq.track_column('cfg', 'value', tenant_column => 'tenant', blind_index_column => 'note')")|$(sqlstate "$port" "SELECT pq.track_column('nt', 'v', tenant => 'acme', blind_index_column => 'v')")"
check "untrack_column drops the trigger" "t|0" \
  "$(q "$port" -c "SELECT pq.untrack_column('cfg', 'value')" -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cfg'::regclass AND NOT tgisinternal" | tr '\n' '|' | sed 's/|$//')"
check_contains "the statements that carried the values were logged, redacted (control)" "pq_blind_index(<redacted>)" "$(cat "$dir/server.log")"
check "the server log holds none of the values the application encrypted or looked up" "" \
  "$(grep -iE 'token-[0-9]|rotated-42' "$dir/server.log" | head -3)"
cluster_stop "$dir"
