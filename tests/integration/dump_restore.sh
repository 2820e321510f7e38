# pg_dump from one cluster, pg_restore into a second, fresh cluster that has
# the same key file: the same key ids, rows made before the dump decrypt,
# signatures verify, grants reach the new cluster's roles of the same name,
# classical keys still read pgcrypto values and migration states survive.
# checks: 14
src="$base/dump-src"
dst="$base/dump-dst"
port=$port_dump
cluster_start "$src" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" -c "SELECT pq.create_tenant('globex')" \
  -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" -c "SELECT pq.grant_tenant('acme', 'it_app')" \
  -c "CREATE TABLE app_config (name text PRIMARY KEY, value pq_envelope)" \
  -c "INSERT INTO app_config SELECT 'k' || i, pq_encrypt('acme', 'secret-value-' || i, 'k' || i) FROM generate_series(1, 200) i" \
  -c "INSERT INTO app_config VALUES ('sealed', pq_seal(pq.tenant_public_key('globex'), 'sealed-value', 'sealed'))" \
  -c "INSERT INTO app_config VALUES ('signature', pq_sign('globex', 'signed config'))" \
  -c "GRANT SELECT ON app_config TO it_app" >/dev/null
# A migration off pgcrypto under way: a registered classical key, a migrated
# column, and a table still in pgcrypto's format.
q "$port" -c "CREATE EXTENSION pgcrypto" -c "SELECT pq.register_classical_key('acme', 'pgp_sym', 'old passphrase')" \
  -c "CREATE TABLE legacy (id int PRIMARY KEY, v bytea)" -c "CREATE TABLE migrated (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO legacy SELECT i, pgp_sym_encrypt('legacy-' || i, 'old passphrase') FROM generate_series(1, 10) i" \
  -c "INSERT INTO migrated SELECT i, pgp_sym_encrypt('migrated-' || i, 'old passphrase') FROM generate_series(1, 10) i" \
  -c "SELECT rows_migrated FROM pq.migrate_column_now('migrated', 'v', tenant => 'acme')" >/dev/null 2>&1
# Signed configuration and the audit chain with a checkpoint.
q "$port" -c "SELECT pq.config_set('acme', 'db.password', 'before-dump', 'alice')" -c "SELECT pq.audit_checkpoint()" >/dev/null
audit_sql="SELECT count(*) || ':' || max(encode(row_hash, 'hex')) FROM pq.audit_log"
audit_before=$(q "$port" -c "$audit_sql")
keys_sql="SELECT string_agg(tenant || ':' || version || ':' || encode(kid, 'hex') || ':' || encode(signing_kid, 'hex'), ',' ORDER BY tenant, version) FROM pq.tenant_keys"
mdk_sql="SELECT string_agg(encode(id, 'hex') || ':' || provider_key_id, ',') FROM pq.master_keys"
keys_before=$(q "$port" -c "$keys_sql")
mdk_before=$(q "$port" -c "$mdk_sql")
pg_dumpall -h 127.0.0.1 -p "$port" -U postgres --globals-only >"$base/globals.sql" 2>"$base/dumpall.err"
pg_dump -h 127.0.0.1 -p "$port" -U postgres -Fc -f "$base/dump.pgc" postgres 2>"$base/dump.err"
check "pg_dump succeeds" "0" "$?"
cluster_stop "$src"

# A fresh cluster, given the source's key file (as a restore on new hardware would be).
cluster_start "$dst" "$port" "${quiet[@]}" || return 1
cp "$src/master.key" "$dst/master.key"
q "$port" -c "SELECT pg_reload_conf()" >/dev/null
# Another role first, so that it_app gets another OID here than in the source.
q "$port" -c "CREATE ROLE squatter" >/dev/null
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -f "$base/globals.sql" postgres >/dev/null 2>&1
pg_restore -h 127.0.0.1 -p "$port" -U postgres -d postgres "$base/dump.pgc" 2>"$base/restore.err"
check "pg_restore succeeds" "" "$(grep -v '^$' "$base/restore.err" | head -3)"
check "restored: the same tenant key ids" "$keys_before" "$(q "$port" -c "$keys_sql")"
check "restored: the same master data key" "$mdk_before" "$(q "$port" -c "$mdk_sql")"
check "restored: keyed values made before the dump decrypt" "200" \
  "$(q "$port" -c "SELECT count(*) FROM app_config WHERE name LIKE 'k%' AND pq_decrypt_text(value, name) = 'secret-value-' || substr(name, 2)")"
check "restored: the sealed value opens" "sealed-value" \
  "$(q "$port" -c "SELECT pq_unseal_text(value, name) FROM app_config WHERE name = 'sealed'")"
check "restored: the signature verifies" "t" \
  "$(q "$port" -c "SELECT pq_verify('globex', 'signed config', value) FROM app_config WHERE name = 'signature'")"
check "restored: the grant reaches the role of the same name" "secret-value-7" \
  "$(qas "$port" it_app -c "SELECT pq_decrypt_text(value, name) FROM app_config WHERE name = 'k7'")"
check "restored: new values encrypt" "new" "$(q "$port" -c "SELECT pq_decrypt_text(pq_encrypt('acme', 'new'))")"
check "restored: the classical key still reads the pgcrypto values" "10" \
  "$(q "$port" -c "SELECT count(*) FROM legacy WHERE pq.decrypt_any_text(v, 'acme') = 'legacy-' || id")"
check "restored: the migration's state and tracked column" "completed|1|10" \
  "$(q "$port" -c "SELECT status, tracked_columns, (SELECT count(*) FROM migrated WHERE pq_decrypt_text(v) = 'migrated-' || id) FROM pq.migration_status('acme')")"
check "restored: the same audit chain" "$audit_before" "$(q "$port" -c "$audit_sql")"
check "restored: the chain, its checkpoint and the config store verify; config values read; the audit key signs" "t|t|t|before-dump|t" \
  "$(q "$port" -c "SELECT (SELECT ok FROM pq.verify_audit_chain()), (SELECT last_checkpoint IS NOT NULL FROM pq.verify_audit_chain()),
                        (SELECT ok FROM pq.config_verify('acme')), pq.config_get('acme', 'db.password'),
                        (SELECT head_id > 0 FROM pq.audit_checkpoint())")"
check "restored: new changes extend the same chain" "t|t" \
  "$(q "$port" -c "SELECT pq.config_set('acme', 'db.password', 'after-restore') = 2" -c "SELECT ok FROM pq.config_verify('acme')" | tr '\n' '|' | sed 's/|$//')"
cluster_stop "$dst"
