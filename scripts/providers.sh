# Real master key providers for the tests, the demo and the benchmark
# (sourced, after scripts/cluster.sh):
#   softhsm_setup DIR  -> a SoftHSM2 token "apg-pq" with the AES-256 key
#                         "apg-pq-kek" (sensitive, not extractable) and a
#                         PIN file, all under DIR and owned by postgres
#   moto_start DIR     -> moto_server (a KMS-compatible server) on a free
#                         loopback port, and a KMS key in it
#   softhsm_keygen LABEL -> another AES-256 key in that token
#   kms_create_key     -> prints the id of another KMS key
#   moto_stop DIR      -> stops it (cluster_discard also does)
#   provider_settings  -> the postgresql.conf lines for both providers
#   bao_start DIR      -> an OpenBao dev server (TLS, its own CA) on a free
#                         loopback port: Transit key apg-pq (derived), a
#                         policy apg-pq (encrypt, decrypt, rewrap on it), an
#                         AppRole apg-pq, and DIR/token with a policy token
#   bao_cli ARGS...    -> the bao CLI as root against it
#   kmip_start DIR     -> PyKMIP's server (tests/kmip_tool.py) on a free
#                         loopback port, its certificates, and the active
#                         AES-256 key apg-pq-kek (KMIP_UID)
#   vault_settings, kmip_settings -> their postgresql.conf lines
#   bao_stop DIR, kmip_stop DIR
# Clusters started after these get SOFTHSM2_CONF and dummy AWS credentials
# in their environment (CLUSTER_ENV): the server's own environment is
# where the providers find them, never a setting.
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
CLUSTER_ENV=(${CLUSTER_ENV[@]+"${CLUSTER_ENV[@]}"})

softhsm_setup() {
  local dir=$1 pin
  mkdir -p "$dir/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" > "$dir/softhsm2.conf"
  export SOFTHSM2_CONF=$dir/softhsm2.conf
  pin=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  softhsm2-util --init-token --free --label apg-pq --so-pin "$pin-so" --pin "$pin" >/dev/null
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label apg-pq --login --pin "$pin" \
    --keygen --key-type AES:32 --label apg-pq-kek --sensitive >/dev/null 2>&1
  printf '%s\n' "$pin" > "$dir/pin"
  chmod 600 "$dir/pin"
  SOFTHSM_PIN=$pin
  SOFTHSM_DIR=$dir
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
  CLUSTER_ENV+=("SOFTHSM2_CONF=$SOFTHSM2_CONF")
}

softhsm_keygen() {
  pkcs11-tool --module "$SOFTHSM_MODULE" --token-label apg-pq --login --pin "$SOFTHSM_PIN" \
    --keygen --key-type AES:32 --label "$1" --sensitive >/dev/null 2>&1
  [ "$(id -u)" = 0 ] && chown -R postgres: "$SOFTHSM_DIR"
  return 0
}

kms_create_key() {
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$APG_PQ_VENV/bin/python" -c '
import sys, boto3
kms = boto3.client("kms", region_name="us-east-1", endpoint_url=sys.argv[1])
print(kms.create_key(Description="apg_pqcrypto test KEK")["KeyMetadata"]["KeyId"])' "$MOTO_ENDPOINT"
}

moto_start() {
  local dir=$1 port
  mkdir -p "$dir"
  port=$(free_loopback_port)
  "$APG_PQ_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
  echo $! > "$dir/moto.pid"
  MOTO_PID=$!
  MOTO_ENDPOINT=http://127.0.0.1:$port
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  KMS_KEY_ID=$(kms_create_key)
  CLUSTER_ENV+=(AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true)
}

moto_stop() { stop_server "$1/moto.pid"; }

provider_settings() {
  echo "apg_pqcrypto.pkcs11_module = '$SOFTHSM_MODULE'"
  echo "apg_pqcrypto.pkcs11_token_label = 'apg-pq'"
  echo "apg_pqcrypto.pkcs11_pin_file = '$SOFTHSM_DIR/pin'"
  echo "apg_pqcrypto.pkcs11_key_label = 'apg-pq-kek'"
  echo "apg_pqcrypto.kms_key_id = '$KMS_KEY_ID'"
  echo "apg_pqcrypto.kms_region = 'us-east-1'"
  echo "apg_pqcrypto.kms_endpoint = '$MOTO_ENDPOINT'"
}

free_loopback_port() {
  "$APG_PQ_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stop_server PIDFILE: stops a test server (also when it was stopped with SIGSTOP).
stop_server() {
  [ -f "$1" ] || return 0
  kill -CONT "$(cat "$1")" 2>/dev/null
  kill "$(cat "$1")" 2>/dev/null
  rm -f "$1"
}

bao_cli() {
  BAO_ADDR=$BAO_ADDR BAO_CACERT=$BAO_DIR/vault-ca.pem BAO_TOKEN=$BAO_ROOT "$APG_PQ_VENV/bin/bao" "$@"
}

bao_start() {
  local dir=$1 port
  mkdir -p "$dir"
  port=$(free_loopback_port)
  BAO_ROOT=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  BAO_DIR=$dir
  BAO_ADDR=https://127.0.0.1:$port
  "$APG_PQ_VENV/bin/bao" server -dev -dev-root-token-id="$BAO_ROOT" -dev-no-store-token -dev-tls \
    -dev-tls-cert-dir="$dir" -dev-listen-address="127.0.0.1:$port" >"$dir/bao.log" 2>&1 &
  BAO_PID=$!
  echo $BAO_PID > "$dir/bao.pid"
  for _ in $(seq 1 300); do
    [ -f "$dir/vault-ca.pem" ] && bao_cli status >/dev/null 2>&1 && break
    sleep 0.2
  done
  bao_cli secrets enable transit >/dev/null
  bao_cli write -f transit/keys/apg-pq type=aes256-gcm96 derived=true >/dev/null
  printf 'path "transit/%s/apg-pq" { capabilities = ["update"] }\n' encrypt decrypt rewrap > "$dir/policy.hcl"
  bao_cli policy write apg-pq "$dir/policy.hcl" >/dev/null
  bao_cli auth enable approle >/dev/null
  bao_cli write auth/approle/role/apg-pq token_policies=apg-pq token_ttl=1h >/dev/null
  bao_token_file "$dir/token" 24h
  chmod 755 "$dir"
  chmod 644 "$dir/vault-ca.pem"
}

# bao_token_file PATH TTL: a token of policy apg-pq in PATH (0600, postgres's).
bao_token_file() {
  local token
  token=$(bao_cli token create -policy=apg-pq -ttl="$2" -field=token)
  printf '%s\n' "$token" > "$1"
  chmod 600 "$1"
  [ "$(id -u)" = 0 ] && chown postgres: "$1"
  return 0
}

vault_settings() {
  echo "apg_pqcrypto.vault_addr = '$BAO_ADDR'"
  echo "apg_pqcrypto.vault_key = 'apg-pq'"
  echo "apg_pqcrypto.vault_token_file = '$BAO_DIR/token'"
  echo "apg_pqcrypto.vault_ca_file = '$BAO_DIR/vault-ca.pem'"
}

bao_stop() { stop_server "$1/bao.pid"; }

kmip_tool() { # kmip_tool CMD [ARGS...]: tests/kmip_tool.py against the server
  local cmd=$1; shift
  "$APG_PQ_VENV/bin/python" "$root/tests/kmip_tool.py" "$cmd" "$KMIP_DIR" "$KMIP_PORT" "$@"
}

kmip_start() {
  local dir=$1
  KMIP_DIR=$dir
  KMIP_PORT=$(free_loopback_port)
  "$APG_PQ_VENV/bin/python" "$root/tests/kmip_tool.py" certs "$dir"
  "$APG_PQ_VENV/bin/python" "$root/tests/kmip_tool.py" serve "$dir" "$KMIP_PORT" >"$dir/serve.log" 2>&1 &
  KMIP_PID=$!
  echo $KMIP_PID > "$dir/kmip.pid"
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$KMIP_PORT") 2>/dev/null && break
    sleep 0.2
  done
  KMIP_UID=$(kmip_tool create apg-pq-kek)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/client.key" "$dir/other.key"
  return 0
}

kmip_settings() {
  echo "apg_pqcrypto.kmip_host = '127.0.0.1'"
  echo "apg_pqcrypto.kmip_port = $KMIP_PORT"
  echo "apg_pqcrypto.kmip_client_cert = '$KMIP_DIR/client.pem'"
  echo "apg_pqcrypto.kmip_client_key = '$KMIP_DIR/client.key'"
  echo "apg_pqcrypto.kmip_ca_file = '$KMIP_DIR/ca.pem'"
  echo "apg_pqcrypto.kmip_key_id = 'apg-pq-kek'"
}

kmip_stop() { stop_server "$1/kmip.pid"; }
