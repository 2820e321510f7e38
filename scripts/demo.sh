#!/usr/bin/env bash
# The demo: builds and installs apg_pqcrypto into the local PostgreSQL 15,
# makes a SoftHSM2 token with an AES-256 key (an HSM to move the master key
# into), starts a throwaway cluster with the library preloaded, runs
# scripts/demo.sql, and stops the cluster. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
require_root
scripts/setup.sh
echo "== building and installing apg_pqcrypto (release)"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
echo "== building the apg-pq command line (release)"
cargo build --release -p apg-pq
cli=${CARGO_TARGET_DIR:-$root/target}/release/apg-pq
source scripts/cluster.sh
dir=$(cluster_scratch demo)
port=${APG_PQ_DEMO_PORT:-25430}
trap 'cluster_discard "$dir"' EXIT
source scripts/providers.sh
echo "== a SoftHSM2 token with a sensitive, non-extractable AES-256 key (in $dir/hsm)"
softhsm_setup "$dir/hsm"
echo "== starting a throwaway cluster on 127.0.0.1:$port (data in $dir/cluster)"
cluster_start "$dir/cluster" "$port" "log_statement = 'none'" \
  "apg_pqcrypto.pkcs11_module = '$SOFTHSM_MODULE'" "apg_pqcrypto.pkcs11_token_label = 'apg-pq'" \
  "apg_pqcrypto.pkcs11_pin_file = '$SOFTHSM_DIR/pin'" "apg_pqcrypto.pkcs11_key_label = 'apg-pq-kek'"
cluster_psql "$port" -q -f scripts/demo.sql
echo
echo "== 13. The client side: apg-pq seals on the client, the server opens"
files="$dir/client" && mkdir -p "$files"
url="postgresql://postgres@127.0.0.1:$port/postgres"
kid=$(cluster_psql "$port" -At -c "SELECT encode(kid, 'hex') FROM pq.tenant_keys WHERE tenant = 'acme' AND state = 'active'")
echo "\$ apg-pq fetch-key --tenant acme --expect-kid $kid -o acme.pk"
"$cli" fetch-key --url "$url" --tenant acme --expect-kid "$kid" -o "$files/acme.pk"
printf 'postgres://app:s3cret@db.internal/app' >"$files/secret.txt"
echo "\$ apg-pq seal --public-key acme.pk --aad database_url -i secret.txt -o secret.sealed; apg-pq inspect -i secret.sealed"
"$cli" seal --public-key "$files/acme.pk" --aad database_url -i "$files/secret.txt" -o "$files/secret.sealed"
"$cli" inspect -i "$files/secret.sealed"; echo
sealed=$(od -An -tx1 -v "$files/secret.sealed" | tr -d ' \n')
cluster_psql "$port" -c "SELECT pq_unseal_text(decode('$sealed', 'hex'), 'database_url') AS opened_by_the_server"
echo "An X-Wing tenant (X25519 + ML-KEM-768), and one batch of three values under one key encapsulation:"
cluster_psql "$port" -q -c "SELECT pq.create_tenant('hybrid', kem => 'x-wing')" >/dev/null
cluster_psql "$port" -c "SELECT tenant, kem, length(public_key) AS public_key_bytes FROM pq.tenant_keys WHERE tenant = 'hybrid'" \
  -c "SELECT n, convert_from(substr(item, 2, 1), 'UTF8') AS kind, length(item) AS bytes, pq_unseal_text(item, 'row ' || n) AS opened
        FROM unnest(pq_seal_batch(pq.tenant_public_key('hybrid'), ARRAY['one', 'two', 'three']::bytea[],
                                  ARRAY['row 1', 'row 2', 'row 3']::bytea[])) WITH ORDINALITY AS t(item, n)"
echo "A forward-secure session: its key lives in shared memory only; after pq.session_end nothing opens its envelopes:"
cluster_psql "$port" -q -c "CREATE TABLE s AS SELECT * FROM pq.session_begin('acme', '5 minutes')" \
  -c "CREATE TABLE sv AS SELECT pq_seal(public_key, 'ephemeral', 'k') AS e FROM s" \
  -c "SELECT pq_session_open_text(session_id, e, 'k') AS before_end FROM s, sv" \
  -c "SELECT pq.session_end(session_id) FROM s" \
  -c "DO \$\$ BEGIN PERFORM pq_session_open(session_id, e, 'k') FROM s, sv; EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'after end: % %', SQLSTATE, SQLERRM; END \$\$" \
  -c "DROP TABLE s, sv"
echo
echo "== 14. Key escrow (3 of 5 custodians) and a key backup restored into a fresh cluster (docs/RECOVERY.md)"
for i in 1 2 3 4 5; do
  "$cli" keygen --secret-key "$files/custodian$i.sk" --public-key "$files/custodian$i.pk" >/dev/null
  cluster_psql "$port" -qAt -c "SELECT pq.escrow_add_custodian('custodian$i', decode('$(hex "$files/custodian$i.pk")', 'hex'))" >/dev/null
done
cluster_psql "$port" -qAt -c "SELECT pq.configure_key_escrow('{\"threshold\": 3, \"trustees\": [\"custodian1\", \"custodian2\", \"custodian3\", \"custodian4\", \"custodian5\"], \"recovery_policy\": {\"min_approval_time\": \"24 hours\", \"approvers_required\": 2}}')" >/dev/null
cluster_psql "$port" -c "SELECT share_index, custodian, encode(custodian_kid, 'hex') AS sealed_to, length(record) AS record_bytes FROM pq.escrow_split()"
echo "\$ apg-pq keygen (the recovery officer); apg-pq backup --recipient-key officer.pk -o keys.apgb"
"$cli" keygen --secret-key "$files/officer.sk" --public-key "$files/officer.pk" >/dev/null
"$cli" backup --url "$url" --recipient-key "$files/officer.pk" -o "$files/keys.apgb"
cluster_psql "$port" -qAt -c "COPY (SELECT id, pq_encrypt('acme', 'made before the backup ' || id, 'row') FROM generate_series(1, 3) id) TO STDOUT" >"$files/rows.tsv"
cluster_start "$dir/restored" "$((port + 1))" "log_statement = 'none'"
cluster_psql "$((port + 1))" -qAt -c "CREATE EXTENSION apg_pqcrypto" -c "CREATE TABLE t (id int, v bytea)" -c "\\copy t FROM '$files/rows.tsv'" \
  -c "SELECT encode(restore_public_key, 'hex') FROM pq.restore_begin()" | unhex "$files/restore.pk"
echo "\$ apg-pq backup reseal --secret-key officer.sk --bundle keys.apgb --restore-key restore.pk -o keys.restore.apgb   (offline)"
"$cli" backup reseal --secret-key "$files/officer.sk" --bundle "$files/keys.apgb" --restore-key "$files/restore.pk" -o "$files/keys.restore.apgb"
cluster_psql "$((port + 1))" -c "SELECT * FROM pq.restore_key_backup(decode('$(hex "$files/keys.restore.apgb")', 'hex'))" \
  -c "SELECT id, pq_decrypt_text(v, 'row') AS decrypted_in_the_new_cluster FROM t"
cluster_stop "$dir/restored"
echo "== done; stopping the cluster"
