//! Rotation policies: `pq.set_policy(tenant, jsonb)` and what the worker
//! does with them (`run_due`): rotate tenants that are due, NOTIFY
//! `pq_key_rotation` before, queue re-encryption after the overlap period.
//! A version older than max_key_age refuses to encrypt (keystore.rs).
use crate::{
    access, cache, catalog,
    errors::{echo, PqError, PqResult},
    events, jobs, lifecycle, tenants,
};
use pgrx::prelude::*;
use serde_json::{json, Value};

/// The policy fields, in seconds, and whether rotation is automatic.
const FIELDS: [&str; 5] = ["rotation_interval", "overlap_period", "notification_before", "auto_rotation", "max_key_age"];
/// Longest period a policy accepts: 100 years.
const MAX_SECONDS: i64 = 100 * 366 * 24 * 3600;

/// A validated policy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub rotation_interval: Option<i64>,
    pub overlap_period: Option<i64>,
    pub notification_before: Option<i64>,
    pub auto_rotation: bool,
    pub max_key_age: Option<i64>,
}

fn seconds(field: &str, value: &Value, zero_ok: bool) -> PqResult<Option<i64>> {
    if value.is_null() {
        return Ok(None);
    }
    let n = value
        .as_i64()
        .ok_or_else(|| PqError::InvalidParameter(format!("policy field {field} is a whole number of seconds")))?;
    if n < 0 || (n == 0 && !zero_ok) || n > MAX_SECONDS {
        return Err(PqError::InvalidParameter(format!(
            "policy field {field} must be between {} and {MAX_SECONDS} seconds",
            if zero_ok { 0 } else { 1 }
        )));
    }
    Ok(Some(n))
}

impl Policy {
    /// `changes` applied over `self`: only the keys given change; a JSON
    /// null clears a field.
    pub fn merged(&self, changes: &Value) -> PqResult<Policy> {
        let object = changes
            .as_object()
            .ok_or_else(|| PqError::InvalidParameter("a policy is a JSON object".into()))?;
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(PqError::InvalidParameter(format!(
                "unknown policy field \"{}\"; the fields are {}",
                echo(unknown),
                FIELDS.join(", ")
            )));
        }
        let mut p = Policy { ..*self };
        for (key, value) in object {
            match key.as_str() {
                "rotation_interval" => p.rotation_interval = seconds(key, value, false)?,
                "overlap_period" => p.overlap_period = seconds(key, value, true)?,
                "notification_before" => p.notification_before = seconds(key, value, false)?,
                "max_key_age" => p.max_key_age = seconds(key, value, false)?,
                _ => {
                    p.auto_rotation = match value {
                        Value::Bool(b) => *b,
                        Value::Null => false,
                        _ => return Err(PqError::InvalidParameter("policy field auto_rotation is true or false".into())),
                    }
                }
            }
        }
        if p.auto_rotation && p.rotation_interval.is_none() {
            return Err(PqError::InvalidParameter("auto_rotation needs a rotation_interval".into()));
        }
        if let (Some(before), Some(interval)) = (p.notification_before, p.rotation_interval) {
            if before >= interval {
                return Err(PqError::InvalidParameter("notification_before must be shorter than rotation_interval".into()));
            }
        }
        Ok(p)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rotation_interval": self.rotation_interval,
            "overlap_period": self.overlap_period,
            "notification_before": self.notification_before,
            "auto_rotation": self.auto_rotation,
            "max_key_age": self.max_key_age,
        })
    }
}

/// The stored policy of `tenant` (the default if none). Call as owner.
fn stored(tenant: &str) -> PqResult<Policy> {
    Ok(catalog::row(
        "SELECT rotation_interval, overlap_period, notification_before, auto_rotation, max_key_age
           FROM pq.tenant_policies WHERE tenant = $1",
        &[tenant.into()],
        |row| {
            Ok(Policy {
                rotation_interval: row.get::<i64>(1)?,
                overlap_period: row.get::<i64>(2)?,
                notification_before: row.get::<i64>(3)?,
                auto_rotation: row.get::<bool>(4)?.unwrap_or(false),
                max_key_age: row.get::<i64>(5)?,
            })
        },
    )?
    .unwrap_or_default())
}

fn set_policy(tenant: &str, changes: &Value) -> PqResult<Value> {
    tenants::require_admin("set key policies")?;
    access::require_visible(tenant)?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let policy = stored(tenant)?.merged(changes)?;
        if policy.auto_rotation && !cache::preloaded() {
            return Err(PqError::NeedsPreload("auto_rotation"));
        }
        catalog::write_one::<bool>(
            "INSERT INTO pq.tenant_policies AS p
                    (tenant, rotation_interval, overlap_period, notification_before, auto_rotation, max_key_age)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant) DO UPDATE
                SET rotation_interval = EXCLUDED.rotation_interval, overlap_period = EXCLUDED.overlap_period,
                    notification_before = EXCLUDED.notification_before, auto_rotation = EXCLUDED.auto_rotation,
                    max_key_age = EXCLUDED.max_key_age, updated_at = now(), updated_by = session_user
             RETURNING true",
            &[
                tenant.into(),
                policy.rotation_interval.into(),
                policy.overlap_period.into(),
                policy.notification_before.into(),
                policy.auto_rotation.into(),
                policy.max_key_age.into(),
            ],
        )?;
        events::record("policy_set", Some(tenant), None, &actor, None, policy.to_json())?;
        Ok(policy.to_json())
    })
}

/// What the worker found due for one tenant.
struct Due {
    tenant: String,
    version: i32,
    due_at: Option<String>,
    rotate: bool,
    notify: bool,
    reencrypt: bool,
}

/// One pass over the policies, in the worker's transaction (as superuser):
/// notify, rotate, queue re-encryption. A notification goes out in an
/// earlier pass than the rotation it announces. Returns what it did.
pub fn run_due(actor: &str) -> PqResult<usize> {
    let due: Vec<Due> = catalog::connect(|client| {
        let rows = client.select(
            "SELECT p.tenant, v.version,
                    pg_catalog.to_char((v.activated_at + pg_catalog.make_interval(secs => p.rotation_interval)) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    p.auto_rotation AND pg_catalog.now() >= v.activated_at + pg_catalog.make_interval(secs => p.rotation_interval),
                    p.auto_rotation AND p.notification_before IS NOT NULL
                      AND pg_catalog.now() >= v.activated_at
                                              + pg_catalog.make_interval(secs => p.rotation_interval - p.notification_before)
                      AND p.notified_version IS DISTINCT FROM v.version,
                    p.overlap_period IS NOT NULL AND v.version > 1
                      AND pg_catalog.now() >= v.activated_at + pg_catalog.make_interval(secs => p.overlap_period)
                      AND p.reencrypted_version IS DISTINCT FROM v.version
               FROM pq.tenant_policies p
               JOIN pq.tenant_key_versions v ON v.tenant = p.tenant AND v.state = 'active'
              ORDER BY p.tenant",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(Due {
                tenant: row.get::<String>(1)?.unwrap_or_default(),
                version: row.get::<i32>(2)?.unwrap_or_default(),
                due_at: row.get::<String>(3)?,
                rotate: row.get::<bool>(4)?.unwrap_or(false),
                notify: row.get::<bool>(5)?.unwrap_or(false),
                reencrypt: row.get::<bool>(6)?.unwrap_or(false),
            });
        }
        Ok::<_, PqError>(out)
    })?;
    let mut done = 0;
    for d in due {
        if d.notify {
            let details = json!({ "due_at": d.due_at, "next_version": d.version + 1 });
            catalog::write_one::<bool>(
                "UPDATE pq.tenant_policies SET notified_version = $2 WHERE tenant = $1 RETURNING true",
                &[d.tenant.as_str().into(), d.version.into()],
            )?;
            // The payload names no tenant: its id leads pq_admin to the event.
            let id = events::record_id("rotation_notified", Some(&d.tenant), Some(d.version), actor, None, details)?;
            events::notify("pq_key_rotation", id)?;
            done += 1;
            continue;
        }
        if d.rotate {
            lifecycle::rotate_as_owner(&d.tenant, "scheduled rotation", actor)?;
            done += 1;
            continue;
        }
        if d.reencrypt {
            let queued = jobs::queue_for_tenant(&d.tenant, jobs::DEFAULT_BATCH, actor, None)?;
            catalog::write_one::<bool>(
                "UPDATE pq.tenant_policies SET reencrypted_version = $2 WHERE tenant = $1 RETURNING true",
                &[d.tenant.as_str().into(), d.version.into()],
            )?;
            done += queued.len();
        }
    }
    Ok(done)
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::errors::OrRaise;

    /// Sets fields of the tenant's rotation policy (seconds):
    /// rotation_interval, overlap_period, notification_before,
    /// auto_rotation, max_key_age. Returns the whole policy.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn set_policy(tenant: &str, policy: pgrx::JsonB) -> pgrx::JsonB {
        pgrx::JsonB(super::set_policy(tenant, &policy.0).or_raise())
    }
}

#[cfg(any(test, feature = "pg_test"))]
pub fn parse(changes: Value) -> PqResult<Policy> {
    Policy::default().merged(&changes)
}
