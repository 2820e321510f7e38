# The server log at its most talkative (log_statement = 'all', every
# duration, the STATEMENT of every error) holds no plaintext and no key:
# the extension's function calls lose their arguments, bind parameters of
# statements that call them are dropped, the statement of a backend that
# was killed is logged redacted. The same calls with redaction
# switched off do show the canaries, so these checks can fail.
# checks: 52
dir="$base/logs"
port=$port_logs
cluster_start "$dir" "$port" "log_statement = 'all'" "log_min_duration_statement = 0" "log_min_error_statement = 'error'" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" \
  -c "CREATE ROLE it_plain LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_plain')" \
  -c "CREATE TABLE vt (v text)" -c "CREATE VIEW vv AS SELECT v FROM vt" \
  -c "CREATE FUNCTION vv_insert() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
        INSERT INTO vt VALUES (encode(pq_encrypt('nope', NEW.v), 'hex')); RETURN NEW; END \$\$" \
  -c "CREATE TRIGGER vv_insert INSTEAD OF INSERT ON vv FOR EACH ROW EXECUTE FUNCTION vv_insert()" >/dev/null

calls() { # calls TAG: succeeding and failing calls carrying canary-TAG-N
  local t=$1
  q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'canary-$t-1', 'k'), 'k')" >/dev/null
  q "$port" -c "SELECT pq_encrypt('unknown_tenant', 'canary-$t-2')" >/dev/null
  q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'canary-$t-3', 'k'), 'wrong')" >/dev/null
  q "$port" -c "DO \$\$ BEGIN PERFORM pq_encrypt('nope', 'canary-$t-4'); END \$\$" >/dev/null
  q "$port" -c "DO \$\$ BEGIN EXECUTE 'SELECT pq_encrypt(''nope'', ''canary-$t-5'')'; END \$\$" >/dev/null
  qas "$port" it_plain -c "SELECT pq_seal(pq.tenant_public_key('acme'), 'canary-$t-6')" >/dev/null
  # A prepared statement: the values travel in EXECUTE's argument list.
  q "$port" -c "PREPARE p(text) AS SELECT pq_encrypt('acme', \$1)" -c "EXECUTE p('canary-$t-8')" >/dev/null
  # Extended protocol: the plaintext travels as a bind parameter.
  printf "SELECT pq_encrypt('acme', :secret);\nSELECT pq_encrypt('nope', :secret);\n" >"$base/bind.sql"
  pgbench -n -M extended -t 1 -D secret="canary-$t-7" -f "$base/bind.sql" -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
  indirect "$t" "SET log_statement = 'all'"
  killed "$t"
}

# killed TAG: a backend killed while it runs a call; the postmaster logs
# the statement it was running ("Failed process was running: …", canary 19)
# and restarts every backend.
killed() {
  q "$port" -c "SELECT pq_encrypt('acme', 'canary-$1-19'), pg_sleep(60)" >/dev/null 2>&1 &
  local pid i
  for i in $(seq 1 100); do
    pid=$(q "$port" -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)' AND pid <> pg_backend_pid()")
    [ -n "$pid" ] && break
    sleep 0.1
  done
  kill -9 "$pid"
  wait
  for i in $(seq 1 100); do
    q "$port" -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
  done
}

# indirect TAG SETTING: failing calls whose secret is not in their own
# argument list, at default logging (only the ERROR and its STATEMENT) or
# with SETTING: a statement prepared earlier; functions of schema pq called
# unqualified; literals in a VALUES list, a CTE, a PL/pgSQL DECLARE,
# EXECUTE … USING; a name spelt with Unicode escapes (canaries 9 to 18).
indirect() {
  local t=$1 set=${2:-"SET log_statement = 'none'"}
  q "$port" -c "$set" -c "PREPARE pp(text) AS SELECT pq_encrypt('nope', \$1)" -c "EXECUTE pp('canary-$t-9')" >/dev/null
  q "$port" -c "$set" -c "SET search_path = pq, public" -c "SELECT config_set('nope', 'k', 'canary-$t-10')" >/dev/null
  q "$port" -c "$set" -c "SET search_path = pq, public" -c "SELECT encrypt_dual_mode('nope', 'canary-$t-11')" >/dev/null
  q "$port" -c "$set" -c "SET search_path = pq, public" \
    -c "SELECT register_classical_key('acme', 'pgp_pub', '\\x00', passphrase => 'canary-$t-12')" >/dev/null
  q "$port" -c "$set" -c "SELECT pq_encrypt('nope', v) FROM (VALUES ('canary-$t-13')) s(v)" >/dev/null
  q "$port" -c "$set" -c "WITH s AS (SELECT 'canary-$t-14' AS v) SELECT pq_encrypt('nope', v) FROM s" >/dev/null
  q "$port" -c "$set" -c "DO \$\$ DECLARE s text := 'canary-$t-15'; BEGIN PERFORM pq_encrypt('nope', s); END \$\$" >/dev/null
  q "$port" -c "$set" -c "DO \$\$ BEGIN EXECUTE 'SELECT pq_encrypt(\$1, \$2)' USING 'nope', 'canary-$t-16'; END \$\$" >/dev/null
  q "$port" -c "$set" -c "SELECT U&\"\\0070q_encrypt\"('nope', 'canary-$t-18')" >/dev/null
  # The view's INSTEAD OF trigger calls pq_encrypt: only the error's context
  # names it (log_statement = 'all' would log the INSERT as written, before
  # anything calls the extension: docs/THREAT-MODEL.md).
  q "$port" -c "SET log_statement = 'none'" -c "INSERT INTO vv VALUES ('canary-$t-17')" >/dev/null
}

calls on
indirect on
log=$(cat "$dir/server.log")
check_contains "the statements were logged" "pq_encrypt(<redacted>)" "$log"
check_contains "the STATEMENT of a failing call was logged" "STATEMENT:  SELECT pq_encrypt(<redacted>)" "$log"
check_contains "bind parameters were logged, redacted" "parameters: <redacted by apg_pqcrypto>" "$log"
check_contains "PL/pgSQL context was logged" "PL/pgSQL function inline_code_block" "$log"
check_contains "the killed backend's statement was logged by the postmaster, redacted" \
  "DETAIL:  Failed process was running: SELECT pq_encrypt(<redacted>)" "$log"
for n in $(seq 1 19); do
  check_absent "no plaintext in the log (canary $n)" "canary-on-$n" "$log"
done
check_contains "the unqualified call was logged, redacted" "config_set(<redacted>)" "$log"
check_contains "the trigger's context was logged" "PL/pgSQL function vv_insert()" "$log"
kek_hex=$(od -An -tx1 "$dir/master.key" | tr -d ' \n')
check_absent "no key-file bytes in the log" "${kek_hex:0:16}" "$log"
check_contains "the errors themselves are logged" "decryption failed" "$log"
check "redaction cannot be switched off by an ordinary role" "42501" \
  "$(sqlstate "$port" "SET apg_pqcrypto.redact_statement_log = off" it_plain)"

echo "# auto_explain with log_verbose: no plan shows a decrypted value"
row=$(q "$port" -c "SELECT encode(secret_key, 'hex') || ' ' || encode(pq_seal(public_key, 'canary-plan'), 'hex') FROM pq_generate_keypair()")
read -r plan_sk plan_env <<<"$row"
explain=(-c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_verbose = on")
q "$port" "${explain[@]}" -c "SELECT convert_from(pq_open('\\x$plan_sk'::bytea, '\\x$plan_env'::bytea), 'UTF8')" >/dev/null
q "$port" "${explain[@]}" -c "SELECT 'canary-folded'::bytea || '\\x00'::bytea" >/dev/null
log=$(cat "$dir/server.log")
check_contains "auto_explain logged the plan of the pq_open call" "Query Text: SELECT convert_from(pq_open(<redacted>)" "$log"
check_absent "the plan holds no decrypted value (pq_open is not folded at plan time)" "$(printf 'canary-plan' | od -An -tx1 | tr -d ' \n')" "$log"
check_absent "... not even as text" "canary-plan" "$log"
check_contains "control: a folded immutable call shows its value in the plan" "$(printf 'canary-folded' | od -An -tx1 | tr -d ' \n')" "$log"

# The control: without redaction, the same calls leave their plaintexts.
echo "apg_pqcrypto.redact_statement_log = off" | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
q "$port" -c "SELECT pg_reload_conf()" >/dev/null
calls off
indirect off
log=$(cat "$dir/server.log")
for n in $(seq 1 19); do
  check_contains "control: with redaction off canary $n is logged" "canary-off-$n" "$log"
done
cluster_stop "$dir"
