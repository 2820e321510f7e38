# Hostile input for every SQL function of the extension (issue 27 item 3),
# generated from the catalog by tests/integration/inputs.sql: NULL in each
# argument, empty, extreme and random values, every kind of envelope whole,
# truncated, lengthened and bit-flipped, big values (APG_PQ_INPUTS_BIG
# bytes, default 16 MiB; up to 1073741823 for a campaign), arrays of a
# million elements, jsonb nested 1000 deep or with numbers beyond a double.
# Every call must end in success or in a SQLSTATE the README's error table
# lists; never an internal error, never a crashed backend, never a
# plaintext out of a changed envelope, never a plaintext or a long echo of
# an argument in a message. A control function that fails internally on
# one input shows that the run reports such a failure.
# checks: 10
dir="$base/inputs"
port=$port_inputs
big=${APG_PQ_INPUTS_BIG:-16777216}
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
check "the harness and its fixture load" "" \
  "$(q "$port" -v ON_ERROR_STOP=1 -f "$root/tests/integration/inputs.sql" 2>&1 | grep -v '^1$')"

echo "# every function of the extension, one statement each ($big-byte big values)"
calls=$(cluster_psql "$port" -At -q -v ON_ERROR_STOP=1 2>&1 <<SQL
SET statement_timeout = '300s';
SELECT pg_catalog.setseed(0.42);
SELECT pg_catalog.format('SELECT fz.fuzz(%L, $big)', fn) FROM fz.targets ORDER BY fn::text
\gexec
SQL
)
inputs_rc=$?
check "every call returned to the harness (no backend crashed, none timed out)" "0" "$inputs_rc"
[ "$inputs_rc" = 0 ] || echo "$calls" | tail -5
check "every callable function of the extension was called" "t" \
  "$(q "$port" -c "SELECT count(DISTINCT o.fn) = (SELECT count(*) FROM fz.targets) AND count(DISTINCT o.fn) > 90 FROM fz.outcome o")"
echo "# $(q "$port" -c "SELECT count(*) || ' calls of ' || count(DISTINCT fn) || ' functions: ' || string_agg(DISTINCT sqlstate, ' ') FROM fz.outcome")"

check "no call ended in an internal error (class XX)" "" \
  "$(q "$port" -c "SELECT fn || ' ' || arg || ' = ' || label || ': ' || sqlstate || ' ' || left(message, 100) FROM fz.outcome WHERE sqlstate LIKE 'XX%'")"
# The README's table of errors is the list of documented SQLSTATEs.
documented=$(sed -n '/^### Errors/,/^## /p' "$root/README.md" | grep -o '^| [0-9A-Z, ]*|' | grep -o '[0-9A-Z]\{5\}' | sort -u | paste -sd, -)
check "every SQLSTATE is one the README's error table lists" "" \
  "$(q "$port" -c "SELECT string_agg(DISTINCT sqlstate || ' (' || fn || ' ' || coalesce(arg, '') || ' = ' || label || ': ' || left(message, 80) || ')', '; ')
                    FROM fz.outcome WHERE sqlstate <> 'ok' AND NOT sqlstate = ANY (string_to_array('$documented', ','))")"
check "no decrypting function returned a plaintext for a changed envelope" "" \
  "$(q "$port" -c "SELECT string_agg(fn || ' ' || label, '; ') FROM fz.outcome
                    WHERE sqlstate = 'ok' AND arg IN ('envelope', 'value')
                      AND fn::text ~ '(decrypt|unseal|open)' AND label ~ '(flipped|truncated|last byte|more byte)'")"
check "no message holds a plaintext or repeats more than 64 characters of an argument" "0" \
  "$(q "$port" -c "SELECT count(*) FROM fz.outcome WHERE message ~ 'fz-canary|n{65}|é{65}'")"
check "the server log shows no crashed backend" "" \
  "$(grep -aE 'terminated by signal|was terminated|PANIC' "$dir/server.log" | head -3)"

echo "# control: a function that fails internally on one input"
q "$port" -c "SELECT fz.fuzz('fz.control(bytea)', 64)" >/dev/null
check "control: the run reports its internal error" "empty XX000" \
  "$(q "$port" -c "SELECT label || ' ' || sqlstate FROM fz.outcome WHERE fn = 'fz.control(bytea)'::regprocedure AND sqlstate LIKE 'XX%'")"
cluster_stop "$dir" >/dev/null
ok "the cluster stopped"
