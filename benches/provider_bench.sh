#!/usr/bin/env bash
# Master key providers: the cost of a cold master data key unwrap through
# each provider (file, a SoftHSM2 token, moto_server's KMS over loopback
# HTTP, OpenBao's Transit over loopback HTTPS, PyKMIP's server over loopback
# TLS with a client certificate), the cost of a fully cold decryption (key_cache_ttl = 0: every call
# unwraps the MDK, the tenant seed and the DEK), and proof that the warm
# path makes no provider call (this backend's provider_calls counter).
#   benches/provider_bench.sh [PROBES] [ROWS]   (defaults 200, 10000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
probes=${1:-200}
rows=${2:-10000}
scripts/setup.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
source scripts/cluster.sh
source scripts/providers.sh
dir=$(cluster_scratch providers)
port=${APG_PQ_BENCH_PORT:-25480}
trap 'cluster_discard "$dir"' EXIT
softhsm_setup "$dir/hsm"
moto_start "$dir/kms"
bao_start "$dir/bao"
kmip_start "$dir/kmip"
mapfile -t settings < <(provider_settings; vault_settings; kmip_settings)
cluster_start "$dir/c" "$port" "log_statement = 'none'" "${settings[@]}"
psql_() { cluster_psql "$port" -At -q "$@"; }
psql_ -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT 1 FROM pq.create_tenant('bench')" \
  -c "CREATE TABLE v AS SELECT i, pq_encrypt('bench', 'postgres://app:' || substr(md5(i::text), 1, 18) || '@db/app') AS e
        FROM generate_series(1, $rows) i" >/dev/null

printf '%-14s %16s %18s %22s\n' provider "cold unwrap ms" "cold decrypt ms" "warm: calls/$rows rows"
for provider in file pkcs11 aws_kms vault_transit kmip; do
  psql_ -c "SELECT 1 FROM pq.rotate_master_key('$provider')" >/dev/null
  # pq.master_key_status() unwraps the active MDK through its provider on
  # every call (the cache is not used): the cold unwrap, plus one catalog query.
  unwrap=$(psql_ -f - <<SQL | tail -1
SELECT count(*) FROM pq.master_key_status();
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
DO \$\$ BEGIN
  FOR i IN 1..$probes LOOP
    IF NOT EXISTS (SELECT 1 FROM pq.master_key_status() WHERE state = 'active' AND answered) THEN
      RAISE 'the provider did not answer';
    END IF;
  END LOOP;
END \$\$;
SELECT round(((extract(epoch FROM clock_timestamp()) - :t0) * 1000 / $probes)::numeric, 3);
SQL
)
  cold=$(psql_ -f - <<SQL | tail -1
SET apg_pqcrypto.key_cache_ttl = 0;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM v WHERE i <= $probes AND pq_decrypt_text(e) LIKE 'postgres://%';
SELECT round(((extract(epoch FROM clock_timestamp()) - :t0) * 1000 / $probes)::numeric, 3);
SQL
)
  # Warm: one decryption loads the keys; then every row; the counter of
  # provider calls, read before and after (each read is itself one call).
  warm=$(psql_ -f - <<SQL | tail -1
SELECT pq_decrypt_text(e) IS NOT NULL FROM v WHERE i = 1;
SELECT provider_calls AS c0 FROM pq.master_key_status() WHERE state = 'active' \gset
SELECT count(*) FROM v WHERE pq_decrypt_text(e) LIKE 'postgres://%';
SELECT provider_calls - :c0 - 1 FROM pq.master_key_status() WHERE state = 'active';
SQL
)
  printf '%-14s %16s %18s %22s\n' "$provider" "$unwrap" "$cold" "$warm"
done
moto_stop "$dir/kms"
bao_stop "$dir/bao"
kmip_stop "$dir/kmip"
