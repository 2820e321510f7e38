//! Who may use and who may see a tenant's keys (DESIGN.md §3, Visibility).
//!
//! - *Use* (encrypt, decrypt, sign, verify): superusers, and members of a
//!   role granted the tenant with `pq.grant_tenant`.
//! - *See* (public keys, `pq.tenant_keys`, the tenant in `pq_inspect`):
//!   those who may use it, and members of `pq_admin`, who see every tenant.
//! - A role that does not see every tenant gets the same 42501 for an
//!   unknown tenant as for a forbidden one, so it cannot list tenant names;
//!   roles that see every tenant get 42704 for an unknown one. Messages
//!   name only the tenant the caller itself named, shortened.
//!
//! Grants are kept by role OID together with the role's name at grant time
//! (pq.tenant_grants.role, role_name) and count only while both still
//! match: a dropped role's grant does not pass to a new role of the same
//! name, nor to an unrelated role that later gets its OID. The column is a
//! `regrole`, written and replicated as the role's name: on each node of a
//! Citus cluster it holds that node's OID of the role (docs/SCALE-OUT.md).
use crate::{keys::cache::{self, TenantAccess}, platform::{catalog, errors::{echo, PqError, PqResult}}};
use pgrx::pg_sys;

/// Superusers and members of pq_admin see every tenant.
pub fn sees_all(role: pg_sys::Oid) -> bool {
    catalog::is_superuser(role) || catalog::is_admin(role)
}

/// What `role` may do with `tenant`, from the cache or the tables.
fn lookup(role: pg_sys::Oid, tenant: &str) -> PqResult<TenantAccess> {
    if tenant.len() > pqcore::tenant::MAX_NAME_LEN {
        return Ok(TenantAccess { exists: false, granted: false });
    }
    let now = cache::now();
    if let Some(hit) = cache::with(|c| c.access(role, tenant, now)) {
        return Ok(hit);
    }
    crate::keys::cache::watch_key_tables();
    let row = catalog::as_owner(|| {
        catalog::row(
            "SELECT EXISTS (SELECT 1 FROM pq.tenants WHERE name = $1),
                    EXISTS (SELECT 1 FROM pq.tenant_grants g
                              JOIN pg_catalog.pg_roles r ON r.oid = g.role AND r.rolname = g.role_name
                             WHERE g.tenant = $1 AND pg_catalog.pg_has_role($2, g.role, 'USAGE'))",
            &[tenant.into(), role.into()],
            |row| Ok((row.get::<bool>(1)?, row.get::<bool>(2)?)),
        )
    })?;
    let (exists, granted) = row.map(|(e, g)| (e.unwrap_or(false), g.unwrap_or(false))).unwrap_or_default();
    let access = TenantAccess { exists, granted: exists && (granted || catalog::is_superuser(role)) };
    if cache::enabled() {
        cache::with_mut(|c| c.remember_access(role, tenant, access, now));
    }
    Ok(access)
}

fn denied(tenant: &str) -> PqError {
    PqError::PermissionDenied(format!("permission denied for the keys of tenant \"{}\"", echo(tenant)))
}

/// Ok if the calling role may use `tenant`'s keys. For a tenant it does
/// not see: 42501, whether or not the tenant exists.
pub fn require_usable(tenant: &str) -> PqResult<()> {
    cache::refresh();
    let role = catalog::caller();
    let repeat = cache::with(|c| matches!(&c.last_allowed, Some((r, t)) if *r == role && t == tenant));
    if repeat {
        return Ok(());
    }
    let access = lookup(role, tenant)?;
    if access.granted {
        if cache::enabled() {
            cache::with_mut(|c| c.last_allowed = Some((role, tenant.to_owned())));
        }
        return Ok(());
    }
    if !access.exists && sees_all(role) {
        return Err(PqError::UnknownTenant(echo(tenant)));
    }
    Err(denied(tenant))
}

/// As [`require_usable`], for a tenant found through a key id: the caller
/// did not name the tenant, so the error does not either.
pub fn require_usable_unnamed(tenant: &str) -> PqResult<()> {
    require_usable(tenant).map_err(|e| match e {
        PqError::PermissionDenied(_) | PqError::UnknownTenant(_) => {
            PqError::PermissionDenied("permission denied for the key version that made this envelope".into())
        }
        other => other,
    })
}

/// True if the calling role sees `tenant`.
pub fn visible(tenant: &str) -> PqResult<bool> {
    cache::refresh();
    let role = catalog::caller();
    let access = lookup(role, tenant)?;
    Ok(access.exists && (access.granted || sees_all(role)))
}

/// Ok if the calling role sees `tenant`; 42704 for an unknown tenant to
/// roles that see every tenant, 42501 to all others.
pub fn require_visible(tenant: &str) -> PqResult<()> {
    if visible(tenant)? {
        return Ok(());
    }
    if sees_all(catalog::caller()) {
        return Err(PqError::UnknownTenant(echo(tenant)));
    }
    Err(denied(tenant))
}
