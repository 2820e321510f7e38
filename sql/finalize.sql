-- Runs after every function exists: the pq_envelope domain and privileges.

CREATE DOMAIN pq_envelope AS bytea CHECK (pq_envelope_check(VALUE));
COMMENT ON DOMAIN pq_envelope IS 'A well-formed apg_pqcrypto v1 envelope; anything else fails with 22023';

-- Any change to a key table drops every backend's cached keys at commit.
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.master_keys
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenant_key_versions
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
CREATE TRIGGER key_cache_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pq.tenant_grants
    FOR EACH STATEMENT EXECUTE FUNCTION pq_key_tables_changed();
REVOKE ALL ON FUNCTION pq_key_tables_changed() FROM PUBLIC;

-- Key administration.
REVOKE ALL ON FUNCTION pq.create_tenant(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq.grant_tenant(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pq.revoke_tenant(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq.create_tenant(text), pq.grant_tenant(text, text),
                          pq.revoke_tenant(text, text) TO pq_admin;

-- Tenant-key functions: pq_user, and a pq.grant_tenant for the tenant.
REVOKE ALL ON FUNCTION pq_encrypt(text, text, text), pq_encrypt(text, bytea, bytea),
                       pq_decrypt(bytea, bytea), pq_decrypt_text(bytea, text),
                       pq_sign(text, bytea, bytea), pq_verify(text, bytea, bytea, bytea)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pq_encrypt(text, text, text), pq_encrypt(text, bytea, bytea),
                          pq_decrypt(bytea, bytea), pq_decrypt_text(bytea, text),
                          pq_sign(text, bytea, bytea), pq_verify(text, bytea, bytea, bytea)
    TO pq_user;
