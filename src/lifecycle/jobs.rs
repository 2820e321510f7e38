//! Re-encryption and migration jobs as the queue holds them:
//! `pq.reencrypt`, `pq.reencrypt_tenant`, `pq.pause_job`, `pq.resume_job`,
//! `pq.cancel_job`, `pq.retry_job`, queueing for a tracked column or a
//! tenant, and the jobs the worker should run. What one batch of a job
//! does is `lifecycle::batch`. Migration jobs (`migration::column`) are the
//! same batches with another row condition and another transformation.
use crate::{
    journal::events,
    lifecycle::{shard_jobs, tracking::{self}},
    platform::{catalog, errors::{PqError, PqResult}},
};
pub use crate::lifecycle::batch::{Work, DEFAULT_BATCH};
use pgrx::prelude::*;
use serde_json::json;

pub fn check_batch(batch_size: i32) -> PqResult<()> {
    if !(1..=100_000).contains(&batch_size) {
        return Err(PqError::InvalidParameter("batch_size is between 1 and 100000".into()));
    }
    Ok(())
}

/// Queues a job for a tracked column (restricted to `tenant`'s rows where
/// the column has a tenant column), if `role` (the caller; None for the
/// worker's own policy jobs) has the rights an UPDATE of the column takes.
/// Call as owner.
pub fn queue(
    tracked_id: i32,
    tenant: Option<&str>,
    batch_size: i32,
    actor: &str,
    role: Option<pg_sys::Oid>,
    work: &Work,
) -> PqResult<i64> {
    let t = tracking::load(tracked_id)?;
    if let Some(role) = role {
        tracking::require_rights(&t, role)?;
    }
    let (kind, from_kind) = work.kinds();
    let (query, mut args): (&str, Vec<pgrx::datum::DatumWithOid<'_>>) = match from_kind {
        // Without from_kind, the statement a 0.3.0 job table (before ALTER
        // EXTENSION UPDATE) also takes.
        None => (
            "INSERT INTO pq.job_queue (kind, tracked_id, tenant, batch_size, created_by)
             VALUES ('reencrypt', $1, $2, $3, $4) RETURNING id",
            vec![],
        ),
        Some(from) => (
            "INSERT INTO pq.job_queue (kind, tracked_id, tenant, batch_size, created_by, from_kind)
             VALUES ('migrate', $1, $2, $3, $4, $5) RETURNING id",
            vec![from.into()],
        ),
    };
    args.splice(0..0, [tracked_id.into(), tenant.into(), batch_size.into(), actor.into()]);
    let id = catalog::write_one::<i64>(query, &args)?
        .ok_or_else(|| PqError::internal("queueing a job returned nothing", String::new()))?;
    if t.distribution_column.is_some() {
        shard_jobs::queue(id, tracked_id, &t, tenant, batch_size, work)?;
    }
    crate::platform::latch::wake_at_commit();
    events::record(
        "job_queued",
        tenant.or(t.tenant.as_deref()),
        None,
        actor,
        None,
        json!({ "job": id, "kind": kind, "from_kind": from_kind, "table": t.table, "column": t.column, "batch_size": batch_size }),
    )?;
    Ok(id)
}

/// Queues re-encryption of every tracked column of `tenant`, unless one is
/// already pending, checking `role`'s rights on each (None: the worker's
/// own jobs, for columns tracked by someone who had them). Call as owner.
pub fn queue_for_tenant(tenant: &str, batch_size: i32, actor: &str, role: Option<pg_sys::Oid>) -> PqResult<Vec<i64>> {
    let mut ids = Vec::new();
    for tracked_id in tracking::ids_for_tenant(tenant)? {
        let pending = catalog::one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pq.job_queue j JOIN pq.tracked_columns t ON t.id = j.tracked_id
                             WHERE j.tracked_id = $1 AND j.state IN ('queued', 'running', 'paused')
                               AND coalesce(j.tenant, t.tenant) IS NOT DISTINCT FROM $2)",
            &[tracked_id.into(), tenant.into()],
        )?
        .unwrap_or(false);
        if !pending {
            let fixed = catalog::one::<bool>("SELECT tenant IS NOT NULL FROM pq.tracked_columns WHERE id = $1", &[tracked_id.into()])?
                .unwrap_or(false);
            ids.push(queue(tracked_id, (!fixed).then_some(tenant), batch_size, actor, role, &Work::Reencrypt)?);
        }
    }
    Ok(ids)
}

pub fn require_worker(what: &'static str) -> PqResult<()> {
    if !crate::platform::shmem::preloaded() {
        return Err(PqError::NeedsPreload(what));
    }
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly(what));
    }
    Ok(())
}

fn reencrypt(relid: pg_sys::Oid, column: &str, batch_size: i32) -> PqResult<i64> {
    crate::platform::roles::require_admin("re-encrypt columns")?;
    check_batch(batch_size)?;
    require_worker("re-encryption")?;
    let actor = events::session_user();
    let caller = catalog::caller();
    catalog::as_owner(|| {
        let id = tracking::ids_for_column(relid, column)?.ok_or_else(|| PqError::Sql {
            code: b"55000",
            message: "the column is not tracked".into(),
            hint: Some("track it first: SELECT pq.track_column(table, column, tenant => …)".into()),
        })?;
        queue(id, None, batch_size, &actor, Some(caller), &Work::Reencrypt)
    })
}

fn reencrypt_tenant(tenant: &str, batch_size: i32) -> PqResult<Vec<i64>> {
    crate::platform::roles::require_admin("re-encrypt columns")?;
    crate::keys::access::require_visible(tenant)?;
    check_batch(batch_size)?;
    require_worker("re-encryption")?;
    let actor = events::session_user();
    let caller = catalog::caller();
    catalog::as_owner(|| queue_for_tenant(tenant, batch_size, &actor, Some(caller)))
}

/// Pause, resume or cancel: the state moves only from the listed ones.
fn control(id: i64, to: &str, from: &[&str], event: &str) -> PqResult<bool> {
    crate::platform::roles::require_admin("control jobs")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let changed = catalog::write_one::<bool>(
            "WITH u AS (UPDATE pq.job_queue SET state = $2, updated_at = now(),
                               finished_at = CASE WHEN $2 = 'cancelled' THEN now() END
                         WHERE id = $1 AND state = ANY($3) RETURNING true)
             SELECT EXISTS (SELECT 1 FROM u)",
            &[id.into(), to.into(), from.to_vec().into()],
        )?
        .unwrap_or(false);
        if changed {
            if shard_jobs::is_distributed_job(id)? {
                shard_jobs::control(id, to)?;
            }
            events::record(event, None, None, &actor, None, json!({ "job": id }))?;
        }
        Ok(changed)
    })
}

/// Forgets job `id`'s recorded failures and queues it again.
fn retry(id: i64) -> PqResult<bool> {
    crate::platform::roles::require_admin("control jobs")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let queued = catalog::write_one::<bool>(
            "WITH u AS (UPDATE pq.job_queue SET state = 'queued', cursor_key = NULL, pass = pass + 1, batch_errors = 0,
                               rows_failed = 0, last_error = NULL, finished_at = NULL, updated_at = now()
                         WHERE id = $1 AND state IN ('completed', 'failed', 'cancelled') RETURNING true)
             SELECT EXISTS (SELECT 1 FROM u)",
            &[id.into()],
        )?
        .unwrap_or(false);
        if queued {
            let mut forgotten = catalog::write_one::<i64>(
                "WITH d AS (DELETE FROM pq.job_failures WHERE job_id = $1 RETURNING 1) SELECT count(*) FROM d",
                &[id.into()],
            )?
            .unwrap_or(0);
            if shard_jobs::is_distributed_job(id)? {
                forgotten += shard_jobs::retry(id)?;
            }
            crate::platform::latch::wake_at_commit();
            events::record("job_retried", None, None, &actor, None, json!({ "job": id, "failed_rows": forgotten }))?;
        }
        Ok(queued)
    })
}

/// Jobs the worker should run, oldest first, and whether each is a
/// migration (not those of Citus tables: `shard_jobs` runs them).
pub fn runnable() -> PqResult<Vec<(i64, bool)>> {
    let local = if catalog::pq_column_exists(c"job_queue", c"distributed") { " AND NOT distributed" } else { "" };
    catalog::connect(|client| {
        let rows = client.select(
            &format!("SELECT id, kind = 'migrate' FROM pq.job_queue WHERE state IN ('queued', 'running'){local} ORDER BY id"),
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((row.get::<i64>(1)?.unwrap_or_default(), row.get::<bool>(2)?.unwrap_or(false)));
        }
        Ok(out)
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::args::RegClass;
    use crate::platform::errors::OrRaise;

    /// Queues re-encryption of a tracked column under its tenants' active
    /// versions; the background worker runs it. Returns the job id.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn reencrypt(table: RegClass, column: &str, batch_size: default!(i32, 1000)) -> i64 {
        super::reencrypt(table.existing().or_raise(), column, batch_size).or_raise()
    }

    /// Queues re-encryption of every tracked column of a tenant. Returns the job ids.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn reencrypt_tenant(tenant: &str, batch_size: default!(i32, 1000)) -> SetOfIterator<'static, i64> {
        SetOfIterator::new(super::reencrypt_tenant(tenant, batch_size).or_raise())
    }

    /// Pauses a queued or running job. True if it was paused now.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn pause_job(job: i64) -> bool {
        control(job, "paused", &["queued", "running"], "job_paused").or_raise()
    }

    /// Resumes a paused job. True if it was resumed now.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn resume_job(job: i64) -> bool {
        control(job, "running", &["paused"], "job_resumed").or_raise()
    }

    /// Runs a finished or failed job again over the rows it recorded as
    /// failed (and any others that still need it), after the cause was
    /// fixed (a classical key registered, a version enabled). True if it
    /// was queued again now.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn retry_job(job: i64) -> bool {
        super::retry(job).or_raise()
    }

    /// Cancels a job that has not finished. True if it was cancelled now.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn cancel_job(job: i64) -> bool {
        control(job, "cancelled", &["queued", "running", "paused"], "job_cancelled").or_raise()
    }
}
