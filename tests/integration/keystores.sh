# Master keys in a real OpenBao server (Transit, HTTPS with its own CA) and a
# real KMIP server (PyKMIP, TLS with client certificates), both on loopback:
# round trips, PQ004 without secrets for a wrong or expired token, a revoked
# AppRole secret id, a missing key and a certificate the key's owner did not
# use; an outage (SIGSTOP: PQ004 within the timeout, a cancel ends the wait,
# SIGCONT: the same session works again) and a dead port; a Transit key
# rotation followed by pq.rewrap_master_key(); and the move
# file -> Vault -> KMIP -> HSM -> KMS -> file with 10,000 ciphertexts
# decrypting after every step.
# checks: 65
source "$root/scripts/providers.sh"
dir="$base/keystores"
port=$port_keystores
softhsm_setup "$dir/hsm"
moto_start "$dir/kms"
bao_start "$dir/bao"
kmip_start "$dir/kmip"
mapfile -t provider_lines < <(provider_settings; vault_settings; kmip_settings)
cluster_start "$dir/c" "$port" "${quiet[@]}" "${provider_lines[@]}" "apg_pqcrypto.master_key_provider = 'file'" \
  || return 1

q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('globex')" >/dev/null
q "$port" -c "CREATE TABLE vault (id int PRIMARY KEY, tenant text, value pq_envelope)" \
  -c "INSERT INTO vault SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END,
             pq_encrypt(CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'secret-' || i, i::text)
        FROM generate_series(1, 10000) i" >/dev/null
all_decrypt="SELECT count(*) FROM vault WHERE pq_decrypt_text(value, id::text) = 'secret-' || id"
cold="SELECT pq_decrypt_text(value, id::text) FROM vault WHERE id = 2"
check "file: 10,000 values" "10000" "$(q "$port" -c "$all_decrypt")"

# --- file -> Vault Transit.
check "move to Vault Transit" "vault_transit|2|vault:addr=$BAO_ADDR;namespace=;mount=transit;key=apg-pq;version=1" \
  "$(q "$port" -c "SELECT provider, versions_rewrapped, key_ref FROM pq.rotate_master_key('vault_transit')")"
check "the stored blob is Transit's ciphertext of key version 1" "t" \
  "$(q "$port" -c "SELECT convert_from(wrapped_key, 'UTF8') LIKE 'vault:v1:%' FROM pq.master_keys WHERE state = 'active'")"
check "Vault: 10,000 decrypt in a new session" "10000" "$(q "$port" -c "$all_decrypt")"
check "Vault: the status says it answered" "active|vault_transit|t|" \
  "$(q "$port" -c "SELECT state, provider, answered, message FROM pq.master_key_status() WHERE state = 'active'")"

expect_pq004() { # expect_pq004 NAME FAILURES PROVIDER: FAILURES of (cold decrypt, wrap) give PQ004, nothing secret shown
  local out
  out=$(errtext "$cold"; errtext "SELECT * FROM pq.rotate_master_key('$3')")
  check "$1: PQ004 $2 times in (cold decrypt, wrap)" "$2" "$(grep -c "ERROR:  PQ004" <<<"$out")"
  check_absent "$1: the messages have no path" "$dir" "$out"
  check_absent "$1: ...nor the server's address" "127.0.0.1" "$out"
}
printf 's.not-a-token\n' > "$dir/wrong-token"; chmod 600 "$dir/wrong-token"; chown postgres: "$dir/wrong-token"
set_conf vault_token_file "$dir/wrong-token"
expect_pq004 "Vault: a wrong token" 2 vault_transit
bao_token_file "$dir/short-token" 2s
set_conf vault_token_file "$dir/short-token"
check "Vault: a short-lived token works while it lives" "secret-2" "$(q "$port" -c "$cold")"
sleep 3
expect_pq004 "Vault: an expired token" 2 vault_transit
# AppRole instead of a token file; a revoked secret id logs in no more.
secret_id=$(bao_cli write -f -field=secret_id auth/approle/role/apg-pq/secret-id)
printf '%s\n' "$secret_id" > "$dir/secret-id"; chmod 600 "$dir/secret-id"; chown postgres: "$dir/secret-id"
reload_conf -c "ALTER SYSTEM SET apg_pqcrypto.vault_token_file = ''" \
  -c "ALTER SYSTEM SET apg_pqcrypto.vault_approle_role_id = '$(bao_cli read -field=role_id auth/approle/role/apg-pq/role-id)'" \
  -c "ALTER SYSTEM SET apg_pqcrypto.vault_approle_secret_id_file = '$dir/secret-id'"
check "Vault: AppRole logs in and unwraps" "secret-2" "$(q "$port" -c "$cold")"
bao_cli write auth/approle/role/apg-pq/secret-id/destroy secret_id="$secret_id" >/dev/null
expect_pq004 "Vault: a revoked AppRole secret id" 2 vault_transit
reload_conf -c "ALTER SYSTEM RESET apg_pqcrypto.vault_token_file" \
  -c "ALTER SYSTEM RESET apg_pqcrypto.vault_approle_role_id" -c "ALTER SYSTEM RESET apg_pqcrypto.vault_approle_secret_id_file"
# A key that does not exist: only new wraps use the setting's key.
set_conf vault_key no-such-key
expect_pq004 "Vault: a missing key (decrypts with the recorded key)" 1 vault_transit
reset_conf vault_key
check "Vault: after the fixes, works again without a restart" "secret-2" "$(q "$port" -c "$cold")"

# --- A Transit key rotation: the blob moves to version 2 inside Vault.
bao_cli write -f transit/keys/apg-pq/rotate >/dev/null
check "rewrap: the Vault-wrapped MDK moves to key version 2" "t|t|t" \
  "$(q "$port" -c "SELECT rewrapped, old_key_ref LIKE '%;version=1', key_ref LIKE '%;version=2' FROM pq.rewrap_master_key() WHERE provider = 'vault_transit'")"
check "rewrap: again, nothing moves (every blob is at the newest version; file's cannot)" "f|2" \
  "$(q "$port" -c "SELECT bool_or(rewrapped), count(*) FROM pq.rewrap_master_key()")"
bao_cli write transit/keys/apg-pq/config min_decryption_version=2 >/dev/null
check "rewrap: with version 1 retired in Vault, 10,000 decrypt in a new session" "10000" "$(q "$port" -c "$all_decrypt")"
check "rewrap: the move is an event" "1" \
  "$(q "$port" -c "SELECT count(*) FROM pq.key_events WHERE event = 'master_key_rewrapped' AND details->>'provider' = 'vault_transit'")"
check "rewrap: refused to a role that is not a key administrator (42501)" "42501" \
  "$(q "$port" -c "CREATE ROLE it_app LOGIN" >/dev/null; sqlstate "$port" "SELECT * FROM pq.rewrap_master_key()" it_app)"

# --- Vault outage: SIGSTOP leaves the port open and nothing answering.
outage() { # outage PID PROVIDER: a psql script around a stopped server
  cat <<SQL
\set VERBOSITY verbose
SET apg_pqcrypto.key_cache_ttl = 2;
SET apg_pqcrypto.provider_timeout = '1500ms';
SELECT 'warm', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
\! kill -STOP $1
SELECT 'cached', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
SELECT pg_sleep(2.5);
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT 'expired', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
SELECT 'failed within the timeout', extract(epoch FROM clock_timestamp()) - :t0 < 3.5;
SET apg_pqcrypto.provider_timeout = '60s';
SET statement_timeout = '1s';
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT 'cancelled', count(*) FROM vault WHERE id <= 100 AND pq_decrypt_text(value, id::text) = 'secret-' || id;
RESET statement_timeout;
SELECT 'cancel ended the wait', extract(epoch FROM clock_timestamp()) - :t1 < 5;
\! kill -CONT $1
SELECT 'back', count(*) FROM vault WHERE pq_decrypt_text(value, id::text) = 'secret-' || id;
SQL
}
check_outage() { # check_outage NAME PROVIDER OUTPUT
  check_contains "$1 outage: the cached key keeps working" "cached|100" "$3"
  check_contains "$1 outage: PQ004 after the cache expires" "ERROR:  PQ004: the $2 master key provider did not answer in time" "$3"
  check_contains "$1 outage: it fails within the timeout" "failed within the timeout|t" "$3"
  check_contains "$1 outage: a statement cancel ends the wait (57014)" "ERROR:  57014" "$3"
  check_contains "$1 outage: ...long before the provider timeout" "cancel ended the wait|t" "$3"
  check_contains "$1 outage: back without a restart, same session" "back|10000" "$3"
  check_absent "$1 outage: no 'expired' row came back" "expired|" "$3"
}
out=$(outage "$BAO_PID" | psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1)
check_outage Vault vault_transit "$out"
closed=$(free_loopback_port)
set_conf vault_addr "https://127.0.0.1:$closed"
start=$(date +%s%N)
out=$(errtext "$cold")
took_ms=$((($(date +%s%N) - start) / 1000000))
check_contains "Vault: a dead port is PQ004 (unavailable)" "ERROR:  PQ004: the vault_transit master key provider is unavailable" "$out"
check "Vault: ...at once, not after the timeout" "t" "$([ "$took_ms" -lt 3000 ] && echo t || echo "f ($took_ms ms)")"
reset_conf vault_addr

# --- Vault -> KMIP.
check "move to KMIP: the name is resolved to the key's unique identifier" "kmip|2|kmip:server=127.0.0.1:$KMIP_PORT;uid=$KMIP_UID" \
  "$(q "$port" -c "SELECT provider, versions_rewrapped, key_ref FROM pq.rotate_master_key('kmip')")"
check "KMIP: AES-GCM with the binding as additional data (mode 1, PyKMIP's 16-byte IV, 16-byte tag)" "1|67" \
  "$(q "$port" -c "SELECT get_byte(wrapped_key, 0), length(wrapped_key) FROM pq.master_keys WHERE state = 'active'")"
check "KMIP: 10,000 decrypt in a new session" "10000" "$(q "$port" -c "$all_decrypt")"
check "KMIP: the status says it answered" "active|kmip|t|" \
  "$(q "$port" -c "SELECT state, provider, answered, message FROM pq.master_key_status() WHERE state = 'active'")"
reload_conf -c "ALTER SYSTEM SET apg_pqcrypto.kmip_client_cert = '$KMIP_DIR/other.pem'" \
  -c "ALTER SYSTEM SET apg_pqcrypto.kmip_client_key = '$KMIP_DIR/other.key'"
expect_pq004 "KMIP: a client that does not own the key" 2 kmip
reload_conf -c "ALTER SYSTEM RESET apg_pqcrypto.kmip_client_cert" -c "ALTER SYSTEM RESET apg_pqcrypto.kmip_client_key"
set_conf kmip_key_id no-such-key
expect_pq004 "KMIP: a missing key (decrypts with the recorded key)" 1 kmip
reset_conf kmip_key_id
out=$(outage "$KMIP_PID" | psql -X -At -q -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1)
check_outage KMIP kmip "$out"

# --- KMIP -> HSM -> KMS -> file.
check "move to the HSM" "pkcs11|2" "$(q "$port" -c "SELECT provider, versions_rewrapped FROM pq.rotate_master_key('pkcs11')")"
check "HSM: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
check "move to KMS" "aws_kms|2" "$(q "$port" -c "SELECT provider, versions_rewrapped FROM pq.rotate_master_key('aws_kms')")"
check "KMS: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
check "move back to file" "file|2" "$(q "$port" -c "SELECT provider, versions_rewrapped FROM pq.rotate_master_key('file')")"
check "file again: 10,000 decrypt" "10000" "$(q "$port" -c "$all_decrypt")"
check "events record each move" "vault_transit,kmip,pkcs11,aws_kms,file" \
  "$(q "$port" -c "SELECT string_agg(details->>'provider', ',' ORDER BY id) FROM pq.key_events WHERE event = 'master_key_rotated'")"
check "the retired Vault and KMIP MDKs are used by no version" "0" \
  "$(q "$port" -c "SELECT count(*) FROM pq.tenant_key_versions v JOIN pq.master_keys m ON m.id = v.mdk_id WHERE m.provider IN ('vault_transit', 'kmip')")"

# --- Nothing secret in the server log; the details of failures are there.
log=$(cat "$dir/c/server.log")
check_absent "server log: no Vault token" "$(cat "$dir/bao/token")" "$log"
check_absent "server log: no root token" "$BAO_ROOT" "$log"
check_absent "server log: no AppRole secret id" "$secret_id" "$log"
check_absent "server log: no line of the KMIP client key" "$(sed -n 2p "$KMIP_DIR/client.key")" "$log"
check_contains "server log: Vault's refusal in the detail" "vault_transit: " "$log"
check_contains "server log: the KMIP server's refusal in the detail" "kmip: " "$log"
cluster_stop "$dir/c"
bao_stop "$dir/bao"
kmip_stop "$dir/kmip"
moto_stop "$dir/kms"
CLUSTER_ENV=()
