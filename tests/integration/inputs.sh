# Hostile input for every SQL function of the extension (issue 27 item 3),
# generated from the catalog by tests/integration/inputs.sql: NULL in each
# argument, empty, extreme and random values, every kind of envelope whole,
# truncated, lengthened and bit-flipped, big values (APG_PQ_INPUTS_BIG
# bytes, default 16 MiB; up to 1073741823 for a campaign), arrays of a
# million elements, jsonb nested 1000 deep or with numbers beyond a double.
# Every call must end in success or in a SQLSTATE the README's error table
# lists; never an internal error, never a crashed backend, never a
# plaintext out of a changed envelope, never a plaintext or a long echo of
# an argument in a message, never a peak of memory beyond a bound.
# Every call is made twice: as a superuser and
# as a LOGIN role with no grant, which must get nothing from a tenant's
# keys. A control function that fails internally on one input shows that
# the run reports such a failure.
# checks: 12
dir="$base/inputs"
port=$port_inputs
big=${APG_PQ_INPUTS_BIG:-16777216}
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
check "the harness and its fixture load" "" \
  "$(q "$port" -v ON_ERROR_STOP=1 -f "$root/tests/integration/inputs.sql" 2>&1 | grep -v '^1$')"

echo "# every function of the extension, one statement each ($big-byte big values), as a superuser and as a role with no grant"
inputs_rc=0
for who in postgres fz_nobody; do
  calls=$(psql -X -At -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$who" postgres 2>&1 <<SQL
SET statement_timeout = '300s';
SELECT pg_catalog.setseed(0.42);
SELECT pg_catalog.format('SELECT fz.fuzz(%s::oid::regprocedure, $big)', fn::oid) FROM fz.targets ORDER BY fn::text
\gexec
SELECT pg_catalog.pg_backend_pid() AS fz_pid
\gset
\setenv FZ_PID :fz_pid
\! awk '/^VmHWM/ {print \$2}' /proc/\$FZ_PID/status > "$dir/peak.$who"
SQL
) || { inputs_rc=$?; echo "$calls" | tail -5; }
done
check "every call returned to the harness (no backend crashed, none timed out)" "0" "$inputs_rc"
# The peak resident memory of each role's backend (VmHWM, read by psql on
# this machine before the session ends): bounded by a small multiple of
# the biggest input, plus 256 MB for the million-element arrays and the rest.
bound=$(( (12 * big) / 1024 + 262144 ))
peaks=$(for who in postgres fz_nobody; do echo "$(cat "$dir/peak.$who" 2>/dev/null)"; done | paste -sd' ' -)
echo "# peak resident memory of the backends (postgres, fz_nobody): $peaks kB"
check "each backend's peak memory stayed within 12 x the biggest input + 256 MB ($bound kB)" "t t" \
  "$(for kb in $peaks; do [ "$kb" -le "$bound" ] && echo t || echo "f:$kb"; done | paste -sd' ' -)"
check "every callable function of the extension was called, by each role" "t|t" \
  "$(q "$port" -c "SELECT count(DISTINCT o.fn) = (SELECT count(*) FROM fz.targets) AND count(DISTINCT o.fn) > 90 FROM fz.outcome o GROUP BY who ORDER BY who" | paste -sd'|')"
echo "# $(q "$port" -c "SELECT string_agg(n || ' calls as ' || who || ': ' || states, '; ' ORDER BY who) FROM (SELECT who, count(*) AS n, string_agg(DISTINCT sqlstate, ' ') AS states FROM fz.outcome GROUP BY who) w")"

check "no call ended in an internal error (class XX)" "" \
  "$(q "$port" -c "SELECT who || ': ' || fn || ' ' || arg || ' = ' || label || ': ' || sqlstate || ' ' || left(message, 100) FROM fz.outcome WHERE sqlstate LIKE 'XX%'")"
# The README's table of errors is the list of documented SQLSTATEs.
documented=$(sed -n '/^### Errors/,/^## /p' "$root/README.md" | grep -o '^| [0-9A-Z, ]*|' | grep -o '[0-9A-Z]\{5\}' | sort -u | paste -sd, -)
check "every SQLSTATE is one the README's error table lists" "" \
  "$(q "$port" -c "SELECT string_agg(DISTINCT sqlstate || ' (' || who || ': ' || fn || ' ' || coalesce(arg, '') || ' = ' || label || ': ' || left(message, 80) || ')', '; ')
                    FROM fz.outcome WHERE sqlstate <> 'ok' AND NOT sqlstate = ANY (string_to_array('$documented', ','))")"
check "no decrypting function returned a plaintext for a changed envelope" "" \
  "$(q "$port" -c "SELECT string_agg(fn || ' ' || label, '; ') FROM fz.outcome
                    WHERE sqlstate = 'ok' AND arg IN ('envelope', 'value')
                      AND fn::text ~ '(decrypt|unseal|open)' AND label ~ '(flipped|truncated|last byte|more byte)'")"
check "no message holds a plaintext or repeats more than 64 characters of an argument" "0" \
  "$(q "$port" -c "SELECT count(*) FROM fz.outcome WHERE message ~ 'fz-canary|n{65}|é{65}'")"
check "the role with no grant got nothing from a tenant's keys (its only successes were NULL in, NULL out)" "" \
  "$(q "$port" -c "SELECT string_agg(fn || ' ' || arg || ' = ' || label, '; ') FROM fz.outcome
                    WHERE who = 'fz_nobody' AND sqlstate = 'ok' AND label <> 'NULL'
                      AND fn::text ~ '^pq_(encrypt|decrypt|unseal|sign|verify|blind_index|session_open)' AND fn::text !~ '_with\('")"
check "the server log shows no crashed backend" "" \
  "$(grep -aE 'terminated by signal|was terminated|PANIC' "$dir/server.log" | head -3)"

echo "# control: a function that fails internally on one input"
q "$port" -c "SELECT fz.fuzz('fz.control(bytea)', 64)" >/dev/null
check "control: the run reports its internal error" "empty XX000" \
  "$(q "$port" -c "SELECT label || ' ' || sqlstate FROM fz.outcome WHERE fn = 'fz.control(bytea)'::regprocedure AND sqlstate LIKE 'XX%'")"
cluster_stop "$dir" >/dev/null
ok "the cluster stopped"
