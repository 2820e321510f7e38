# Scale-out on Citus (docs/SCALE-OUT.md): a coordinator and two workers on
# loopback ports, pq.citus_setup() over data and grants made before it, a
# 100,000-row table distributed by tenant over 100 tenants, decryption in
# the workers' shard tasks, access and revocation through the connections
# Citus keeps open to the workers, rotation, the UPDATE rule, a job on a
# coordinator table, master key rotation and status per node, a third
# worker added later with a shard moved to it, kill -9 of a worker backend
# mid-UPDATE, re-encryption jobs per shard on the nodes (a shard moved
# mid-job, one split mid-job, kill -9 of a node's background worker
# mid-job, pause and resume, a migration), an upgrade script replayed on the workers, scheduled
# rotation by the coordinator alone, and the audit chains of every node.
# Runs when Citus is installed; otherwise the topic says SKIPPED and
# counts nothing.
# checks: 73
citus_lib=$("$PGBIN/pg_config" --pkglibdir 2>/dev/null)
citus_share=$("$PGBIN/pg_config" --sharedir 2>/dev/null)
if [ ! -f "$citus_lib/citus.so" ] || [ ! -f "$citus_share/extension/citus.control" ]; then
  it_skipped="Citus not installed"
  return 0
fi

cdir="$base"   # nodes in $base/citus_nN: the harness stops them on any exit
cport=$port_citus
citus_conf=("shared_preload_libraries = 'citus,apg_pqcrypto'" "max_prepared_transactions = 20" "wal_level = logical"
            "citus.shard_count = 8" "apg_pqcrypto.worker_naptime = 1" "${quiet[@]}")
citus_node() { # citus_node N: starts node N (0 = coordinator) with the coordinator's master key
  local n=$1
  cluster_start "$cdir/citus_n$n" $((cport + n)) "${citus_conf[@]}" || return 1
  [ "$n" = 0 ] || cp "$cdir/citus_n0/master.key" "$cdir/citus_n$n/master.key"
  q $((cport + n)) -c "CREATE EXTENSION citus" >/dev/null
}
for n in 0 1 2; do citus_node $n || return 1; done
c=$cport
# Worker 1 spends OIDs first: the roles created next get other OIDs there
# than on the coordinator, as they would on a cluster with a history.
on_worker() { local n=$1; shift; q $((cport + n)) "$@"; }
on_worker 1 -c "CREATE TABLE citus_oid_shift_a (i int); CREATE TABLE citus_oid_shift_b (i int)" >/dev/null
q $c -c "SELECT citus_set_coordinator_host('127.0.0.1', $c)" \
  -c "SELECT citus_add_node('127.0.0.1', $((cport + 1)))" -c "SELECT citus_add_node('127.0.0.1', $((cport + 2)))" \
  -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE ROLE it_citus_app LOGIN IN ROLE pq_user" \
  -c "CREATE ROLE it_citus_admin LOGIN IN ROLE pq_admin" >/dev/null

echo "# setup"
# A tenant and a value made before the setup: they must survive it.
q $c -c "SELECT pq.create_tenant('early')" -c "SELECT pq.grant_tenant('early', 'it_citus_app')" \
  -c "CREATE TABLE early_cfg (tenant text NOT NULL, name text NOT NULL, value bytea, PRIMARY KEY (tenant, name))" \
  -c "GRANT SELECT ON early_cfg TO it_citus_app" \
  -c "INSERT INTO early_cfg VALUES ('early', 'a', pq_encrypt('early', 'made before the setup', 'a'))" >/dev/null
out=$(qas $c it_citus_admin -v VERBOSITY=verbose -c "SELECT * FROM pq.citus_setup()")
check_contains "pq.citus_setup() is for superusers (42501)" "ERROR:  42501" "$out"
out=$(q $c -c "SELECT placement, count(*) FROM pq.citus_setup() GROUP BY 1 ORDER BY 1")
check_contains "pq.citus_setup() makes 12 reference tables" "reference|12" "$out"
out=$(q $c -c "SELECT count(*) FROM pq.citus_setup() WHERE placement = 'reference'" \
        -c "SELECT count(*) FROM pq.key_events WHERE event = 'citus_setup'")
check "run again, it changes nothing (one setup event)" "12
1" "$out"
out=$(q $c -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'pq.%' AND partmethod = 'n'")
check "Citus's metadata lists the 12 tables" "12" "$out"
out=$(q $c -c "SELECT create_distributed_table('early_cfg', 'tenant')" -c "SELECT pq_decrypt_text(value, name) FROM early_cfg" 2>&1 | tail -1)
check "a value encrypted before the setup decrypts on a worker after it" "made before the setup" "$out"
out=$(qas $c it_citus_app -c "SELECT pq_decrypt_text(value, name) FROM early_cfg")
check "a grant made before the setup holds on the workers (a role with another OID there)" "made before the setup" "$out"
out=$(on_worker 1 -c "SELECT g.role::oid = r.oid AND r.oid <> $(q $c -c "SELECT 'it_citus_app'::regrole::oid")
                        FROM pq.tenant_grants g JOIN pg_roles r ON r.rolname = g.role_name WHERE g.tenant = 'early'")
check "... stored there under that node's own OID of the role" "t" "$out"
q $c -c "CREATE TABLE ref_cfg (id int PRIMARY KEY, tenant text NOT NULL, value bytea)" -c "SELECT create_reference_table('ref_cfg')" \
  -c "CREATE TABLE keyless_cfg (tenant text NOT NULL, value bytea)" -c "SELECT create_distributed_table('keyless_cfg', 'tenant')" >/dev/null
out=$(q $c -v VERBOSITY=verbose -c "SELECT pq.track_column('ref_cfg', 'value', tenant_column => 'tenant')" 2>&1)
check_contains "pq.track_column refuses a reference table with a hint (0A000)" "ERROR:  0A000: only hash-distributed Citus tables can be tracked" "$out"
out=$(q $c -v VERBOSITY=verbose -c "SELECT pq.track_column('keyless_cfg', 'value', tenant_column => 'tenant')" 2>&1)
check_contains "... and a distributed table without a unique key that includes the distribution column (42P16)" "ERROR:  42P16: the table has no primary key or unique index on NOT NULL columns that includes its distribution column \"tenant\"" "$out"
out=$(q $c -v VERBOSITY=verbose -c "SET citus.shard_replication_factor = 2" \
        -c "CREATE TABLE replicated_cfg (tenant text NOT NULL, id int NOT NULL, value bytea, PRIMARY KEY (tenant, id))" \
        -c "SELECT create_distributed_table('replicated_cfg', 'tenant', colocate_with => 'none')" \
        -c "SELECT pq.track_column('replicated_cfg', 'value', tenant_column => 'tenant')" 2>&1)
check_contains "... and a table whose shards have several placements (0A000): a job writes one" "ERROR:  0A000: the shards of this Citus table have several placements" "$out"
out=$(on_worker 1 -v VERBOSITY=verbose -c "SELECT pq.track_column('early_cfg', 'value', tenant_column => 'tenant')" 2>&1)
check_contains "... and tracking on a worker node (55000): the coordinator runs the jobs" "ERROR:  55000: track a Citus table on the coordinator" "$out"

echo "# 100 tenants, 100,000 rows distributed by tenant"
q $c -c "SELECT count(*) FROM generate_series(1, 100) i, pq.create_tenant('t' || i)" \
  -c "SELECT pq.grant_tenant('t1', 'it_citus_app'), pq.grant_tenant('t2', 'it_citus_app')" >/dev/null
for n in 1 2; do
  out=$(on_worker $n -c "SELECT count(*) FROM pq.tenants" -c "SELECT count(*) FROM pq.tenant_grants")
  check "worker $n holds the 101 tenants and the 3 grants" "101
3" "$out"
done
q $c -c "CREATE TABLE cfg (tenant text NOT NULL, name text NOT NULL, value bytea, PRIMARY KEY (tenant, name))" \
  -c "SELECT create_distributed_table('cfg', 'tenant')" -c "GRANT SELECT, INSERT, UPDATE ON cfg TO it_citus_app" \
  -c "INSERT INTO cfg SELECT 't' || (i % 100 + 1), 'k' || i, pq_encrypt('t' || (i % 100 + 1), 'v' || i, 'k' || i)
        FROM generate_series(1, 100000) i" >/dev/null
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg")
check "every row of every tenant decrypts, on the workers" "100000" "$out"
plan=$(q $c -c "SET citus.explain_all_tasks = on" -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT count(pq_decrypt_text(value, name)) FROM cfg")
check_contains "... in shard tasks on worker 1" "port=$((cport + 1))" "$plan"
check_contains "... and on worker 2" "port=$((cport + 2))" "$plan"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg WHERE tenant = 't7'")
check "a router query for one tenant" "1000" "$out"
out=$(cat "$cdir"/citus_n*/server.log | grep -c "cannot execute a distributed query")
check "no key lookup ran a distributed query inside a shard task" "0" "$out"

echo "# access, and revocation through the connections Citus keeps open"
out=$(qas $c it_citus_app -c "SELECT count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant IN ('t1', 't2')")
check "a granted role decrypts its tenants on the workers" "2000" "$out"
out=$(qas $c it_citus_app -v VERBOSITY=verbose -c "SELECT count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant = 't3'")
check_contains "... and not another tenant's (42501)" "42501" "$out"
for iso in "READ COMMITTED" "REPEATABLE READ"; do
  q $c -c "SELECT pq.grant_tenant('t2', 'it_citus_app')" >/dev/null
  out=$(qas $c it_citus_app -v VERBOSITY=verbose <<SQL
SELECT 'cached', count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant IN ('t1', 't2');
BEGIN ISOLATION LEVEL $iso;
SELECT count(*) FROM cfg WHERE tenant = 't2';
\! psql -X -At -q -h 127.0.0.1 -p $c -U postgres -c "SELECT pq.revoke_tenant('t2', 'it_citus_app')" postgres >/dev/null
COMMIT;
SELECT 'next', count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant = 't2';
SELECT 'later', count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant = 't2';
SELECT 'other', count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant = 't1';
SQL
)
  check_contains "$iso: the grant worked, keys cached in the worker backends" "cached|2000" "$out"
  if ! echo "$out" | grep -q "next|" && ! echo "$out" | grep -q "later|" && [ "$(echo "$out" | grep -c 42501)" -ge 2 ]; then
    ok "$iso: revoked on the coordinator, refused on the workers from the next transaction"
  else
    fail "$iso: revoked on the coordinator, refused on the workers from the next transaction: $out"
  fi
done

echo "# a role dropped and created again under its name gets none of the old grants"
q $c -c "CREATE ROLE it_citus_gone LOGIN IN ROLE pq_user" -c "GRANT SELECT ON cfg TO it_citus_gone" \
  -c "SELECT pq.grant_tenant('t3', 'it_citus_gone')" >/dev/null
out=$(qas $c it_citus_gone -c "SELECT count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant = 't3'")
check "the granted role decrypts on the workers" "1000" "$out"
q $c -c "DROP OWNED BY it_citus_gone" -c "DROP ROLE it_citus_gone" -c "CREATE ROLE it_citus_gone LOGIN IN ROLE pq_user" \
  -c "GRANT SELECT ON cfg TO it_citus_gone" >/dev/null
out=$(qas $c it_citus_gone -v VERBOSITY=verbose -c "SELECT count(pq_decrypt_text(value, name)) FROM cfg WHERE tenant = 't3'")
check_contains "a new role under the dropped one's name is refused on the workers (42501: each node's OID differs)" "42501: permission denied for the key" "$out"

echo "# rotation, the UPDATE rule, disabling a version"
q $c -c "SELECT pq.rotate_tenant_key('t1', 'citus test')" >/dev/null
out=$(q $c -c "UPDATE cfg SET value = pq_encrypt(tenant, 'x', name) WHERE tenant = 't1' AND name = 'k100'" 2>&1)
check_contains "Citus refuses a VOLATILE function in UPDATE (why the rule exists)" "must not be VOLATILE" "$out"
q $c -c "WITH n AS MATERIALIZED (
           SELECT tenant, name, pq_encrypt(tenant, pq_decrypt(value, name::bytea), name::bytea) AS value
             FROM cfg WHERE tenant = 't1' AND name <> 'k100')
         UPDATE cfg SET value = n.value FROM n WHERE cfg.tenant = n.tenant AND cfg.name = n.name" >/dev/null
out=$(q $c -c "SELECT count(*) FILTER (WHERE substr(value, 3, 16) = k.kid), count(*)
                 FROM cfg, pq.tenant_keys k WHERE cfg.tenant = 't1' AND k.tenant = 't1' AND k.state = 'active'")
check "the UPDATE rule: rows re-encrypted on the workers under the rotated version (one left)" "999|1000" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg WHERE tenant = 't1'")
check "... and every row of the tenant decrypts" "1000" "$out"
out=$(q $c -v VERBOSITY=verbose <<SQL 2>&1
SELECT 'cached', pq_decrypt_text(value, name) FROM cfg WHERE tenant = 't1' AND name = 'k100';
SELECT pq.disable_key_version('t1', 1, force => true);
SELECT 'after', pq_decrypt_text(value, name) FROM cfg WHERE tenant = 't1' AND name = 'k100';
SQL
)
check_contains "a version disabled on the coordinator refuses on the workers (PQ003)" "ERROR:  PQ003" "$out"
check_absent "... no plaintext of the disabled version" "after|" "$out"

echo "# a re-encryption job on a table of the coordinator (tracked columns and jobs stay there)"
q $c -c "CREATE TABLE local_cfg (id int PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, value bytea)" \
  -c "INSERT INTO local_cfg SELECT i, 't4', 'n' || i, pq_encrypt('t4', 'local ' || i, 'n' || i) FROM generate_series(1, 2000) i" \
  -c "SELECT pq.track_column('local_cfg', 'value', tenant_column => 'tenant', aad_column => 'name')" \
  -c "SELECT pq.rotate_tenant_key('t4', 'job test')" >/dev/null
job=$(q $c -c "SELECT pq.reencrypt('local_cfg', 'value', batch_size => 500)")
wait_for $c "SELECT state = 'completed' FROM pq.jobs WHERE id = 0$job" >/dev/null
out=$(q $c -c "SELECT j.state, count(*) FILTER (WHERE substr(l.value, 3, 16) = k.kid AND pq_decrypt_text(l.value, l.name) = 'local ' || l.id)
                 FROM pq.jobs j, local_cfg l, pq.tenant_keys k
                WHERE j.id = 0$job AND k.tenant = 't4' AND k.state = 'active' GROUP BY j.state")
check "the coordinator's worker runs the job: every row under the new version" "completed|2000" "$out"

echo "# sealing, signatures and the configuration store"
out=$(q $c -c "CREATE TABLE sealed (tenant text NOT NULL, id int NOT NULL, env bytea, sig bytea, PRIMARY KEY (tenant, id))" \
        -c "SELECT create_distributed_table('sealed', 'tenant', colocate_with => 'cfg')" \
        -c "INSERT INTO sealed SELECT 't' || i, i, pq_seal(pq.tenant_public_key('t' || i), 'sealed ' || i), pq_sign('t' || i, ('msg ' || i)::bytea)
              FROM generate_series(2, 100) i" \
        -c "SELECT count(*) FILTER (WHERE pq_unseal_text(env) = 'sealed ' || id AND pq_verify(tenant, ('msg ' || id)::bytea, sig)) FROM sealed" | tail -1)
check "pq_seal on the coordinator, pq_unseal and pq_verify in the workers' shard tasks" "99" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq.decrypt_any_text(value, tenant, name) = 'v' || substr(name, 2)) FROM cfg WHERE tenant = 't7'")
check "pq.decrypt_any in the workers' shard tasks" "1000" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_verify(tenant, name::bytea, pq_sign(tenant, name::bytea))) FROM cfg WHERE tenant IN ('t7', 't8')")
check "pq_sign and pq_verify together in the workers' shard tasks" "2000" "$out"
out=$(q $c -c "SELECT pq.config_set('t5', 'db.password', 's3cret', 'citus')" -c "SELECT pq.config_get('t5', 'db.password')" | tail -1)
check "pq.config_set and pq.config_get on the coordinator" "s3cret" "$out"

echo "# master keys on every node; a node added later"
out=$(q $c -c "SELECT string_agg(result, ',') FROM run_command_on_workers('SELECT bool_and(answered) FROM pq.master_key_status()')")
check "each worker unwraps the master data key with its own provider configuration" "t,t" "$out"
q $c -c "SELECT count(*) FROM pq.rotate_master_key()" >/dev/null
out=$(q $c -c "SELECT string_agg(n, ',' ORDER BY g) FROM (
                 SELECT node_group AS g, count(*) FILTER (WHERE state = 'active' AND answered) || '/' || count(*) AS n
                   FROM pq.cluster_master_key_status() GROUP BY node_group) x")
check "pq.rotate_master_key() on the coordinator: every node answers for the new key (status per node)" "1/2,1/2,1/2" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg WHERE name <> 'k100'")
check "... and the workers decrypt every row under the rewrapped versions" "99999" "$out"
citus_node 3 || return 1
q $c -c "SELECT citus_add_node('127.0.0.1', $((cport + 3)))" -c "SELECT replicate_reference_tables()" \
  -c "SELECT citus_move_shard_placement(s.shardid, '127.0.0.1', p.nodeport, '127.0.0.1', $((cport + 3)), shard_transfer_mode => 'block_writes')
        FROM pg_dist_shard s JOIN pg_dist_placement pl USING (shardid) JOIN pg_dist_node p USING (groupid)
       WHERE s.logicalrelid = 'cfg'::regclass ORDER BY s.shardid LIMIT 1" >/dev/null 2>&1
out=$(on_worker 3 -c "SELECT count(*) FROM pq.tenant_key_versions")
check "the added worker holds every key version" "103" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg WHERE name <> 'k100'")
plan=$(q $c -c "SET citus.explain_all_tasks = on" -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT count(pq_decrypt_text(value, name)) FROM cfg WHERE name <> 'k100'")
check "after a shard moved to it, every row decrypts" "99999" "$out"
check_contains "... some of them on the added worker" "port=$((cport + 3))" "$plan"
echo "# kill -9 of a worker's backend in the middle of a re-encrypting UPDATE"
q $c -c "SELECT pq.rotate_tenant_key('t2', 'kill test')" >/dev/null
new_kid="(SELECT kid FROM pq.tenant_keys WHERE tenant = 't2' AND state = 'active')"
q $c -c "WITH n AS MATERIALIZED (
           SELECT tenant, name, pq_encrypt(tenant, pq_decrypt(value, name::bytea), name::bytea) AS value
             FROM cfg WHERE name <> 'k100')
         UPDATE cfg SET value = n.value FROM n WHERE cfg.tenant = n.tenant AND cfg.name = n.name" >"$cdir/killed_update.out" 2>&1 &
update_pid=$!
victims=""
for _ in $(seq 1 100); do
  victims=$(on_worker 1 -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active'
                             AND query LIKE '%pq_decrypt%' AND pid <> pg_backend_pid()")
  [ -n "$victims" ] && break
  sleep 0.05
done
[ -n "$victims" ] && kill -9 $victims
wait $update_pid
wait_for $((cport + 1)) "SELECT true" >/dev/null
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg WHERE name <> 'k100'")
check "after the kill every row still decrypts (nothing lost, nothing half-written)" "99999" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE substr(value, 3, 16) = $new_kid) IN (0, 1000) FROM cfg WHERE tenant = 't2'")
echo "# the UPDATE $(grep -q UPDATE "$cdir/killed_update.out" && echo committed || echo "was rolled back: $(head -1 "$cdir/killed_update.out")")"
check "... and the tenant's rows are all under one version: the distributed UPDATE committed whole or not at all" "t" "$out"

echo "# re-encryption jobs per shard: each node's worker re-encrypts the shards it holds"
# wait_long PORT SQL: wait_for, for up to 3 minutes.
wait_long() { for _ in 1 2 3 4 5 6; do wait_for "$1" "$2" && return 0; done; return 1; }
active="pq.tenant_keys k WHERE k.tenant = cfg.tenant AND k.state = 'active'"
pending_sql="SELECT count(*) FROM cfg WHERE value IS NOT NULL AND NOT EXISTS (SELECT 1 FROM $active AND substr(cfg.value, 3, 16) = k.kid)"
under_active_sql="SELECT count(*) FILTER (WHERE substr(value, 3, 16) = k.kid AND pq_decrypt_text(value, name) = 'v' || substr(name, 2))
                    FROM cfg JOIN pq.tenant_keys k ON k.tenant = cfg.tenant AND k.state = 'active'"
out=$(q $c -c "SELECT pq.track_column('cfg', 'value', tenant_column => 'tenant', aad_column => 'name')" \
        -c "SELECT key_column, key_columns FROM pq.tracked_columns WHERE relid = 'cfg'::regclass")
check "a distributed table is tracked by a key that includes its distribution column" "tenant|{tenant,name}" "$(echo "$out" | tail -1)"
q $c -c "SELECT count(*) FROM generate_series(1, 100) i, pq.rotate_tenant_key('t' || i, 'shard jobs')" >/dev/null
pending=$(q $c -c "$pending_sql")
job=$(q $c -c "SELECT pq.reencrypt('cfg', 'value', batch_size => 50)")
out=$(q $c -c "SELECT count(*), count(DISTINCT shardid) FROM pq.job_shards WHERE job_id = 0$job" \
        -c "SELECT count(*) FROM pq.job_shards s WHERE job_id = 0$job AND shardid IN (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'cfg'::regclass)")
check "pq.reencrypt queues one row per shard of the table in pq.job_shards" "8|8
8" "$out"
# A shard that a worker (1 or 2) has started, with most of it left,
# moves to worker 3 by logical replication. Once the move has made its
# replication slot (which waits for every transaction with an xid), a
# session on the shard's node holds the shard's last row (FOR UPDATE)
# until the move is done: batches skip that row, so the shard cannot
# finish where it is, and its work is still there to hand over.
g3=$(q $c -c "SELECT groupid FROM pg_dist_node WHERE nodeport = $((cport + 3))")
half_done() { # half_done JOB: SQL for a shard of JOB that a worker (1 or 2) started, with most of it left
  echo "SELECT shardid FROM pq.job_shards WHERE job_id = 0$1 AND state = 'running' AND node_group <> $g3
          AND rows_done > 0 AND rows_done < rows_total / 3 ORDER BY rows_total - rows_done DESC LIMIT 1"
}
# hold_last_row SHARD PORT UNTIL: in the background, on the node at PORT,
# locks the last row of shard SHARD of cfg until the SQL condition UNTIL
# holds there (two minutes at most); waits until the lock is held.
hold_last_row() {
  psql -X -q -h 127.0.0.1 -p "$2" -U postgres postgres >/dev/null 2>&1 <<SQL &
SET statement_timeout = '120s';
BEGIN;
SELECT 1 FROM cfg_$1 ORDER BY tenant DESC, name DESC LIMIT 1 FOR UPDATE;
DO \$\$ BEGIN WHILE NOT ($3) LOOP PERFORM pg_sleep(0.1); END LOOP; END \$\$;
COMMIT;
SQL
  holder=$!
  wait_for "$2" "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'cfg_$1'::regclass AND mode = 'RowShareLock' AND granted)" \
    || echo "# the row lock on shard $1 was not seen"
}
moving=$(half_done "$job")
wait_long $c "SELECT EXISTS ($moving)" || fail "no shard was half done on worker 1 or 2"
shard=$(q $c -c "$moving")
before=$(q $c -c "SELECT node_group || '|' || rows_done FROM pq.job_shards WHERE job_id = 0$job AND shardid = 0$shard")
from_port=$(q $c -c "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = 0$shard")
q $c -c "SELECT citus_move_shard_placement(0$shard, '127.0.0.1', 0$from_port, '127.0.0.1', $((cport + 3)), shard_transfer_mode => 'force_logical')" \
  >"$cdir/move.out" 2>&1 &
mover=$!
wait_for "$from_port" "SELECT EXISTS (SELECT 1 FROM pg_replication_slots)" || echo "# no replication slot seen"
hold_last_row "$shard" "$from_port" "NOT EXISTS (SELECT 1 FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
                                                  WHERE p.shardid = $shard AND n.nodeport = $from_port)"
wait $mover
wait $holder
out=$(grep -v "^$" "$cdir/move.out")
echo "# moved shard $shard (group|rows done before: $before) from port $from_port: ${out:-ok}"
wait_long $c "SELECT state IN ('completed', 'failed') FROM pq.jobs WHERE id = 0$job" || fail "the job did not finish"
out=$(q $c -c "SELECT state, shards_done || '/' || shards_total, rows_done = $pending - 1, rows_failed FROM pq.jobs WHERE id = 0$job")
check "the job completed on every shard; rows done = rows pending, less the row under the disabled version (failed)" "completed|8/8|t|1" "$out"
out=$(q $c -c "SELECT node_group, state, rows_done > ${before#*|} FROM pq.job_shards WHERE job_id = 0$job AND shardid = 0$shard")
check "the moved shard was finished by worker 3, from where the other worker left it" "$g3|completed|t" "$out"
out=$(q $c -c "$under_active_sql")
check "citus_move_shard_placement mid-job lost and repeated nothing: every other row decrypts under the active version" "99999" "$out"
out=$(q $c -c "SELECT row_key, reason FROM pq.job_shard_failures WHERE job_id = 0$job")
check "the row under the disabled version is recorded by its key, with the reason (never a plaintext)" "{t1,k100}|its key version is disabled or destroyed" "$out"
out=$(q $c -c "SELECT string_agg(event, ',' ORDER BY id) FROM pq.key_events WHERE details->>'job' = '$job'")
check "the coordinator records the job's events" "job_queued,job_started,job_completed" "$out"
out=$(cat "$cdir"/citus_n*/server.log | grep -c "cannot execute a distributed query\|a batch of job $job on shard")
check "no batch of the job failed on any node" "0" "$out"

echo "# kill -9 of a worker node's background worker during a job; pause and resume"
q $c -c "SELECT count(*) FROM generate_series(1, 100) i, pq.rotate_tenant_key('t' || i, 'kill test')" >/dev/null
pending=$(q $c -c "$pending_sql")
out=$(q $c -c "BEGIN" -c "SELECT 'job ' || pq.reencrypt('cfg', 'value', batch_size => 100)" \
        -c "SELECT pq.pause_job(currval('pq.job_queue_id_seq'))" -c "COMMIT")
job=$(echo "$out" | sed -n 's/^job \([0-9]*\)$/\1/p')
[ -n "$job" ] || echo "# queueing and pausing the job said: $out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE state = 'paused') FROM pq.job_shards WHERE job_id = 0$job")
sleep 2
out="$out $(q $c -c "SELECT coalesce(sum(rows_done), 0) FROM pq.job_shards WHERE job_id = 0$job")"
check "a paused job's shards are paused, and no node works on them" "8 0" "$out"
q $c -c "SELECT pq.resume_job(0$job)" >/dev/null
g2=$(q $c -c "SELECT groupid FROM pg_dist_node WHERE nodeport = $((cport + 2))")
wait_long $c "SELECT EXISTS (SELECT 1 FROM pq.job_shards WHERE job_id = 0$job AND node_group = $g2 AND state = 'running' AND rows_done > 0)" \
  || fail "worker 2 did not start on the job"
victim=$(on_worker 2 -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker'")
kill -9 $victim
sleep 1
wait_long $((cport + 2)) "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'apg_pqcrypto worker' AND pid <> 0$victim)" \
  && ok "worker 2 restarted after the kill (crash recovery), with a new background worker" || fail "worker 2's background worker did not come back"
wait_long $c "SELECT state IN ('completed', 'failed') FROM pq.jobs WHERE id = 0$job" || fail "the job did not finish after the kill"
out=$(q $c -c "SELECT state, shards_done || '/' || shards_total, rows_done = $pending - 1, rows_failed FROM pq.jobs WHERE id = 0$job")
check "after the kill the job completed: rows done = rows pending (the batch in flight was redone, none twice)" "completed|8/8|t|1" "$out"
out=$(q $c -c "$under_active_sql")
check "... and every other row decrypts under the active version" "99999" "$out"

echo "# a shard split during a job: the new shards join it, the split one is gone"
q $c -c "SELECT count(*) FROM generate_series(1, 100) i, pq.rotate_tenant_key('t' || i, 'split test')" >/dev/null
pending=$(q $c -c "$pending_sql")
job=$(q $c -c "SELECT pq.reencrypt('cfg', 'value', batch_size => 50)")
moving=$(half_done "$job")
wait_long $c "SELECT EXISTS ($moving)" || fail "no shard was half done"
shard=$(q $c -c "$moving")
tenant=$(q $c -c "SELECT tenant FROM cfg WHERE get_shard_id_for_distribution_column('cfg', tenant) = 0$shard ORDER BY tenant LIMIT 1")
from_port=$(q $c -c "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = 0$shard")
hold_last_row "$shard" "$from_port" "NOT EXISTS (SELECT 1 FROM pg_dist_shard WHERE shardid = $shard)"
out=$(q $c -c "SELECT isolate_tenant_to_new_shard('cfg', '$tenant', 'CASCADE', shard_transfer_mode => 'block_writes') IS NOT NULL" 2>&1 | tail -1)
wait $holder
echo "# split shard $shard, isolating tenant $tenant: $out"
wait_long $c "SELECT state IN ('completed', 'failed') FROM pq.jobs WHERE id = 0$job" || fail "the job did not finish after the split"
out=$(q $c -c "SELECT state, shards_total > 8, rows_done = $pending - 1, rows_failed FROM pq.jobs WHERE id = 0$job" \
        -c "SELECT state, rows_done > 0 FROM pq.job_shards WHERE job_id = 0$job AND shardid = 0$shard")
check "the job completed over the split's new shards; rows done = rows pending, the failed row not tried again" "completed|t|t|1
gone|t" "$out"
out=$(q $c -c "$under_active_sql")
check "... and every other row decrypts under the active version" "99999" "$out"

echo "# a job for one tenant covers its shard; a migration off pgcrypto, shard by shard"
q $c -c "SELECT pq.rotate_tenant_key('t5', 'one tenant')" >/dev/null
q $c -c "SELECT count(*) FROM pq.reencrypt_tenant('t5', batch_size => 100)" >/dev/null
job=$(q $c -c "SELECT max(id) FROM pq.jobs WHERE table_name = 'cfg'::regclass")
wait_long $c "SELECT state = 'completed' FROM pq.jobs WHERE id = 0$job" || fail "the tenant's job did not finish"
out=$(q $c -c "SELECT shards_total, rows_done FROM pq.jobs WHERE id = 0$job" -c "$under_active_sql AND cfg.tenant = 't5'")
check "pq.reencrypt_tenant on a table distributed by tenant: one shard, the tenant's 1000 rows" "1|1000
1000" "$out"
q $c -c "CREATE EXTENSION IF NOT EXISTS pgcrypto" -c "SELECT pq.register_classical_key('t6', 'pgp_sym', 'sym passphrase')" \
  -c "CREATE TABLE legacy (tenant text NOT NULL, id int NOT NULL, v bytea, PRIMARY KEY (tenant, id))" \
  -c "SELECT create_distributed_table('legacy', 'tenant', colocate_with => 'cfg')" \
  -c "INSERT INTO legacy SELECT 't6', i, pgp_sym_encrypt('old ' || i, 'sym passphrase') FROM generate_series(1, 1000) i" >/dev/null
job=$(q $c -c "SELECT pq.migrate_column('legacy', 'v', tenant_column => 'tenant', from_kind => 'pgp_sym', batch_size => 100)")
wait_long $c "SELECT state = 'completed' FROM pq.jobs WHERE id = 0$job" || fail "the migration did not finish"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq.classify(v) = 'pq_keyed' AND pq_decrypt_text(v) = 'old ' || id) FROM legacy" \
        -c "SELECT status, classical_values FROM pq.migration_status('t6')")
check "the migration job re-wrote every value on the workers as a keyed envelope; the tenant is migrated" "1000
completed|0" "$out"
out=$(q $c -v VERBOSITY=verbose -c "SELECT * FROM pq.migrate_column_now('legacy', 'v', tenant_column => 'tenant')" 2>&1)
check_contains "pq.migrate_column_now refuses a Citus table (0A000): its shards are on the nodes" "ERROR:  0A000: a job on a Citus table runs on the nodes" "$out"

echo "# an upgrade script on a Citus cluster: ALTER EXTENSION UPDATE on the coordinator"
# A throwaway version, removed again below, with the kind of DDL a future
# upgrade script has (docs/SCALE-OUT.md, Upgrades).
ext_dir="$citus_share/extension"
trial="$ext_dir/apg_pqcrypto--0.11.0--0.11.0-citus-trial.sql"
echo "ALTER TABLE pq.tenant_policies ADD COLUMN IF NOT EXISTS citus_trial text;" >"$trial"
q $c -c "SELECT pq.set_policy('t8', '{\"rotation_interval\": 86400}')" >/dev/null
out=$(q $c -c "ALTER EXTENSION apg_pqcrypto UPDATE TO '0.11.0-citus-trial'" -c "UPDATE pq.tenant_policies SET citus_trial = 'x'" \
        -c "SELECT string_agg(result, ',' ORDER BY nodeid) FROM run_command_on_all_nodes(
              \$\$SELECT extversion || ':' || (SELECT count(citus_trial) FROM pq.tenant_policies) FROM pg_extension WHERE extname = 'apg_pqcrypto'\$\$)" 2>&1 | tail -1)
rm -f "$trial"
check "ALTER EXTENSION UPDATE reaches every node, and the reference table's new column every copy" \
  "0.11.0-citus-trial:1,0.11.0-citus-trial:1,0.11.0-citus-trial:1,0.11.0-citus-trial:1" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE pq_decrypt_text(value, name) = 'v' || substr(name, 2)) FROM cfg WHERE name <> 'k100'")
check "... and every row still decrypts" "99999" "$out"

echo "# scheduled rotation: the coordinator's background worker alone"
q $c -c "SELECT pq.set_policy('t9', '{\"rotation_interval\": 2, \"auto_rotation\": true}')" >/dev/null
wait_for $c "SELECT count(*) >= 2 FROM pq.tenant_key_versions WHERE tenant = 't9'" \
  && ok "a due rotation is made by the coordinator's worker" || fail "a due rotation is made by the coordinator's worker"
sleep 3   # rounds of every node's worker while rotations are due
q $c -c "SELECT pq.set_policy('t9', '{\"auto_rotation\": false}')" >/dev/null
out=$(for n in 1 2 3; do on_worker $n -c "SELECT count(*) FROM pq.key_events WHERE event = 'key_rotated'"; done | tr '\n' ' ')
check "the workers' background workers rotated nothing (their event logs hold no rotation)" "0 0 0 " "$out"
echo "# audit: one chain per node, each checkpointed by the coordinator into a reference table"
python=${APG_PQ_VENV:-/var/tmp/apg_pqcrypto-venv}/bin/python
for n in 1 2; do   # a DBA changes a setting on each worker: that node's chain records it
  on_worker $n -c "ALTER SYSTEM SET apg_pqcrypto.key_cache_ttl = 300" -c "ALTER SYSTEM RESET apg_pqcrypto.key_cache_ttl" \
    -c "SELECT pq.audit_flush()" >/dev/null
done
q $c -c "SELECT pq.audit_checkpoint()" >/dev/null
groups=$(q $c -c "SELECT string_agg(groupid::text, ' ' ORDER BY groupid) FROM pg_dist_node WHERE nodeport IN ($((cport + 1)), $((cport + 2)))")
out=$(on_worker 2 -c "SELECT count(DISTINCT node_group) FROM pq.audit_checkpoints WHERE node_group IN (${groups// /,})")
check "the coordinator signed both workers' chain heads, and every node holds those checkpoints" "2" "$out"
out=$(on_worker 1 -c "SELECT ok, rows_checked > 0, last_checkpoint IS NOT NULL FROM pq.verify_audit_chain()")
check "a worker verifies its own chain against its checkpoints" "t|t|t" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE ok), count(*) FROM pq.verify_cluster_audit()")
check "pq.verify_cluster_audit(): every node's chain verifies" "4|4" "$out"
out=$("$python" "$root/tests/verify_audit.py" check --port $((cport + 1)) --node-group "${groups%% *}" --tenant t1 2>&1 | tail -1)
check_contains "a worker's chain and checkpoints verify offline (tests/verify_audit.py --node-group)" "verified: " "$out"
on_worker 1 -c "SET session_replication_role = replica" -c "UPDATE pq.audit_log SET actor = 'mallory' WHERE id = 1" >/dev/null
out=$(q $c -c "SELECT ok, first_bad_id FROM pq.verify_cluster_audit() WHERE node = '127.0.0.1:$((cport + 1))'")
check "an edited row on worker 1 is named by the cluster check" "f|1" "$out"
cluster_stop "$cdir/citus_n2"
out=$(q $c -c "SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok IS NULL AND problem LIKE 'the node could not answer%')
                 FROM pq.verify_cluster_audit()")
check "with worker 2 down: it is reported as not answering, the others are checked" "2|1" "$out"
out=$(q $c -c "SELECT count(*) > 0 FROM pq.audit_checkpoints WHERE node_group = ${groups##* }")
check "... and the checkpoints of its chain are still on the coordinator" "t" "$out"
out=$(q $c -c "SELECT count(*) FILTER (WHERE answered IS NULL AND message LIKE 'the node could not answer%'),
                      count(DISTINCT node) FILTER (WHERE answered) FROM pq.cluster_master_key_status()")
check "pq.cluster_master_key_status() says which node does not answer, and the others answer" "1|3" "$out"
for n in 3 2 1 0; do cluster_stop "$cdir/citus_n$n"; done
