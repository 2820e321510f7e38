#!/usr/bin/env bash
# Soak and chaos: everything at once under random faults, then invariants.
#   scripts/chaos.sh [--seconds N] [--clients C] [--seed S] [--faults on|off]
# (defaults: 180 s, 16 clients, a random seed, printed so a run can be
# repeated: the faults' choice and order follow the seed, their timing and
# the load do not.) A 60-minute campaign: scripts/chaos.sh --seconds 3600
# --clients 32. With --faults off it is a soak benchmark: the same load and
# key operations without faults, where no transaction may fail; either way
# it prints the throughput and the p50/p99 latency of a 10 % sample of the
# transactions (docs/PERFORMANCE.md).
#
# A throwaway cluster on 127.0.0.1 with the library preloaded. The load:
# pgbench clients writing rows (pq_encrypt, with the SHA-256 of the
# plaintext in the same row: a committed row carries what its writer
# committed; a trigger keeps each row's blind index term), reading recent
# rows back (pq_decrypt, compared with the digest), finding rows by blind
# index, signing and verifying, sealing and unsealing, writing and reading
# signed configuration values. The tracked table lives in a tablespace on
# its own small filesystem (a tmpfs mounted for the run: root). Meanwhile:
# tenant key rotations, re-encryption jobs, a migration job (20,000
# pgcrypto rows of tenant t1), master key rotations that move the master
# data key round a SoftHSM2 token, a KMS-compatible server (moto_server on
# loopback) and the key file, forward-secure sessions begun and ended, key
# backups exported. The faults, one every 10–20 s: kill -9 of a client
# backend or of the worker (PostgreSQL then restarts every backend: a
# crash restart), kill -9 of the postmaster (restarted by the driver:
# crash recovery), a statement_timeout of 5 ms or a lock_timeout of 1 ms
# for every session for 3 s, SIGSTOP of the KMS server for 8 s, and the
# tablespace's filesystem full for 5 s (shrunk to what it holds). Every
# plaintext holds a canary that must never reach the server log or the
# data directory (WAL included).
#
# After each fault, once the server answers: the newest 2,000 rows decrypt
# to their digests. After the load: the server is brought up if a fault
# left it down, every tenant re-encrypted and every job driven to
# completion; then each invariant is checked and printed with its count. Exit 0 only when every
# invariant holds; the last line sums up operations, faults and invariants.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
seconds=180
clients=16
seed=$((RANDOM * 32768 + RANDOM))
inject=on
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --faults) inject=$2; shift 2 ;;
    *) echo "usage: scripts/chaos.sh [--seconds N] [--clients C] [--seed S] [--faults on|off]" >&2; exit 2 ;;
  esac
done
RANDOM=$seed
source scripts/cluster.sh
source scripts/providers.sh
dir=$(cluster_scratch chaos)
port=${APG_PQ_CHAOS_PORT:-25486}
data="$dir/c/data"
python=${APG_PQ_VENV}/bin/python
pids=()
held=0
broken=0
watch_pid=
stop_all() {
  for p in "${pids[@]}" $watch_pid; do kill "$p" 2>/dev/null; done
  [ ${#pids[@]} = 0 ] || wait "${pids[@]}" 2>/dev/null
  moto_stop "$dir/kms"
  [ -f "$data/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
  # (the tablespace's files go with the tmpfs, also when the logs are kept)
  mountpoint -q "$dir/ts" && umount "$dir/ts"
  if [ "$broken" = 0 ]; then cluster_discard "$dir"; else echo "# logs kept in $dir"; fi
}
trap stop_all EXIT
echo "# chaos: $seconds s, $clients clients, seed $seed, faults $inject, port $port"

softhsm_setup "$dir/hsm"
moto_start "$dir/kms"
mapfile -t provider_lines < <(provider_settings)
cluster_start "$dir/c" "$port" "${provider_lines[@]}" "log_statement = 'none'" "max_connections = 100" \
  "apg_pqcrypto.worker_naptime = 1" "apg_pqcrypto.audit_checkpoint_interval = 10" \
  "apg_pqcrypto.key_cache_ttl = 5" "restart_after_crash = on" || { broken=1; exit 1; }
psql_() { cluster_psql "$port" -At -q "$@" 2>/dev/null; }
# The tablespace of the tracked table, on a filesystem of its own: the
# full-disk fault shrinks it to what it holds.
mkdir -p "$dir/ts"
mount -t tmpfs -o size=4g,mode=0700 tmpfs "$dir/ts" && chown postgres: "$dir/ts" \
  || { echo "cannot mount a tmpfs for the tablespace"; broken=1; exit 1; }
psql_ -c "CREATE TABLESPACE chaos_ts LOCATION '$dir/ts'" || { echo "the setup failed"; broken=1; exit 1; }
psql_ <<'SQL' >/dev/null || { echo "the setup failed"; broken=1; exit 1; }
CREATE EXTENSION apg_pqcrypto;
CREATE EXTENSION pgcrypto;
SELECT pq.create_tenant('t' || i) FROM generate_series(1, 4) i;
CREATE TABLE chaos_rows (id bigserial PRIMARY KEY USING INDEX TABLESPACE chaos_ts, tenant text NOT NULL, v bytea,
                         digest bytea NOT NULL, term bytea) TABLESPACE chaos_ts;
CREATE INDEX ON chaos_rows (tenant, term) TABLESPACE chaos_ts;
-- Filled by the disk-full fault itself, so that the fault refuses a write
-- even when the load happens to fit in the room left.
CREATE TABLE chaos_fill (b bytea) TABLESPACE chaos_ts;
SELECT pq.track_column('chaos_rows', 'v', tenant_column => 'tenant', blind_index_column => 'term');
CREATE TABLE chaos_bad (at timestamptz DEFAULT now(), what text);
INSERT INTO chaos_rows (tenant, v, digest)
SELECT 't' || (i % 4 + 1), pq_encrypt('t' || (i % 4 + 1), p), sha256(convert_to(p, 'UTF8'))
  FROM (SELECT i, 'chaoscanary-' || md5(i::text) AS p FROM generate_series(1, 2000) i) s;
-- Rows a migration job carries from pgcrypto to keyed envelopes mid-run.
SELECT pq.register_classical_key('t1', 'raw', '\x000102030405060708090a0b0c0d0e0f', 'algorithm=aes, mode=cbc, padding=pkcs');
CREATE TABLE chaos_legacy (id int PRIMARY KEY, v bytea, digest bytea NOT NULL);
INSERT INTO chaos_legacy
SELECT i, encrypt(convert_to(p, 'UTF8'), '\x000102030405060708090a0b0c0d0e0f', 'aes'), sha256(convert_to(p, 'UTF8'))
  FROM (SELECT i, 'chaoscanary-legacy-' || md5(i::text) AS p FROM generate_series(1, 20000) i) s;
SQL

# The load's scripts (pgbench; each failure it sees goes to chaos_bad).
cat > "$dir/write.sql" <<'SQL'
\set t random(1, 4)
INSERT INTO chaos_rows (tenant, v, digest)
SELECT 't' || :t, pq_encrypt('t' || :t, p), sha256(convert_to(p, 'UTF8'))
  FROM (SELECT 'chaoscanary-' || md5(random()::text) AS p) s;
SQL
cat > "$dir/read.sql" <<'SQL'
\set t random(1, 4)
INSERT INTO chaos_bad (what)
SELECT 'read ' || id FROM (SELECT id, v, digest FROM chaos_rows WHERE tenant = 't' || :t ORDER BY id DESC LIMIT 20) s
 WHERE sha256(pq_decrypt(v)) IS DISTINCT FROM digest;
SQL
cat > "$dir/lookup.sql" <<'SQL'
\set i random(1, 2000)
INSERT INTO chaos_bad (what)
SELECT 'lookup ' || :i FROM (SELECT 't' || (:i % 4 + 1) AS t, 'chaoscanary-' || md5(:i::text) AS p) x
 WHERE NOT EXISTS (SELECT 1 FROM chaos_rows r WHERE r.tenant = x.t AND r.term = ANY(pq_blind_indexes(x.t, convert_to(x.p, 'UTF8'), 'v'))
                      AND sha256(pq_decrypt(r.v)) = sha256(convert_to(x.p, 'UTF8')));
SQL
cat > "$dir/sign.sql" <<'SQL'
\set t random(1, 4)
INSERT INTO chaos_bad (what)
SELECT 'sign t' || :t FROM (SELECT m, pq_sign('t' || :t, m) AS s FROM (SELECT convert_to(md5(random()::text), 'UTF8') AS m) x) y
 WHERE NOT pq_verify('t' || :t, m, s);
SQL
cat > "$dir/seal.sql" <<'SQL'
\set t random(1, 4)
INSERT INTO chaos_bad (what)
SELECT 'seal t' || :t FROM (SELECT 'chaoscanary-' || md5(random()::text) AS p) x
 WHERE pq_unseal_text(pq_seal(pq.tenant_public_key('t' || :t), p, ''), '') IS DISTINCT FROM p;
SQL
cat > "$dir/config.sql" <<'SQL'
\set t random(1, 4)
\set k random(1, 20)
SELECT pq.config_set('t' || :t, 'k' || :k, md5(random()::text), 'chaos');
SELECT pq.config_get('t' || :t, 'k' || :k);
SQL

end=$(($(date +%s) + seconds))
: > "$dir/tx"; : > "$dir/ops"; : > "$dir/faults"; : > "$dir/rss"; : > "$dir/failed"; : > "$dir/after_faults"
mkdir -p "$dir/lat"

load() {
  while [ "$(date +%s)" -lt $((end - 1)) ]; do
    local out n
    out=$(cd "$dir/lat" && "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$port" -U postgres -c "$clients" -j 2 -T $((end - $(date +%s))) \
      -l --sampling-rate=0.1 -f "$dir/write.sql@4" -f "$dir/read.sql@4" -f "$dir/sign.sql@1" -f "$dir/seal.sql@1" -f "$dir/config.sql@2" -f "$dir/lookup.sql@2" postgres 2>&1)
    n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    echo "${n:-0}" >> "$dir/tx"
    # Failed transactions, and clients a failure ended.
    sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out" >> "$dir/failed"
    grep -c "aborted in command" <<<"$out" >> "$dir/failed"
    [ -n "$n" ] && [ "$n" != 0 ] || sleep 1
  done
}

operations() {
  local i=0 t providers=(pkcs11 aws_kms file)
  while [ "$(date +%s)" -lt $((end - 2)) ]; do
    i=$((i + 1)); t=t$((i % 4 + 1))
    psql_ -c "SELECT 1 FROM pq.rotate_tenant_key('$t', 'chaos')" >/dev/null && echo rotate >> "$dir/ops"
    if [ $((i % 3)) = 0 ]; then
      psql_ -c "SELECT count(*) FROM pq.reencrypt_tenant('$t', 500)" >/dev/null && echo reencrypt >> "$dir/ops"
    fi
    if [ $((i % 4)) = 1 ]; then
      psql_ -c "SELECT pq.session_end(session_id) FROM pq.session_begin('$t', '1 minute')" >/dev/null && echo session >> "$dir/ops"
    fi
    if [ $((i % 5)) = 2 ]; then
      psql_ -c "SELECT length(pq.export_key_backup('$t', (SELECT public_key FROM pq_generate_keypair('ml-kem-768'))))" >/dev/null \
        && echo backup >> "$dir/ops"
    fi
    if [ "$i" = 3 ]; then
      psql_ -c "SELECT pq.migrate_column('chaos_legacy', 'v', tenant => 't1', batch_size => 500)" >/dev/null && echo migrate >> "$dir/ops"
    fi
    if [ $((i % 10)) = 5 ]; then
      local to=${providers[$(((i / 10) % 3))]}
      psql_ -c "SELECT 1 FROM pq.rotate_master_key('$to')" >/dev/null && echo "master_key_to_$to" >> "$dir/ops"
    fi
    sleep 1
  done
}

# The postmaster's pid, and the worker's.
postmaster() { head -1 "$data/postmaster.pid" 2>/dev/null; }
up() {
  local i
  for i in $(seq 1 60); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && return 0
    if ! kill -0 "$(postmaster)" 2>/dev/null; then
      as_postgres env ${CLUSTER_ENV[@]+"${CLUSTER_ENV[@]}"} "$PGBIN/pg_ctl" -D "$data" -l "$dir/c/server.log" -w -t 30 start >/dev/null 2>&1
    fi
    sleep 1
  done
  return 1
}

faults() {
  RANDOM=$seed  # (a subshell: the fault sequence follows the seed)
  sleep 10
  while [ "$(date +%s)" -lt $((end - 20)) ]; do
    local pid what
    case $((RANDOM % 7)) in
      0) what="kill -9 of a client backend"
         pid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = 'pgbench' ORDER BY random() LIMIT 1") ;;
      1) what="kill -9 of the worker"
         pid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'") ;;
      2) what="kill -9 of the postmaster"
         pid=$(postmaster) ;;
      3) what="statement_timeout = 5ms for 3 s"
         pid="" ;;
      4) what="SIGSTOP of the KMS server for 8 s"
         pid="" ;;
      5) what="lock_timeout = 1ms for 3 s"
         pid="" ;;
      6) what="the tablespace's disk full for 5 s"
         pid="" ;;
    esac
    if [ -n "$pid" ]; then
      kill -9 "$pid" 2>/dev/null && echo "$what" >> "$dir/faults"
      # A dead postmaster's backends end by themselves; then it restarts.
      [ "$what" = "kill -9 of the postmaster" ] && { sleep 2; up; }
    elif [ "$what" = "statement_timeout = 5ms for 3 s" ]; then
      psql_ -c "ALTER SYSTEM SET statement_timeout = '5ms'" -c "SELECT pg_reload_conf()" >/dev/null && echo "$what" >> "$dir/faults"
      sleep 3
      psql_ -c "ALTER SYSTEM RESET statement_timeout" -c "SELECT pg_reload_conf()" >/dev/null
    elif [ "$what" = "lock_timeout = 1ms for 3 s" ]; then
      psql_ -c "ALTER SYSTEM SET lock_timeout = '1ms'" -c "SELECT pg_reload_conf()" >/dev/null && echo "$what" >> "$dir/faults"
      sleep 3
      psql_ -c "ALTER SYSTEM RESET lock_timeout" -c "SELECT pg_reload_conf()" >/dev/null
    elif [ "$what" = "the tablespace's disk full for 5 s" ]; then
      # Shrunk to what it holds plus 1 MiB; tmpfs refuses a size below its
      # use, so a race only retries. The load may fit in that room (free
      # space in its pages): 2 MiB of incompressible bytes written here do
      # not, so the fault always refuses writes while it lasts.
      local tries
      for tries in 1 2 3 4 5; do
        mount -o remount,size=$(($(df --output=used -B1 "$dir/ts" | tail -1) + 1048576)) "$dir/ts" 2>/dev/null \
          && { echo "$what" >> "$dir/faults"; break; }
      done
      psql_ -c "INSERT INTO chaos_fill SELECT gen_random_bytes(1024) FROM generate_series(1, 2048)" >/dev/null 2>&1
      sleep 5
      mount -o remount,size=4g "$dir/ts"
    elif [ "$what" = "SIGSTOP of the KMS server for 8 s" ]; then
      kill -STOP "$MOTO_PID" && echo "$what" >> "$dir/faults"
      sleep 8
      kill -CONT "$MOTO_PID"
    fi
    after_fault
    sleep $((10 + RANDOM % 11))
  done
}

# After each fault, once the server answers again (30 s at most): the
# newest 2,000 committed rows decrypt to what their writers committed.
after_fault() {
  local n
  for _ in $(seq 1 30); do
    n=$(psql_ -c "SELECT count(*) FROM (SELECT v, digest FROM chaos_rows ORDER BY id DESC LIMIT 2000) s
                  WHERE sha256(pq_decrypt(v)) IS DISTINCT FROM digest")
    [ -n "$n" ] && { echo "$n" >> "$dir/after_faults"; return; }
    sleep 1
  done
  echo "no answer" >> "$dir/after_faults"
}

# Private memory (RssAnon, kB) of the worker and of the largest backend.
memory() {
  while [ "$(date +%s)" -lt "$end" ]; do
    local most=0 kb p
    for p in $(pgrep -P "$(postmaster)" 2>/dev/null); do
      kb=$(awk '/RssAnon/ {print $2}' "/proc/$p/status" 2>/dev/null)
      [ -n "$kb" ] && [ "$kb" -gt "$most" ] && most=$kb
    done
    echo "$most" >> "$dir/rss"
    sleep 5
  done
}

# SoftHSM2 rewrites a token's token.object in place at each C_Login: a
# process killed in that moment (a kill -9 above, or the SIGQUIT of a crash
# restart) leaves it short or empty, and no process finds the token until
# it is restored (a defect of SoftHSM2's file store; the provider's side is
# crates/providers/tests/pkcs11_restart.rs). An operator restores it from a
# copy; so does this watch, within about a second, and each restore is
# reported with the faults. Its own job: it watches until the end.
cp -a "$dir/hsm/tokens" "$dir/hsm/tokens.copy"
: > "$dir/restores"
token_watch() {
  local f copy short
  while :; do
    short=()
    for f in "$dir"/hsm/tokens/*/*.object; do
      copy="$dir/hsm/tokens.copy/${f#"$dir/hsm/tokens/"}"
      [ -f "$copy" ] && [ "$(stat -c %s "$f")" != "$(stat -c %s "$copy")" ] && short+=("$f")
    done
    sleep 0.2 # a rewrite in progress ends long before this
    for f in ${short[@]+"${short[@]}"}; do
      copy="$dir/hsm/tokens.copy/${f#"$dir/hsm/tokens/"}"
      if [ "$(stat -c %s "$f")" != "$(stat -c %s "$copy")" ]; then
        cp -p "$copy" "$f.restore" && mv -f "$f.restore" "$f" && echo "${f#"$dir/"}" >> "$dir/restores"
      fi
    done
    sleep 0.8
  done
}
token_watch & watch_pid=$!

load & pids+=($!)
operations & pids+=($!)
[ "$inject" = off ] || { faults & pids+=($!); }
memory & pids+=($!)
wait "${pids[@]}"
pids=()

echo "# the load is over; bringing every job to its end"
up || { echo "the server did not come back"; broken=1; exit 1; }
psql_ -c "ALTER SYSTEM RESET statement_timeout" -c "ALTER SYSTEM RESET lock_timeout" -c "SELECT pg_reload_conf()" >/dev/null
mount -o remount,size=4g "$dir/ts"
psql_ -c "SELECT count(*) FROM generate_series(1, 4) i, pq.reencrypt_tenant('t' || i)" >/dev/null || echo "# the final re-encryption could not be queued"
settled=
for _ in $(seq 1 120); do
  psql_ -c "SELECT count(*) FROM (SELECT pq.retry_job(id) FROM pq.job_queue WHERE state = 'failed') r" >/dev/null
  if [ "$(psql_ -c "SELECT count(*) FROM pq.job_queue WHERE state NOT IN ('completed', 'cancelled')")" = 0 ]; then settled=1; break; fi
  sleep 1
done
invariant() { # invariant NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then held=$((held + 1)); echo "held - $1"; else broken=$((broken + 1)); echo "BROKEN - $1: expected [$2], got [$3]"; fi
}
rows=$(psql_ -c "SELECT count(*) FROM chaos_rows")
invariant "every job completed after retries (120 s at most)" "1" "${settled:-0}"
invariant "every committed row ($rows) decrypts to what its writer committed" "0" \
  "$(psql_ -c "SELECT count(*) FROM chaos_rows WHERE sha256(pq_decrypt(v)) IS DISTINCT FROM digest" || echo error)"
invariant "no reader saw a wrong value, signature or unsealed value, no lookup missed its row" "0" "$(psql_ -c "SELECT count(*) FROM chaos_bad")"
invariant "every row's blind index term is its value's under the active version" "0" \
  "$(psql_ -c "SELECT count(*) FROM chaos_rows WHERE term IS DISTINCT FROM pq_blind_index(tenant, pq_decrypt(v), 'v')" || echo error)"
invariant "the migration job carried every pgcrypto row (20000): each is a keyed envelope of what it held" "20000" \
  "$(psql_ -c "SELECT count(*) FROM chaos_legacy WHERE pq.classify(v) = 'pq_keyed' AND sha256(pq_decrypt(v)) = digest" || echo error)"
invariant "every row is under its tenant's active version (migrated ones too)" "0" \
  "$(psql_ -c "SELECT (SELECT count(*) FROM chaos_rows r JOIN pq.tenant_keys k ON k.tenant = r.tenant AND k.state = 'active' WHERE substr(r.v, 3, 16) <> k.kid)
                   + (SELECT count(*) FROM chaos_legacy r JOIN pq.tenant_keys k ON k.tenant = 't1' AND k.state = 'active' WHERE substr(r.v, 3, 16) IS DISTINCT FROM k.kid)")"
values=$(psql_ -c "SELECT count(*) FROM pq.config WHERE NOT deleted AND tenant LIKE 't_'")
# A configuration value keeps its version until it is set again (its
# signed record covers the envelope); the retired versions are freed so.
invariant "every configuration value ($values) reads and can be set again under the active version" "$values" \
  "$(psql_ -c "SELECT count(pq.config_set(tenant, key, pq.config_get(tenant, key), 'chaos')) FROM pq.config WHERE NOT deleted AND tenant LIKE 't_'" || echo error)"
disabled=$(psql_ -c "WITH r AS MATERIALIZED (SELECT tenant, version FROM pq.tenant_keys WHERE state = 'retired')
                     SELECT count(*) FROM r WHERE pq.disable_key_version(r.tenant, r.version)")
retired=$(psql_ -c "SELECT count(*) FROM pq.tenant_keys WHERE state IN ('retired', 'disabled') AND tenant LIKE 't_'")
invariant "every retired version ($retired) could be disabled: none is in use" "$retired" "$disabled"
invariant "with them disabled, every row still decrypts (migrated ones too)" "0" \
  "$(psql_ -c "SELECT (SELECT count(*) FROM chaos_rows WHERE sha256(pq_decrypt(v)) IS DISTINCT FROM digest)
                   + (SELECT count(*) FROM chaos_legacy WHERE sha256(pq_decrypt(v)) IS DISTINCT FROM digest)" || echo error)"
invariant "with them disabled, every configuration value still reads" "$values" \
  "$(psql_ -c "SELECT count(pq.config_get(tenant, key)) FROM pq.config WHERE NOT deleted AND tenant LIKE 't_'" || echo error)"
invariant "every master data key's provider answers (file, SoftHSM2 token, KMS)" "t" \
  "$(psql_ -c "SELECT bool_and(answered) FROM pq.master_key_status()")"
psql_ -c "SELECT pq.audit_flush()" >/dev/null
invariant "the audit chain verifies in the server" "t" "$(psql_ -c "SELECT ok FROM pq.verify_audit_chain()")"
invariant "the audit chain verifies offline (tests/verify_audit.py)" "0" \
  "$("$python" tests/verify_audit.py check --port "$port" --tenant t1 >"$dir/offline.log" 2>&1; echo $?)"
invariant "every tenant's configuration store verifies" "t|t|t|t" \
  "$(psql_ -c "SELECT (pq.config_verify('t' || i)).ok FROM generate_series(1, 4) i" | paste -sd'|')"
invariant "no backend ended by a signal other than the injected kill -9, no PANIC, no core file" "" \
  "$(grep -aE 'terminated by signal|PANIC' "$dir/c/server.log" | grep -v 'terminated by signal 9' | head -3; find "$data" -name 'core*' -type f | head -3)"
invariant "no plaintext canary in the server log, the data directory (WAL included) or the tablespace" "" \
  "$(grep -ralF chaoscanary "$dir/c/server.log" "$data" "$dir/ts" 2>/dev/null | head -3)"
most=$(sort -n "$dir/rss" | tail -1)
invariant "no server process held more than 256 MB of private memory (most: ${most:-0} kB)" "yes" \
  "$([ "${most:-0}" -lt 262144 ] && echo yes || echo no)"

if [ "$inject" = on ]; then
  invariant "after each fault ($(wc -l < "$dir/after_faults")), the newest 2,000 rows decrypted to what their writers committed" "0" \
    "$(grep -cv '^0$' "$dir/after_faults")"
fi
# A full-disk fault that refused no write would have tested nothing.
if grep -q "disk full" "$dir/faults"; then
  invariant "the full tablespace refused writes (No space left on device: $(grep -c 'No space left on device' "$dir/c/server.log") lines)" "yes" \
    "$(grep -q 'No space left on device' "$dir/c/server.log" && echo yes || echo no)"
fi
failed=$(awk '{s += $1} END {print s + 0}' "$dir/failed")
if [ "$inject" = off ]; then
  invariant "without faults, no transaction failed and no client was aborted" "0" "$failed"
fi
tx=$(awk '{s += $1} END {print s + 0}' "$dir/tx")
# Latency of the sampled transactions (pgbench's log: the third column, µs).
cat "$dir/lat/"* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n > "$dir/latencies"
pct() { awk -v p="$1" '{a[NR] = $1} END {if (NR) printf "%.1f", a[int((NR - 1) * p) + 1] / 1000; else printf "-"}' "$dir/latencies"; }
echo "# throughput: $((tx / seconds)) transactions/s; latency of a 10 % sample: p50 $(pct 0.50) ms, p99 $(pct 0.99) ms; failed transactions and aborted clients: $failed"
ops=$(wc -l < "$dir/ops")
nfaults=$(wc -l < "$dir/faults")
echo "# faults: $(sort "$dir/faults" | uniq -c | awk '{n=$1; $1=""; printf "%s%s x%d", sep, substr($0, 2), n; sep="; "}')"
restores=$(wc -l < "$dir/restores")
[ "$restores" = 0 ] || echo "# SoftHSM2 left a token file short (a process killed inside C_Login) x$restores: restored from the copy"
echo "# operations: $(sort "$dir/ops" | uniq -c | awk '{printf "%s%s x%d", sep, $2, $1; sep="; "}')"
if [ "$broken" = 0 ]; then
  echo "chaos: $seconds s, seed $seed: $tx transactions, $ops operations, $nfaults faults injected, $held invariants checked: all held"
else
  echo "chaos: $seconds s, seed $seed: $tx transactions, $ops operations, $nfaults faults injected, $held held and $broken broken"
  exit 1
fi
