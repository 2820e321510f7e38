# Forward-secure sessions (pq.session_begin, pq_session_open, pq.session_end):
# values sealed to a session open in two different backends while it lives
# and never after its end or its expiry; the ephemeral secret is read from
# the server's shared memory while the session lives (proving the search
# below can find it) and is then searched for in every file of the data
# directory, the WAL and the server log: nowhere. Without
# shared_preload_libraries the functions are 55000.
# checks: 25
dir="$base/sessions"
port=$port_sessions
python=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}/bin/python
cluster_start "$dir" "$port" "log_statement = 'all'" "apg_pqcrypto.worker_naptime = 600" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('hybrid', kem => 'x-wing')" \
  -c "CREATE ROLE it_s LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_s')" -c "SELECT pq.grant_tenant('hybrid', 'it_s')" \
  -c "CREATE TABLE vault (n int, sealed bytea)" -c "GRANT ALL ON vault TO it_s" >/dev/null

row=$(qas "$port" it_s -F ' ' -c "SELECT session_id, encode(kid, 'hex'), encode(public_key, 'hex') FROM pq.session_begin('acme', '1 hour')")
read -r sid skid spk <<<"$row"
qas "$port" it_s -c "INSERT INTO vault SELECT n, pq_seal(decode('$spk', 'hex'), 'session value ' || n, 'row ' || n) FROM generate_series(1, 3) n" >/dev/null
pid1=$(qas "$port" it_s -c "SELECT pg_backend_pid()")
got1=$(qas "$port" it_s -c "SELECT pg_backend_pid() <> $pid1, string_agg(pq_session_open_text('$sid', sealed, 'row ' || n), ',' ORDER BY n) FROM vault")
got2=$(qas "$port" it_s -c "SELECT pg_backend_pid() <> $pid1, pq_session_open_text('$sid', sealed, 'row ' || n) FROM vault WHERE n = 2")
check "values sealed to a session open in one backend ..." "t|session value 1,session value 2,session value 3" "$got1"
check "... and in another" "t|session value 2" "$got2"
check "no tenant key opens them (PQ002)" "PQ002" "$(sqlstate "$port" "SELECT pq_unseal(sealed, 'row 1'::bytea) FROM vault WHERE n = 1")"

# The secret, read from shared memory by its kid (Slot is repr(C): the seed follows the kid).
cat >"$base/sessions-mem.py" <<'PY'
import re, sys
# A slot (src/sessions.rs, repr(C)): in_use, suite, seed_len, tenant_len (4 bytes), id (16),
# 4 bytes of padding, created, expires, opened (3 x 8), kid (16), seed (64).
pid, sid, kid, mode = int(sys.argv[1]), bytes.fromhex(sys.argv[2].replace("-", "")), bytes.fromhex(sys.argv[3]), sys.argv[4]
slot = re.compile(re.escape(sid) + b".{28}" + re.escape(kid), re.S)
found = []
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        addr, perms = line.split()[:2]
        if not perms.startswith("rw") or perms[3] != "s":
            continue  # shared mappings only: PostgreSQL's shared memory
        lo, hi = (int(x, 16) for x in addr.split("-"))
        try:
            mem.seek(lo); data = mem.read(hi - lo)
        except OSError:
            continue
        for m in slot.finditer(data):
            found.append(data[m.end():m.end() + 64])
if mode == "seed":
    print(found[0].hex() if len(found) == 1 else f"found {len(found)} times")
else:
    print(len(found))
PY
postmaster=$(head -1 "$dir/data/postmaster.pid")
seed=$("$python" "$base/sessions-mem.py" "$postmaster" "$sid" "$skid" seed)
check "the live session's secret is in shared memory, and it is the seed of the session's public key" "$spk" \
  "$("$python" -c "
import sys; from kyber_py.ml_kem import ML_KEM_768
s = bytes.fromhex('$seed'); ek, _ = ML_KEM_768._keygen_internal(s[:32], s[32:]); print(ek.hex())" 2>&1)"
q "$port" -c "CHECKPOINT" -c "SELECT pg_switch_wal()" >/dev/null
# Positive control: a sealed value's nonce is in the WAL, and the search finds it.
nonce=$(q "$port" -c "SELECT encode(substr(sealed, 1107, 12), 'hex') FROM vault WHERE n = 1")
check_contains "the search finds bytes that are in the WAL (a stored envelope's nonce)" "0:" \
  "$("$python" "$root/tests/find_bytes.py" "$dir/data" "$nonce")"
check "the session's secret is in no file of the data directory or the WAL, nor in the server log" "none" \
  "$("$python" "$root/tests/find_bytes.py" "$dir" "$seed" "${seed:0:64}" "${seed:64:64}")"

check "pq.sessions shows the session, without secrets" "acme|ml-kem-768|$skid|t" \
  "$(qas "$port" it_s -c "SELECT tenant, kem, encode(kid, 'hex'), opened >= 4 FROM pq.sessions WHERE session_id = '$sid'")"
check "pq.session_end wipes it" "t" "$(qas "$port" it_s -c "SELECT pq.session_end('$sid')")"
check "after the end, its values never open (PQ003), in any backend" "PQ003|PQ003" \
  "$(sqlstate "$port" "SELECT pq_session_open('$sid', sealed, 'row 1'::bytea) FROM vault WHERE n = 1" it_s)|$(sqlstate "$port" "SELECT pq_session_open('$sid', sealed, 'row 2'::bytea) FROM vault WHERE n = 2")"
check "... and the secret is gone from shared memory" "0" "$("$python" "$base/sessions-mem.py" "$postmaster" "$sid" "$skid" count)"
check "a master key rotation changes nothing: still PQ003" "PQ003" \
  "$(q "$port" -c "SELECT pq.rotate_master_key()" >/dev/null; sqlstate "$port" "SELECT pq_session_open('$sid', sealed, 'row 1'::bytea) FROM vault WHERE n = 1")"

# Expiry: the worker wakes at the expiry (its naptime is 10 minutes here) and wipes the slot.
row=$(qas "$port" it_s -F ' ' -c "SELECT session_id, encode(kid, 'hex'), encode(public_key, 'hex') FROM pq.session_begin('hybrid', '2 seconds')")
read -r sid2 skid2 spk2 <<<"$row"
qas "$port" it_s -c "INSERT INTO vault SELECT 10, pq_seal(decode('$spk2', 'hex'), 'x-wing session value')" >/dev/null
check "an X-Wing session: its value opens while it lives" "x-wing session value" \
  "$(qas "$port" it_s -c "SELECT pq_session_open_text('$sid2', sealed) FROM vault WHERE n = 10")"
check "its secret is in shared memory" "1" "$("$python" "$base/sessions-mem.py" "$postmaster" "$sid2" "$skid2" count)"
# An ML-KEM-1024 tenant's session: a 1568-byte key and 'L' envelopes; a
# tenant whose policy requires CNSA 2.0 while it still uses ML-KEM-768 gets none.
q "$port" -c "SELECT pq.create_tenant('cnsa', kem => 'ml-kem-1024', signature => 'ml-dsa-87')" -c "SELECT pq.grant_tenant('cnsa', 'it_s')" \
  -c "SELECT pq.create_tenant('strict')" -c "SELECT pq.grant_tenant('strict', 'it_s')" \
  -c "SELECT pq.set_policy('strict', '{\"require_suite\": \"cnsa2\"}')" >/dev/null
row=$(qas "$port" it_s -F ' ' -c "SELECT session_id, length(public_key), encode(public_key, 'hex') FROM pq.session_begin('cnsa')")
read -r sid3 slen3 spk3 <<<"$row"
check "an ML-KEM-1024 session: a 1568-byte key; its 'L' value opens" "1568|L|cnsa session value" \
  "$slen3|$(qas "$port" it_s -c "SELECT convert_from(substr(e, 2, 1), 'SQL_ASCII') || '|' || pq_session_open_text('$sid3', e)
                                FROM pq_seal(decode('$spk3', 'hex'), 'cnsa session value') e")"
check "an ML-KEM-768 tenant whose policy requires CNSA 2.0 gets no session: PQ003" "PQ003" \
  "$(sqlstate "$port" "SELECT pq.session_begin('strict')" it_s)"
# Read from the postmaster's memory, not through a session call.
wiped=1
for _ in $(seq 1 50); do
  wiped=$("$python" "$base/sessions-mem.py" "$postmaster" "$sid2" "$skid2" count)
  [ "$wiped" = 0 ] && break
  sleep 0.2
done
check "after expiry the worker has wiped it, with no session call in between" "0" "$wiped"
check "... and its value never opens (PQ003)" "PQ003" "$(sqlstate "$port" "SELECT pq_session_open('$sid2', sealed) FROM vault WHERE n = 10" it_s)"
check_absent "no session value in the server log (log_statement = all)" "session value" "$(cat "$dir/server.log")"

# One tenant cannot hold every slot: apg_pqcrypto.max_sessions_per_tenant.
q "$port" -c "ALTER SYSTEM SET apg_pqcrypto.max_sessions_per_tenant = 2" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "$port" "SELECT current_setting('apg_pqcrypto.max_sessions_per_tenant') = '2'" || fail "the setting reloaded"
held=$(qas "$port" it_s -c "SELECT session_id FROM pq.session_begin('acme')" -c "SELECT session_id FROM pq.session_begin('acme')" | head -1)
check "a third session of the same tenant: 53400" "53400" "$(sqlstate "$port" "SELECT pq.session_begin('acme')" it_s)"
check_contains "... naming the setting" "max_sessions_per_tenant" \
  "$(qas "$port" it_s -v VERBOSITY=verbose -c "SELECT pq.session_begin('acme')")"
check "another tenant still gets one" "1" "$(qas "$port" it_s -c "SELECT count(*) FROM pq.session_begin('hybrid')")"
check "ending one frees the tenant's place" "t|1" \
  "$(qas "$port" it_s -c "SELECT pq.session_end('$held')")|$(qas "$port" it_s -c "SELECT count(*) FROM pq.session_begin('acme')")"
cluster_stop "$dir"

# Without the library preloaded: 55000 with a hint.
cluster_start "$dir" "$port" "shared_preload_libraries = ''" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" >/dev/null
check "without shared_preload_libraries: 55000" "55000|55000" \
  "$(sqlstate "$port" "SELECT pq.session_begin('acme')")|$(sqlstate "$port" "SELECT count(*) FROM pq.sessions")"
q "$port" -c "CREATE TABLE t (id int PRIMARY KEY, v bytea)" -c "SELECT pq.track_column('t', 'v', tenant => 'acme')" >/dev/null
check "... jobs and automatic rotation need the worker: 55000" "55000|55000|55000" \
  "$(sqlstate "$port" "SELECT pq.reencrypt('t', 'v')")|$(sqlstate "$port" "SELECT pq.reencrypt_tenant('acme')")|$(sqlstate "$port" "SELECT pq.set_policy('acme', '{\"rotation_interval\": 86400, \"auto_rotation\": true}')")"
check "... while a rotation by hand works" "2" "$(q "$port" -c "SELECT new_version FROM pq.rotate_tenant_key('acme', 'manual')")"
cluster_stop "$dir"
