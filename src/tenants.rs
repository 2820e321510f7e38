//! Tenants and their grants: `pq.create_tenant`, `pq.grant_tenant`,
//! `pq.revoke_tenant`, `pq.tenant_public_key`, `pq.tenant_verifying_key`.
use crate::{
    catalog,
    errors::{PqError, PqResult},
    keystore,
};
use pgrx::prelude::*;

/// Superusers and members of `pq_admin` administer keys.
pub fn require_admin(what: &str) -> PqResult<()> {
    let role = catalog::caller();
    if catalog::is_superuser(role) {
        return Ok(());
    }
    let member = catalog::one::<bool>(
        "SELECT pg_catalog.pg_has_role($1, 'pq_admin', 'USAGE')",
        &[role.into()],
    )?
    .unwrap_or(false);
    if member {
        Ok(())
    } else {
        Err(PqError::PermissionDenied(format!("permission denied to {what}: requires membership in pq_admin")))
    }
}

fn check_tenant_name(tenant: &str) -> PqResult<()> {
    if tenant.is_empty() || tenant.len() > 200 || tenant.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter(
            "tenant names are 1 to 200 bytes without control characters".into(),
        ));
    }
    Ok(())
}

fn create_tenant(tenant: &str) -> PqResult<(String, i32, Vec<u8>)> {
    require_admin("create tenants")?;
    check_tenant_name(tenant)?;
    catalog::as_owner(|| {
        let inserted = catalog::one::<bool>(
            "WITH t AS (INSERT INTO pq.tenants (name, created_by) VALUES ($1, session_user)
                        ON CONFLICT (name) DO NOTHING RETURNING true)
             SELECT EXISTS (SELECT 1 FROM t)",
            &[tenant.into()],
        )?
        .unwrap_or(false);
        if !inserted {
            return Err(PqError::DuplicateTenant(tenant.to_owned()));
        }
        let kid = keystore::insert_version(tenant, 1)?;
        Ok((tenant.to_owned(), 1, kid.as_bytes().to_vec()))
    })
}

fn set_grant(tenant: &str, role: &str, grant: bool) -> PqResult<bool> {
    require_admin("grant tenant keys")?;
    catalog::as_owner(|| {
        catalog::require_tenant(tenant)?;
        let role_exists = catalog::one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &[role.into()],
        )?
        .unwrap_or(false);
        if grant && !role_exists {
            return Err(PqError::InvalidParameter(format!("role \"{role}\" does not exist")));
        }
        let query = if grant {
            "WITH g AS (INSERT INTO pq.tenant_grants (tenant, role_name) VALUES ($1, $2)
                        ON CONFLICT DO NOTHING RETURNING true) SELECT EXISTS (SELECT 1 FROM g)"
        } else {
            "WITH g AS (DELETE FROM pq.tenant_grants WHERE tenant = $1 AND role_name = $2
                        RETURNING true) SELECT EXISTS (SELECT 1 FROM g)"
        };
        let changed = catalog::one::<bool>(query, &[tenant.into(), role.into()])?.unwrap_or(false);
        Ok(changed)
    })
}

fn public_key(tenant: &str, column: &str) -> PqResult<Vec<u8>> {
    catalog::as_owner(|| {
        let key = catalog::one::<Vec<u8>>(
            &format!("SELECT {column} FROM pq.tenant_key_versions WHERE tenant = $1 AND state = 'active'"),
            &[tenant.into()],
        )?;
        match key {
            Some(key) => Ok(key),
            None => {
                catalog::require_tenant(tenant)?;
                Err(PqError::KeyState(format!("tenant \"{tenant}\" has no active key version")))
            }
        }
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::errors::OrRaise;

    /// Creates a tenant with key version 1 (ML-KEM-768, ML-DSA-65, DEK).
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn create_tenant(
        tenant: &str,
    ) -> TableIterator<'static, (name!(tenant, String), name!(version, i32), name!(kid, Vec<u8>))> {
        TableIterator::once(super::create_tenant(tenant).or_raise())
    }

    /// Lets members of `role` use `tenant`'s keys. True if the grant is new.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn grant_tenant(tenant: &str, role: &str) -> bool {
        set_grant(tenant, role, true).or_raise()
    }

    /// Withdraws a grant. True if there was one.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn revoke_tenant(tenant: &str, role: &str) -> bool {
        set_grant(tenant, role, false).or_raise()
    }

    /// The ML-KEM-768 encapsulation key of the tenant's active version:
    /// clients seal to it with any FIPS 203 implementation.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn tenant_public_key(tenant: &str) -> Vec<u8> {
        public_key(tenant, "public_key").or_raise()
    }

    /// The ML-DSA-65 verifying key of the tenant's active version.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn tenant_verifying_key(tenant: &str) -> Vec<u8> {
        public_key(tenant, "verifying_key").or_raise()
    }
}
