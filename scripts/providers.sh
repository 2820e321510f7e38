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
  port=$("$APG_PQ_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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

moto_stop() {
  local pidfile=$1/moto.pid
  [ -f "$pidfile" ] || return 0
  kill -CONT "$(cat "$pidfile")" 2>/dev/null
  kill "$(cat "$pidfile")" 2>/dev/null
  rm -f "$pidfile"
}

provider_settings() {
  echo "apg_pqcrypto.pkcs11_module = '$SOFTHSM_MODULE'"
  echo "apg_pqcrypto.pkcs11_token_label = 'apg-pq'"
  echo "apg_pqcrypto.pkcs11_pin_file = '$SOFTHSM_DIR/pin'"
  echo "apg_pqcrypto.pkcs11_key_label = 'apg-pq-kek'"
  echo "apg_pqcrypto.kms_key_id = '$KMS_KEY_ID'"
  echo "apg_pqcrypto.kms_region = 'us-east-1'"
  echo "apg_pqcrypto.kms_endpoint = '$MOTO_ENDPOINT'"
}
