# The apg-pq command line against a running server: a tenant's public key
# fetched over TCP (and checked against its kid), a file sealed by the CLI
# opened by pq_unseal, a value sealed by pq_seal opened by the CLI,
# signatures both ways, inspection, and the documented exit codes for bad
# input (no partial plaintext written, no secret key overwritten, no
# password on the command line).
# checks: 71
dir="$base/cli"
port=$port_cli
cargo build -q -p apg-pq || { fail "apg-pq does not build"; return 0; }
cli="${CARGO_TARGET_DIR:-$root/target}/debug/apg-pq"
work="$base/cli-files"
mkdir -p "$work"
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('globex')" \
  -c "CREATE ROLE it_cli LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_cli')" >/dev/null
url="postgresql://it_cli@127.0.0.1:$port/postgres"

kid=$(q "$port" -c "SELECT encode(kid, 'hex') FROM pq.tenant_keys WHERE tenant = 'acme'")
check "fetch-key: the tenant's public key, checked against its kid" "$kid" \
  "$("$cli" fetch-key --url "$url" --tenant acme --expect-kid "$kid" -o "$work/acme.pk" 2>&1)"
check "fetch-key: another kid expected: exit 7, nothing written" "7|no" \
  "$(code "$cli" fetch-key --url "$url" --tenant acme --expect-kid 00112233445566778899aabbccddeeff -o "$work/x.pk")|$([ -e "$work/x.pk" ] && echo yes || echo no)"
check "fetch-key: a tenant the role may not use: exit 6" "6" "$(code "$cli" fetch-key --url "$url" --tenant globex -o "$work/g.pk")"
check_contains "... with the server's message" "permission denied" "$("$cli" fetch-key --url "$url" --tenant globex -o "$work/g.pk" 2>&1)"
# A role that must give a password (scram), read from a file, never from the command line.
q "$port" -c "SET password_encryption = 'scram-sha-256'" -c "CREATE ROLE it_pw LOGIN PASSWORD 'correct horse' IN ROLE pq_user" \
  -c "SELECT pq.grant_tenant('acme', 'it_pw')" >/dev/null
{ echo "host all it_pw 127.0.0.1/32 scram-sha-256"; cat "$dir/data/pg_hba.conf"; } >"$work/hba" && cat "$work/hba" | as_postgres tee "$dir/data/pg_hba.conf" >/dev/null
q "$port" -c "SELECT pg_reload_conf()" >/dev/null
printf 'correct horse\n' >"$work/pw" && chmod 600 "$work/pw"
check "fetch-key: the password from --password-file" "$kid" \
  "$("$cli" fetch-key --url "postgresql://it_pw@127.0.0.1:$port/postgres" --password-file "$work/pw" --tenant acme -o "$work/pw.pk" 2>&1)"
check "fetch-key: the password from PGPASSWORD" "$kid" \
  "$(PGPASSWORD='correct horse' "$cli" fetch-key --url "postgresql://it_pw@127.0.0.1:$port/postgres" --tenant acme -o "$work/pw2.pk" 2>&1)"
check "fetch-key: a wrong password: exit 6" "6" \
  "$(PGPASSWORD=wrong code "$cli" fetch-key --url "postgresql://it_pw@127.0.0.1:$port/postgres" --tenant acme -o "$work/pw3.pk")"
check "fetch-key: a password in the URL is refused: exit 3" "3" \
  "$(code "$cli" fetch-key --url "postgresql://it_cli:secret@127.0.0.1:$port/postgres" --tenant acme -o "$work/p.pk")"

printf 'postgres://app:s3cret@db.internal/app' >"$work/config.txt"
"$cli" seal --public-key "$work/acme.pk" --aad database_url -i "$work/config.txt" -o "$work/config.sealed"
check "a file sealed by the CLI is opened by pq_unseal (as the application role)" "postgres://app:s3cret@db.internal/app" \
  "$(qas "$port" it_cli -c "SELECT pq_unseal_text(decode('$(hex "$work/config.sealed")', 'hex'), 'database_url')")"
check "... and bound to its AAD" "PQ001" "$(sqlstate "$port" "SELECT pq_unseal(decode('$(hex "$work/config.sealed")', 'hex'), 'other')")"
python=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}/bin/python

# docs/CLIENT.md's sealed configuration value: sealed with --aad-hex to
# FORMAT.md §11.1's AAD, signed (format 2) over the record it replaces.
"$cli" keygen --algorithm ml-dsa-65 --secret-key "$work/signer.sk" --public-key "$work/signer.pk" >/dev/null
q "$port" -c "SELECT pq.config_register_signer('acme', 'cli', decode('$(hex "$work/signer.pk")', 'hex'))" >/dev/null
config_aad=$("$python" -c "import struct, sys; s = lambda b: struct.pack('>I', len(b)) + b; print((b'apg-pq config v1' + s(b'acme') + s(b'cli.url')).hex())")
"$cli" seal --public-key "$work/acme.pk" --aad-hex "$config_aad" -i "$work/config.txt" -o "$work/config_value.sealed"
config_sign() { # config_sign OUT: signs config_value.sealed over the key's current head
  qas "$port" it_cli -c "SELECT encode(record_hash, 'hex') FROM pq.config_head('acme', 'cli.url')" >"$work/head.hex"
  "$python" - "$work/config_value.sealed" "$work/head.hex" >"$work/message.bin" <<'PY'
import hashlib, struct, sys
s = lambda b: struct.pack(">I", len(b)) + b
env, head = open(sys.argv[1], "rb").read(), open(sys.argv[2]).read()
sys.stdout.buffer.write(s(b"acme") + s(b"cli.url") + hashlib.sha256(env).digest() + bytes.fromhex(head.strip()))
PY
  "$cli" sign --secret-key "$work/signer.sk" --raw --context "apg-pq config-sealed v2" -i "$work/message.bin" -o "$1"
}
config_sign "$work/config_value.sig"
set_sealed="SELECT pq.config_set_sealed('acme', 'cli.url', decode('$(hex "$work/config_value.sealed")', 'hex'), decode('$(hex "$work/config_value.sig")', 'hex'))"
check "a config value sealed with --aad-hex and signed over pq.config_head is stored" "1" "$(qas "$port" it_cli -c "$set_sealed")"
check "... and read back by pq.config_get" "postgres://app:s3cret@db.internal/app" "$(qas "$port" it_cli -c "SELECT pq.config_get('acme', 'cli.url')")"
check "... the same (envelope, signature) again is a replay: PQ001" "PQ001" "$(sqlstate "$port" "$set_sealed" it_cli)"
config_sign "$work/config_value2.sig"
check "... signed again over the new head, it is stored as version 2" "2" \
  "$(qas "$port" it_cli -c "SELECT pq.config_set_sealed('acme', 'cli.url', decode('$(hex "$work/config_value.sealed")', 'hex'), decode('$(hex "$work/config_value2.sig")', 'hex'))")"
printf 'sealed in Python' | "$python" "$root/tests/seal_example.py" "$work/acme.pk" database_url >"$work/python.sealed"
check "docs/CLIENT.md's Python example seals what pq_unseal opens" "sealed in Python" \
  "$(qas "$port" it_cli -c "SELECT pq_unseal_text(decode('$(hex "$work/python.sealed")', 'hex'), 'database_url')")"
check "stdin to stdout works too" "from stdin" \
  "$(printf 'from stdin' | "$cli" seal --public-key "$work/acme.pk" | od -An -tx1 -v | tr -d ' \n' \
     | xargs -I{} psql -X -At -q -h 127.0.0.1 -p "$port" -U it_cli postgres -c "SELECT pq_unseal_text(decode('{}', 'hex'))")"

kid_cli=$("$cli" keygen --algorithm ml-kem-768 --secret-key "$work/me.sk" --public-key "$work/me.pk")
check "keygen: the secret key file is 0600" "600" "$(stat -c %a "$work/me.sk")"
check "keygen: the kid is the server's kid of that public key" "$kid_cli" \
  "$(q "$port" -c "SELECT pq_inspect(pq_seal(decode('$(hex "$work/me.pk")', 'hex'), 'x'))->>'kid'")"
# Logged (log_statement = 'all'): the plaintext must not reach the log.
q "$port" -c "SET log_statement = 'all'" -c "SELECT 'cli-log-canary'" >/dev/null
q "$port" -c "SET log_statement = 'all'" \
  -c "SELECT encode(pq_seal(decode('$(hex "$work/me.pk")', 'hex'), 'sealed by the server', 'k1'), 'hex')" | unhex "$work/server.sealed"
"$cli" open --secret-key "$work/me.sk" --aad k1 -i "$work/server.sealed" -o "$work/server.opened"
check "a value sealed by pq_seal is opened by the CLI" "sealed by the server" "$(cat "$work/server.opened")"
check "open --aad-hex: the AAD as hex digits ('k1')" "sealed by the server" \
  "$("$cli" open --secret-key "$work/me.sk" --aad-hex 6b31 -i "$work/server.sealed" 2>&1)"
check "... into a 0600 file" "600" "$(stat -c %a "$work/server.opened")"
check "open with the wrong AAD: exit 4 and no output file" "4|no" \
  "$(code "$cli" open --secret-key "$work/me.sk" --aad k2 -i "$work/server.sealed" -o "$work/wrong.opened")|$([ -e "$work/wrong.opened" ] && echo yes || echo no)"
head -c 500 "$work/server.sealed" >"$work/truncated.sealed"
check "open of a truncated envelope: exit 3 and no output file" "3|no" \
  "$(code "$cli" open --secret-key "$work/me.sk" -i "$work/truncated.sealed" -o "$work/t.opened")|$([ -e "$work/t.opened" ] && echo yes || echo no)"
head -c 10 /dev/urandom >"$work/garbage.key"
check "a malformed key file: exit 3" "3" "$(code "$cli" seal --public-key "$work/garbage.key" -i "$work/config.txt")"
check "a key of the wrong type (the secret key as public key): exit 3" "3" "$(code "$cli" seal --public-key "$work/me.sk" -i "$work/config.txt")"
check "keygen never overwrites a secret key: exit 5" "5" \
  "$(code "$cli" keygen --secret-key "$work/me.sk" --public-key "$work/me2.pk")"
check "open never overwrites a file: exit 5" "5" \
  "$(code "$cli" open --secret-key "$work/me.sk" --aad k1 -i "$work/server.sealed" -o "$work/server.opened")"

"$cli" keygen --algorithm ml-dsa-65 --secret-key "$work/signer.sk" --public-key "$work/signer.pk" >/dev/null
"$cli" sign --secret-key "$work/signer.sk" --raw --context "config v7" -i "$work/config.txt" -o "$work/config.rawsig"
check "a raw CLI signature verifies with pq_verify_with" "t|f" \
  "$(q "$port" -c "SELECT pq_verify_with(decode('$(hex "$work/signer.pk")', 'hex'), decode('$(hex "$work/config.txt")', 'hex'),
                                         decode('$(hex "$work/config.rawsig")', 'hex'), 'config v7'),
                          pq_verify_with(decode('$(hex "$work/signer.pk")', 'hex'), 'other message',
                                         decode('$(hex "$work/config.rawsig")', 'hex'), 'config v7')" | tr '\n' '|' | sed 's/|$//')"
# SLH-DSA-SHA2-128s long-term signatures: the CLI's verify in the server, the server's in the CLI.
"$cli" keygen --algorithm slh-dsa-sha2-128s --secret-key "$work/slh.sk" --public-key "$work/slh.pk" >/dev/null
"$cli" sign --algorithm slh-dsa-sha2-128s --secret-key "$work/slh.sk" --raw --context "config v7" -i "$work/config.txt" -o "$work/config.slhsig"
check "a CLI SLH-DSA signature verifies with pq_verify_with (and not over another message)" "t|f" \
  "$(q "$port" -c "SELECT pq_verify_with(decode('$(hex "$work/slh.pk")', 'hex'), decode('$(hex "$work/config.txt")', 'hex'),
                                         decode('$(hex "$work/config.slhsig")', 'hex'), 'config v7'),
                          pq_verify_with(decode('$(hex "$work/slh.pk")', 'hex'), 'other message',
                                         decode('$(hex "$work/config.slhsig")', 'hex'), 'config v7')" | tr '\n' '|' | sed 's/|$//')"
q "$port" -c "SELECT encode(pq_sign_with(decode('$(hex "$work/slh.sk")', 'hex'), decode('$(hex "$work/config.txt")', 'hex'), 'config v7', 'slh-dsa-sha2-128s'), 'hex')" \
  | unhex "$work/server.slhsig"
check "a pq_sign_with SLH-DSA signature verifies with the CLI" "0" \
  "$(code "$cli" verify --public-key "$work/slh.pk" --signature "$work/server.slhsig" --context "config v7" -i "$work/config.txt")"
"$cli" fetch-key --url "$url" --tenant acme --kind dsa -o "$work/acme.vk" >/dev/null
q "$port" -c "SELECT encode(pq_sign('acme', decode('$(hex "$work/config.txt")', 'hex'), 'config v7'), 'hex')" | unhex "$work/server.sig"
check "a pq_sign signature verifies with the CLI (fetched verifying key)" "0" \
  "$(code "$cli" verify --public-key "$work/acme.vk" --signature "$work/server.sig" --context "config v7" -i "$work/config.txt")"
check "... and not over another message: exit 1" "1" \
  "$(printf 'other' | code "$cli" verify --public-key "$work/acme.vk" --signature "$work/server.sig" --context "config v7")"
check "... nor with another context: exit 1" "1" \
  "$(code "$cli" verify --public-key "$work/acme.vk" --signature "$work/server.sig" -i "$work/config.txt")"
check "inspect names the kind and the kid" '"kid":"'"$kid"'"' \
  "$("$cli" inspect -i "$work/config.sealed" | grep -o '"kid":"[0-9a-f]*"')"
check_contains "--help documents the exit codes" "7  fetch-key: the key's id differs" "$("$cli" --help)"

# X-Wing (0.6.0): a tenant created with kem => 'x-wing', both directions.
q "$port" -c "SELECT pq.create_tenant('hybrid', kem => 'x-wing')" -c "SELECT pq.grant_tenant('hybrid', 'it_cli')" >/dev/null
xkid=$(q "$port" -c "SELECT encode(kid, 'hex') FROM pq.tenant_keys WHERE tenant = 'hybrid'")
check "fetch-key: an X-Wing tenant's key (1216 bytes), checked against its kid" "$xkid|1216" \
  "$("$cli" fetch-key --url "$url" --tenant hybrid --expect-kid "$xkid" -o "$work/hybrid.pk")|$(stat -c %s "$work/hybrid.pk")"
"$cli" seal --public-key "$work/hybrid.pk" --aad database_url -i "$work/config.txt" -o "$work/hybrid.sealed"
check "X-Wing: a file sealed by the CLI ('X') is opened by pq_unseal" "X|postgres://app:s3cret@db.internal/app" \
  "$(qas "$port" it_cli -c "SELECT convert_from(substr(e, 2, 1), 'UTF8') || '|' || pq_unseal_text(e, 'database_url') FROM decode('$(hex "$work/hybrid.sealed")', 'hex') e")"
"$python" -c "
import sys; sys.path.insert(0, '$root/tests'); import pq_client_format as c
sys.stdout.buffer.write(c.seal(open('$work/hybrid.pk', 'rb').read(), b'sealed by tests/pq_client_format.py', b'py'))" >"$work/hybrid-py.sealed"
check "X-Wing: an envelope from FORMAT.md's text alone (tests/pq_client_format.py) opens on the server" "sealed by tests/pq_client_format.py" \
  "$(qas "$port" it_cli -c "SELECT pq_unseal_text(decode('$(hex "$work/hybrid-py.sealed")', 'hex'), 'py')")"
"$cli" keygen --algorithm x-wing --secret-key "$work/x.sk" --public-key "$work/x.pk" >/dev/null
q "$port" -c "SELECT encode(pq_seal(decode('$(hex "$work/x.pk")', 'hex'), 'x-wing by the server', 'k1'), 'hex')" | unhex "$work/x-server.sealed"
"$cli" open --secret-key "$work/x.sk" --aad k1 -i "$work/x-server.sealed" -o "$work/x-server.opened"
check "X-Wing: a value pq_seal sealed to a CLI key opens with the CLI" "x-wing by the server" "$(cat "$work/x-server.opened")"
check "X-Wing: the CLI's X-Wing kid is the server's" "$("$cli" inspect -i "$work/x-server.sealed" | grep -o '"kid":"[0-9a-f]*"')" \
  "$(q "$port" -c "SELECT '\"kid\":\"' || encode(substr(sha256(decode('$(hex "$work/x.pk")', 'hex')), 1, 16), 'hex') || '\"'")"
check "X-Wing: an ML-KEM secret key does not open an 'X' envelope: exit 3, nothing written" "3|no" \
  "$(code "$cli" open --secret-key "$work/me.sk" --aad k1 -i "$work/x-server.sealed" -o "$work/x-wrong")|$([ -e "$work/x-wrong" ] && echo yes || echo no)"

# Batches: the CLI's items each open on the server; the server's open with the CLI.
printf 'row-1\tfirst value\nrow-2\tsecond value\nrow-3\tthird value\n' >"$work/batch.tsv"
"$cli" seal --batch --tsv --public-key "$work/hybrid.pk" -i "$work/batch.tsv" -o "$work/batch.items"
q "$port" -c "CREATE TABLE cli_batch (n serial, item bytea)" -c "GRANT SELECT ON cli_batch TO it_cli" >/dev/null
q "$port" -c "\\copy cli_batch (item) FROM '$work/batch.items' WITH (FORMAT csv)" >/dev/null
check "seal --batch: three 'W' items sharing one KEM ciphertext, each opened by pq_unseal with its row's AAD" \
  "1|first value|2|second value|3|third value|1" \
  "$(qas "$port" it_cli -c "SELECT string_agg(n || '|' || pq_unseal_text(item, 'row-' || n), '|' ORDER BY n) || '|' ||
                                  (SELECT count(DISTINCT substr(item, 27, 1120)) FROM cli_batch) FROM cli_batch WHERE substr(item, 2, 1) = 'W'")"
check "... and an item under another row's AAD: PQ001" "PQ001" "$(sqlstate "$port" "SELECT pq_unseal(item, 'row-2'::bytea) FROM cli_batch WHERE n = 1")"
q "$port" -c "SELECT encode(i, 'hex') FROM unnest(pq_seal_batch(decode('$(hex "$work/x.pk")', 'hex'), ARRAY['a', 'bb', 'ccc']::bytea[])) i" >"$work/server.items"
opened=""
while read -r item; do
  printf '%s' "$item" | unhex "$work/item.bin"
  rm -f "$work/item.out"
  "$cli" open --secret-key "$work/x.sk" -i "$work/item.bin" -o "$work/item.out" && opened="$opened$(cat "$work/item.out")|"
done <"$work/server.items"
check "pq_seal_batch's items open one by one with the CLI" "a|bb|ccc|" "$opened"

# Streams: larger than the in-memory limit is not needed to test the format;
# 5 MiB in 64 KiB chunks, written by the CLI and by FORMAT.md's text.
head -c 5242881 /dev/urandom >"$work/big.bin"
"$cli" seal --stream --public-key "$work/x.pk" --aad backup -i "$work/big.bin" -o "$work/big.t" -q
"$cli" open --secret-key "$work/x.sk" --aad backup -i "$work/big.t" -o "$work/big.out" -q
check "seal --stream / open: 5 MiB round trip (81 chunks), output 0600" "same|600" \
  "$(cmp -s "$work/big.bin" "$work/big.out" && echo same)|$(stat -c %a "$work/big.out")"
check_contains "inspect reads a stream's header only" '"kind":"stream"' "$("$cli" inspect -i "$work/big.t")"
head -c $(( $(stat -c %s "$work/big.t") - 65552 )) "$work/big.t" >"$work/cut.t"
check "a stream cut at a chunk boundary: exit 4, nothing written" "4|no" \
  "$(code "$cli" open --secret-key "$work/x.sk" --aad backup -i "$work/cut.t" -o "$work/cut.out")|$([ -e "$work/cut.out" ] && echo yes || echo no)"
check "... also to stdout: exit 4 and no byte of plaintext" "4|0" \
  "$("$cli" open --secret-key "$work/x.sk" --aad backup -i "$work/cut.t" >"$work/cut.stdout" 2>/dev/null; echo $?)|$(stat -c %s "$work/cut.stdout")"
"$python" -c "
import sys; sys.path.insert(0, '$root/tests'); import pq_client_format as c
sys.stdout.buffer.write(c.seal_stream(open('$work/me.pk', 'rb').read(), b'stream from python ' * 10000, b'py', chunk_size=4096))" >"$work/py.t"
check "a stream written from FORMAT.md's text (4 KiB chunks, ML-KEM-768) opens with the CLI" "190000" \
  "$("$cli" open --secret-key "$work/me.sk" --aad py -i "$work/py.t" 2>&1 | wc -c)"
# TLS (0.8.0): a test CA, a server certificate for 127.0.0.1 and one for
# another name, a rogue CA; a role that may only connect over TLS.
echo "# TLS to the server: verify-full, verify-ca, require; remote hosts need verify-full"
tls="$work/tls"
mkdir -p "$tls"
(
  cd "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=apg test CA" -keyout ca.key -out ca.pem
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rogue CA" -keyout rogue.key -out rogue.pem
  for name in good other; do
    san="IP:127.0.0.1,DNS:localhost"
    [ "$name" = other ] && san="DNS:db.example.com"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$name.key" -out "$name.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$name.ext" -out "$name.pem"
  done
) >/dev/null 2>&1
chown postgres: "$tls"/*.key "$tls"/*.pem && chmod 600 "$tls"/*.key
serve_cert() { # serve_cert NAME: the server presents NAME.pem
  q "$port" -c "ALTER SYSTEM SET ssl = on" -c "ALTER SYSTEM SET ssl_cert_file = '$tls/$1.pem'" \
    -c "ALTER SYSTEM SET ssl_key_file = '$tls/$1.key'" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.5
}
serve_cert good
q "$port" -c "CREATE ROLE it_tls LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_tls')" >/dev/null
{ echo "hostnossl all it_tls 0.0.0.0/0 reject"; cat "$dir/data/pg_hba.conf"; } >"$work/hba" && cat "$work/hba" | as_postgres tee "$dir/data/pg_hba.conf" >/dev/null
q "$port" -c "SELECT pg_reload_conf()" >/dev/null
turl="postgresql://it_tls@127.0.0.1:$port/postgres"
check "verify-full with the CA: the key over TLS" "$kid" \
  "$("$cli" fetch-key --url "$turl" --sslmode verify-full --root-cert "$tls/ca.pem" --tenant acme -o "$work/tls1.pk" 2>&1)"
check "the role cannot connect without TLS (so the check above used it): exit 6" "6" \
  "$(code "$cli" fetch-key --url "$turl" --sslmode disable --tenant acme -o "$work/tls2.pk")"
check "sslmode and sslrootcert in the URL" "$kid" \
  "$("$cli" fetch-key --url "$turl?sslmode=verify-full&sslrootcert=$tls/ca.pem" --tenant acme -o "$work/tls3.pk" 2>&1)"
check "a server whose certificate another CA signed (a man in the middle): exit 6, nothing written" "6|no" \
  "$(code "$cli" fetch-key --url "$turl" --sslmode verify-ca --root-cert "$tls/rogue.pem" --tenant acme -o "$work/tls4.pk")|$([ -e "$work/tls4.pk" ] && echo yes || echo no)"
check "require encrypts without verifying" "$kid" \
  "$("$cli" fetch-key --url "$turl" --sslmode require --tenant acme -o "$work/tls5.pk" 2>&1)"
serve_cert other
check "a certificate for another name: verify-full refuses it (exit 6)" "6" \
  "$(code "$cli" fetch-key --url "$turl" --sslmode verify-full --root-cert "$tls/ca.pem" --tenant acme -o "$work/tls6.pk")"
check "... verify-ca accepts it (the chain is the CA's)" "$kid" \
  "$("$cli" fetch-key --url "$turl" --sslmode verify-ca --root-cert "$tls/ca.pem" --tenant acme -o "$work/tls7.pk" 2>&1)"
serve_cert good
check_contains "backup over verify-full says so" "(sslmode verify-full)" \
  "$("$cli" backup --url "postgresql://postgres@127.0.0.1:$port/postgres" --sslmode verify-full --root-cert "$tls/ca.pem" \
       --recipient-key "$work/me.pk" --tenant acme -o "$work/tls.apgb" 2>&1)"
remote="postgresql://it_tls@192.0.2.10:$port/postgres?connect_timeout=1"
for mode in prefer require verify-ca; do
  check "a host that is not the loopback with sslmode $mode: refused before connecting (exit 3)" "3" \
    "$(code "$cli" fetch-key --url "$remote" --sslmode "$mode" --root-cert "$tls/ca.pem" --tenant acme -o "$work/r.pk")"
done
check_contains "... saying what to do" "verify-full" \
  "$("$cli" backup --url "$remote" --recipient-key "$work/me.pk" -o "$work/r.apgb" 2>&1)"
check "--insecure lets it try (and time out: exit 6)" "6" \
  "$(code "$cli" fetch-key --url "$remote" --sslmode require --insecure --tenant acme -o "$work/r.pk")"
# Client-side blind index terms: an index key exported to the client's
# key (pq.export_index_key, granted to the role), opened by index-key,
# terms by index-term equal the server's pq_blind_index.
"$cli" keygen --algorithm x-wing --secret-key "$work/index-client.sk" --public-key "$work/index-client.pk" >/dev/null
q "$port" -c "GRANT EXECUTE ON FUNCTION pq.export_index_key(text, text, bytea, integer) TO it_cli" >/dev/null
qas "$port" it_cli -F ' ' -c "SELECT encode(kid, 'hex'), encode(key_envelope, 'hex')
                              FROM pq.export_index_key('acme', 'email', decode('$(hex "$work/index-client.pk")', 'hex'))" >"$work/index-export.txt"
index_kid=$(cut -d' ' -f1 "$work/index-export.txt")
cut -d' ' -f2 "$work/index-export.txt" | "$python" -c "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))" >"$work/index-key.sealed"
check "index-key: opens the exported key (kid and context bound) into a 0600 file" "0|600|32" \
  "$(code "$cli" index-key --secret-key "$work/index-client.sk" --kid "$index_kid" --context email -i "$work/index-key.sealed" -o "$work/email.ik")|$(stat -c %a "$work/email.ik")|$(stat -c %s "$work/email.ik")"
check "index-key: another context does not open (exit 4), nothing written" "4|no" \
  "$(code "$cli" index-key --secret-key "$work/index-client.sk" --kid "$index_kid" --context phone -i "$work/index-key.sealed" -o "$work/phone.ik")|$([ -e "$work/phone.ik" ] && echo yes || echo no)"
printf ' Alice@Example.COM ' >"$work/email.txt"
check "index-term: the client's term is the server's pq_blind_index (trim,casefold, 128 bits)" \
  "$(qas "$port" it_cli -c "SELECT encode(pq_blind_index('acme', ' Alice@Example.COM ', 'email', 128, 'trim,casefold'), 'hex')")" \
  "$("$cli" index-term --index-key "$work/email.ik" --bits 128 --normalization trim,casefold -i "$work/email.txt")"
check "index-term: bad bits or normalisation: exit 3" "3|3" \
  "$(code "$cli" index-term --index-key "$work/email.ik" --bits 12 -i "$work/email.txt")|$(code "$cli" index-term --index-key "$work/email.ik" --normalization lower -i "$work/email.txt")"
check "the export is a key event naming the recipient's kid" "email|t" \
  "$(q "$port" -c "SELECT details->>'context', details->>'recipient_kid' = '$("$cli" inspect -i "$work/index-key.sealed" | "$python" -c "import json,sys; print(json.load(sys.stdin)['kid'])")'
                   FROM pq.key_events WHERE event = 'blind_index_key_exported'" | tr '\n' '|' | sed 's/|$//')"
check_contains "control: statements logged with log_statement = 'all' reach the log" "cli-log-canary" "$(cat "$dir/server.log")"
check_contains "control: the pq_seal call was logged, redacted" "pq_seal(<redacted>)" "$(cat "$dir/server.log")"
check_absent "no plaintext in the server log" "sealed by the server" "$(cat "$dir/server.log")"
check_absent "no plaintext of a sealed file in the server log" "s3cret@db" "$(cat "$dir/server.log")"
cluster_stop "$dir"
