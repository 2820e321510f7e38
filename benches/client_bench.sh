#!/usr/bin/env bash
# The client side, measured:
#  1. apg-pq seal --stream / open of a 1 GB file (X-Wing and ML-KEM-768
#     recipients) side by side with age 1.x (Debian's package; an X25519
#     recipient: the same ChaCha20-Poly1305 in 64 KiB chunks, no
#     post-quantum KEM), in one run, best of 5 interleaved rounds, MB/s and
#     the ratio to age.
#  2. pq_seal_batch of 1,000 values against 1,000 pq_seal calls, and
#     1,000 pq_unseal calls, to tenants of ML-KEM-768, ML-KEM-1024 and
#     X-Wing on one throwaway server (each in one statement, best of 5).
#   benches/client_bench.sh [SIZE_MB]     (default 1024)
# Files go to $APG_PQ_BENCH_DIR: by default /dev/shm (tmpfs), so that the
# tools are compared and not the disk's writeback; 3 x SIZE_MB of space.
# Each timed run starts after a sync.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
size_mb=${1:-1024}
source scripts/env.sh
require_root
scripts/setup.sh
command -v age >/dev/null || { apt-get install -y -qq age >/dev/null; }
cargo build --release -q -p apg-pq
cli=${CARGO_TARGET_DIR:-$root/target}/release/apg-pq
work=$(mktemp -d "${APG_PQ_BENCH_DIR:-/dev/shm}/apg_pq_client_bench.XXXXXX")
source scripts/cluster.sh
dir=$(cluster_scratch clientbench)
trap 'rm -rf "$work"; cluster_discard "$dir"' EXIT

echo "== 1. a ${size_mb} MB file: apg-pq (stream) and age $(age --version), best of 5 interleaved rounds, files in $work"
head -c $((size_mb * 1024 * 1024)) /dev/urandom >"$work/plain"
"$cli" keygen --algorithm x-wing --secret-key "$work/x.sk" --public-key "$work/x.pk" >/dev/null
"$cli" keygen --algorithm ml-kem-768 --secret-key "$work/m.sk" --public-key "$work/m.pk" >/dev/null
age-keygen -o "$work/age.key" 2>/dev/null
age_recipient=$(age-keygen -y "$work/age.key")
# Five rounds; in each, every tool runs once, one after the other (so that
# the host's noise falls on all of them alike); each tool's best time counts.
secs() { rm -f "$work/out"; sync; { /usr/bin/time -f %e "$@" >/dev/null; } 2>&1 | tail -1; }
mbs() { awk -v s="$1" -v m="$size_mb" 'BEGIN { printf "%.0f", m * 1.048576 / s }'; }
min() { awk -v a="$1" -v b="${2:-$1}" 'BEGIN { print (a < b) ? a : b }'; }
age -r "$age_recipient" -o "$work/plain.age" "$work/plain"
"$cli" seal --stream -q --public-key "$work/x.pk" -i "$work/plain" -o "$work/plain.x"
"$cli" seal --stream -q --public-key "$work/m.pk" -i "$work/plain" -o "$work/plain.m"
declare -A best
for _ in 1 2 3 4 5; do
  best[age_seal]=$(min "$(secs age -r "$age_recipient" -o "$work/out" "$work/plain")" "${best[age_seal]:-}")
  best[x_seal]=$(min "$(secs "$cli" seal --stream -q --public-key "$work/x.pk" -i "$work/plain" -o "$work/out")" "${best[x_seal]:-}")
  best[m_seal]=$(min "$(secs "$cli" seal --stream -q --public-key "$work/m.pk" -i "$work/plain" -o "$work/out")" "${best[m_seal]:-}")
  best[age_open]=$(min "$(secs age -d -i "$work/age.key" -o "$work/out" "$work/plain.age")" "${best[age_open]:-}")
  best[x_open]=$(min "$(secs "$cli" open -q --secret-key "$work/x.sk" -i "$work/plain.x" -o "$work/out")" "${best[x_open]:-}")
  best[m_open]=$(min "$(secs "$cli" open -q --secret-key "$work/m.sk" -i "$work/plain.m" -o "$work/out")" "${best[m_open]:-}")
done
printf '%-40s %10s %10s %8s\n' "" "seconds" "MB/s" "vs age"
row() { printf '%-40s %10s %10s %8s\n' "$1" "$2" "$(mbs "$2")" "$(awk -v a="$3" -v b="$2" 'BEGIN { printf "%.2f", a / b }')"; }
row "age seal (X25519)" "${best[age_seal]}" "${best[age_seal]}"
row "apg-pq seal --stream (X-Wing)" "${best[x_seal]}" "${best[age_seal]}"
row "apg-pq seal --stream (ML-KEM-768)" "${best[m_seal]}" "${best[age_seal]}"
row "age open" "${best[age_open]}" "${best[age_open]}"
row "apg-pq open (X-Wing)" "${best[x_open]}" "${best[age_open]}"
row "apg-pq open (ML-KEM-768)" "${best[m_open]}" "${best[age_open]}"
"$cli" open -q --secret-key "$work/x.sk" -i "$work/plain.x" -o "$work/check"
cmp -s "$work/plain" "$work/check" && echo "(round trip checked: identical)"
rm -f "$work"/plain*

echo "== 2. 1,000 values of 40 bytes: pq_seal_batch against 1,000 pq_seal calls (best of 5)"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
port=${APG_PQ_BENCH_PORT:-25453}
cluster_start "$dir/cluster" "$port" "log_statement = 'none'"
cluster_psql "$port" -q -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('m')" \
  -c "SELECT pq.create_tenant('x', kem => 'x-wing')" -c "SELECT pq.create_tenant('l', kem => 'ml-kem-1024')" >/dev/null
ms() { # ms SQL: the fastest of 5 runs, in milliseconds
  for _ in 1 2 3 4 5; do
    cluster_psql "$port" -At -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
  done | sort -g | head -1
}
printf '%-12s %16s %16s %8s %16s\n' "tenant key" "1,000 pq_seal" "pq_seal_batch" "ratio" "1,000 pq_unseal"
for t in m l x; do
  # The same 1,000 values and AADs, prepared once: only the sealing is timed.
  cluster_psql "$port" -q -c "CREATE TABLE input_$t AS SELECT pq.tenant_public_key('$t') AS k,
      array_agg(convert_to('a configuration value of forty bytes ' || i, 'UTF8')) AS vals,
      array_agg(convert_to('row ' || i, 'UTF8')) AS aads FROM generate_series(1, 1000) i"
  single=$(ms "SELECT count(pq_seal(k, v, a)) FROM input_$t, unnest(vals, aads) AS u(v, a)")
  batch=$(ms "SELECT cardinality(pq_seal_batch(k, vals, aads)) FROM input_$t")
  cluster_psql "$port" -q -c "CREATE TABLE sealed_$t AS SELECT pq_seal(k, v, a) AS e, a FROM input_$t, unnest(vals, aads) AS u(v, a)"
  unseal=$(ms "SELECT count(pq_unseal(e, a)) FROM sealed_$t")
  name=$(case $t in x) echo X-Wing ;; l) echo ML-KEM-1024 ;; *) echo ML-KEM-768 ;; esac)
  printf '%-12s %13s ms %13s ms %7.1fx %13s ms\n' "$name" "$single" "$batch" "$(awk -v a="$single" -v b="$batch" 'BEGIN { print a / b }')" "$unseal"
done
