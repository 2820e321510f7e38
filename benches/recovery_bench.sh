#!/usr/bin/env bash
# Key escrow and key backups at scale: N tenants (default 1,000), a 3-of-5
# split, a recovery (request, signed approvals, statement, reseal, recover), an export of
# every tenant, and its restore into a second cluster. Prints each step's
# server time (psql \timing, best of 3 where the step can repeat).
#   benches/recovery_bench.sh [TENANTS]
# Needs the extension installed (cargo pgrx install --release) and apg-pq
# built (cargo build --release -p apg-pq).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-1000}
cli=${CARGO_TARGET_DIR:-$root/target}/release/apg-pq
source scripts/cluster.sh
dir=$(cluster_scratch recovery-bench)
port=${APG_PQ_BENCH_PORT:-25490}
trap 'cluster_discard "$dir"' EXIT
files="$dir/files" && mkdir -p "$files"
# timed PORT ROLE SQL: the server time of SQL in ms (the last "Time:" line).
timed() { psql -X -At -q -h 127.0.0.1 -p "$1" -U "$2" postgres -c '\timing on' -c "$3" 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
best() { local b="" t; for _ in 1 2 3; do t=$(timed "$@"); b=$(printf '%s\n%s\n' "$b" "$t" | sed '/^$/d' | sort -g | head -1); done; echo "$b"; }

cluster_start "$dir/a" "$port" "log_statement = 'none'" >/dev/null
cluster_psql "$port" -qAt -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE ROLE approver_b LOGIN IN ROLE pq_admin" \
  -c "CREATE ROLE approver_c LOGIN IN ROLE pq_admin" -c "SELECT count(*) FROM generate_series(1, $n) i, LATERAL pq.create_tenant('t' || i)" >/dev/null
for i in 1 2 3 4 5; do
  "$cli" keygen --secret-key "$files/c$i.sk" --public-key "$files/c$i.pk" >/dev/null
  cluster_psql "$port" -qAt -c "SELECT pq.escrow_add_custodian('c$i', decode('$(hex "$files/c$i.pk")', 'hex'))" >/dev/null
done
cluster_psql "$port" -qAt -c "SELECT pq.configure_key_escrow('{\"threshold\": 3, \"trustees\": [\"c1\", \"c2\", \"c3\", \"c4\", \"c5\"], \"recovery_policy\": {\"min_approval_time\": 0}}')" >/dev/null
echo "tenants: $n"
echo "escrow_split (5 shares):              $(best "$port" postgres "SELECT count(*) FROM pq.escrow_split()") ms"
for i in 1 2 3 4 5; do
  cluster_psql "$port" -qAt -c "SELECT encode(record, 'hex') FROM pq.escrow_shares WHERE share_index = $i ORDER BY created_at DESC LIMIT 1" \
    | unhex "$files/s$i"
done
for a in b c; do
  "$cli" keygen --algorithm ml-dsa-65 --secret-key "$files/a$a.sk" --public-key "$files/a$a.pk" >/dev/null
  cluster_psql "$port" -qAt -c "SELECT pq.escrow_add_approver('a$a', decode('$(hex "$files/a$a.pk")', 'hex'))" >/dev/null
done
read -r rid rpk stmt <<<"$(cluster_psql "$port" -qAt -F ' ' -c "SELECT request_id, encode(request_public_key, 'hex'), encode(statement, 'hex') FROM pq.escrow_request_recovery('bench')")"
unhex "$files/req.pk" <<<"$rpk"
unhex "$files/req.stmt" <<<"$stmt"
for a in b c; do
  "$cli" escrow approve --secret-key "$files/a$a.sk" --statement "$files/req.stmt" -o "$files/a$a.sig" 2>/dev/null
  psql -X -qAt -h 127.0.0.1 -p "$port" -U "approver_$a" postgres -c "SELECT pq.escrow_approve('$rid', decode('$(hex "$files/a$a.sig")', 'hex'))" >/dev/null
done
cluster_psql "$port" -qAt -c "SELECT encode(pq.escrow_statement('$rid'), 'hex')" | unhex "$files/approved.stmt"
start=$(date +%s%N)
for i in 1 3 5; do
  "$cli" escrow reseal --secret-key "$files/c$i.sk" --share "$files/s$i" --request-key "$files/req.pk" --statement "$files/approved.stmt" \
    --approver-key "$files/ab.pk" --approver-key "$files/ac.pk" --approvals 2 -o "$files/r$i" 2>/dev/null
done
echo "apg-pq escrow reseal (3 custodians):  $(( ($(date +%s%N) - start) / 3000000 )) ms each, process start included, statement checked"
shares="ARRAY[decode('$(hex "$files/r1")', 'hex'), decode('$(hex "$files/r3")', 'hex'), decode('$(hex "$files/r5")', 'hex')]"
echo "escrow_recover (3 shares, rolled back): $(best "$port" postgres "BEGIN; SELECT * FROM pq.escrow_recover('$rid', $shares); ROLLBACK") ms"
"$cli" keygen --secret-key "$files/officer.sk" --public-key "$files/officer.pk" >/dev/null
officer=$(hex "$files/officer.pk")
echo "export_key_backup (all $n tenants):   $(best "$port" postgres "SELECT length(pq.export_key_backup(recipient_public_key => decode('$officer', 'hex')))") ms"
echo "export_key_backup (one tenant):       $(best "$port" postgres "SELECT length(pq.export_key_backup('t1', decode('$officer', 'hex')))") ms"
"$cli" backup --url "postgresql://postgres@127.0.0.1:$port/postgres" --recipient-key "$files/officer.pk" -o "$files/all.apgb" 2>/dev/null
echo "bundle size:                          $(stat -c %s "$files/all.apgb") bytes"
cluster_start "$dir/b" "$((port + 1))" "log_statement = 'none'" >/dev/null
cluster_psql "$((port + 1))" -qAt -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" \
  | unhex "$files/restore.pk"
start=$(date +%s%N)
"$cli" backup reseal --secret-key "$files/officer.sk" --bundle "$files/all.apgb" --restore-key "$files/restore.pk" -o "$files/all.re" 2>/dev/null
echo "apg-pq backup reseal:                 $(( ($(date +%s%N) - start) / 1000000 )) ms"
hex "$files/all.re" >"$files/all.re.hex"
psql -X -qAt -h 127.0.0.1 -p "$((port + 1))" -U postgres postgres >"$files/restore.out" 2>&1 <<SQL
CREATE TEMP TABLE bundle (h text);
\\copy bundle FROM '$files/all.re.hex'
\\timing on
SELECT count(*) FROM pq.restore_key_backup((SELECT decode(h, 'hex') FROM bundle));
SQL
echo "restore_key_backup (all $n tenants):  $(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$files/restore.out" | tail -1) ms ($(grep -E '^[0-9]+$' "$files/restore.out" | head -1) tenants)"
cluster_stop "$dir/b" >/dev/null
cluster_stop "$dir/a" >/dev/null
