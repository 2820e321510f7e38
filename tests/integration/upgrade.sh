# Each released version (0.1.0 to 0.10.0), filled with data, updated with
# ALTER EXTENSION: every old value still opens, rotation and the master key
# providers work, and the result is the same extension as a fresh install
# of this version (objects, columns, constraints, functions, views,
# triggers, privileges, dump settings).
# checks: 251
dir="$base/upgrade"
port=$port_upgrade
extdir="$("$PG_CONFIG" --sharedir)/extension"
cp "$root"/sql/archive/apg_pqcrypto--*.sql "$extdir/"   # as a server that ran them has them
current=$(sed -n "s/^version = \"\(.*\)\"/\1/p" "$root/Cargo.toml" | head -1)
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE DATABASE fresh" -c "CREATE ROLE it_app LOGIN" >/dev/null
for from in 0.1.0 0.2.0 0.3.0 0.4.0 0.5.0 0.6.0 0.7.0 0.8.0 0.9.0 0.10.0; do
  db=upgraded_${from//./_}
  q "$port" -c "CREATE DATABASE $db" >/dev/null
  q "$port" -d "$db" -c "CREATE EXTENSION apg_pqcrypto VERSION '$from'" -c "GRANT pq_user TO it_app" \
    -c "SELECT pq.create_tenant('acme'), pq.create_tenant('globex')" -c "SELECT pq.grant_tenant('acme', 'it_app')" \
    -c "CREATE TABLE app (name text PRIMARY KEY, keyed pq_envelope, sealed bytea, signature bytea)" \
    -c "INSERT INTO app SELECT 'k' || i, pq_encrypt('acme', 'value-' || i, 'k' || i),
                             pq_seal(pq.tenant_public_key('globex'), 'sealed-' || i, 'k' || i), pq_sign('acme', convert_to('k' || i, 'UTF8'))
          FROM generate_series(1, 100) i" -c "GRANT SELECT ON app TO it_app" >/dev/null
  if [ "$from" != 0.1.0 ]; then   # tracked columns exist from 0.2.0
    # Tracked as that version's library did it: before 0.10.0 its row in
    # pq.tracked_columns (this library's track_column takes 0.10.0's
    # arguments and adds 0.10.0's enforcement trigger); from 0.10.0 on,
    # track_column itself.
    track="INSERT INTO pq.tracked_columns (relid, column_name, tenant, key_column) VALUES ('pre', 'v', 'acme', 'id')"
    case "$from" in 0.[2-9].0) ;; *) track="SELECT pq.track_column('pre', 'v', 'acme')" ;; esac
    q "$port" -d "$db" -v ON_ERROR_STOP=1 -c "CREATE TABLE pre (id int PRIMARY KEY, v bytea)" \
      -c "INSERT INTO pre VALUES (1, pq_encrypt('acme', 'tracked before'))" -c "$track" >/dev/null
  fi
  check "$from installed" "$from" "$(q "$port" -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'apg_pqcrypto'")"
  out=$(q "$port" -d "$db" -c "ALTER EXTENSION apg_pqcrypto UPDATE")
  check "from $from: ALTER EXTENSION UPDATE succeeds" "" "$out"
  check "from $from: updated to $current" "$current" "$(q "$port" -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'apg_pqcrypto'")"
  check "from $from: the lifecycle events recorded before open the audit chain, which verifies" "t|t" \
    "$(q "$port" -d "$db" -c "SELECT (SELECT count(*) FROM pq.audit_log) = (SELECT count(*) FROM pq.key_events), (SELECT ok FROM pq.verify_audit_chain())")"
  check "from $from: old tenants are ML-KEM-768; an X-Wing tenant, a batch and a session work after the update" \
    "ml-kem-768|ml-kem-768|1216|x-wing|b|t" \
    "$(q "$port" -d "$db" -c "SELECT string_agg(kem, '|' ORDER BY name) FROM pq.tenants" \
         -c "SELECT length(pq.tenant_public_key(tenant)) FROM pq.create_tenant('hybrid', kem => 'x-wing')" \
         -c "SELECT kem FROM pq.tenant_keys WHERE tenant = 'hybrid'" \
         -c "SELECT pq_unseal_text((pq_seal_batch(pq.tenant_public_key('acme'), ARRAY['a', 'b']::bytea[]))[2])" \
         -c "SELECT pq_session_open_text(session_id, pq_seal(public_key, 't')) FROM pq.session_begin('hybrid', '1 minute')" \
         | tr '\n' '|' | sed 's/|$//')"
  check "from $from: an escrow split and a key backup export work after the update" "3|3|t" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FROM (SELECT pq.escrow_add_custodian('c' || i, public_key)
                                                       FROM generate_series(1, 3) i, LATERAL pq_generate_keypair(CASE WHEN i > 0 THEN 'ml-kem-768' END)) s" \
         -c "SELECT pq.configure_key_escrow('{\"threshold\": 2, \"trustees\": [\"c1\", \"c2\", \"c3\"]}')" \
         -c "SELECT count(*) FROM pq.escrow_split()" \
         -c "SELECT length(pq.export_key_backup(recipient_public_key => public_key)) > 10000 FROM pq_generate_keypair('ml-kem-768')" \
         | grep -v '^{' | tr '\n' '|' | sed 's/|$//')"
  check "from $from: old keyed values decrypt" "100" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FROM app WHERE pq_decrypt_text(keyed, name) = 'value-' || substr(name, 2)")"
  check "from $from: old sealed values open" "100" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FROM app WHERE pq_unseal_text(sealed, name) = 'sealed-' || substr(name, 2)")"
  check "from $from: old signatures verify" "100" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FROM app WHERE pq_verify('acme', convert_to(name, 'UTF8'), signature)")"
  check "from $from: grants survive" "value-7" "$(psql -X -At -q -h 127.0.0.1 -p "$port" -U it_app "$db" -c "SELECT pq_decrypt_text(keyed, name) FROM app WHERE name = 'k7'" 2>&1)"
  check "from $from: rotation works after the update" "2|t" \
    "$(q "$port" -d "$db" -c "SELECT new_version, old_key_archived FROM pq.rotate_tenant_key('acme', 'after update')")"
  check "from $from: new values use the new version, old ones still open" "2|100" \
    "$(q "$port" -d "$db" -c "SELECT pq_inspect(pq_encrypt('acme', 'x'))->>'key_version', (SELECT count(*) FROM app WHERE pq_decrypt_text(keyed, name) LIKE 'value-%')")"
  check "from $from: blind indexes work after the update: a term under the active version, both versions' terms live" "t|2|t" \
    "$(q "$port" -d "$db" -c "SELECT pq_blind_index('acme', 'x', 'c') = (SELECT term FROM pq_encrypt_indexed('acme', 'x', 'c')),
                                     cardinality(pq_blind_indexes('acme', 'x', 'c')),
                                     (pq_blind_indexes('acme', 'x', 'c'))[1] = pq_blind_index('acme', 'x', 'c')")"
  pre=$(case "$from" in 0.1.0) echo "0|-" ;; *) echo "1|22023" ;; esac)
  check "from $from: a column tracked before the update gets the enforcement trigger, which enforces" "$pre" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zz_pq_enforcement_%'" \
         -c "SET apg_pqcrypto.enforce_encryption = tracked" -v VERBOSITY=sqlstate \
         -c "$( [ "$from" = 0.1.0 ] && echo "SELECT '-'" || echo "INSERT INTO pre VALUES (2, 'plain')")" 2>&1 | tr '\n' '|' | sed 's/|$//; s/ERROR:  //')"
  check "from $from: a tenant shreds after the update: its envelopes then fail with PQ003" "1|PQ003" \
    "$(q "$port" -d "$db" -c "SELECT pq.create_tenant('gone')" -c "CREATE TABLE gone AS SELECT pq_encrypt('gone', 'x') AS v" \
         -c "SELECT jsonb_array_length(pq.shred_tenant('gone', confirm => 'gone')->'versions_destroyed')" -v VERBOSITY=sqlstate \
         -c "SELECT pq_decrypt_text(v) FROM gone" 2>&1 | grep -v '^(gone' | tr '\n' '|' | sed 's/|$//; s/ERROR:  //')"
  check "from $from: the upgraded lifecycle works: track, usage, rewrap" "100|2" \
    "$(q "$port" -d "$db" -c "SELECT pq.track_column('app', 'keyed', tenant => 'acme', aad_column => 'name') > 0" \
         -c "SELECT count(*), max((pq_inspect(pq.rewrap(keyed, convert_to(name, 'UTF8')))->>'key_version')::int) FROM app" | tail -1)"
  check "from $from: a pgcrypto column migrates after the update" "1|50|0" \
    "$(q "$port" -d "$db" -c "CREATE EXTENSION pgcrypto" -c "CREATE TABLE legacy (id int PRIMARY KEY, v bytea)" \
         -c "INSERT INTO legacy SELECT i, pgp_sym_encrypt('legacy-' || i, 'old secret') FROM generate_series(1, 50) i" \
         -c "SELECT pq.register_classical_key('globex', 'pgp_sym', 'old secret')" \
         -c "SELECT job, rows_migrated, rows_failed FROM pq.migrate_column_now('legacy', 'v', tenant => 'globex')" 2>&1 | tail -1)"
  check "from $from: an old tenant moves to ML-KEM-1024 + ML-DSA-87 by rotation; its old values still open and verify" "3|ml-kem-1024|ml-dsa-87|L|H|100|100" \
    "$(q "$port" -d "$db" -c "SELECT new_version FROM pq.rotate_tenant_key('acme', 'cnsa 2.0', kem => 'ml-kem-1024', signature => 'ml-dsa-87')" \
         -c "SELECT kem, signature FROM pq.tenant_keys WHERE tenant = 'acme' AND state = 'active'" \
         -c "SELECT convert_from(substr(pq_seal(pq.tenant_public_key('acme'), 'x'), 2, 1), 'SQL_ASCII'),
                    convert_from(substr(pq_sign('acme', 'x'), 2, 1), 'SQL_ASCII'),
                    (SELECT count(*) FROM app WHERE pq_unseal_text(sealed, name) = 'sealed-' || substr(name, 2)),
                    (SELECT count(*) FROM app WHERE pq_verify('acme', convert_to(name, 'UTF8'), signature))" | paste -sd'|')"
  check "from $from: the master key moves to another provider after the update" "file|t" \
    "$(q "$port" -d "$db" -c "SELECT provider, versions_rewrapped > 0 FROM pq.rotate_master_key('file')" | grep -v '^WARNING:  the key escrow is stale')"
  bound=$(case "$from" in 0.1.0|0.2.0) echo "1|1" ;; *) echo "0|2" ;; esac)   # 0.3.0 binds every wrap already
  check "from $from: old rows have no system identifier, new ones do" "$bound" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FILTER (WHERE system_identifier IS NULL), count(*) FILTER (WHERE system_identifier IS NOT NULL) FROM pq.master_keys")"
  check "from $from: everything still decrypts under the new master data key" "100" \
    "$(q "$port" -d "$db" -c "SELECT count(*) FROM app WHERE pq_decrypt_text(keyed, name) LIKE 'value-%'")"
  check "from $from: the ML-KEM-1024 + ML-DSA-87 version works under the new master data key" "x|t" \
    "$(q "$port" -d "$db" -c "SELECT pq_unseal_text(pq_seal(pq.tenant_public_key('acme'), 'x')), pq_verify('acme', 'm', pq_sign('acme', 'm'))")"
  check "from $from: classical keys move to the new master data key too" "legacy-3" \
    "$(q "$port" -d "$db" -c "SELECT pq.decrypt_any_text(pgp_sym_encrypt('legacy-3', 'old secret'), 'globex')")"
  check "from $from: the config store and the audit chain work after the update" "2|v2|t|t" \
    "$(q "$port" -d "$db" -c "SELECT pq.config_set('acme', 'k', 'v1')" -c "SELECT pq.config_set('acme', 'k', 'v2')" \
         -c "SELECT head_id > 0 FROM pq.audit_checkpoint()" \
         -c "SELECT (SELECT max(version) FROM pq.config_records), pq.config_get('acme', 'k'), (SELECT ok FROM pq.config_verify('acme')),
                    (SELECT ok FROM pq.verify_audit_chain())" | tail -1)"
done
q "$port" -d fresh -c "CREATE EXTENSION apg_pqcrypto" >/dev/null
shape="
SELECT 'object ' || pg_describe_object(classid, objid, objsubid) FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apg_pqcrypto')
UNION ALL
SELECT 'column ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull
       || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'pq'::regnamespace) AND attnum > 0 AND NOT attisdropped
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'pq'::regnamespace
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'pq'
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_function_arguments(p.oid) || ' -> ' || pg_get_function_result(p.oid)
       || ' ' || p.provolatile::text || p.proisstrict::text || p.proparallel::text || p.prosecdef::text || ' ' || coalesce(p.proacl::text, '')
       || ' config ' || coalesce(p.proconfig::text, '') || ' src ' || p.prosrc
  FROM pg_proc p WHERE p.oid IN (SELECT objid FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
                                   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apg_pqcrypto'))
UNION ALL
SELECT 'domain ' || format_type(c.contypid, NULL) || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
  FROM pg_constraint c WHERE c.contypid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_type'::regclass
                                             AND refclassid = 'pg_extension'::regclass AND deptype = 'e'
                                             AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apg_pqcrypto'))
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid) || ' ' || coalesce(c.reloptions::text, '')
  FROM pg_class c WHERE c.relnamespace = 'pq'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT 'acl ' || c.oid::regclass || ' ' || coalesce(c.relacl::text, '') FROM pg_class c WHERE c.relnamespace = 'pq'::regnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = 'pq'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtfoid::regprocedure || ' ' || coalesce(evttags::text, '')
       || ' ' || evtenabled::text FROM pg_event_trigger
UNION ALL
SELECT 'dump ' || unnest(extconfig)::regclass || ' ' FROM pg_extension WHERE extname = 'apg_pqcrypto'
ORDER BY 1"
q "$port" -d fresh -v ON_ERROR_STOP=1 -c "$shape" >"$base/fresh.shape"
# The comparison means something only if the query worked and found the
# extension: an error on both sides would compare equal.
check "the shape query reads the fresh extension (no error, its functions, tables and domain)" "0|t|t|t" \
  "$(grep -c ERROR "$base/fresh.shape")|$([ "$(grep -c '^function ' "$base/fresh.shape")" -gt 80 ] && echo t)|$(grep -q '^column pq.tenant_key_versions.kid ' "$base/fresh.shape" && echo t)|$(grep -q '^domain pq_envelope ' "$base/fresh.shape" && echo t)"
for from in 0.1.0 0.2.0 0.3.0 0.4.0 0.5.0 0.6.0 0.7.0 0.8.0 0.9.0 0.10.0; do
  db=upgraded_${from//./_}
  q "$port" -d "$db" -c "SELECT pq.untrack_column('app', 'keyed')" -c "SELECT pq.untrack_column('legacy', 'v')" >/dev/null
  [ "$from" = 0.1.0 ] || q "$port" -d "$db" -c "SELECT pq.untrack_column('pre', 'v')" >/dev/null
  q "$port" -d "$db" -v ON_ERROR_STOP=1 -c "$shape" >"$base/$db.shape"
  check "from $from: the updated extension is the fresh one ($(wc -l <"$base/fresh.shape") facts compared)" "" \
    "$(diff "$base/fresh.shape" "$base/$db.shape" | head -20)"
done
cluster_stop "$dir"
