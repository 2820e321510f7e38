-- Installs the extension, the roles the suite uses, and a helper that shows
-- a statement's SQLSTATE and message instead of aborting the script.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_admin, regress_app_a, regress_app_b, regress_app_a_member, regress_nobody, regress_reborn, regress_renamed, regress_renamed2;
RESET client_min_messages;
CREATE EXTENSION apg_pqcrypto;
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE hint text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' (hint: ' || hint || ')', ' (hint: )'), '');
END
$$;
GRANT EXECUTE ON FUNCTION try(text) TO PUBLIC;
CREATE ROLE regress_admin NOLOGIN IN ROLE pq_admin;
CREATE ROLE regress_app_a NOLOGIN IN ROLE pq_user;
CREATE ROLE regress_app_b NOLOGIN IN ROLE pq_user;
CREATE ROLE regress_nobody NOLOGIN;
SELECT tenant, version, length(kid) FROM pq.create_tenant('acme');
SELECT tenant, version, length(kid) FROM pq.create_tenant('globex');
SELECT pq.grant_tenant('acme', 'regress_app_a');
SELECT pq.grant_tenant('globex', 'regress_app_b');
SELECT tenant, version, state, length(kid), length(public_key), length(verifying_key)
  FROM pq.tenant_keys ORDER BY tenant;
