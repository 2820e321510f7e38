# A hot standby made with pg_basebackup -R decrypts, unseals, verifies and
# inspects what the primary made, including for a tenant created after the
# standby started, for a granted role and with a cold cache; encryption and
# signing there fail with 25006. Revocations on the primary reach it.
# checks: 20
primary="$base/primary"
standby="$base/standby"
port=$port_standby
sport=$((port + 1))
cluster_start "$primary" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" \
  -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_app')" \
  -c "CREATE TABLE t (name text, v bytea, s bytea, g bytea); GRANT SELECT ON t TO it_app" \
  -c "INSERT INTO t VALUES ('a', pq_encrypt('acme', 'keyed-a', 'a'), pq_seal(pq.tenant_public_key('acme'), 'sealed-a', 'a'), pq_sign('acme', 'a'))" >/dev/null
mkdir -p "$standby"; chown postgres: "$standby"
as_postgres pg_basebackup -h 127.0.0.1 -p "$port" -U postgres -D "$standby/data" -R -X stream >"$base/basebackup.log" 2>&1
check "pg_basebackup -R" "0" "$?"
# %e puts each line's SQLSTATE in the log, so that an internal error
# (XX000) shows however its message reads.
{ echo "port = $sport"; echo "unix_socket_directories = '$standby'"; echo "log_line_prefix = '%m [%p] %e '"; } \
  | as_postgres tee -a "$standby/data/postgresql.conf" >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$standby/data" -l "$standby/server.log" -w -t 60 start >/dev/null
check "standby is in recovery" "t" "$(q "$sport" -c "SELECT pg_is_in_recovery()")"

# A tenant created after the standby started.
q "$port" -c "SELECT pq.create_tenant('late')" -c "SELECT pq.grant_tenant('late', 'it_app')" \
  -c "INSERT INTO t VALUES ('late', pq_encrypt('late', 'keyed-late', 'late'), NULL, NULL)" \
  -c "SELECT pq.config_set('acme', 'db.url', 'config-a')" -c "SELECT pq.audit_checkpoint()" \
  -c "CREATE TABLE bidx AS SELECT * FROM pq_encrypt_indexed('late', 'token-7', 'token')" -c "CREATE INDEX ON bidx (term); GRANT SELECT ON bidx TO it_app" >/dev/null
lsn=$(q "$port" -c "SELECT pg_current_wal_lsn()")
wait_for "$sport" "SELECT pg_last_wal_replay_lsn() >= '$lsn'" || fail "standby did not replay"

check "standby: decrypts (cold cache)" "keyed-a" "$(q "$sport" -c "SELECT pq_decrypt_text(v, name) FROM t WHERE name = 'a'")"
check "standby: decrypts a tenant created after it started" "keyed-late" \
  "$(q "$sport" -c "SELECT pq_decrypt_text(v, name) FROM t WHERE name = 'late'")"
check "standby: unseals" "sealed-a" "$(q "$sport" -c "SELECT pq_unseal_text(s, name) FROM t WHERE name = 'a'")"
check "standby: verifies" "t" "$(q "$sport" -c "SELECT pq_verify('acme', 'a', g) FROM t WHERE name = 'a'")"
check "standby: inspects" "acme" "$(q "$sport" -c "SELECT pq_inspect(v)->>'tenant' FROM t WHERE name = 'a'")"
check "standby: a granted role decrypts" "keyed-late" "$(qas "$sport" it_app -c "SELECT pq_decrypt_text(v, name) FROM t WHERE name = 'late'")"
check "standby: with no cache at all" "keyed-a" \
  "$(q "$sport" -c "SET apg_pqcrypto.key_cache_ttl = 0" -c "SELECT pq_decrypt_text(v, name) FROM t WHERE name = 'a'")"
check "standby: a blind index lookup finds the row by its term (cold cache), also as a granted role" "keyed|keyed" \
  "$(q "$sport" -c "SELECT pq_inspect(envelope)->>'kind' FROM bidx WHERE term = pq_blind_index('late', 'token-7', 'token')")|$(qas "$sport" it_app -c "SELECT 'keyed' FROM bidx WHERE term = ANY (pq_blind_indexes('late', 'token-7', 'token'))" 2>&1)"
check "standby: pq_encrypt_indexed is 25006" "25006" "$(sqlstate "$sport" "SELECT * FROM pq_encrypt_indexed('late', 'x', 'token')")"
check "standby: pq_encrypt is 25006" "25006" "$(sqlstate "$sport" "SELECT pq_encrypt('acme', 'x')")"
check "standby: pq_sign is 25006" "25006" "$(sqlstate "$sport" "SELECT pq_sign('acme', 'x')")"
check "standby: reads config, verifies the config store and the audit chain" "config-a|t|t" \
  "$(q "$sport" -c "SELECT pq.config_get('acme', 'db.url'), (SELECT ok FROM pq.config_verify('acme')), (SELECT ok FROM pq.verify_audit_chain())")"
check "standby: pq.config_set is 25006" "25006" "$(sqlstate "$sport" "SELECT pq.config_set('acme', 'k', 'v')")"
check "standby: a forward-secure session lives in the standby's own memory: begin, seal, open, end" "standby session|t|PQ003" \
  "$(q "$sport" -F '|' -c "SELECT pq_session_open_text(session_id, pq_seal(public_key, 'standby session')), pq.session_end(session_id) FROM pq.session_begin('acme', '1 minute')")|$(sqlstate "$sport" "SELECT pq_session_open(gen_random_uuid(), pq_seal(pq.tenant_public_key('acme'), 'x'))")"
check_contains "standby: its log names SQLSTATEs (the refused pq_encrypt's 25006 is there)" " 25006 ERROR:" "$(cat "$standby/server.log")"
check "standby: no XX000 anywhere in its log" "" "$(grep -E ' XX000 |TransactionIds during recovery' "$standby/server.log")"

echo "# a revocation on the primary reaches a standby session with cached keys"
cat >"$base/revoke_and_replay.sh" <<SH
psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pq.revoke_tenant('acme', 'it_app')" postgres >/dev/null
lsn=\$(psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pg_current_wal_lsn()" postgres)
for _ in \$(seq 1 150); do
  [ "\$(psql -X -At -q -h 127.0.0.1 -p $sport -U postgres -c "SELECT pg_last_wal_replay_lsn() >= '\$lsn'" postgres)" = t ] && break
  sleep 0.2
done
SH
out=$(qas "$sport" it_app <<SQL
SELECT 'cached', pq_decrypt_text(v, name) FROM t WHERE name = 'a';
\! bash $base/revoke_and_replay.sh
SELECT 'after', pq_decrypt_text(v, name) FROM t WHERE name = 'a';
SQL
)
check_contains "standby: decrypted before" "cached|keyed-a" "$out"
check_contains "standby: 42501 after the revocation replayed" "permission denied" "$out"
as_postgres "$PGBIN/pg_ctl" -D "$standby/data" -m fast -w stop >/dev/null
cluster_stop "$primary"
