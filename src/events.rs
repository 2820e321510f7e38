//! The lifecycle event log (`pq.key_events`): rotations, state changes,
//! policies, jobs, master key rotations. Never a secret: names, versions,
//! key ids, counts and reasons only.
use crate::{catalog, errors::PqResult};
use serde_json::Value;

/// One event, written in the caller's transaction (so it commits or rolls
/// back with what it describes). Call as owner.
pub fn record(event: &str, tenant: Option<&str>, version: Option<i32>, actor: &str, reason: Option<&str>, details: Value) -> PqResult<()> {
    catalog::write_one::<bool>(
        "INSERT INTO pq.key_events (event, tenant, version, actor, reason, details)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING true",
        &[
            event.into(),
            tenant.into(),
            version.into(),
            actor.into(),
            reason.into(),
            pgrx::JsonB(details).into(),
        ],
    )?;
    Ok(())
}

/// The session user, the default actor of an event.
pub fn session_user() -> String {
    // SAFETY: reads backend globals; GetUserNameFromId with noerr=true returns
    // NULL instead of raising for a missing role.
    unsafe {
        let name = pgrx::pg_sys::GetUserNameFromId(pgrx::pg_sys::GetSessionUserId(), true);
        if name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}
