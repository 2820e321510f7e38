# Master keys in a real SoftHSM2 token and a real KMS-compatible server
# (moto_server over HTTP on loopback): round trips, misconfiguration
# (PQ004 without secrets), an outage (cached keys keep working until their
# TTL, then PQ004 within the timeout, a cancel ends the wait, the return
# needs no restart), a move file -> HSM -> KMS -> file with 10,000
# ciphertexts, and a dump restored into a fresh cluster on the same KMS key.
# checks: 64
source "$root/scripts/providers.sh"
dir="$base/providers"
port=$port_providers
softhsm_setup "$dir/hsm"
moto_start "$dir/kms"
mapfile -t provider_lines < <(provider_settings)
cluster_start "$dir/c" "$port" "${quiet[@]}" "${provider_lines[@]}" "apg_pqcrypto.master_key_provider = 'pkcs11'" \
  || return 1

# --- HSM: the first master data key is made in the token.
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('globex')" >/dev/null
check "the first master data key is wrapped by the token" "pkcs11|61|pkcs11:token=apg-pq;object=apg-pq-kek;type=secret-key" \
  "$(q "$port" -c "SELECT provider, length(wrapped_key), provider_key_id FROM pq.master_keys WHERE state = 'active'")"
check "HSM: round trip in a new session" "hello" "$(q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'hello', 'k'), 'k')")"
q "$port" -c "CREATE TABLE vault (id int PRIMARY KEY, tenant text, value pq_envelope)" \
  -c "INSERT INTO vault SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END,
             pq_encrypt(CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'secret-' || i, i::text)
        FROM generate_series(1, 10000) i" >/dev/null
all_decrypt="SELECT count(*) FROM vault WHERE pq_decrypt_text(value, id::text) = 'secret-' || id"
check "HSM: 10,000 values decrypt in a new session" "10000" "$(q "$port" -c "$all_decrypt")"
check "status: the token answered, nothing secret shown" "active|pkcs11|t|" \
  "$(q "$port" -c "SELECT state, provider, answered, message FROM pq.master_key_status()")"

# --- Misconfigured token: PQ004 in a new session (cold cache), no secret in the message.
cold="SELECT pq_decrypt_text(value, id::text) FROM vault WHERE id = 2"
expect_pq004() { # expect_pq004 NAME SETTING VALUE FAILURES: FAILURES of (cold decrypt, wrap) give PQ004
  set_conf "$2" "$3"
  local out
  out=$(errtext "$cold"; errtext "SELECT * FROM pq.rotate_master_key('pkcs11')")
  check "$1: PQ004 $4 times in (cold decrypt, wrap)" "$4" "$(grep -c "ERROR:  PQ004" <<<"$out")"
  check_absent "$1: the messages have no PIN" "$SOFTHSM_PIN" "$out"
  check_absent "$1: the messages have no path" "$dir" "$out"
  reset_conf "$2"
}
printf 'not-the-pin\n' > "$dir/wrong-pin"; chmod 600 "$dir/wrong-pin"; chown postgres: "$dir/wrong-pin"
expect_pq004 "a wrong PIN" pkcs11_pin_file "$dir/wrong-pin" 2
expect_pq004 "a missing module" pkcs11_module "/usr/lib/softhsm/no-such-module.so" 2
# The stored MDK names its token and key: only new wraps use the settings'.
expect_pq004 "a missing key label (decrypts with the recorded key)" pkcs11_key_label "no-such-key" 1
expect_pq004 "a missing token (decrypts with the recorded token)" pkcs11_token_label "no-such-token" 1
check "after the fixes: works again without a restart" "secret-2" "$(q "$port" -c "$cold")"

# --- A token that stops answering: another process holds SoftHSM2's file
# locks, so every call into the token blocks, as a dead network HSM would.
"$APG_PQ_VENV/bin/python" -c '
import fcntl, glob, sys, time
fs = [open(f, "r+b") for f in glob.glob(sys.argv[1] + "/*/*")]
[fcntl.lockf(f, fcntl.LOCK_EX) for f in fs]
print(len(fs), flush=True)
time.sleep(120)' "$dir/hsm/tokens" >"$dir/locker.out" &
locker=$!
for _ in $(seq 1 100); do [ -s "$dir/locker.out" ] && break; sleep 0.1; done
hung=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 <<SQL
\set VERBOSITY verbose
SET apg_pqcrypto.provider_timeout = '1s';
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT pq_decrypt_text(value, id::text) FROM vault WHERE id = 2;
SELECT 'hsm: failed within the timeout', extract(epoch FROM clock_timestamp()) - :t0 < 3.5;
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
SELECT pq_decrypt_text(value, id::text) FROM vault WHERE id = 2;
SELECT 'hsm: the next call fails at once', extract(epoch FROM clock_timestamp()) - :t2 < 0.5;
SQL
)
hung+=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 <<SQL
\set VERBOSITY verbose
SET apg_pqcrypto.provider_timeout = '60s';
SET statement_timeout = '1s';
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT pq_decrypt_text(value, id::text) FROM vault WHERE id = 2;
RESET statement_timeout;
SELECT 'hsm: cancel ended the wait', extract(epoch FROM clock_timestamp()) - :t1 < 5;
SQL
)
# The session has ended while its calls were still blocked in the token.
sleep 1
kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null
sleep 1
check_absent "hung token: the backend left cleanly, though its calls were still in the token" \
  "terminated by signal" "$(cat "$dir/c/server.log")"
check_contains "hung token: PQ004 at the timeout" "ERROR:  PQ004: the pkcs11 master key provider did not answer in time" "$hung"
check_contains "hung token: ...within it" "hsm: failed within the timeout|t" "$hung"
check_contains "hung token: the backend's next call fails at once (PQ004), no thread piles up" \
  "ERROR:  PQ004: the PKCS#11 token has not answered an earlier call yet" "$hung"
check_contains "hung token: ...at once" "hsm: the next call fails at once|t" "$hung"
check_contains "hung token: in another session, a statement cancel ends the wait (57014)" "ERROR:  57014" "$hung"
check_contains "hung token: ...long before the provider timeout" "hsm: cancel ended the wait|t" "$hung"
check "token back: works without a restart" "secret-2" "$(q "$port" -c "$cold")"

# --- A key administrator cannot move the master key out of the HSM into a
# development key file that nobody configured.
q "$port" -c "CREATE ROLE it_keys LOGIN IN ROLE pq_admin" >/dev/null
set_conf master_key_file ""
check "no key file configured: moving to file is refused (PQ004)" "PQ004" \
  "$(sqlstate "$port" "SELECT * FROM pq.rotate_master_key('file')" it_keys)"
check "...and no development key was created" "f" \
  "$(q "$port" -c "SELECT count(*) > 0 FROM pg_ls_dir('.') f WHERE f LIKE 'apg_pqcrypto_dev_master%'")"
reset_conf master_key_file
check "a key administrator sees the status, without secrets" "active|pkcs11|t" \
  "$(qas "$port" it_keys -c "SELECT state, provider, answered FROM pq.master_key_status() WHERE state = 'active'")"

# --- Move file -> HSM -> KMS -> file: every value decrypts after each step.
q "$port" -c "SELECT provider FROM pq.rotate_master_key('file')" >/dev/null
check "move to file: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
mdk_file=$(q "$port" -c "SELECT encode(id, 'hex') FROM pq.master_keys WHERE state = 'active'")
check "move to the HSM" "pkcs11|2" "$(q "$port" -c "SELECT provider, versions_rewrapped FROM pq.rotate_master_key('pkcs11')")"
check "HSM: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
# A new key in the same token: the current MDK unwraps with its recorded key.
softhsm_keygen apg-pq-kek-2
set_conf pkcs11_key_label apg-pq-kek-2
check "a new HSM key: the MDK moves to it" "pkcs11|pkcs11:token=apg-pq;object=apg-pq-kek-2;type=secret-key" \
  "$(q "$port" -c "SELECT provider, key_ref FROM pq.rotate_master_key('pkcs11')")"
check "new HSM key: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
check "move to KMS" "aws_kms|$KMS_KEY_ID|2" \
  "$(q "$port" -c "SELECT provider, key_ref, versions_rewrapped FROM pq.rotate_master_key('aws_kms')")"
check "KMS: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
# A new KMS key: the same.
kms_key_1=$KMS_KEY_ID
KMS_KEY_ID=$(kms_create_key)
set_conf kms_key_id "$KMS_KEY_ID"
check "a new KMS key: the MDK moves to it" "aws_kms|$KMS_KEY_ID" \
  "$(q "$port" -c "SELECT provider, key_ref FROM pq.rotate_master_key('aws_kms')")"
check "new KMS key: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
check "the retired KMS-wrapped MDK keeps its own key reference (not probed: no version uses it)" "$kms_key_1|t" \
  "$(q "$port" -c "SELECT key_ref, answered IS NULL FROM pq.master_key_status() WHERE provider = 'aws_kms' AND state = 'retired'")"
mapfile -t provider_lines < <(provider_settings)   # the restored cluster uses the new key
check "KMS: the encryption context binds the MDK id and the system" "t" \
  "$(q "$port" -c "SELECT system_identifier = (SELECT system_identifier::text FROM pg_control_system()) FROM pq.master_keys WHERE state = 'active'")"
check "KMS: the old keys are retired, no version uses them" "pkcs11:retired:0,file:retired:0,pkcs11:retired:0,pkcs11:retired:0,aws_kms:retired:0" \
  "$(q "$port" -c "SELECT string_agg(m.provider || ':' || m.state || ':' || (SELECT count(*) FROM pq.tenant_key_versions v WHERE v.mdk_id = m.id), ',' ORDER BY m.created_at)
                    FROM pq.master_keys m WHERE m.state = 'retired'")"
check "events record each move" "file,pkcs11,pkcs11,aws_kms,aws_kms" \
  "$(q "$port" -c "SELECT string_agg(details->>'provider', ',' ORDER BY id) FROM pq.key_events WHERE event = 'master_key_rotated'")"

# --- A dump restored into a fresh cluster configured for the same KMS key.
pg_dump -h 127.0.0.1 -p "$port" -U postgres -Fc -f "$dir/dump.pgc" postgres 2>"$dir/dump.err"
check "pg_dump succeeds" "0" "$?"
cluster_start "$dir/restored" "$port_providers_restore" "${quiet[@]}" "${provider_lines[@]}" || return 1
pg_restore -h 127.0.0.1 -p "$port_providers_restore" -U postgres -d postgres "$dir/dump.pgc" 2>"$dir/restore.err"
check "pg_restore succeeds" "" "$(grep -v '^$' "$dir/restore.err" | head -3)"
check "restored on another cluster: 10,000 decrypt through KMS" "10000" "$(q "$port_providers_restore" -c "$all_decrypt")"
cluster_stop "$dir/restored"

# --- KMS outage: SIGSTOP leaves the port open and nothing answering.
cat > "$dir/outage.sql" <<SQL
\set VERBOSITY verbose
SET apg_pqcrypto.key_cache_ttl = 3;
SET apg_pqcrypto.provider_timeout = '1500ms';
SELECT 'warm', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
\! kill -STOP $MOTO_PID
SELECT 'cached', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
SELECT pg_sleep(3.5);
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT 'expired', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
SELECT 'failed within the timeout', extract(epoch FROM clock_timestamp()) - :t0 < 3.5;
SET client_min_messages = debug5;
SELECT 'status', answered, message IS NOT NULL FROM pq.master_key_status() WHERE state = 'active';
RESET client_min_messages;
\! PGOPTIONS='-c apg_pqcrypto.provider_timeout=1000' psql -X -At -q -h 127.0.0.1 -p $port -U postgres postgres -c "SELECT 'other session', answered, last_success IS NOT NULL, provider_calls FROM pq.master_key_status() WHERE state = 'active'"
SET apg_pqcrypto.provider_timeout = '60s';
SET statement_timeout = '1s';
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT 'cancelled', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
RESET statement_timeout;
SELECT 'cancel ended the wait', extract(epoch FROM clock_timestamp()) - :t1 < 5;
\! kill -CONT $MOTO_PID
SELECT 'back', count(*) FROM vault WHERE pq_decrypt_text(value, id::text) = 'secret-' || id;
SQL
outage=$(psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres -f "$dir/outage.sql" postgres 2>&1)
check_contains "outage: warm before it" "warm|100" "$outage"
check_contains "outage: the cached key keeps working" "cached|100" "$outage"
check_contains "outage: PQ004 after the cache expires" "ERROR:  PQ004: the aws_kms master key provider did not answer in time" "$outage"
check_contains "outage: it fails within the timeout" "failed within the timeout|t" "$outage"
check_contains "outage: the status says the provider did not answer" "status|f|t" "$outage"
check_contains "outage: a new session sees the server's last success, and its own one call" "other session|f|t|1" "$outage"
check_contains "outage: a statement cancel ends the wait (57014)" "ERROR:  57014" "$outage"
check_contains "outage: ...long before the provider timeout" "cancel ended the wait|t" "$outage"
check_contains "outage: back without a restart, same session" "back|10000" "$outage"
check_absent "outage: no 'expired' row came back" "expired|" "$outage"
check_absent "outage: the messages do not name the endpoint" "$MOTO_ENDPOINT" "$outage"
check_absent "outage: nor the key, even with client_min_messages = debug5" "$KMS_KEY_ID" "$outage"

# --- Nothing listening at the endpoint (a dead server): PQ004 at once, not after the timeout.
closed=$("$APG_PQ_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
set_conf kms_endpoint "http://127.0.0.1:$closed"
start=$(date +%s%N)
out=$(errtext "$cold")
took_ms=$((($(date +%s%N) - start) / 1000000))
check_contains "dead endpoint: PQ004 (unavailable)" "ERROR:  PQ004: the aws_kms master key provider is unavailable" "$out"
check "dead endpoint: refused within the 5 s timeout" "t" "$([ "$took_ms" -lt 5000 ] && echo t || echo "f ($took_ms ms)")"
reset_conf kms_endpoint
check "endpoint back: works without a restart" "secret-2" "$(q "$port" -c "$cold")"

# --- And back to the file: the move works in every direction.
check "move back to file" "file|2" "$(q "$port" -c "SELECT provider, versions_rewrapped FROM pq.rotate_master_key('file')")"
check "file again: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
check "a new MDK each move (file's old one stays retired)" "f" \
  "$(q "$port" -c "SELECT encode(id, 'hex') = '$mdk_file' FROM pq.master_keys WHERE state = 'active'")"

# --- Nothing secret in the server log; the details of failures are there.
log=$(cat "$dir/c/server.log")
check_absent "server log: no PIN" "$SOFTHSM_PIN" "$log"
check_contains "server log: the PKCS#11 failure's detail" "no AES key labelled \"no-such-key\"" "$log"
cluster_stop "$dir/c"
moto_stop "$dir/kms"
CLUSTER_ENV=()
