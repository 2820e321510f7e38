# Jobs on partitioned tables (hash and range) and inheritance trees, whose
# rows share ctids across relations: every row is claimed and written back
# by (relation, ctid), so each keeps its own value under its own tenant's
# key; a failure is remembered by (relation, key) in a tree whose key repeats
# across children; a migration runs while a partition is attached and
# another detached; the dual-mode trigger works on partitions.
# checks: 17
dir="$base/partitions"
port=$port_partitions
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 1" "apg_pqcrypto.migration_batch_delay = 150" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE EXTENSION pgcrypto" \
  -c "SELECT pq.create_tenant('acme'), pq.create_tenant('globex')" \
  -c "CREATE ROLE both_app LOGIN IN ROLE pq_user" \
  -c "SELECT pq.grant_tenant('acme', 'both_app'), pq.grant_tenant('globex', 'both_app')" \
  -c "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO both_app" >/dev/null
wait_job() { # wait_job JOB STATE
  for _ in $(seq 1 300); do
    [ "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $1")" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
# own_values TABLE: rows whose value opens, under the row's AAD, to the row's
# own secret, sealed under the row's own tenant at the active version.
own_values() { # own_values TABLE [EXCLUDED CONDITION]
  q "$port" -c "SELECT count(*) FROM $1 t JOIN pq.tenant_keys k ON k.tenant = t.tenant AND k.state = 'active'
                 WHERE NOT (${2:-false})
                   AND pq_decrypt_text(t.v, t.name) = 'secret-' || t.tenant || '-' || t.id
                   AND pq_inspect(t.v)->>'tenant' = t.tenant AND (pq_inspect(t.v)->>'key_version')::int = k.version"
}

echo "# hash partitions: 40 rows of two tenants in 4 partitions, ctids repeating across them"
q "$port" -c "CREATE TABLE hp (id int PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, v bytea) PARTITION BY HASH (id)" \
  -c "CREATE TABLE hp0 PARTITION OF hp FOR VALUES WITH (MODULUS 4, REMAINDER 0)" \
  -c "CREATE TABLE hp1 PARTITION OF hp FOR VALUES WITH (MODULUS 4, REMAINDER 1)" \
  -c "CREATE TABLE hp2 PARTITION OF hp FOR VALUES WITH (MODULUS 4, REMAINDER 2)" \
  -c "CREATE TABLE hp3 PARTITION OF hp FOR VALUES WITH (MODULUS 4, REMAINDER 3)" \
  -c "INSERT INTO hp SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'n' || i, NULL FROM generate_series(1, 40) i" \
  -c "UPDATE hp SET v = pq_encrypt(tenant, 'secret-' || tenant || '-' || id, name)" \
  -c "SELECT pq.track_column('hp', 'v', tenant_column => 'tenant', aad_column => 'name')" >/dev/null
check "the same ctids in several partitions" "t" "$(q "$port" -c "SELECT count(*) > count(DISTINCT ctid) FROM hp")"
q "$port" -c "SELECT pq.rotate_tenant_key('acme', 'partitions'), pq.rotate_tenant_key('globex', 'partitions')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('hp', 'v', batch_size => 7)")
wait_job "$job" completed && ok "hash: the job completed" || fail "hash: the job completed"
check "hash: 40 rows written, none failed" "40|0" "$(q "$port" -c "SELECT rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "hash: every row holds its own secret under its own tenant's active version" "40" "$(own_values hp)"
check "hash: a role of both tenants reads each row's own value" "40" \
  "$(qas "$port" both_app -c "SELECT count(*) FROM hp WHERE pq_decrypt_text(v, name) = 'secret-' || tenant || '-' || id")"

echo "# range partitions with a default partition"
q "$port" -c "CREATE TABLE rp (id int PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, v bytea) PARTITION BY RANGE (id)" \
  -c "CREATE TABLE rp_a PARTITION OF rp FOR VALUES FROM (1) TO (11)" \
  -c "CREATE TABLE rp_b PARTITION OF rp FOR VALUES FROM (11) TO (21)" \
  -c "CREATE TABLE rp_rest PARTITION OF rp DEFAULT" \
  -c "INSERT INTO rp SELECT i, CASE WHEN i % 3 = 0 THEN 'acme' ELSE 'globex' END, 'n' || i, NULL FROM generate_series(1, 30) i" \
  -c "UPDATE rp SET v = pq_encrypt(tenant, 'secret-' || tenant || '-' || id, name)" \
  -c "SELECT pq.track_column('rp', 'v', tenant_column => 'tenant', aad_column => 'name')" \
  -c "SELECT pq.rotate_tenant_key('acme', 'range'), pq.rotate_tenant_key('globex', 'range')" >/dev/null
job=$(q "$port" -c "SELECT pq.reencrypt('rp', 'v', batch_size => 4)")
wait_job "$job" completed && ok "range: the job completed" || fail "range: the job completed"
check "range: every row holds its own secret under its own tenant's active version" "30" "$(own_values rp)"

echo "# inheritance: a parent and two children, one key repeated across the children, one row damaged"
q "$port" -c "CREATE TABLE ip (id int PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, v bytea)" \
  -c "CREATE TABLE ic1 () INHERITS (ip)" -c "CREATE TABLE ic2 () INHERITS (ip)" \
  -c "INSERT INTO ip SELECT i, 'acme', 'n' || i, NULL FROM generate_series(1, 10) i" \
  -c "INSERT INTO ic1 SELECT i, 'globex', 'n' || i, NULL FROM generate_series(1, 10) i" \
  -c "INSERT INTO ic2 SELECT i, 'acme', 'n' || i, NULL FROM generate_series(1, 10) i" \
  -c "UPDATE ip SET v = pq_encrypt(tenant, 'secret-' || tenant || '-' || id, name)" \
  -c "UPDATE ic1 SET v = pq_encrypt(tenant, 'tampered', 'other name') WHERE id = 5" \
  -c "SELECT pq.track_column('ip', 'v', tenant_column => 'tenant', aad_column => 'name')" \
  -c "SELECT pq.rotate_tenant_key('acme', 'inheritance'), pq.rotate_tenant_key('globex', 'inheritance')" >/dev/null
# Batches of 2 over keys that appear three times: the cursor splits keys,
# so later passes pick up the rest, including the damaged row's twins.
job=$(q "$port" -c "SELECT pq.reencrypt('ip', 'v', batch_size => 2)")
wait_job "$job" completed && ok "inheritance: the job completed" || fail "inheritance: the job completed"
check "inheritance: 29 rows written, the damaged one failed" "29|1" "$(q "$port" -c "SELECT rows_done, rows_failed FROM pq.jobs WHERE id = $job")"
check "inheritance: the failure names its relation and key" "ic1|5" \
  "$(q "$port" -c "SELECT relid::regclass || '|' || row_key FROM pq.job_failures WHERE job_id = $job")"
check "inheritance: every other row holds its own secret under its own tenant's active version (key 5 of the other child too)" "29" \
  "$(own_values ip "t.tableoid = 'ic1'::regclass AND t.id = 5")"

echo "# a migration while a partition is attached and another detached"
q "$port" -c "CREATE TABLE mp (id int PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, v bytea) PARTITION BY RANGE (id)" \
  -c "CREATE TABLE mp_1 PARTITION OF mp FOR VALUES FROM (1) TO (101)" \
  -c "CREATE TABLE mp_2 PARTITION OF mp FOR VALUES FROM (101) TO (201)" \
  -c "CREATE TABLE mp_3 PARTITION OF mp FOR VALUES FROM (201) TO (301)" \
  -c "INSERT INTO mp SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'n' || i,
                            pgp_sym_encrypt('secret-' || CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END || '-' || i, 'old')
                       FROM generate_series(1, 300) i" \
  -c "CREATE TABLE mp_4 (LIKE mp)" \
  -c "INSERT INTO mp_4 SELECT i, 'acme', 'n' || i, pgp_sym_encrypt('secret-acme-' || i, 'old') FROM generate_series(301, 340) i" \
  -c "SELECT pq.register_classical_key('acme', 'pgp_sym', 'old'), pq.register_classical_key('globex', 'pgp_sym', 'old')" >/dev/null
job=$(q "$port" -c "SELECT pq.migrate_column('mp', 'v', tenant_column => 'tenant', aad_column => 'name', batch_size => 10)")
for _ in $(seq 1 100); do [ "$(q "$port" -c "SELECT rows_done >= 30 FROM pq.jobs WHERE id = $job")" = t ] && break; sleep 0.1; done
q "$port" -c "ALTER TABLE mp ATTACH PARTITION mp_4 FOR VALUES FROM (301) TO (401)" -c "ALTER TABLE mp DETACH PARTITION mp_3" >/dev/null \
  && ok "attached and detached while the job ran" || fail "attach and detach while the job ran"
check "the job was still running" "running" "$(q "$port" -c "SELECT state FROM pq.jobs WHERE id = $job")"
wait_job "$job" completed && ok "migration: the job completed" || fail "migration: the job completed"
check "migration: every row of the table as it is now holds its own secret under its tenant's key" "240" "$(own_values mp)"
check "migration: every row of the detached partition still holds its own secret, migrated or not" "100" \
  "$(q "$port" -c "SELECT count(*) FROM mp_3 WHERE CASE WHEN pq.classify(v) = 'pq_keyed' THEN pq_decrypt_text(v, name)
                                                        ELSE pgp_sym_decrypt(v, 'old') END = 'secret-' || tenant || '-' || id")"

echo "# the dual-mode trigger of a partitioned table, on its partitions"
q "$port" -c "CREATE TRIGGER dual BEFORE INSERT OR UPDATE OF v ON mp FOR EACH ROW EXECUTE FUNCTION pq.migration_trigger('v')" >/dev/null
check "a classical value written into a partition is stored as an envelope" "pq_keyed|late value" \
  "$(q "$port" -c "UPDATE mp SET v = pgp_sym_encrypt('late value', 'old') WHERE id = 56" \
             -c "SELECT pq.classify(v) || '|' || pq_decrypt_text(v, name) FROM mp WHERE id = 56")"
cluster_stop "$dir"
