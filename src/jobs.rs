//! Re-encryption jobs: `pq.reencrypt`, `pq.reencrypt_tenant`,
//! `pq.pause_job`, `pq.resume_job`, `pq.cancel_job`, and the batch the
//! background worker runs (`run_batch`).
//!
//! A batch is one transaction: it claims up to `batch_size` rows that are
//! not under their tenant's active version, in key order after the job's
//! cursor, with FOR UPDATE SKIP LOCKED (so the application's own writes
//! wait at most one batch, and rows it holds are left for a later pass);
//! re-encrypts them in the server; writes them back with one UPDATE;
//! records rows that fail (with the reason, never a plaintext); and moves
//! the job's counters and cursor, all in that same transaction. A crash
//! loses at most the batch in flight, which the next run redoes; rows
//! already under the active version are never touched again. When a pass
//! reaches the end of the table, the job completes if no row needs work,
//! and otherwise starts another pass for the rows that were locked.
use crate::{
    cache, catalog,
    datum::PgBytea,
    errors::{PqError, PqResult},
    events, keystore, tenants,
    tracking::{self, quote_ident, Tracked},
};
use pgrx::prelude::*;
use pgrx::PgRelation;
use pqcore::{keyed_len, sealed, Envelope, Kind};
use serde_json::json;

pub const DEFAULT_BATCH: i32 = 1000;

fn check_batch(batch_size: i32) -> PqResult<()> {
    if !(1..=100_000).contains(&batch_size) {
        return Err(PqError::InvalidParameter("batch_size is between 1 and 100000".into()));
    }
    Ok(())
}

/// Queues a job for a tracked column (restricted to `tenant`'s rows where
/// the column has a tenant column). Call as owner.
fn queue(tracked_id: i32, tenant: Option<&str>, batch_size: i32, actor: &str) -> PqResult<i64> {
    let t = tracking::load(tracked_id)?;
    let id = catalog::write_one::<i64>(
        "INSERT INTO pq.job_queue (kind, tracked_id, tenant, batch_size, created_by)
         VALUES ('reencrypt', $1, $2, $3, $4) RETURNING id",
        &[tracked_id.into(), tenant.into(), batch_size.into(), actor.into()],
    )?
    .ok_or_else(|| PqError::internal("queueing a job returned nothing", String::new()))?;
    crate::worker::wake_at_commit();
    events::record(
        "job_queued",
        tenant.or(t.tenant.as_deref()),
        None,
        actor,
        None,
        json!({ "job": id, "kind": "reencrypt", "table": t.table, "column": t.column, "batch_size": batch_size }),
    )?;
    Ok(id)
}

/// Queues re-encryption of every tracked column of `tenant`, unless one is
/// already pending. Call as owner (the worker does too).
pub fn queue_for_tenant(tenant: &str, batch_size: i32, actor: &str) -> PqResult<Vec<i64>> {
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
            ids.push(queue(tracked_id, (!fixed).then_some(tenant), batch_size, actor)?);
        }
    }
    Ok(ids)
}

fn require_worker(what: &'static str) -> PqResult<()> {
    if !cache::preloaded() {
        return Err(PqError::NeedsPreload(what));
    }
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly(what));
    }
    Ok(())
}

fn reencrypt(relid: pg_sys::Oid, column: &str, batch_size: i32) -> PqResult<i64> {
    tenants::require_admin("re-encrypt columns")?;
    check_batch(batch_size)?;
    require_worker("re-encryption")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let id = tracking::ids_for_column(relid, column)?.ok_or_else(|| PqError::Sql {
            code: b"55000",
            message: "the column is not tracked".into(),
            hint: Some("track it first: SELECT pq.track_column(table, column, tenant => …)".into()),
        })?;
        queue(id, None, batch_size, &actor)
    })
}

fn reencrypt_tenant(tenant: &str, batch_size: i32) -> PqResult<Vec<i64>> {
    tenants::require_admin("re-encrypt columns")?;
    crate::access::require_visible(tenant)?;
    check_batch(batch_size)?;
    require_worker("re-encryption")?;
    let actor = events::session_user();
    catalog::as_owner(|| queue_for_tenant(tenant, batch_size, &actor))
}

/// Pause, resume or cancel: the state moves only from the listed ones.
fn control(id: i64, to: &str, from: &[&str], event: &str) -> PqResult<bool> {
    tenants::require_admin("control jobs")?;
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
            events::record(event, None, None, &actor, None, json!({ "job": id }))?;
        }
        Ok(changed)
    })
}

// ---------------------------------------------------------------- the worker's side

/// What one call of `run_batch` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// Rows were claimed (re-encrypted or recorded as failed).
    Worked,
    /// The job finished.
    Completed,
    /// Nothing to do now (paused, cancelled, or locked by another worker).
    Idle,
}

/// Jobs the worker should run, oldest first.
pub fn runnable() -> PqResult<Vec<i64>> {
    Spi::connect(|client| {
        client
            .select("SELECT id FROM pq.job_queue WHERE state IN ('queued', 'running') ORDER BY id", None, &[])?
            .map(|r| r.get::<i64>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PqError::from)
    })
}

/// The condition "this row is not under its tenant's active version", and
/// the tenant expression of a row.
/// The table is aliased `t` in both.
fn needs_work(t: &Tracked) -> (String, String) {
    let col = quote_ident(&t.column);
    let tenant_expr = match &t.tenant_column {
        Some(tc) => format!("t.{}::text", quote_ident(tc)),
        None => "$2::text".to_owned(),
    };
    let condition = format!(
        "t.{col} IS NOT NULL AND substr(t.{col}, 3, 16) IS DISTINCT FROM
            (SELECT kv.kid FROM pq.tenant_key_versions kv WHERE kv.tenant = {tenant_expr} AND kv.state = 'active')"
    );
    (condition, tenant_expr)
}

/// The keys of the rows job `id` recorded as failed (few; they are
/// skipped as a filter, which keeps the claim an ordered index scan that
/// stops at the batch size, where NOT EXISTS would become an anti-join over
/// the whole table).
fn failed_keys(id: i64) -> PqResult<Vec<String>> {
    Spi::connect(|client| {
        client
            .select("SELECT row_key FROM pq.job_failures WHERE job_id = $1", None, &[id.into()])?
            .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PqError::from)
    })
}

/// Rows that still need work, not counting recorded failures.
fn remaining(t: &Tracked, tenant: &str, only_tenant: Option<&str>, failed: &[String]) -> PqResult<i64> {
    let (condition, tenant_expr) = needs_work(t);
    let key = quote_ident(&t.key_column);
    let only = if only_tenant.is_some() { format!(" AND {tenant_expr} = $2") } else { String::new() };
    Ok(catalog::one::<i64>(
        &format!(
            "SELECT count(*) FROM {table} AS t WHERE {condition}{only} AND NOT (t.{key}::text = ANY($1))",
            table = t.table
        ),
        &[failed.to_vec().into(), tenant.into()],
    )?
    .unwrap_or(0))
}

/// Re-encrypts one value for `tenant` straight into a result datum, or
/// says why not (never with the plaintext).
fn reencrypt_value(value: &[u8], aad: &[u8], tenant: &str) -> Result<PgBytea, &'static str> {
    let parsed = Envelope::parse(value).map_err(|_| "not a v1 envelope")?;
    if parsed.kind() == Kind::Signature {
        return Err("a signature envelope, not a ciphertext");
    }
    let old = keystore::version_by_kid(parsed.kid()).map_err(|e| match e {
        PqError::UnknownKid => "unknown key id",
        PqError::KeyState(_) | PqError::KeyStateHint(..) => "its key version is disabled or destroyed",
        _ => "its key version could not be loaded",
    })?;
    if old.tenant != tenant {
        return Err("an envelope of another tenant");
    }
    let active = keystore::active_version(tenant, "re-encrypt").map_err(|_| "the tenant has no usable active version")?;
    let failed = "authentication failed (wrong AAD or damaged value)";
    let built = match parsed {
        Envelope::Keyed(env) => {
            let plain = old.cipher.decrypt(&env, aad).map_err(|_| failed)?;
            let len = keyed_len(plain.expose().len()).map_err(|_| "too large")?;
            PgBytea::build(len, |out| Ok(active.cipher.encrypt_to(plain.expose(), aad, out)?))
        }
        Envelope::Sealed(env) => {
            let plain = sealed::open(&old.kem, &env, aad).map_err(|_| failed)?;
            let len = sealed::sealed_len(plain.expose().len()).map_err(|_| "too large")?;
            PgBytea::build(len, |out| Ok(sealed::seal_to(active.kem.public_key(), plain.expose(), aad, out)?))
        }
        Envelope::Signature(_) => return Err("a signature envelope, not a ciphertext"),
    };
    built.map_err(|_| "out of memory")
}

thread_local! {
    /// Rows `job_rewrap` could not re-encrypt in the current batch: (key, reason).
    static FAILURES: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One value of a batch: re-encrypted, or left as it is with the reason
/// recorded for `run_batch` to write to pq.job_failures.
fn job_rewrap(value: &[u8], aad: &[u8], tenant: &str, row_key: &str) -> PqResult<PgBytea> {
    match reencrypt_value(value, aad, tenant) {
        Ok(new) => Ok(new),
        Err(reason) => {
            FAILURES.with_borrow_mut(|f| f.push((row_key.to_owned(), reason.to_owned())));
            PgBytea::copy_of(value)
        }
    }
}

/// One batch of job `id`, in the caller's transaction (the worker's, as
/// superuser).
pub fn run_batch(id: i64, actor: &str) -> PqResult<Batch> {
    let job = catalog::write_row(
        "SELECT tracked_id, tenant, batch_size, state, cursor_key FROM pq.job_queue
          WHERE id = $1 AND state IN ('queued', 'running') FOR UPDATE SKIP LOCKED",
        &[id.into()],
        |row| {
            Ok((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?,
                row.get::<i32>(3)?.unwrap_or(DEFAULT_BATCH),
                row.get::<String>(4)?.unwrap_or_default(),
                row.get::<String>(5)?,
            ))
        },
    )?;
    let Some((tracked_id, only_tenant, batch_size, state, cursor)) = job else { return Ok(Batch::Idle) };
    let t = tracking::load(tracked_id)?;
    let fixed_tenant = t.tenant.clone().unwrap_or_default();
    let tenant_arg = only_tenant.clone().unwrap_or_else(|| fixed_tenant.clone());
    let failed = failed_keys(id)?;
    if state == "queued" {
        let total = remaining(&t, &tenant_arg, only_tenant.as_deref(), &failed)?;
        catalog::write_one::<bool>(
            "UPDATE pq.job_queue SET state = 'running', started_at = now(), updated_at = now(), rows_total = $2
              WHERE id = $1 RETURNING true",
            &[id.into(), total.into()],
        )?;
        events::record("job_started", only_tenant.as_deref().or(t.tenant.as_deref()), None, actor, None, json!({ "job": id, "rows": total }))?;
    }

    let (condition, tenant_expr) = needs_work(&t);
    let key = quote_ident(&t.key_column);
    let only = if only_tenant.is_some() { format!(" AND {tenant_expr} = $2") } else { String::new() };
    let after = if cursor.is_some() { format!(" AND t.{key} > CAST($3 AS {})", t.key_type) } else { String::new() };
    // One statement per batch: the CTE claims rows in key order after the
    // cursor (an ordered index scan that stops at the batch size), and the
    // UPDATE rewrites them by ctid (which cannot change while this
    // statement holds their locks), calling job_rewrap on each value.
    Spi::run("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")?;
    let batch = format!(
        "WITH claimed AS (
            SELECT t.ctid AS tid, t.{key} AS k FROM {table} AS t
             WHERE {condition}{only}{after} AND NOT (t.{key}::text = ANY($1))
             ORDER BY t.{key}
             LIMIT {batch_size}
             FOR UPDATE OF t SKIP LOCKED),
         updated AS (
            UPDATE {table} AS t SET {col} = pq.job_rewrap(t.{col}, {aad}, {tenant_expr}, t.{key}::text)
              FROM claimed c WHERE t.ctid = c.tid
            RETURNING 1)
         SELECT (SELECT count(*) FROM updated), (SELECT max(k)::text FROM claimed)",
        col = quote_ident(&t.column),
        aad = t.aad_expr,
        table = t.table,
    );
    FAILURES.with_borrow_mut(Vec::clear);
    let (claimed, last) = catalog::write_row(
        &batch,
        &[failed.clone().into(), tenant_arg.as_str().into(), cursor.clone().unwrap_or_default().as_str().into()],
        |row| Ok((row.get::<i64>(1)?.unwrap_or(0), row.get::<String>(2)?)),
    )?
    .unwrap_or_default();
    let failures = FAILURES.with_borrow_mut(std::mem::take);

    if claimed == 0 {
        // The end of a pass: done, or another pass for rows that were locked.
        if remaining(&t, &tenant_arg, only_tenant.as_deref(), &failed)? == 0 {
            catalog::write_one::<bool>(
                "UPDATE pq.job_queue SET state = 'completed', finished_at = now(), updated_at = now(), cursor_key = NULL
                  WHERE id = $1 RETURNING true",
                &[id.into()],
            )?;
            let counts = catalog::row(
                "SELECT rows_done, rows_failed FROM pq.job_queue WHERE id = $1",
                &[id.into()],
                |row| Ok((row.get::<i64>(1)?.unwrap_or(0), row.get::<i64>(2)?.unwrap_or(0))),
            )?
            .unwrap_or_default();
            events::record(
                "job_completed",
                only_tenant.as_deref().or(t.tenant.as_deref()),
                None,
                actor,
                None,
                json!({ "job": id, "rows_done": counts.0, "rows_failed": counts.1 }),
            )?;
            return Ok(Batch::Completed);
        }
        catalog::write_one::<bool>(
            "UPDATE pq.job_queue SET cursor_key = NULL, pass = pass + 1, updated_at = now() WHERE id = $1 RETURNING true",
            &[id.into()],
        )?;
        return Ok(Batch::Worked);
    }

    let done = claimed - failures.len() as i64;
    let (failed_keys, reasons): (Vec<String>, Vec<String>) = failures.into_iter().unzip();
    if !failed_keys.is_empty() {
        Spi::run_with_args(
            "INSERT INTO pq.job_failures (job_id, row_key, reason)
             SELECT $1, k, r FROM unnest($2::text[], $3::text[]) AS f(k, r) ON CONFLICT DO NOTHING",
            &[id.into(), failed_keys.clone().into(), reasons.into()],
        )?;
    }
    let last = last.unwrap_or_default();
    catalog::write_one::<bool>(
        "UPDATE pq.job_queue SET rows_done = rows_done + $2, rows_failed = rows_failed + $3, cursor_key = $4,
                updated_at = now(), batch_errors = 0, last_error = CASE WHEN $3 > 0 THEN $5 ELSE last_error END
          WHERE id = $1 RETURNING true",
        &[
            id.into(),
            done.into(),
            (failed_keys.len() as i64).into(),
            last.as_str().into(),
            format!("{} rows could not be re-encrypted (see pq.job_failures)", failed_keys.len()).as_str().into(),
        ],
    )?;
    Ok(Batch::Worked)
}

/// After this many failed batches in a row, a job fails.
const MAX_BATCH_ERRORS: i32 = 3;

/// Records that a batch of job `id` failed with `error` (the batch's own
/// transaction was rolled back); after MAX_BATCH_ERRORS in a row the job fails.
pub fn record_error(id: i64, error: &str, actor: &str) -> PqResult<()> {
    let failed = catalog::write_one::<bool>(
        "UPDATE pq.job_queue
            SET last_error = $2, updated_at = now(), batch_errors = batch_errors + 1,
                state = CASE WHEN batch_errors + 1 >= $3 THEN 'failed' ELSE state END,
                finished_at = CASE WHEN batch_errors + 1 >= $3 THEN now() END
          WHERE id = $1 AND state IN ('queued', 'running') RETURNING state = 'failed'",
        &[id.into(), error.into(), MAX_BATCH_ERRORS.into()],
    )?
    .unwrap_or(false);
    if failed {
        events::record("job_failed", None, None, actor, Some(error), json!({ "job": id }))?;
    }
    Ok(())
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::errors::OrRaise;

    /// Queues re-encryption of a tracked column under its tenants' active
    /// versions; the background worker runs it. Returns the job id.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn reencrypt(table: PgRelation, column: &str, batch_size: default!(i32, 1000)) -> i64 {
        let relid = table.oid();
        drop(table);
        super::reencrypt(relid, column, batch_size).or_raise()
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

    /// The background worker's per-value step inside a batch (superusers
    /// only): the value re-encrypted under its tenant's active version, or
    /// unchanged if it cannot be, with the reason kept for pq.job_failures.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn job_rewrap(value: &[u8], aad: &[u8], tenant: &str, row_key: &str) -> PgBytea {
        super::job_rewrap(value, aad, tenant, row_key).or_raise()
    }

    /// Cancels a job that has not finished. True if it was cancelled now.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn cancel_job(job: i64) -> bool {
        control(job, "cancelled", &["queued", "running", "paused"], "job_cancelled").or_raise()
    }
}
