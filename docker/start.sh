#!/usr/bin/env bash
# The container's server: a cluster as scripts/cluster.sh starts them
# (library preloaded, a 32-byte master key file, 127.0.0.1 only), with the
# image's SoftHSM2 token configured for pq.rotate_master_key('pkcs11').
# Data in /var/lib/postgresql/apg (inside the volume): started again, not
# re-initialised, when it exists. Stops the server on SIGTERM.
set -euo pipefail
cd /src
source scripts/cluster.sh
source scripts/providers.sh
dir=/var/lib/postgresql/apg
hsm=/var/lib/postgresql/hsm
CLUSTER_ENV+=("SOFTHSM2_CONF=$hsm/softhsm2.conf")
if [ -f "$dir/data/PG_VERSION" ]; then
  as_postgres env "SOFTHSM2_CONF=$hsm/softhsm2.conf" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
else
  cluster_start "$dir" 5432 "fsync = on" "log_statement = 'none'" \
    "apg_pqcrypto.pkcs11_module = '$SOFTHSM_MODULE'" "apg_pqcrypto.pkcs11_token_label = 'apg-pq'" \
    "apg_pqcrypto.pkcs11_pin_file = '$hsm/pin'" "apg_pqcrypto.pkcs11_key_label = 'apg-pq-kek'"
  cluster_psql 5432 -q -c "CREATE EXTENSION apg_pqcrypto"
fi
echo "apg_pqcrypto ready: psql -h 127.0.0.1 -U postgres (inside the container)"
trap 'cluster_stop "$dir"; exit 0' TERM INT
tail -F "$dir/server.log" & wait $!
