//! Re-encryption and migration jobs on Citus distributed tables, shard by
//! shard (docs/SCALE-OUT.md, Jobs). The coordinator queues the job as any
//! other (`pq.job_queue`, with `distributed`) and one row per shard in
//! `pq.job_shards`, a reference table that every node reads. Each node's
//! background worker runs batches of the shards whose placement it holds,
//! against the shard's own relation (a plain table there, where FOR UPDATE
//! SKIP LOCKED and the write-back by row address work as on one server):
//! the same claim, transformation and write-back as `batch`, with the
//! shard's progress (counters, cursor over the claim key, failed rows) in
//! the same transaction, which Citus commits on every node at once.
//!
//! A batch first takes the shard's metadata lock in share mode and checks
//! that the placement is still here (`cluster::hold_local_shard`): a shard
//! move waits for the batch, carries its writes over, and the node the
//! shard moved to goes on from the cursor the batch left. A split leaves
//! shard ids that no longer exist ('gone') and new ones, which the
//! coordinator adds to the job ([`settle`]): the pending-row condition
//! makes their batches skip what was done. The coordinator's worker adds
//! the shards' counters up into the job's row each round, and records the
//! job's start and end (and a migration's completion) there.
use crate::{
    journal::events,
    lifecycle::{
        batch::{self, Batch, BatchArgs, TableSql, Work, Worked},
        tracking::{self, Tracked},
    },
    platform::{catalog, clock, cluster, errors::PqResult},
};
use serde_json::json;
use std::collections::HashSet;

/// The states of a shard row with work left.
const LIVE: &str = "('queued', 'running')";

/// True once the job tables know distributed jobs (0.11.0).
fn available() -> bool {
    catalog::pq_column_exists(c"job_queue", c"distributed") && catalog::pq_table_exists(c"job_shards")
}

/// True if job `id` runs shard by shard.
pub fn is_distributed_job(id: i64) -> PqResult<bool> {
    if !available() {
        return Ok(false);
    }
    Ok(catalog::one::<bool>("SELECT distributed FROM pq.job_queue WHERE id = $1", &[id.into()])?.unwrap_or(false))
}

/// The shards a job on `t` covers: every shard of the table, or, for one
/// tenant of a table distributed by its tenant column, that tenant's.
fn shards_for(t: &Tracked, only_tenant: Option<&str>) -> PqResult<Vec<i64>> {
    match (only_tenant, &t.tenant_column, &t.distribution_column) {
        (Some(tenant), Some(tc), Some(dc)) if tc == dc => Ok(cluster::shard_of_value(t.relid, tenant)?.into_iter().collect()),
        _ => cluster::shards(t.relid),
    }
}

/// Adds `shards` to job `id` on the tracked column `t` (`tracked_id`),
/// with the job's definition copied into each row.
fn insert_shards(id: i64, tracked_id: i32, t: &Tracked, only_tenant: Option<&str>, batch_size: i32, work: &Work, shards: &[i64]) -> PqResult<()> {
    let (kind, from_kind) = work.kinds();
    let distribution = t.distribution_column.as_deref().unwrap_or_default();
    let now = clock::transaction_start()?;
    // One statement per shard: Citus sends each to every node at once.
    for shard in shards {
        catalog::run(
            "INSERT INTO pq.job_shards (job_id, shardid, state, updated_at, kind, from_kind, tracked_id, column_name, tenant,
                                        tenant_column, aad_column, distribution_column, batch_size)
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                id.into(),
                (*shard).into(),
                now.into(),
                kind.into(),
                from_kind.into(),
                tracked_id.into(),
                t.column.as_str().into(),
                only_tenant.or(t.tenant.as_deref()).into(),
                t.tenant_column.as_deref().into(),
                t.aad_column.as_deref().into(),
                distribution.into(),
                batch_size.into(),
            ],
        )?;
    }
    Ok(())
}

/// Makes the new job `id` on the distributed table of `t` a job per shard.
/// Call as owner, on the coordinator, in the transaction that queued it.
pub fn queue(id: i64, tracked_id: i32, t: &Tracked, only_tenant: Option<&str>, batch_size: i32, work: &Work) -> PqResult<()> {
    let shards = shards_for(t, only_tenant)?;
    insert_shards(id, tracked_id, t, only_tenant, batch_size, work, &shards)?;
    catalog::write_one::<bool>(
        "UPDATE pq.job_queue SET distributed = true, shards_total = $2, shards_done = 0 WHERE id = $1 RETURNING true",
        &[id.into(), (shards.len() as i32).into()],
    )?;
    Ok(())
}

/// The (job, shard, is a migration) this node should run: live shard rows
/// whose placement is here, oldest job first. Empty without Citus.
pub fn runnable_here() -> PqResult<Vec<(i64, i64, bool)>> {
    if !cluster::created() || !available() {
        return Ok(Vec::new());
    }
    // Read apart: Citus would plan a join of its catalog with a reference
    // table as a distributed query.
    let here: HashSet<i64> = cluster::local_shards()?.into_iter().collect();
    let rows = catalog::rows(
        &format!("SELECT job_id, shardid, kind = 'migrate' FROM pq.job_shards WHERE state IN {LIVE} ORDER BY job_id, shardid"),
        &[],
        |r| Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<i64>(2)?.unwrap_or_default(), r.get::<bool>(3)?.unwrap_or(false))),
    )?;
    Ok(rows.into_iter().filter(|(_, shard, _)| here.contains(shard)).collect())
}

/// The rows that job `id` recorded as failed, by key, on any of its
/// shards: a key includes the distribution column, so it names one row of
/// the table, and a row whose shard was split away is not tried again in
/// the new shard.
fn failed_keys(id: i64) -> PqResult<Vec<String>> {
    catalog::rows("SELECT row_key FROM pq.job_shard_failures WHERE job_id = $1", &[id.into()], |r| {
        Ok(r.get::<String>(1)?.unwrap_or_default())
    })
}

/// A shard row's definition and progress, as a batch reads it.
struct ShardJob {
    state: String,
    cursor: Option<String>,
    work: Work,
    tracked_id: i32,
    column: String,
    tenant: Option<String>,
    tenant_column: Option<String>,
    aad_column: Option<String>,
    distribution_column: String,
    batch_size: i32,
}

/// One batch of job `id` on shard `shardid`, in the caller's transaction
/// (the worker's, as superuser; the shard is touched as its owner), on the
/// node that holds the shard's placement; Idle elsewhere, or when the
/// shard's work is paused, finished or locked by another batch.
pub fn run_batch(id: i64, shardid: i64) -> PqResult<Batch> {
    let Some(relid) = cluster::hold_local_shard(shardid)? else { return Ok(Batch::Idle) };
    let job = catalog::write_row(
        &format!(
            "SELECT state, cursor_key, kind, from_kind, tracked_id, column_name::text, tenant, tenant_column::text,
                    aad_column::text, distribution_column::text, batch_size
               FROM pq.job_shards WHERE job_id = $1 AND shardid = $2 AND state IN {LIVE} FOR UPDATE SKIP LOCKED"
        ),
        &[id.into(), shardid.into()],
        |r| {
            Ok(ShardJob {
                state: r.get::<String>(1)?.unwrap_or_default(),
                cursor: r.get::<String>(2)?,
                work: Work::from_row(&r.get::<String>(3)?.unwrap_or_default(), r.get::<String>(4)?),
                tracked_id: r.get::<i32>(5)?.unwrap_or_default(),
                column: r.get::<String>(6)?.unwrap_or_default(),
                tenant: r.get::<String>(7)?,
                tenant_column: r.get::<String>(8)?,
                aad_column: r.get::<String>(9)?,
                distribution_column: r.get::<String>(10)?.unwrap_or_default(),
                batch_size: r.get::<i32>(11)?.unwrap_or(batch::DEFAULT_BATCH),
            })
        },
    )?;
    let Some(job) = job else { return Ok(Batch::Idle) };
    // The shard is a table Citus hides from catalog reads and keeps from
    // direct writes; this transaction reads and writes it on purpose.
    catalog::run("SET LOCAL citus.override_table_visibility = off; SET LOCAL citus.enable_manual_changes_to_shards = on", &[])?;
    let only_tenant = job.tenant.is_some() && job.tenant_column.is_some();
    let fixed = if job.tenant_column.is_none() { job.tenant.clone() } else { None };
    let t = catalog::as_owner(|| {
        tracking::for_shard(relid, &job.column, fixed, job.tenant_column.clone(), job.aad_column.clone(), &job.distribution_column)
    })?;
    let sql = TableSql::new(&t, only_tenant, &job.work);
    let args = catalog::as_owner(|| BatchArgs::new(&job.work, job.tenant.clone(), failed_keys(id)?, job.cursor.clone()))?;
    let node = cluster::local_group()?;
    let now = clock::transaction_start()?;
    // $1 to $4 of every statement on the shard's row.
    let with = |more: Vec<pgrx::datum::DatumWithOid<'static>>| {
        let mut args: Vec<pgrx::datum::DatumWithOid<'static>> = vec![id.into(), shardid.into(), now.into(), node.into()];
        args.extend(more);
        args
    };
    if job.state == "queued" {
        let total = sql.remaining(&args)?;
        catalog::run(
            "UPDATE pq.job_shards SET state = 'running', started_at = $3, updated_at = $3, node_group = $4, rows_total = $5
              WHERE job_id = $1 AND shardid = $2",
            &with(vec![total.into()]),
        )?;
    }
    let Worked { claimed, done, failures, last } = batch::work_rows(&t, job.tracked_id, &sql, &args, batch::Scope::AfterCursor(job.batch_size), &job.work)?;
    if claimed == 0 {
        // The end of a pass: done, or another pass for rows that were locked.
        if sql.remaining(&args)? == 0 {
            catalog::run(
                "UPDATE pq.job_shards SET state = 'completed', finished_at = $3, updated_at = $3, node_group = $4, cursor_key = NULL
                  WHERE job_id = $1 AND shardid = $2",
                &with(vec![]),
            )?;
            return Ok(Batch::Completed);
        }
        catalog::run(
            "UPDATE pq.job_shards SET cursor_key = NULL, pass = pass + 1, updated_at = $3, node_group = $4
              WHERE job_id = $1 AND shardid = $2",
            &with(vec![]),
        )?;
        return Ok(Batch::Worked(0));
    }
    for (_, row_key, reason) in &failures {
        catalog::run(
            "INSERT INTO pq.job_shard_failures (job_id, shardid, row_key, reason, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            &[id.into(), shardid.into(), row_key.as_str().into(), reason.as_str().into(), now.into()],
        )?;
    }
    let failed = failures.len() as i64;
    let why = job.work.failed_rows(failures.len(), "pq.job_shard_failures");
    catalog::run(
        "UPDATE pq.job_shards SET rows_done = rows_done + $5, rows_failed = rows_failed + $6, cursor_key = $7, updated_at = $3,
                node_group = $4, batch_errors = 0, last_error = CASE WHEN $6 > 0 THEN $8 ELSE last_error END
          WHERE job_id = $1 AND shardid = $2",
        &with(vec![done.into(), failed.into(), last.unwrap_or_default().into(), why.into()]),
    )?;
    Ok(Batch::Worked(claimed))
}

/// Records that a batch of job `id` on shard `shardid` failed with `error`
/// (its own transaction was rolled back); after
/// [`batch::MAX_BATCH_ERRORS`] in a row the shard's work fails, and with it
/// the job.
pub fn record_error(id: i64, shardid: i64, error: &str) -> PqResult<()> {
    let now = clock::transaction_start()?;
    catalog::run(
        &format!(
            "UPDATE pq.job_shards
                SET last_error = $3, updated_at = $4, batch_errors = batch_errors + 1,
                    state = CASE WHEN batch_errors + 1 >= $5 THEN 'failed' ELSE state END,
                    finished_at = CASE WHEN batch_errors + 1 >= $5 THEN $4 END
              WHERE job_id = $1 AND shardid = $2 AND state IN {LIVE}"
        ),
        &[id.into(), shardid.into(), error.into(), now.into(), batch::MAX_BATCH_ERRORS.into()],
    )
}

/// Pauses ('paused'), resumes ('running') or cancels ('cancelled') the
/// shards of job `id` as its row in the queue just was.
pub fn control(id: i64, to: &str) -> PqResult<()> {
    let now = clock::transaction_start()?;
    let query = match to {
        "paused" => format!("UPDATE pq.job_shards SET state = 'paused', updated_at = $2 WHERE job_id = $1 AND state IN {LIVE}"),
        "running" => "UPDATE pq.job_shards SET state = CASE WHEN started_at IS NULL THEN 'queued' ELSE 'running' END, updated_at = $2
                       WHERE job_id = $1 AND state = 'paused'"
            .to_owned(),
        _ => "UPDATE pq.job_shards SET state = 'cancelled', updated_at = $2, finished_at = $2
               WHERE job_id = $1 AND state IN ('queued', 'running', 'paused')"
            .to_owned(),
    };
    catalog::run(&query, &[id.into(), now.into()])
}

/// Queues the shards of job `id` again (`pq.retry_job`), forgetting their
/// failed rows; returns how many were forgotten.
pub fn retry(id: i64) -> PqResult<i64> {
    let forgotten = catalog::one::<i64>("SELECT count(*) FROM pq.job_shard_failures WHERE job_id = $1", &[id.into()])?.unwrap_or(0);
    catalog::run("DELETE FROM pq.job_shard_failures WHERE job_id = $1", &[id.into()])?;
    catalog::run(
        "UPDATE pq.job_shards SET state = CASE WHEN started_at IS NULL THEN 'queued' ELSE 'running' END, cursor_key = NULL,
                pass = pass + 1, batch_errors = 0, rows_failed = 0, last_error = NULL, finished_at = NULL, updated_at = $2
          WHERE job_id = $1 AND state <> 'gone'",
        &[id.into(), clock::transaction_start()?.into()],
    )?;
    Ok(forgotten)
}

/// The shards of a job added up.
#[derive(Default)]
struct Totals {
    shards: i64,
    finished: i64,
    failed: i64,
    started: i64,
    rows_total: i64,
    rows_done: i64,
    rows_failed: i64,
    last_error: Option<String>,
}

fn totals(id: i64) -> PqResult<Totals> {
    Ok(catalog::row(
        "SELECT count(*), count(*) FILTER (WHERE state IN ('completed', 'gone')), count(*) FILTER (WHERE state = 'failed'),
                count(*) FILTER (WHERE started_at IS NOT NULL), coalesce(sum(rows_total), 0)::bigint,
                coalesce(sum(rows_done), 0)::bigint, coalesce(sum(rows_failed), 0)::bigint,
                (array_agg(last_error ORDER BY updated_at DESC) FILTER (WHERE last_error IS NOT NULL))[1]
           FROM pq.job_shards WHERE job_id = $1",
        &[id.into()],
        |r| {
            Ok(Totals {
                shards: r.get::<i64>(1)?.unwrap_or(0),
                finished: r.get::<i64>(2)?.unwrap_or(0),
                failed: r.get::<i64>(3)?.unwrap_or(0),
                started: r.get::<i64>(4)?.unwrap_or(0),
                rows_total: r.get::<i64>(5)?.unwrap_or(0),
                rows_done: r.get::<i64>(6)?.unwrap_or(0),
                rows_failed: r.get::<i64>(7)?.unwrap_or(0),
                last_error: r.get::<String>(8)?,
            })
        },
    )?
    .unwrap_or_default())
}

/// The coordinator's round over the distributed jobs: each job's shards
/// follow the table's (a split's new shards join, vanished ones are
/// 'gone'); the job's row adds the shards' counters up, starts with its
/// first shard and ends with its last (failed if a shard failed); shard
/// rows of jobs that no longer run are cancelled. Call as owner.
pub fn settle(actor: &str) -> PqResult<()> {
    if !cluster::created() || !available() || cluster::is_worker_node()? {
        return Ok(());
    }
    let jobs = catalog::rows(
        "SELECT id, tracked_id, tenant, batch_size, kind, from_kind, state FROM pq.job_queue
          WHERE distributed AND state IN ('queued', 'running') ORDER BY id",
        &[],
        |r| {
            Ok((
                r.get::<i64>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?.unwrap_or_default(),
                r.get::<String>(3)?,
                r.get::<i32>(4)?.unwrap_or_default(),
                Work::from_row(&r.get::<String>(5)?.unwrap_or_default(), r.get::<String>(6)?),
                r.get::<String>(7)?.unwrap_or_default(),
            ))
        },
    )?;
    for (id, tracked_id, only_tenant, batch_size, work, state) in jobs {
        // A table that can no longer be resolved (its key dropped, its
        // shards replicated) does not stop the other jobs: its shards'
        // batches fail with the reason, and the job ends failed below.
        let t = tracking::load(tracked_id).ok();
        if let Some(t) = &t {
            follow_shards(id, tracked_id, t, only_tenant.as_deref(), batch_size, &work)?;
        }
        let sum = totals(id)?;
        let now = clock::transaction_start()?;
        let running = sum.started > 0 || state == "running";
        catalog::run(
            "UPDATE pq.job_queue SET shards_total = $2, shards_done = $3, rows_total = CASE WHEN $4 THEN $5 END, rows_done = $6,
                    rows_failed = $7, last_error = coalesce($8, last_error), updated_at = $9,
                    state = CASE WHEN $4 THEN 'running' ELSE state END, started_at = CASE WHEN $4 THEN coalesce(started_at, $9) END
              WHERE id = $1",
            &[
                id.into(),
                (sum.shards as i32).into(),
                (sum.finished as i32).into(),
                running.into(),
                sum.rows_total.into(),
                sum.rows_done.into(),
                sum.rows_failed.into(),
                sum.last_error.as_deref().into(),
                now.into(),
            ],
        )?;
        let tenant = only_tenant.as_deref().or(t.as_ref().and_then(|t| t.tenant.as_deref()));
        if running && state == "queued" {
            // Rows are counted as each shard starts: the total is in job_completed.
            events::record("job_started", tenant, None, actor, None, json!({ "job": id, "shards": sum.shards }))?;
        }
        if sum.finished + sum.failed < sum.shards {
            continue;
        }
        let end = if sum.failed > 0 { "failed" } else { "completed" };
        catalog::run("UPDATE pq.job_queue SET state = $2, finished_at = $3 WHERE id = $1", &[id.into(), end.into(), now.into()])?;
        if sum.failed > 0 {
            events::record(
                "job_failed",
                tenant,
                None,
                actor,
                sum.last_error.as_deref(),
                json!({ "job": id, "shards_failed": sum.failed }),
            )?;
            continue;
        }
        events::record(
            "job_completed",
            tenant,
            None,
            actor,
            None,
            json!({ "job": id, "rows_done": sum.rows_done, "rows_failed": sum.rows_failed, "shards": sum.shards }),
        )?;
        if matches!(work, Work::Migrate { .. }) {
            // This job saw every row of the column again: failures that
            // earlier migrations of it recorded are superseded.
            let earlier = catalog::rows(
                "SELECT id FROM pq.job_queue WHERE tracked_id = $1 AND kind = 'migrate' AND id < $2
                    AND state IN ('completed', 'failed', 'cancelled')",
                &[tracked_id.into(), id.into()],
                |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
            )?;
            if !earlier.is_empty() {
                catalog::run("DELETE FROM pq.job_shard_failures WHERE job_id = ANY ($1)", &[earlier.into()])?;
            }
            (batch::migrator()?.finished)(tenant, actor)?;
        }
    }
    cancel_orphans()
}

/// Adds the shards a split made to job `id` and marks those it removed
/// 'gone' (their rows now live in the new shards).
fn follow_shards(id: i64, tracked_id: i32, t: &Tracked, only_tenant: Option<&str>, batch_size: i32, work: &Work) -> PqResult<()> {
    let current = shards_for(t, only_tenant)?;
    let known: Vec<i64> =
        catalog::rows("SELECT shardid FROM pq.job_shards WHERE job_id = $1", &[id.into()], |r| Ok(r.get::<i64>(1)?.unwrap_or_default()))?;
    let new: Vec<i64> = current.iter().copied().filter(|s| !known.contains(s)).collect();
    let gone: Vec<i64> = known.into_iter().filter(|s| !current.contains(s)).collect();
    if !new.is_empty() {
        insert_shards(id, tracked_id, t, only_tenant, batch_size, work, &new)?;
    }
    if !gone.is_empty() {
        catalog::run(
            "UPDATE pq.job_shards SET state = 'gone', updated_at = $3 WHERE job_id = $1 AND shardid = ANY ($2) AND state <> 'gone'",
            &[id.into(), gone.into(), clock::transaction_start()?.into()],
        )?;
    }
    Ok(())
}

/// Cancels the live shard rows of jobs that are gone from the queue (their
/// column untracked, their table dropped) or no longer run.
fn cancel_orphans() -> PqResult<()> {
    let live = catalog::rows(
        "SELECT DISTINCT job_id FROM pq.job_shards WHERE state IN ('queued', 'running', 'paused')",
        &[],
        |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
    )?;
    if live.is_empty() {
        return Ok(());
    }
    let running = catalog::rows(
        "SELECT id FROM pq.job_queue WHERE id = ANY ($1) AND state IN ('queued', 'running', 'paused')",
        &[live.clone().into()],
        |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
    )?;
    let orphans: Vec<i64> = live.into_iter().filter(|j| !running.contains(j)).collect();
    if orphans.is_empty() {
        return Ok(());
    }
    catalog::run(
        "UPDATE pq.job_shards SET state = 'cancelled', updated_at = $2, finished_at = $2
          WHERE job_id = ANY ($1) AND state IN ('queued', 'running', 'paused')",
        &[orphans.into(), clock::transaction_start()?.into()],
    )
}
