# Migration off pgcrypto, against real pgcrypto ciphertexts: 100,000 rows of
# each classical kind migrated by the background worker (one of them through
# kill -9 of the worker), a mixed column with foreign-key rows that fail and
# migrate after their key is registered, and an application writing classical
# values through the dual-mode trigger while the worker migrates.
# checks: 50
dir="$base/migration"
port=$port_migration
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" "apg_pqcrypto.migration_batch_delay = 5" || return 1
q "$port" -c "CREATE EXTENSION pgcrypto" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" >/dev/null

# OpenPGP keys made here by GnuPG, as a pgcrypto user makes them. RSA-1024
# keeps 100,000 pgcrypto RSA decryptions (no CRT) near a minute; the
# 2048-bit key with a passphrase below takes the same path.
export GNUPGHOME="$dir/gnupg"
mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
gpg_key() { # gpg_key NAME BITS [PASSPHRASE]
  local protection="%no-protection"
  [ -n "${3:-}" ] && protection="Passphrase: $3"
  printf 'Key-Type: RSA\nKey-Length: %s\nSubkey-Type: RSA\nSubkey-Length: %s\nName-Real: %s\nExpire-Date: 0\n%s\n%%commit\n' \
    "$2" "$2" "$1" "$protection" | gpg --batch --pinentry-mode loopback --passphrase "${3:-}" --gen-key 2>/dev/null
  gpg --batch --export "$1" | base64 -w0 >"$dir/$1.pub"
  gpg --batch --pinentry-mode loopback --passphrase "${3:-}" --export-secret-keys "$1" | base64 -w0 >"$dir/$1.sec"
}
gpg_key fast 1024
gpg_key slow 2048 "key passphrase"
gpgconf --kill all   # the agent gpg started; the keys are exported
[ -s "$dir/fast.sec" ] && [ -s "$dir/slow.sec" ] && ok "GnuPG made the OpenPGP keys" || fail "GnuPG made the OpenPGP keys"
pub() { echo "decode('$(cat "$dir/$1.pub")', 'base64')"; }
sec() { echo "decode('$(cat "$dir/$1.sec")', 'base64')"; }
raw_key="'\\x000102030405060708090a0b0c0d0e0f'::bytea"

echo "# keys registered, never readable back"
q "$port" -c "SET log_statement = 'all'" -c "SELECT pq.register_classical_key('acme', 'pgp_sym', 'sym passphrase', 's2k-mode=1')" \
  -c "SELECT pq.register_classical_key('acme', 'pgp_pub', $(sec fast), public_key => $(pub fast))" \
  -c "SELECT pq.register_classical_key('acme', 'raw', $raw_key, 'algorithm=aes, mode=cbc, padding=pkcs')" \
  -c "SELECT 'migration-log-canary'" >/dev/null
check "three keys, listed without secrets" "pgp_sym,pgp_pub,raw" "$(q "$port" -c "SELECT string_agg(kind, ',' ORDER BY id) FROM pq.classical_key_list")"
check_absent "the stored row holds no passphrase" "sym passphrase" "$(q "$port" -c "SELECT wrapped_key::text, convert_from(wrapped_key, 'SQL_ASCII') FROM pq.classical_keys")"
check "the key table is the owner's alone" "f" "$(q "$port" -c "SELECT has_table_privilege('pq_admin', 'pq.classical_keys', 'SELECT')")"

echo "# 100,000 rows of each kind"
q "$port" -c "CREATE TABLE sym (id int PRIMARY KEY, v bytea)" -c "CREATE TABLE pub (id int PRIMARY KEY, v bytea)" \
  -c "CREATE TABLE raw (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO sym SELECT i, pgp_sym_encrypt('sym-' || i, 'sym passphrase', 's2k-mode=1') FROM generate_series(1, 100000) i" \
  -c "INSERT INTO pub SELECT i, pgp_pub_encrypt('pub-' || i, $(pub fast)) FROM generate_series(1, 100000) i" \
  -c "INSERT INTO raw SELECT i, encrypt(convert_to('raw-' || i, 'UTF8'), $raw_key, 'aes') FROM generate_series(1, 100000) i" >/dev/null
check "pq.classify names each kind" "pgp_sym|pgp_pub|raw" \
  "$(q "$port" -c "SELECT (SELECT pq.classify(v) FROM sym LIMIT 1), (SELECT pq.classify(v) FROM pub LIMIT 1), (SELECT pq.classify(v) FROM raw LIMIT 1)")"
check "pq.decrypt_any reads each kind before the migration" "sym-5|pub-5|raw-5" \
  "$(q "$port" -c "SELECT (SELECT pq.decrypt_any_text(v, 'acme') FROM sym WHERE id = 5), (SELECT pq.decrypt_any_text(v, 'acme') FROM pub WHERE id = 5),
                          (SELECT pq.decrypt_any_text(v, 'acme') FROM raw WHERE id = 5)")"
check "status before: not_started" "not_started" "$(q "$port" -c "SELECT status FROM pq.migration_status('acme')")"
check "dual-mode writes are classical before the migration (the newest key: raw)" "raw-dual" \
  "$(q "$port" -c "SELECT convert_from(decrypt(pq.encrypt_dual_mode('acme', 'raw-dual'), $raw_key, 'aes'), 'UTF8')")"

jobs=$(q "$port" -c "SELECT pq.migrate_column('sym', 'v', tenant => 'acme', from_kind => 'pgp_sym', batch_size => 500)" \
            -c "SELECT pq.migrate_column('pub', 'v', tenant => 'acme', from_kind => 'pgp_pub')" \
            -c "SELECT pq.migrate_column('raw', 'v', tenant => 'acme', from_kind => 'raw')")
read -r job_sym job_pub job_raw <<<"$(echo $jobs)"
check "status once queued: in_progress" "in_progress" "$(q "$port" -c "SELECT status FROM pq.migration_status('acme')")"
check "dual-mode writes are post-quantum once it started" "pq_keyed" "$(q "$port" -c "SELECT pq.classify(pq.encrypt_dual_mode('acme', 'x'))")"
wait_for "$port" "SELECT rows_done >= 10000 FROM pq.jobs WHERE id = $job_sym" || fail "the sym job started"
check "progress is shown, and the job runs in place (a block cursor)" "t|t" \
  "$(q "$port" -c "SELECT rows_done > 0 AND rows_total = 100000, (SELECT cursor_block > 0 AND cursor_key IS NULL FROM pq.job_queue WHERE id = $job_sym)
                     FROM pq.migration_progress WHERE job = $job_sym")"
worker=$(q "$port" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'")
kill -9 "$worker" && ok "killed the worker in the middle of a migration" || fail "kill the worker"
for _ in $(seq 1 60); do q "$port" -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
for _ in $(seq 1 600); do
  [ "$(q "$port" -c "SELECT count(*) FROM pq.jobs WHERE id IN ($job_sym, $job_pub, $job_raw) AND state = 'completed'")" = 3 ] && break
  sleep 0.5
done
for kind in sym pub raw; do
  job_var="job_$kind"
  check "$kind: the job completed, every row once" "completed|100000|0" \
    "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = ${!job_var}")"
  check "$kind: every row is a keyed envelope that decrypts to its original value" "100000|100000" \
    "$(q "$port" -c "SELECT count(*) FILTER (WHERE pq.classify(v) = 'pq_keyed'), count(*) FILTER (WHERE pq_decrypt_text(v) = '$kind-' || id) FROM $kind")"
done
check "the server went through crash recovery" "1" "$(grep -c "all server processes terminated; reinitializing" "$dir/server.log")"
check "done in place: no range of the three tables went row by row" "0" \
  "$(grep -cE "of public\.(sym|pub|raw) are migrated row by row" "$dir/server.log")"
check "status: completed, nothing classical left" "completed|0|300000|0" \
  "$(q "$port" -c "SELECT status, classical_values, rows_migrated, rows_failed FROM pq.migration_status('acme')")"
check "the tracked columns are counted by pq.classical_counts" "" "$(q "$port" -c "SELECT * FROM pq.classical_counts('acme')")"

echo "# a mixed column: post-quantum, classical (two pgp_pub keys, one with a passphrase), NULL, and rows under a key not yet registered"
# Registrations are logged (log_statement = 'all'): the keys must not be.
q "$port" -c "SELECT pq.create_tenant('mixed')" -c "SET log_statement = 'all'" \
  -c "SELECT pq.register_classical_key('mixed', 'pgp_sym', 'mixed passphrase')" \
  -c "SELECT pq.register_classical_key('mixed', 'pgp_pub', $(sec slow), passphrase => 'key passphrase', public_key => $(pub slow))" \
  -c "SELECT pq.register_classical_key('mixed', 'pgp_pub', $(sec fast))" >/dev/null
q "$port" -c "CREATE TABLE mix (id int PRIMARY KEY, who text NOT NULL, v bytea)" \
  -c "INSERT INTO mix SELECT i, 'w' || i, CASE i % 5
        WHEN 0 THEN pq_encrypt('mixed', 'mix-' || i, 'w' || i)
        WHEN 1 THEN pgp_sym_encrypt('mix-' || i, 'mixed passphrase')
        WHEN 2 THEN pgp_pub_encrypt('mix-' || i, CASE WHEN i < 50 THEN $(pub slow) ELSE $(pub fast) END)
        WHEN 3 THEN NULL
        ELSE pgp_sym_encrypt('mix-' || i, 'mixed passphrase', 'cipher-algo=aes256') END
      FROM generate_series(1, 2000) i" \
  -c "UPDATE mix SET v = pgp_sym_encrypt('mix-' || id, 'another passphrase') WHERE id IN (11, 21, 31, 41)" >/dev/null
job=$(q "$port" -c "SELECT pq.migrate_column('mix', 'v', tenant => 'mixed', aad_column => 'who', batch_size => 300)")
for _ in $(seq 1 240); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "the job went on past the foreign-key rows" "completed|1196|4" "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "each failed row is recorded with its reason" "11,21,31,41|no registered pgp_sym key of the tenant decrypts it" \
  "$(q "$port" -c "SELECT string_agg(row_key, ',' ORDER BY row_key::int), string_agg(DISTINCT reason, ',') FROM pq.job_failures WHERE job_id = $job")"
check_contains "their ranges went row by row (pgcrypto refused the first key), and the log says so" \
  "of public.mix are migrated row by row (39000)" "$(cat "$dir/server.log")"
check "status: still in progress, 4 classical values" "in_progress|4|4" \
  "$(q "$port" -c "SELECT status, classical_values, rows_failed FROM pq.migration_status('mixed')")"
check "a classical key cannot be dropped while rows need it" "55000" \
  "$(sqlstate "$port" "SELECT pq.drop_classical_key((SELECT min(id) FROM pq.classical_key_list WHERE tenant = 'mixed'))")"
q "$port" -c "SELECT pq.register_classical_key('mixed', 'pgp_sym', 'another passphrase')" -c "SELECT pq.retry_job($job)" >/dev/null
for _ in $(seq 1 240); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "after the key is registered, the retried rows migrate" "completed|1200|0" "$(q "$port" -c "SELECT state, rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "every non-NULL row decrypts to its value with its AAD, NULLs stay NULL" "1600|400" \
  "$(q "$port" -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(v, who) = 'mix-' || id), count(*) FILTER (WHERE v IS NULL) FROM mix")"
check "the rows that were post-quantum already were not touched" "400" \
  "$(q "$port" -c "SELECT count(*) FROM mix WHERE id % 5 = 0 AND (pq_inspect(v)->>'key_version')::int = 1")"
check "status: completed" "completed|0" "$(q "$port" -c "SELECT status, classical_values FROM pq.migration_status('mixed')")"
check "now the classical keys can be dropped" "true,true,true,true" \
  "$(q "$port" -c "SELECT string_agg(pq.drop_classical_key(id)::text, ',') FROM pq.classical_key_list WHERE tenant = 'mixed'")"
check "events: started, queued, retried, completed" "migration_started job_queued job_started job_completed job_retried job_started job_completed migration_completed" \
  "$(q "$port" -c "SELECT string_agg(event, ' ' ORDER BY id) FROM pq.key_events WHERE tenant = 'mixed' AND (event LIKE 'migration%' OR event LIKE 'job%')
                     OR event = 'job_retried' AND details->>'job' = '$job'")"
check_absent "no plaintext in events or failures" "mix-" \
  "$(q "$port" -c "SELECT string_agg(details::text || coalesce(reason, ''), ' ') FROM pq.key_events" -c "SELECT string_agg(reason, ' ') FROM pq.job_failures")"

echo "# an application writing classical values through the trigger during the migration"
q "$port" -c "SELECT pq.create_tenant('live')" -c "SET log_statement = 'all'" \
  -c "SELECT pq.register_classical_key('live', 'pgp_sym', 'live passphrase', 's2k-mode=1')" >/dev/null
q "$port" -c "CREATE TABLE live (id int PRIMARY KEY, expect text NOT NULL, v bytea)" \
  -c "INSERT INTO live SELECT i, 'live-' || i, pgp_sym_encrypt('live-' || i, 'live passphrase', 's2k-mode=1') FROM generate_series(1, 30000) i" \
  -c "CREATE ROLE live_app LOGIN IN ROLE pq_user" -c "GRANT SELECT, INSERT, UPDATE ON live TO live_app" \
  -c "SELECT pq.grant_tenant('live', 'live_app')" >/dev/null
job=$(q "$port" -c "SELECT pq.migrate_column('live', 'v', tenant => 'live', batch_size => 200)")
q "$port" -c "CREATE TRIGGER dual BEFORE INSERT OR UPDATE OF v ON live FOR EACH ROW EXECUTE FUNCTION pq.migration_trigger('v')" >/dev/null
cat >"$dir/writer.sql" <<'SQL'
\set id random(1, 30000)
UPDATE live SET expect = 'upd-' || :id || '-' || now(), v = pgp_sym_encrypt('upd-' || :id || '-' || now(), 'live passphrase', 's2k-mode=1') WHERE id = :id;
INSERT INTO live VALUES (30000 + :client_id * 1000000 + :id * 10 + (random() * 9)::int, 'new', pgp_sym_encrypt('new', 'live passphrase', 's2k-mode=1')) ON CONFLICT DO NOTHING;
SQL
"$PGBIN/pgbench" -n -h 127.0.0.1 -p "$port" -U live_app -c 4 -T 8 -f "$dir/writer.sql" postgres >"$dir/pgbench.log" 2>&1 \
  && ok "four application clients wrote for 8 s during the migration" || fail "the writers: $(tail -3 "$dir/pgbench.log")"
for _ in $(seq 1 240); do [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break; sleep 0.5; done
check "the job completed with no failure" "completed|0" "$(q "$port" -c "SELECT state, rows_failed FROM pq.jobs WHERE id = $job")"
check "the writers' transactions all committed" "0" "$(grep -c "ERROR" "$dir/pgbench.log")"
check "every row ends post-quantum and reads as the application last wrote it" "t|t" \
  "$(q "$port" -c "SELECT count(*) > 30000, bool_and(pq.classify(v) = 'pq_keyed' AND pq_decrypt_text(v) = expect) FROM live")"
check "the application's own role reads them" "t" \
  "$(qas "$port" live_app -c "SELECT bool_and(pq_decrypt_text(v) = expect) FROM live WHERE id < 100")"
check "a value no registered key reads is refused by the trigger (PQ001), nothing stored" "PQ001|0" \
  "$(sqlstate "$port" "INSERT INTO live VALUES (-1, 'x', pgp_sym_encrypt('x', 'unknown passphrase'))")|$(q "$port" -c "SELECT count(*) FROM live WHERE expect = 'x'")"
echo "# a migration run in a session shows its progress to other sessions"
q "$port" -c "SELECT pq.create_tenant('now')" -c "SET log_statement = 'all'" \
  -c "SELECT pq.register_classical_key('now', 'pgp_sym', 'now passphrase')" >/dev/null
q "$port" -c "CREATE TABLE nowt (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO nowt SELECT i, pgp_sym_encrypt('now-' || i, 'now passphrase') FROM generate_series(1, 4000) i" >/dev/null
q "$port" -c "SELECT rows_migrated FROM pq.migrate_column_now('nowt', 'v', tenant => 'now', batch_size => 100)" >"$dir/now.out" 2>&1 &
now=$!
wait_for "$port" "SELECT count(*) = 1 FROM pq.migration_progress WHERE source = 'session' AND rows_done > 0 AND rows_total = 4000" \
  && ok "another session sees the migration's progress while it runs" || fail "the session's progress is shown"
wait "$now"
# In place, a batch is a range of blocks of about batch_size rows (from the
# table's statistics; 64 rows a block without them): some 30-40 batches.
check "the session's migration completed, with a NOTICE per batch" "t|t|4000" \
  "$([ "$(grep -c 'rows migrated, 0 failed' "$dir/now.out")" -ge 20 ] && echo t)|$(grep -c 'completed, 4000 rows migrated' "$dir/now.out" | sed 's/^1$/t/')|$(tail -1 "$dir/now.out")"
check "its progress row is gone at the end" "0" "$(q "$port" -c "SELECT count(*) FROM pq.migration_progress WHERE source = 'session'")"

# The registrations above ran with log_statement = 'all' (the control
# shows their session's statements reached the log); pgcrypto's own calls
# with the same passphrases ran without it.
check_contains "control: the registering sessions' statements were logged" "migration-log-canary" "$(cat "$dir/server.log")"
check_contains "control: the registrations were logged, redacted" "register_classical_key(<redacted>)" "$(cat "$dir/server.log")"
for secret in "sym passphrase" "mixed passphrase" "key passphrase" "live passphrase" "now passphrase"; do
  check_absent "the server log never holds a registered key ($secret)" "$secret" "$(cat "$dir/server.log")"
done
cluster_stop "$dir"
