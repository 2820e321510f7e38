# Key escrow and disaster-recovery backups with the real command line
# (docs/RECOVERY.md). Cluster A: five custodians' keys from apg-pq keygen
# (one X-Wing), a 3-of-5 split, staleness after a master key rotation,
# backups saved by `apg-pq backup`; then the key file is deleted and a new
# one configured: a recovery request, approvals signed by two approvers
# with `apg-pq escrow approve`, the minimum wait, the approved statement,
# reseals by `apg-pq escrow reseal` checking it against the approver keys
# the custodians pinned (a key one administrator hands them is refused),
# every 3 of the 5 shares, bad shares named, and the recovery that brings
# 10,000 rows back. Clusters B and C (fresh,
# their own key files): the bundle re-sealed by `apg-pq backup reseal`
# restores everything (B) or one tenant under another name (C); bad
# bundles are refused. Finally, with log_statement = 'all' throughout: no
# share, no master key, no tenant secret and no request or restore secret
# key in any file of the three data directories (tables, WAL) or their
# server logs; the test recovers each of them from the custodians', the
# officer's and the key files first, so the search knows what to look for.
# checks: 61
dir="$base/recovery"
dir_b="$base/recovery-b"
dir_c="$base/recovery-c"
port=$port_recovery
port_b=$port_recovery_b
port_c=$port_recovery_c
python=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}/bin/python
cargo build -q -p apg-pq || { fail "apg-pq does not build"; return 0; }
cli="${CARGO_TARGET_DIR:-$root/target}/debug/apg-pq"
work="$base/recovery-files"
mkdir -p "$work"
# qv PORT ROLE VAR FILE SQL: SQL with :'VAR' = the file's bytes in hex.
qv() { psql -X -At -q -h 127.0.0.1 -p "$1" -U "$2" postgres -v "$3=$(hex "$5")" 2>&1 <<<"$4"; }

cluster_start "$dir" "$port" "log_statement = 'all'" "apg_pqcrypto.worker_naptime = 1" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('hybrid', kem => 'x-wing')" \
  -c "CREATE ROLE officer_a LOGIN IN ROLE pq_admin" -c "CREATE ROLE approver_b LOGIN IN ROLE pq_admin" \
  -c "CREATE ROLE approver_c LOGIN IN ROLE pq_admin" -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" \
  -c "SELECT pq.grant_tenant('acme', 'it_app')" -c "SELECT pq.set_policy('acme', '{\"max_key_age\": 31536000}')" \
  -c "CREATE TABLE vault (id int PRIMARY KEY, v bytea)" -c "GRANT SELECT ON vault TO it_app" \
  -c "INSERT INTO vault SELECT i, pq_encrypt('acme', 'secret-' || i, 'row ' || i) FROM generate_series(1, 5000) i" \
  -c "SELECT pq.rotate_tenant_key('acme', 'half way', kem => 'ml-kem-1024', signature => 'ml-dsa-87')" \
  -c "INSERT INTO vault SELECT i, pq_encrypt('acme', 'secret-' || i, 'row ' || i) FROM generate_series(5001, 10000) i" \
  -c "INSERT INTO vault SELECT i, pq_encrypt('hybrid', 'hybrid-' || i, 'row ' || i) FROM generate_series(10001, 10200) i" >/dev/null
count_sql="SELECT count(*) FROM vault WHERE pq_decrypt_text(v, 'row ' || id) = CASE WHEN id > 10000 THEN 'hybrid-' ELSE 'secret-' END || id"

# --- the escrow ceremony
for i in 1 2 3 4 5; do
  alg=ml-kem-768; [ "$i" = 5 ] && alg=x-wing
  "$cli" keygen --algorithm "$alg" --secret-key "$work/c$i.sk" --public-key "$work/c$i.pk" >/dev/null
  qv "$port" officer_a pk "SELECT encode(pq.escrow_add_custodian('custodian$i', decode(:'pk', 'hex')), 'hex')" "$work/c$i.pk" >"$work/c$i.kid"
done
check "five custodians registered by kid (one X-Wing)" "5|1" \
  "$(q "$port" -c "SELECT count(*), count(*) FILTER (WHERE length(public_key) = 1216) FROM pq.escrow_custodians")"
# Two approvers, each with an ML-DSA-65 key of their own; the custodians pin
# both public keys (and "2 approvals, at least 20 s") at the ceremony.
for a in b c; do
  "$cli" keygen --algorithm ml-dsa-65 --secret-key "$work/approver_$a.sk" --public-key "$work/approver_$a.pk" >/dev/null
  qv "$port" officer_a pk "SELECT pq.escrow_add_approver('approver_$a', decode(:'pk', 'hex')) IS NOT NULL" "$work/approver_$a.pk" >/dev/null
done
check "two approvers registered" "2" "$(q "$port" -c "SELECT count(*) FROM pq.escrow_approvers")"
pinned=(--approver-key "$work/approver_b.pk" --approver-key "$work/approver_c.pk" --approvals 2 --min-wait 20s)
policy='{"enabled": true, "threshold": 3, "total_shares": 5,
         "trustees": ["custodian1", "custodian2", "custodian3", "custodian4", "custodian5"],
         "recovery_policy": {"min_approval_time": "20 seconds", "approvers_required": 2, "audit_log": true}}'
qas "$port" officer_a -c "SELECT pq.configure_key_escrow('$policy')" >/dev/null
check "the first split seals one share to each custodian" "5" "$(qas "$port" officer_a -c "SELECT count(*) FROM pq.escrow_split()")"
check_contains "a master key rotation warns that the escrow is stale" "the key escrow is stale" \
  "$(qas "$port" officer_a -c "SELECT provider FROM pq.rotate_master_key()")"
check "pq.escrow_status says so" "true" "$(qas "$port" officer_a -c "SELECT pq.escrow_status()->'stale'")"
for _ in $(seq 1 100); do grep -aq 'WARNING:  apg_pqcrypto worker: the key escrow is stale' "$dir/server.log" && break; sleep 0.3; done
check_contains "... and so does the worker, in the server log" "WARNING:  apg_pqcrypto worker: the key escrow is stale" \
  "$(grep -a 'WARNING:  apg_pqcrypto worker: the key escrow is stale' "$dir/server.log" | head -1)"
check "splitting again makes it current" "5|false" \
  "$(qas "$port" officer_a -c "SELECT count(*) FROM pq.escrow_split()" -c "SELECT pq.escrow_status()->'stale'" | tr '\n' '|' | sed 's/|$//')"
for i in 1 2 3 4 5; do
  q "$port" -c "SELECT encode(record, 'hex') FROM pq.escrow_shares s WHERE share_index = $i
                  AND escrow_id = (SELECT escrow_id FROM pq.escrow_shares ORDER BY created_at DESC LIMIT 1)" | unhex "$work/share$i.rec"
done
mdk_id=$(q "$port" -c "SELECT encode(id, 'hex') FROM pq.master_keys WHERE state = 'active'")

# --- backups, before the loss: all tenants, and acme alone without metadata
"$cli" keygen --secret-key "$work/officer.sk" --public-key "$work/officer.pk" >/dev/null
url="postgresql://officer_a@127.0.0.1:$port/postgres"
check_contains "apg-pq backup saves a bundle of every tenant" "sealed to $(q "$port" -c "SELECT encode(substr(sha256(decode('$(hex "$work/officer.pk")', 'hex')), 1, 16), 'hex')")" \
  "$("$cli" backup --url "$url" --recipient-key "$work/officer.pk" -o "$work/all.apgb" 2>&1)"
"$cli" backup --url "$url" --tenant acme --no-metadata --recipient-key "$work/officer.pk" -o "$work/acme.apgb" 2>/dev/null
check "the bundle file is 0600" "600" "$(stat -c %a "$work/all.apgb")"
check "an application role cannot export (exit 6)" "6" \
  "$(code "$cli" backup --url "postgresql://it_app@127.0.0.1:$port/postgres" --recipient-key "$work/officer.pk" -o "$work/x.apgb")"
check "pq.backups records the exports" "export|{acme,hybrid}|t|3 export|{acme}|f|2" \
  "$(q "$port" -c "SELECT operation, tenants, include_metadata, versions FROM pq.backups ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"

# --- the loss: the key file is gone; a new one is configured
rm -f "$dir/master.key"
head -c 32 /dev/urandom >"$work/new.key"
chmod 600 "$work/new.key"
chown postgres: "$work/new.key" "$work" 2>/dev/null
q "$port" -c "ALTER SYSTEM SET apg_pqcrypto.master_key_file = '$work/new.key'" >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -m fast restart >/dev/null 2>&1
check "with the key file gone nothing decrypts (PQ004)" "PQ004" "$(sqlstate "$port" "$count_sql")"

# --- recovery
row=$(qas "$port" officer_a -F ' ' -c "SELECT request_id, encode(request_public_key, 'hex'), encode(statement, 'hex')
                                          FROM pq.escrow_request_recovery('key file lost')")
read -r rid rpk stmt <<<"$row"
unhex "$work/request.pk" <<<"$rpk"
unhex "$work/request.stmt" <<<"$stmt"
# What the table holds of the request's key (dropped once used), for the hygiene check below.
q "$port" -c "SELECT encode(key_id, 'hex') || ' ' || encode(wrapped_key, 'hex') || ' ' || encode(kid, 'hex') || ' ' || encode(wrapped_seed, 'hex')
                FROM pq.recovery_keys WHERE used_at IS NULL" >"$work/request.stored"
new_kek_id=$(python3 -c "import hashlib, sys; print(hashlib.sha256(b'apg-pq v1 kek' + open(sys.argv[1], 'rb').read()).digest()[:16].hex())" "$work/new.key")
check "the request's secret is wrapped by the new key file's KEK" "escrow recovery|file|$new_kek_id|t" \
  "$(q "$port" -c "SELECT purpose, provider, provider_key_id, wrapped_seed IS NOT NULL FROM pq.recovery_keys WHERE used_at IS NULL")"
shares() { local out="" i; for i in "$@"; do out+="${out:+,}decode('$(hex "$work/r$i.rec")', 'hex')"; done; echo "ARRAY[$out]"; }
recover_as() { psql -X -At -q -h 127.0.0.1 -p "$port" -U "$1" postgres -v VERBOSITY=verbose 2>&1 <<<"$2" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)/\1 \2/p;s/^\([0-9a-f]\{32\}\)|file|.*/\1/p' | head -1; }
statement_err() { psql -X -At -q -h 127.0.0.1 -p "$port" -U officer_a postgres -v VERBOSITY=verbose -c "SELECT pq.escrow_statement('$rid')" 2>&1 \
                    | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)/\1 \2/p'; }
check_contains "before any approval: no statement" "55000 recovery request $rid has 0 of the 2 signed approvals" "$(statement_err)"
check_contains "... and no recovery" "55000 recovery request $rid has 0 of the 2 approvals" \
  "$(recover_as officer_a "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', ARRAY['\\x'::bytea])")"
# Each approver reads what they approve and signs it, offline.
for a in b c; do "$cli" escrow approve --secret-key "$work/approver_$a.sk" --statement "$work/request.stmt" -o "$work/approval_$a.sig" 2>"$work/approve_$a.out"; done
check_contains "apg-pq escrow approve shows the request it signs" "request $rid for escrow" "$(cat "$work/approve_b.out")"
approve_sql="SELECT pq.escrow_approve('$rid', decode(:'pk', 'hex'))"
check_contains "the requester cannot approve, even with an approver's signature" "cannot approve" \
  "$(qv "$port" officer_a pk "$approve_sql" "$work/approval_b.sig")"
check_contains "an application role cannot approve" "permission denied" "$(qv "$port" it_app pk "$approve_sql" "$work/approval_b.sig")"
check_contains "a signature by a key that is not an approver's is refused (PQ001)" "does not verify under any registered escrow approver" \
  "$(qv "$port" approver_b pk "$approve_sql" "$work/c1.pk")"
check "two other roles approve with their approvers' signatures" "1|2" \
  "$(qv "$port" approver_b pk "$approve_sql" "$work/approval_b.sig")|$(qv "$port" approver_c pk "$approve_sql" "$work/approval_c.sig")"
# min_approval_time (20 s) leaves room for the checks before it on a slow
# machine; if it passed already, say so rather than test nothing.
check "the wait is not over yet (else raise min_approval_time above)" "t" \
  "$(q "$port" -c "SELECT now() < ready_at FROM pq.escrow_requests WHERE id = '$rid'")"
check_contains "approved, but before min_approval_time: no statement" "may not proceed before" "$(statement_err)"
check_contains "... and no recovery" "may be completed from" \
  "$(recover_as officer_a "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', ARRAY['\\x'::bytea])")"
wait_for "$port" "SELECT now() >= ready_at FROM pq.escrow_requests WHERE id = '$rid'"
q "$port" -c "SELECT encode(pq.escrow_statement('$rid'), 'hex')" | unhex "$work/request.approved"
check "the approved statement carries both approvals" "6734" "$(stat -c %s "$work/request.approved")"
for i in 1 2 3 4 5; do
  "$cli" escrow reseal --secret-key "$work/c$i.sk" --share "$work/share$i.rec" --request-key "$work/request.pk" \
    --statement "$work/request.approved" "${pinned[@]}" -o "$work/r$i.rec" 2>"$work/reseal$i.out"
done
check "every custodian re-sealed its share" "5" "$(ls "$work"/r?.rec | wc -l)"
check_contains "apg-pq escrow reseal prints what it checked" "2 pinned approvers signed it" "$(cat "$work/reseal1.out")"
# The review's attack: one administrator hands custodians a key of his own.
"$cli" keygen --secret-key "$work/mine.sk" --public-key "$work/mine.pk" >/dev/null
"$cli" keygen --algorithm ml-dsa-65 --secret-key "$work/outsider.sk" --public-key "$work/outsider.pk" >/dev/null
check "a custodian refuses a key the approved statement does not name (exit 8, nothing written)" "8|no" \
  "$(code "$cli" escrow reseal --secret-key "$work/c1.sk" --share "$work/share1.rec" --request-key "$work/mine.pk" \
       --statement "$work/request.approved" "${pinned[@]}" -o "$work/mine.rec")|$([ -e "$work/mine.rec" ] && echo yes || echo no)"
check "... or a statement without the approvals it pinned (exit 8)" "8" \
  "$(code "$cli" escrow reseal --secret-key "$work/c1.sk" --share "$work/share1.rec" --request-key "$work/request.pk" \
       --statement "$work/request.stmt" "${pinned[@]}" -o "$work/unapproved.rec")"
check "... or approver keys other than the ones it pinned (exit 8)" "8" \
  "$(code "$cli" escrow reseal --secret-key "$work/c1.sk" --share "$work/share1.rec" --request-key "$work/request.pk" \
       --statement "$work/request.approved" --approver-key "$work/approver_b.pk" --approver-key "$work/outsider.pk" --approvals 2 -o "$work/other.rec")"
check "a custodian's key opens only its own share (exit 3, nothing written)" "3|no" \
  "$(code "$cli" escrow reseal --secret-key "$work/c2.sk" --share "$work/share1.rec" --request-key "$work/request.pk" \
       --statement "$work/request.approved" "${pinned[@]}" -o "$work/bad.rec")|$([ -e "$work/bad.rec" ] && echo yes || echo no)"
subsets=""
for a in 1 2 3 4 5; do for b in $(seq $((a + 1)) 5); do for c in $(seq $((b + 1)) 5); do
  subsets+="$a$b$c:$(recover_as officer_a "BEGIN; SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', $(shares $c $a $b)); ROLLBACK;") "
done; done; done
check "every 3 of the 5 shares recover the master key (10 subsets, rolled back)" \
  "123:$mdk_id 124:$mdk_id 125:$mdk_id 134:$mdk_id 135:$mdk_id 145:$mdk_id 234:$mdk_id 235:$mdk_id 245:$mdk_id 345:$mdk_id " "$subsets"
check "no 2 do" "22023 2 distinct shares given; the escrow needs 3" \
  "$(recover_as officer_a "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', $(shares 4 5))")"
check "a duplicated share is named" "22023 share 4 is given twice" \
  "$(recover_as officer_a "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', $(shares 1 4 4))")"
cp "$work/r2.rec" "$work/r2.orig"
python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[-3] ^= 1; open(sys.argv[1], 'wb').write(b)" "$work/r2.rec"
check_contains "a tampered share is named (PQ001), nothing changes" "PQ001 share 2 (element 2) does not open" \
  "$(recover_as officer_a "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', $(shares 1 2 3))")"
cp "$work/r2.orig" "$work/r2.rec"
# A custodian who re-seals a share it changed: the records open, but the
# shares recombine to another key, refused against the MDK id (PQ001).
PYTHONPATH="$root/tests" "$python" - "$work/c2.sk" "$work/share2.rec" "$work/request.pk" "$work/r2.changed" <<'PY'
import sys, pq_client_format as f
seed, record, request_pk = (open(p, "rb").read() for p in sys.argv[1:4])
index, share = f.open_share_record(seed, record)
header = b"\x01R" + f.kid(request_pk) + record[18:53]
changed = bytes([share[0] ^ 1]) + share[1:]
open(sys.argv[4], "wb").write(header + f.seal(request_pk, changed, b"apg-pq v1 escrow reseal" + header))
PY
cp "$work/r2.changed" "$work/r2.rec"
check_contains "a changed share re-sealed by its custodian: the shares recombine to another key (PQ001)" \
  "PQ001 the shares do not recombine to the escrowed master key" \
  "$(recover_as officer_a "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', $(shares 1 2 3))")"
cp "$work/r2.orig" "$work/r2.rec"
check "still nothing decrypts" "PQ004" "$(sqlstate "$port" "$count_sql")"
check "the recovery: the MDK checked against its id, wrapped by the new KEK" "$mdk_id" \
  "$(recover_as approver_b "SELECT encode(mdk_id, 'hex'), provider, key_ref FROM pq.escrow_recover('$rid', $(shares 5 3 1))")"
check "10,000 rows decrypt again, in a new backend of an application role (and 200 of an X-Wing tenant)" "10000|200" \
  "$(qas "$port" it_app -c "SELECT count(*) FROM vault WHERE id <= 10000 AND pq_decrypt_text(v, 'row ' || id) = 'secret-' || id")|$(q "$port" -c "SELECT count(*) FROM vault WHERE id > 10000 AND pq_decrypt_text(v, 'row ' || id) = 'hybrid-' || id")"
check "the provider answers for the recovered key; signing and rotation work" "t|t|3" \
  "$(q "$port" -c "SELECT answered FROM pq.master_key_status() WHERE state = 'active'" \
       -c "SELECT pq_verify('acme', 'm', pq_sign('acme', 'm'))" -c "SELECT new_version FROM pq.rotate_tenant_key('acme', 'after recovery')" \
     | tr '\n' '|' | sed 's/|$//')"
check "the request is done, its one-time key dropped, and cannot be used again" "recovered|t|55000" \
  "$(q "$port" -c "SELECT r.state, k.wrapped_seed IS NULL FROM pq.escrow_requests r JOIN pq.recovery_keys k ON k.kid = r.request_kid WHERE r.id = '$rid'")|$(sqlstate "$port" "SELECT pq.escrow_recover('$rid', $(shares 1 2 3))" officer_a)"
check "every step is an audited event, and the audit chain verifies" "escrow_approver_added escrow_configured escrow_custodian_added escrow_recovered escrow_recovery_approved escrow_recovery_requested escrow_split key_backup_exported master_key_rotated|t" \
  "$(q "$port" -c "SELECT string_agg(DISTINCT event, ' ' ORDER BY event) FROM pq.key_events WHERE event ~ '^(escrow|key_backup|master)'" \
       -c "SELECT ok FROM pq.verify_audit_chain()" | tr '\n' '|' | sed 's/|$//')"

# --- restore into a fresh cluster with its own key file
q "$port" -c "\\copy vault TO '$work/vault.csv' CSV" >/dev/null
cluster_start "$dir_b" "$port_b" "log_statement = 'all'" || return 1
q "$port_b" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" \
  -c "CREATE TABLE vault (id int PRIMARY KEY, v bytea)" -c "\\copy vault FROM '$work/vault.csv' CSV" -c "GRANT SELECT ON vault TO it_app" >/dev/null
q "$port_b" -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" | unhex "$work/restore_b.pk"
q "$port_b" -c "SELECT encode(key_id, 'hex') || ' ' || encode(wrapped_key, 'hex') || ' ' || encode(kid, 'hex') || ' ' || encode(wrapped_seed, 'hex')
                  FROM pq.recovery_keys WHERE used_at IS NULL" >"$work/restore_b.stored"
check "the officer's key cannot re-seal another bundle's key (exit 3)" "3" \
  "$(code "$cli" backup reseal --secret-key "$work/c1.sk" --bundle "$work/all.apgb" --restore-key "$work/restore_b.pk" -o "$work/no.apgb")"
"$cli" backup reseal --secret-key "$work/officer.sk" --bundle "$work/all.apgb" --restore-key "$work/restore_b.pk" -o "$work/all_b.apgb" 2>/dev/null
restore_err() { psql -X -At -q -h 127.0.0.1 -p "$1" -U postgres postgres -v VERBOSITY=verbose -v b="$(hex "$2")" \
                  <<<"SELECT pq.restore_key_backup(decode(:'b', 'hex') ${3:-})" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)/\1 \2/p'; }
check "the bundle as exported (sealed to the officer) is refused: PQ002" "PQ002" "$(restore_err "$port_b" "$work/all.apgb" | cut -c1-5)"
head -c 40 "$work/all_b.apgb" >"$work/truncated.apgb"
check_contains "a truncated bundle: 22023" "22023 the key backup bundle is truncated" "$(restore_err "$port_b" "$work/truncated.apgb")"
python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[0] = 2; open(sys.argv[2], 'wb').write(b)" "$work/all_b.apgb" "$work/v2.apgb"
check_contains "a bundle of a newer format version: 22023 naming the version" "22023 key backup bundle format version 2 is not supported" \
  "$(restore_err "$port_b" "$work/v2.apgb")"
python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[2000] ^= 1; open(sys.argv[2], 'wb').write(b)" "$work/all_b.apgb" "$work/tampered.apgb"
check_contains "a tampered bundle: PQ001" "PQ001 the key backup bundle does not open" "$(restore_err "$port_b" "$work/tampered.apgb")"
check "the restore: every tenant and version" "acme|acme|2|0 hybrid|hybrid|1|0" \
  "$(qv "$port_b" postgres b "SELECT * FROM pq.restore_key_backup(decode(:'b', 'hex'))" "$work/all_b.apgb" | tr '\n' ' ' | sed 's/ $//')"
check "10,000 rows made before the backup decrypt in the new cluster (and the X-Wing tenant's 200)" "10200" \
  "$(q "$port_b" -c "$count_sql")"
check "each version keeps its suites: acme v1 ML-KEM-768 + ML-DSA-65, v2 ML-KEM-1024 + ML-DSA-87, and so do the tenant's next ones" \
  "1|ml-kem-768|ml-dsa-65 2|ml-kem-1024|ml-dsa-87 ml-kem-1024|ml-dsa-87" \
  "$(q "$port_b" -c "SELECT version, kem, signature FROM pq.tenant_keys WHERE tenant = 'acme' ORDER BY version" \
                 -c "SELECT kem, signature FROM pq.tenants WHERE name = 'acme'" | tr '\n' ' ' | sed 's/ $//')"
check "metadata came along: the grant (it_app decrypts) and the policy" "secret-7|1" \
  "$(qas "$port_b" it_app -c "SELECT pq_decrypt_text(v, 'row 7') FROM vault WHERE id = 7")|$(q "$port_b" -c "SELECT count(*) FROM pq.tenant_policies WHERE max_key_age = 31536000")"
check "the restore key was one-time" "55000" "$(restore_err "$port_b" "$work/all_b.apgb" | cut -c1-5)"
q "$port_b" -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" | unhex "$work/restore_b2.pk"
"$cli" backup reseal --secret-key "$work/officer.sk" --bundle "$work/all.apgb" --restore-key "$work/restore_b2.pk" -o "$work/all_b2.apgb" 2>/dev/null
check_contains "restoring into an existing tenant is refused without overwrite" "42710 tenant \"acme\" exists already" \
  "$(restore_err "$port_b" "$work/all_b2.apgb")"
check "... and done with overwrite => true" "2" \
  "$(qv "$port_b" postgres b "SELECT count(*) FROM pq.restore_key_backup(decode(:'b', 'hex'), overwrite => true)" "$work/all_b2.apgb")"
# A version whose public keys are not its secrets' (the officer, or whoever
# holds the officer's key, edits the document and seals it again): 22023.
q "$port_b" -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" | unhex "$work/restore_b3.pk"
PYTHONPATH="$root/tests" "$python" - "$work/officer.sk" "$work/all.apgb" "$work/restore_b3.pk" "$work/forged.apgb" <<'PY'
import hashlib, json, sys, pq_client_format as f
seed, bundle, restore_pk = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
doc, secrets = f.open_bundle(seed, bundle)
d = json.loads(doc)
v = d["tenants"][0]["versions"][-1]
v["public_key"] = v["public_key"][:-2] + ("00" if v["public_key"][-2:] != "00" else "01")
doc = json.dumps(d).encode()
payload = b"\x01" + len(doc).to_bytes(4, "big") + doc + len(secrets).to_bytes(4, "big") + b"".join(
    bytes([k]) + r + len(b).to_bytes(2, "big") + b for k, r, b in secrets)
header = bundle[:2] + f.kid(restore_pk) + bundle[18:42]
open(sys.argv[4], "wb").write(header + f.seal(restore_pk, payload, b"apg-pq v1 key backup" + header))
PY
check_contains "a version whose public key is not its secret's: 22023" "does not match its secrets" \
  "$(restore_err "$port_b" "$work/forged.apgb" ", overwrite => true")"
# The tenant rotated here since: the bundle's active version is not the
# tenant's active one any more, and a tenant has one active version: 23505.
q "$port_b" -c "SELECT pq.rotate_tenant_key('acme', 'after the restore')" >/dev/null
q "$port_b" -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" | unhex "$work/restore_b4.pk"
"$cli" backup reseal --secret-key "$work/officer.sk" --bundle "$work/all.apgb" --restore-key "$work/restore_b4.pk" -o "$work/all_b4.apgb" 2>/dev/null
check_contains "a bundle whose active version is not the tenant's active one: 23505" "23505 tenant \"acme\" has another active key version" \
  "$(restore_err "$port_b" "$work/all_b4.apgb" ", overwrite => true")"

# --- one tenant under another name, in a third cluster
cluster_start "$dir_c" "$port_c" "log_statement = 'all'" || return 1
q "$port_c" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE TABLE vault (id int PRIMARY KEY, v bytea)" -c "\\copy vault FROM '$work/vault.csv' CSV" >/dev/null
q "$port_c" -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" | unhex "$work/restore_c.pk"
check "a bundle re-sealed to another cluster's restore key: PQ002" "PQ002" "$(restore_err "$port_c" "$work/all_b2.apgb" | cut -c1-5)"
"$cli" backup reseal --secret-key "$work/officer.sk" --bundle "$work/acme.apgb" --restore-key "$work/restore_c.pk" -o "$work/acme_c.apgb" 2>/dev/null
check "restored under another tenant name" "acme|acme_dr|2|0" \
  "$(qv "$port_c" postgres b "SELECT * FROM pq.restore_key_backup(decode(:'b', 'hex'), target_tenant => 'acme_dr')" "$work/acme_c.apgb")"
check "its 10,000 rows decrypt, as acme_dr's; no metadata was asked for" "10000|acme_dr|0" \
  "$(q "$port_c" -c "SELECT count(*) FROM vault WHERE id <= 10000 AND pq_decrypt_text(v, 'row ' || id) = 'secret-' || id" \
       -c "SELECT pq_inspect(v)->>'tenant' FROM vault WHERE id = 1" -c "SELECT count(*) FROM pq.tenant_policies" | tr '\n' '|' | sed 's/|$//')"

# --- hygiene: the secrets, recovered outside the server from what the
# custodians and the officer hold, are in no file of any cluster.
for p in "$port" "$port_b" "$port_c"; do q "$p" -c "CHECKPOINT" -c "SELECT pg_switch_wal()" >/dev/null; done
secrets=$(PYTHONPATH="$root/tests" "$python" - "$work" "$mdk_id" "$dir_b/master.key" <<'PY'
import hashlib, sys, pq_client_format as f
from kyber_py.ml_kem import ML_KEM_768
work, mdk_id, kek_b = sys.argv[1], sys.argv[2], sys.argv[3]
def one_time_seed(kek_file, stored, public_key_file):
    key_id, wrapped_key, kid_, wrapped_seed = (bytes.fromhex(x) for x in open(stored).read().split())
    seed = f.recovery_seed(open(kek_file, "rb").read(), key_id, wrapped_key, kid_, wrapped_seed)
    ek, _ = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
    assert ek == open(public_key_file, "rb").read(), "the unwrapped seed is the one-time key's"
    return seed
one_time = [one_time_seed(f"{work}/new.key", f"{work}/request.stored", f"{work}/request.pk"),
            one_time_seed(kek_b, f"{work}/restore_b.stored", f"{work}/restore_b.pk")]
shares = [f.open_share_record(open(f"{work}/c{i}.sk", "rb").read(), open(f"{work}/share{i}.rec", "rb").read()) for i in range(1, 6)]
mdk = f.shamir_combine(shares[:3])
assert hashlib.sha256(b"apg-pq v1 mdk" + mdk).digest()[:16].hex() == mdk_id, "the shares recombine to the MDK"
doc, secrets = f.open_bundle(open(f"{work}/officer.sk", "rb").read(), open(f"{work}/all.apgb", "rb").read())
assert len(secrets) == 6, len(secrets)
print(" ".join([mdk.hex()] + [s.hex() for _, s in shares] + [b.hex() for _, _, b in secrets] + [s.hex() for s in one_time]))
PY
)
check "the test recovers 1 master key, 5 shares, 6 tenant seeds (custodians' and officer's files) and 2 one-time key seeds (key files)" "14" \
  "$(wc -w <<<"$secrets")"
record_bytes=$(hex "$work/share1.rec" | cut -c 201-264)
check_contains "positive control: the search finds a stored share record's bytes in cluster A's files" "0:" \
  "$("$python" "$root/tests/find_bytes.py" "$dir/data" "$record_bytes")"
# shellcheck disable=SC2086
check "no share, master key, tenant seed or request/restore secret key in the data directories, WAL or server logs of A, B and C" "none" \
  "$("$python" "$root/tests/find_bytes.py" "$dir:$dir_b:$dir_c" $secrets)"
cluster_stop "$dir_c"
cluster_stop "$dir_b"
cluster_stop "$dir"
