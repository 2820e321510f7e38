//! Rotation policies: `pq.set_policy(tenant, jsonb)` and what the worker
//! does with them (`run_due`): rotate tenants that are due, NOTIFY
//! `pq_key_rotation` before, queue re-encryption after the overlap period.
//! A version older than max_key_age refuses to encrypt (keys::versions).
//! The rules and the due times are `pqcore::policy`'s.
use crate::{
    journal::events,
    keys::access,
    lifecycle::{jobs, rotation},
    platform::{catalog, clock, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::policy::{check_seconds, ActiveVersion, Field, Policy};
use serde_json::{json, Value};

/// `changes` (a JSON object of policy fields) applied over `policy`: only
/// the keys given change; a JSON null clears a field. The rules are
/// `pqcore::policy`'s.
pub fn merged(policy: &Policy, changes: &Value) -> PqResult<Policy> {
    let object = changes.as_object().ok_or_else(|| PqError::InvalidParameter("a policy is a JSON object".into()))?;
    if let Some(unknown) = object.keys().find(|k| Field::parse(k).is_none()) {
        return Err(PqError::InvalidParameter(format!(
            "unknown policy field \"{}\"; the fields are {}",
            echo(unknown),
            Field::names()
        )));
    }
    let mut p = *policy;
    for (key, value) in object {
        let Some(field) = Field::parse(key) else { continue };
        if field == Field::RequireSuite {
            p.require_cnsa2 = match value {
                Value::Null => false,
                Value::String(s) if s == pqcore::policy::REQUIRE_CNSA2 => true,
                _ => {
                    return Err(PqError::InvalidParameter(
                        "policy field require_suite is \"cnsa2\" (ML-KEM-1024 and ML-DSA-87) or null".into(),
                    ))
                }
            };
            continue;
        }
        if field == Field::AutoRotation {
            p.auto_rotation = match value {
                Value::Bool(b) => *b,
                Value::Null => false,
                _ => return Err(PqError::InvalidParameter("policy field auto_rotation is true or false".into())),
            };
            continue;
        }
        let seconds = match value {
            Value::Null => None,
            v => Some(
                v.as_i64()
                    .ok_or_else(|| PqError::InvalidParameter(format!("policy field {key} is a whole number of seconds")))
                    .and_then(|n| check_seconds(field, n).map_err(PqError::InvalidParameter))?,
            ),
        };
        match field {
            Field::RotationInterval => p.rotation_interval = seconds,
            Field::OverlapPeriod => p.overlap_period = seconds,
            Field::NotificationBefore => p.notification_before = seconds,
            _ => p.max_key_age = seconds,
        }
    }
    p.check().map_err(PqError::InvalidParameter)?;
    Ok(p)
}

/// The policy as `pq.set_policy` returns it and events record it.
pub fn to_json(p: &Policy) -> Value {
    json!({
        "rotation_interval": p.rotation_interval,
        "overlap_period": p.overlap_period,
        "notification_before": p.notification_before,
        "auto_rotation": p.auto_rotation,
        "max_key_age": p.max_key_age,
        "require_suite": p.require_cnsa2.then_some(pqcore::policy::REQUIRE_CNSA2),
    })
}


/// The stored policy of `tenant` (the default if none). Call as owner.
fn stored(tenant: &str) -> PqResult<Policy> {
    Ok(catalog::row(
        "SELECT rotation_interval, overlap_period, notification_before, auto_rotation, max_key_age,
                (to_jsonb(p)->>'require_suite') = 'cnsa2'
           FROM pq.tenant_policies p WHERE tenant = $1",
        &[tenant.into()],
        |row| {
            Ok(Policy {
                rotation_interval: row.get::<i64>(1)?,
                overlap_period: row.get::<i64>(2)?,
                notification_before: row.get::<i64>(3)?,
                auto_rotation: row.get::<bool>(4)?.unwrap_or(false),
                max_key_age: row.get::<i64>(5)?,
                require_cnsa2: row.get::<bool>(6)?.unwrap_or(false),
            })
        },
    )?
    .unwrap_or_default())
}

fn set_policy(tenant: &str, changes: &Value) -> PqResult<Value> {
    crate::platform::roles::require_admin("set key policies")?;
    access::require_visible(tenant)?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let policy = merged(&stored(tenant)?, changes)?;
        if policy.auto_rotation && !crate::platform::shmem::preloaded() {
            return Err(PqError::NeedsPreload("auto_rotation"));
        }
        catalog::write_one::<bool>(
            // Time and actor are arguments, not now() and session_user:
            // Citus takes only immutable expressions in DO UPDATE on a
            // reference table.
            "INSERT INTO pq.tenant_policies AS p
                    (tenant, rotation_interval, overlap_period, notification_before, auto_rotation, max_key_age,
                     updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tenant) DO UPDATE
                SET rotation_interval = EXCLUDED.rotation_interval, overlap_period = EXCLUDED.overlap_period,
                    notification_before = EXCLUDED.notification_before, auto_rotation = EXCLUDED.auto_rotation,
                    max_key_age = EXCLUDED.max_key_age, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
             RETURNING true",
            &[
                tenant.into(),
                policy.rotation_interval.into(),
                policy.overlap_period.into(),
                policy.notification_before.into(),
                policy.auto_rotation.into(),
                policy.max_key_age.into(),
                clock::transaction_start()?.into(),
                actor.as_str().into(),
            ],
        )?;
        // 0.11.0's column: set apart, so that the statement above also runs
        // before ALTER EXTENSION UPDATE.
        if catalog::pq_column_exists(c"tenant_policies", c"require_suite") {
            catalog::write_one::<bool>(
                "UPDATE pq.tenant_policies SET require_suite = $2 WHERE tenant = $1 RETURNING true",
                &[tenant.into(), policy.require_cnsa2.then_some(pqcore::policy::REQUIRE_CNSA2).into()],
            )?;
        } else if policy.require_cnsa2 {
            return Err(PqError::InvalidParameter("require_suite needs ALTER EXTENSION apg_pqcrypto UPDATE to 0.11.0".into()));
        }
        events::record("policy_set", Some(tenant), None, &actor, None, to_json(&policy))?;
        Ok(to_json(&policy))
    })
}

/// One pass over the policies, in the worker's transaction (as superuser):
/// notify, rotate, queue re-encryption (`pqcore::policy::Policy::due`
/// decides). A notification goes out in an earlier pass than the rotation
/// it announces. Returns what it did.
pub fn run_due(actor: &str) -> PqResult<usize> {
    let rows = catalog::rows(
        &format!(
            "SELECT p.tenant, v.version, {activated}, p.rotation_interval, p.overlap_period, p.notification_before,
                    p.auto_rotation, p.max_key_age, p.notified_version, p.reencrypted_version
               FROM pq.tenant_policies p
               JOIN pq.tenant_key_versions v ON v.tenant = p.tenant AND v.state = 'active'
              ORDER BY p.tenant",
            activated = clock::micros_sql("v.activated_at")
        ),
        &[],
        |row| {
            let policy = Policy {
                rotation_interval: row.get::<i64>(4)?,
                overlap_period: row.get::<i64>(5)?,
                notification_before: row.get::<i64>(6)?,
                auto_rotation: row.get::<bool>(7)?.unwrap_or(false),
                max_key_age: row.get::<i64>(8)?,
                require_cnsa2: false, // no bearing on what is due; rotations read it themselves
            };
            let version = ActiveVersion {
                version: row.get::<i32>(2)?.unwrap_or_default(),
                activated_at: row.get::<i64>(3)?.unwrap_or_default(),
                notified_version: row.get::<i32>(9)?,
                reencrypted_version: row.get::<i32>(10)?,
            };
            Ok((row.get::<String>(1)?.unwrap_or_default(), policy, version))
        },
    )?;
    // now(): the transaction's start, as the SQL of earlier versions compared.
    let now = clock::transaction_start_unix_micros();
    let due = rows.into_iter().map(|(tenant, policy, v)| (tenant, v.version, policy.due(&v, now)));
    let mut done = 0;
    for (tenant, version, d) in due {
        if d.notify {
            let details = json!({ "due_at": d.rotation_at.map(pqcore::policy::utc_millis), "next_version": version + 1 });
            catalog::write_one::<bool>(
                "UPDATE pq.tenant_policies SET notified_version = $2 WHERE tenant = $1 RETURNING true",
                &[tenant.as_str().into(), version.into()],
            )?;
            // The payload names no tenant: its id leads pq_admin to the event.
            let id = events::record_id("rotation_notified", Some(&tenant), Some(version), actor, None, details)?;
            events::notify("pq_key_rotation", id)?;
            done += 1;
            continue;
        }
        if d.rotate {
            rotation::rotate_as_owner(&tenant, "scheduled rotation", actor)?;
            done += 1;
            continue;
        }
        if d.reencrypt {
            let queued = jobs::queue_for_tenant(&tenant, jobs::DEFAULT_BATCH, actor, None)?;
            catalog::write_one::<bool>(
                "UPDATE pq.tenant_policies SET reencrypted_version = $2 WHERE tenant = $1 RETURNING true",
                &[tenant.as_str().into(), version.into()],
            )?;
            done += queued.len();
        }
    }
    Ok(done)
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::args::Json;
    use crate::platform::errors::OrRaise;

    /// Sets fields of the tenant's rotation policy (seconds):
    /// rotation_interval, overlap_period, notification_before,
    /// auto_rotation, max_key_age. Returns the whole policy.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn set_policy(tenant: &str, policy: Json) -> pgrx::JsonB {
        let policy = policy.parse("the policy").or_raise();
        pgrx::JsonB(super::set_policy(tenant, &policy).or_raise())
    }
}

#[cfg(any(test, feature = "pg_test"))]
pub fn parse(changes: Value) -> PqResult<Policy> {
    merged(&Policy::default(), &changes)
}
