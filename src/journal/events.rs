//! The lifecycle event log (`pq.key_events`): rotations, state changes,
//! policies, jobs, master key rotations. Never a secret: names, versions,
//! key ids, counts and reasons only. Every event is also appended to the
//! hash-chained audit trail (`journal::chain`).
use crate::platform::{
    catalog,
    errors::{PqError, PqResult},
};
use serde_json::Value;

/// The longest reason an event records (a reason is a note for people;
/// longer ones would be copied into the event, the chain and its hash).
pub const MAX_REASON: usize = 1024;

/// One event, written in the caller's transaction (so it commits or rolls
/// back with what it describes), to pq.key_events and the audit chain.
/// Call as owner. Before ALTER EXTENSION UPDATE to 0.2.0 there is no event
/// table and nothing is recorded.
pub fn record(event: &str, tenant: Option<&str>, version: Option<i32>, actor: &str, reason: Option<&str>, details: Value) -> PqResult<()> {
    record_id(event, tenant, version, actor, reason, details).map(drop)
}

/// [`record`], returning the event's id in pq.key_events: what a NOTIFY
/// carries instead of names (LISTEN checks no privilege; only roles that
/// read pq.key_events learn what the id stands for).
pub fn record_id(
    event: &str,
    tenant: Option<&str>,
    version: Option<i32>,
    actor: &str,
    reason: Option<&str>,
    details: Value,
) -> PqResult<Option<i64>> {
    if reason.is_some_and(|r| r.len() > MAX_REASON) {
        return Err(PqError::InvalidParameter(format!("a reason may have at most {MAX_REASON} bytes")));
    }
    if !catalog::pq_table_exists(c"key_events") {
        return Ok(None);
    }
    let id = catalog::write_one::<i64>(
        "INSERT INTO pq.key_events (event, tenant, version, actor, reason, details)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[
            event.into(),
            tenant.into(),
            version.into(),
            actor.into(),
            reason.into(),
            pgrx::JsonB(details.clone()).into(),
        ],
    )?;
    let mut chained = details;
    if let Value::Object(map) = &mut chained {
        if let Some(v) = version {
            map.insert("version".into(), v.into());
        }
        if let Some(r) = reason {
            map.insert("reason".into(), r.into());
        }
    }
    crate::journal::chain::append(event, tenant, actor, &chained)?;
    Ok(id)
}

/// Sends `NOTIFY channel` with the opaque payload `{"event_id": id}` (at
/// commit, as NOTIFY does). Call as owner.
pub fn notify(channel: &str, id: Option<i64>) -> PqResult<()> {
    let Some(id) = id else { return Ok(()) };
    catalog::run("SELECT pg_catalog.pg_notify($1, $2)", &[channel.into(), serde_json::json!({ "event_id": id }).to_string().as_str().into()])
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
