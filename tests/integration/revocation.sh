# Revocation and destruction take effect in another session's next
# transaction under every isolation level, even when that session's open
# transaction accepted the invalidation and re-read the key tables through
# its old snapshot (the cache must not keep what that snapshot showed).
# checks: 22
dir="$base/revocation"
port=$port_revocation
cluster_start "$dir" "$port" "${quiet[@]}" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" \
  -c "CREATE ROLE it_app LOGIN IN ROLE pq_user" \
  -c "CREATE TABLE filler (i int); CREATE TABLE other_filler (i int); GRANT SELECT ON filler, other_filler TO it_app" >/dev/null

for iso in "READ COMMITTED" "REPEATABLE READ" "SERIALIZABLE"; do
  q "$port" -c "SELECT pq.grant_tenant('acme', 'it_app')" >/dev/null
  out=$(qas "$port" it_app -v VERBOSITY=verbose <<SQL
SELECT 'cached', length(pq_encrypt('acme', 'cached')) > 0;
BEGIN ISOLATION LEVEL $iso;
SELECT count(*) FROM filler;
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pq.revoke_tenant('acme', 'it_app')" postgres >/dev/null
SELECT count(*) FROM other_filler;
SELECT 'in-transaction', length(pq_encrypt('acme', 'still in the old snapshot')) > 0;
COMMIT;
SELECT 'next', length(pq_encrypt('acme', 'after revoke')) > 0;
SELECT 'later', length(pq_encrypt('acme', 'and later')) > 0;
SQL
)
  check_contains "$iso: the grant worked before" "cached|t" "$out"
  next=$(echo "$out" | grep -c "42501")
  check_absent "$iso: no encryption in the next transaction" "next|t" "$out"
  check_absent "$iso: nor in a later one" "later|t" "$out"
  [ "$next" -ge 2 ] && ok "$iso: 42501 after the revocation" || fail "$iso: 42501 after the revocation: $out"
done

echo "# membership: the tenant is granted to a group role; REVOKE group FROM the member ends the member's use"
q "$port" -c "CREATE ROLE it_group NOLOGIN IN ROLE pq_user" -c "CREATE ROLE it_member LOGIN" \
  -c "GRANT SELECT ON filler, other_filler TO it_group" -c "SELECT pq.grant_tenant('acme', 'it_group')" >/dev/null
for iso in "READ COMMITTED" "REPEATABLE READ"; do
  q "$port" -c "GRANT it_group TO it_member" >/dev/null
  out=$(qas "$port" it_member -v VERBOSITY=verbose <<SQL
SELECT 'cached', length(pq_encrypt('acme', 'cached')) > 0;
BEGIN ISOLATION LEVEL $iso;
SELECT count(*) FROM filler;
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "REVOKE it_group FROM it_member" postgres >/dev/null
SELECT 'in-transaction', length(pq_encrypt('acme', 'old snapshot')) > 0;
COMMIT;
SELECT 'next', length(pq_encrypt('acme', 'after revoke')) > 0;
SQL
)
  check_contains "$iso: a member of the granted role encrypts (keys cached)" "cached|t" "$out"
  check_absent "$iso: after REVOKE group FROM member, not in the member's next transaction" "next|t" "$out"
  check_contains "$iso: ... which is 42501" "ERROR:  42501" "$out"
done

echo "# and the other way: a tenant created and granted elsewhere reaches a session that was refused"
out=$(qas "$port" it_app -v VERBOSITY=verbose <<SQL
SELECT 'before', length(pq_encrypt('newco', 'x')) > 0;
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "SELECT pq.create_tenant('newco')" -c "SELECT pq.grant_tenant('newco', 'it_app')" postgres >/dev/null
SELECT 'after', length(pq_encrypt('newco', 'x')) > 0;
SQL
)
check_contains "refused before the tenant existed" "42501" "$out"
check_contains "a new tenant and grant reach the session" "after|t" "$out"

echo "# a disabled version's verifying key is not kept either"
q "$port" -c "SELECT pq.create_tenant('signer')" -c "SELECT pq.grant_tenant('signer', 'it_app')" \
  -c "CREATE TABLE sigs AS SELECT pq_sign('signer', 'm') AS s; GRANT SELECT ON sigs TO it_app" >/dev/null
out=$(qas "$port" it_app <<SQL
\\set VERBOSITY verbose
SELECT 'before', pq_verify('signer', 'm', s) FROM sigs;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM filler;
\! psql -X -At -q -h 127.0.0.1 -p $port -U postgres -c "UPDATE pq.tenant_key_versions SET state = 'disabled', disabled_at = now() WHERE tenant = 'signer'" postgres
SELECT count(*) FROM other_filler;
SELECT 'in-transaction', pq_verify('signer', 'm', s) FROM sigs;
COMMIT;
SELECT 'after', pq_verify('signer', 'm', s) FROM sigs;
SQL
)
check_contains "disabled version: verified before" "before|t" "$out"
check_contains "disabled version: refused (PQ003) in the next transaction" "ERROR:  PQ003" "$out"
cluster_stop "$dir"
