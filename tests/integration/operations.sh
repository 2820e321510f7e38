# Operating it (docs/OPERATIONS.md) on a real cluster with the worker:
# - crypto-shredding: before the shred, the tenant's wrapped seeds, sealed
#   DEKs and pgcrypto key are found in pg_dump's output and in the data
#   directory (the search works); after pq.shred_tenant, VACUUM FULL of
#   the key tables and a CHECKPOINT, none of them is in a new dump or in
#   the data directory outside pg_wal, while another tenant's still are;
#   the shred record lists the escrow split and the backup bundle that
#   still hold keys; its envelopes fail with PQ003;
# - enforcement: the worker's re-encryption job writes back under
#   apg_pqcrypto.enforce_encryption = tracked (set for the database);
# - unusual access: a role that decrypts 50 times its baseline in a
#   minute gets a WARNING from the worker and a NOTIFY pq_security_event
#   that a listener without privileges receives, with only an event id;
# - key DDL: ALTER SYSTEM of a setting (the hook) and a DROP TABLE of a
#   tracked table (the event trigger) in a backend that never called the
#   extension are in the audit chain, which verifies.
# checks: 15
dir="$base/operations"
python=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}/bin/python
port=$port_operations
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE EXTENSION pgcrypto" \
  -c "SELECT pq.create_tenant('gone'), pq.create_tenant('kept')" \
  -c "SELECT pq.rotate_tenant_key('gone', 'two versions')" \
  -c "SELECT pq.register_classical_key('gone', 'pgp_sym', convert_to('legacy passphrase', 'UTF8'))" \
  -c "CREATE TABLE cfg (id int PRIMARY KEY, tenant text NOT NULL, v bytea, aad text NOT NULL)" \
  -c "INSERT INTO cfg SELECT i, CASE WHEN i % 2 = 0 THEN 'gone' ELSE 'kept' END,
                            pq_encrypt(CASE WHEN i % 2 = 0 THEN 'gone' ELSE 'kept' END, 'value ' || i, i::text), i::text
        FROM generate_series(1, 20) i" \
  -c "SELECT pq.track_column('cfg', 'v', tenant_column => 'tenant', aad_column => 'aad')" >/dev/null
# An escrow split and a backup bundle made before the shred still hold keys.
q "$port" -c "SELECT pq.escrow_add_custodian('c' || i, public_key) FROM generate_series(1, 3) i,
                     LATERAL pq_generate_keypair(CASE WHEN i > 0 THEN 'ml-kem-768' END)" \
  -c "SELECT pq.configure_key_escrow('{\"threshold\": 2, \"trustees\": [\"c1\", \"c2\", \"c3\"]}')" \
  -c "SELECT count(*) FROM pq.escrow_split()" \
  -c "SELECT length(pq.export_key_backup('gone', recipient_public_key => public_key)) FROM pq_generate_keypair('ml-kem-768')" >/dev/null 2>&1
secrets_gone=$(q "$port" -c "SELECT encode(wrapped_kem_seed, 'hex') || ' ' || encode(wrapped_dsa_seed, 'hex') || ' ' || encode(sealed_dek, 'hex')
                              FROM pq.tenant_key_versions WHERE tenant = 'gone'" \
                         -c "SELECT encode(wrapped_key, 'hex') FROM pq.classical_keys WHERE tenant = 'gone'" | tr '\n' ' ')
secret_kept=$(q "$port" -c "SELECT encode(wrapped_kem_seed, 'hex') FROM pq.tenant_key_versions WHERE tenant = 'kept'")
data_roots() { # every directory of the data directory but pg_wal
  find "$dir/data" -mindepth 1 -maxdepth 1 -type d ! -name pg_wal | tr '\n' ':' | sed 's/:$//'
}
q "$port" -c "CHECKPOINT" >/dev/null
mkdir -p "$base/ops_before" "$base/ops_after"
pg_dump -h 127.0.0.1 -p "$port" -U postgres postgres >"$base/ops_before/dump.sql"
# 7 needles: 2 versions x 3 secrets and the pgcrypto key.
check "before the shred: its 7 secrets are in a dump and in the data directory (the search works)" "7|7" \
  "$("$python" "$root/tests/find_bytes.py" "$base/ops_before" $secrets_gone | tr ' ' '\n' | grep -c .)|$("$python" "$root/tests/find_bytes.py" "$(data_roots)" $secrets_gone | tr ' ' '\n' | grep -c .)"
check "the shred record: 2 versions, the pgcrypto key, 10 tracked ciphertexts, the escrow split and the backup bundle" "2|1|10|1|1" \
  "$(q "$port" -c "SELECT jsonb_array_length(r->'versions_destroyed'), r->'classical_keys_deleted', r->'tracked_ciphertexts_unreadable',
                          jsonb_array_length(r->'escrow_splits_holding_master_key'), jsonb_array_length(r->'backup_bundles_holding_keys')
                     FROM pq.shred_tenant('gone', confirm => 'gone') r" | tr -d ' ')"
check "the tenant's envelopes fail with PQ003, the other tenant's open" "PQ003|10" \
  "$(sqlstate "$port" "SELECT pq_decrypt_text(v, aad) FROM cfg WHERE tenant = 'gone'")|$(q "$port" -c "SELECT count(pq_decrypt_text(v, aad)) FROM cfg WHERE tenant = 'kept'")"
q "$port" -c "VACUUM FULL pq.tenant_key_versions" -c "VACUUM FULL pq.classical_keys" -c "CHECKPOINT" >/dev/null
pg_dump -h 127.0.0.1 -p "$port" -U postgres postgres >"$base/ops_after/dump.sql"
check "after the shred, VACUUM FULL and a CHECKPOINT: none of its secrets is in a new dump" "none" \
  "$("$python" "$root/tests/find_bytes.py" "$base/ops_after" $secrets_gone)"
check "... nor in the data directory outside pg_wal" "none" "$("$python" "$root/tests/find_bytes.py" "$(data_roots)" $secrets_gone)"
check "... while the other tenant's wrapped seed is in both" "0:dump.sql|0:" \
  "$("$python" "$root/tests/find_bytes.py" "$base/ops_after" "$secret_kept")|$("$python" "$root/tests/find_bytes.py" "$(data_roots)" "$secret_kept" | cut -c1-2)"
check "the dump restores without an error, and the shredded tenant stays shredded there" "0|PQ003|10" \
  "$(q "$port" -c "CREATE DATABASE restored" >/dev/null; q "$port" -d restored -f "$base/ops_after/dump.sql" 2>&1 | grep -c ERROR)|$(
     psql -X -At -q -v VERBOSITY=verbose -h 127.0.0.1 -p "$port" -U postgres restored -c "SELECT pq_decrypt_text(v, aad) FROM cfg WHERE tenant = 'gone'" 2>&1 \
       | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p')|$(q "$port" -d restored -c "SELECT count(pq_decrypt_text(v, aad)) FROM cfg WHERE tenant = 'kept'")"

# Enforcement for the database; the worker's job writes back through it.
q "$port" -c "ALTER DATABASE postgres SET apg_pqcrypto.enforce_encryption = tracked" >/dev/null
check "with enforcement set for the database, a plaintext write is refused in a new session" "22023" \
  "$(sqlstate "$port" "UPDATE cfg SET v = 'plain' WHERE id = 1")"
job=$(q "$port" -c "SELECT pq.rotate_tenant_key('kept', 'enforced')" -c "SELECT pq.reencrypt('cfg', 'v', 3)" | tail -1)
for _ in $(seq 1 150); do
  [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")" = completed ] && break
  sleep 0.2
done
check "the worker's re-encryption job completes under enforcement: the other tenant's 10 rows on version 2" "completed|10" \
  "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")|$(q "$port" -c "SELECT count(*) FROM cfg WHERE tenant = 'kept' AND (pq_inspect(v)->>'key_version')::int = 2")"

# Unusual access: a baseline of 3 decryptions a minute for a week, then 150.
q "$port" -c "CREATE ROLE reader LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('kept', 'reader')" -c "GRANT SELECT ON cfg TO reader" \
  -c "ALTER ROLE reader SET apg_pqcrypto.audit_level = 'all'" -c "CREATE ROLE listener LOGIN" \
  -c "CREATE TABLE many AS SELECT i, pq_encrypt('kept', 'v' || i, i::text) AS v FROM generate_series(1, 150) i" -c "GRANT SELECT ON many TO reader" \
  -c "INSERT INTO pq.usage_counts (tenant, role_name, operation, minute, count)
      SELECT 'kept', 'reader', 'decrypt', date_trunc('minute', now()) - interval '90 minutes' - i * interval '5 minutes', 3
        FROM generate_series(0, 1900) i" >/dev/null
( psql -X -h 127.0.0.1 -p "$port" -U listener postgres -c "LISTEN pq_security_event" -c "SELECT pg_sleep(8)" -c "SELECT 1" \
    >"$base/operations_listen.out" 2>&1 ) &
listener=$!
sleep 1
qas "$port" reader -c "SELECT count(pq_decrypt_text(v, i::text)) FROM many" >/dev/null
wait "$listener"
check "the worker alerts once: a WARNING naming the role and the tenant, an event, a pq.security_events row" "1|1|1" \
  "$(grep -c 'role "reader" decrypted 150 values of tenant "kept"' "$dir/server.log")|$(q "$port" -c "SELECT count(*) FROM pq.key_events WHERE event = 'unusual_access_alert'")|$(q "$port" -c "SELECT count(*) FROM pq.security_events WHERE kind = 'unusual_access' AND role_name = 'reader' AND count = 150")"
event=$(q "$port" -c "SELECT id FROM pq.key_events WHERE event = 'unusual_access_alert'")
check_contains "a listener without privileges gets NOTIFY pq_security_event with only the event's id" \
  "\"pq_security_event\" with payload \"{\"event_id\":$event}\"" "$(cat "$base/operations_listen.out")"

# Key DDL from backends that never called the extension.
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "ALTER SYSTEM SET apg_pqcrypto.alert_rate_factor = 20" >/dev/null
psql -X -q -h 127.0.0.1 -p "$port" -U postgres postgres -c "DROP TABLE many" -c "DROP TABLE cfg" >/dev/null
check "ALTER SYSTEM of a setting is in the audit chain (the hook, preloaded)" "system|apg_pqcrypto.alert_rate_factor|20" \
  "$(q "$port" -c "SELECT details->>'scope', details->>'setting', details->>'value' FROM pq.key_events WHERE event = 'setting_changed' AND details->>'scope' = 'system'" | tr -d ' ')"
check "DROP TABLE of a tracked table untracks it and is in the audit chain (the event trigger)" "public.cfg|0" \
  "$(q "$port" -c "SELECT details->>'table' FROM pq.key_events WHERE event = 'tracked_column_dropped'")|$(q "$port" -c "SELECT count(*) FROM pq.tracked_columns")"
check "the audit chain verifies with the shred, the alert and the DDL records" "t|1" \
  "$(q "$port" -c "SELECT ok FROM pq.verify_audit_chain()")|$(q "$port" -c "SELECT count(*) FROM pq.audit_log WHERE event = 'tenant_shredded'" 2>/dev/null)"
check "no WARNING but the alert's, no PANIC or crash in the server log" "" \
  "$(grep -E 'WARNING|PANIC|terminated by signal' "$dir/server.log" | grep -v 'decrypted 150 values' | grep -v 'key escrow is stale' | head -5)"
cluster_stop "$dir"
