//! Who is calling, as far as administering keys goes: superusers and
//! members of `pq_admin`; and for reading statistics and health, also
//! members of `pq_monitor`. Which tenants a role may use is `keys::access`.
use crate::platform::{
    catalog,
    errors::{PqError, PqResult},
};

/// Superusers and members of `pq_admin` administer keys.
pub fn require_admin(what: &str) -> PqResult<()> {
    let role = catalog::caller();
    if catalog::is_superuser(role) || catalog::is_admin(role) {
        Ok(())
    } else {
        Err(PqError::PermissionDenied(format!("permission denied to {what}: requires membership in pq_admin")))
    }
}

/// [`require_admin`], on the primary only (25006 on a hot standby).
pub fn require_admin_on_primary(what: &'static str) -> PqResult<()> {
    require_admin(what)?;
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly(what));
    }
    Ok(())
}

/// Superusers, members of `pq_admin` and members of `pq_monitor` read the
/// statistics and health checks (a monitoring role needs no more).
pub fn require_monitor(what: &str) -> PqResult<()> {
    let role = catalog::caller();
    if catalog::is_superuser(role) || catalog::is_admin(role) || catalog::is_monitor(role) {
        Ok(())
    } else {
        Err(PqError::PermissionDenied(format!("permission denied to {what}: requires membership in pq_admin or pq_monitor")))
    }
}
