//! The batches of a job on a local table (not a Citus table's: those are
//! `shard_jobs`), one per call of [`run_batch`] in the caller's
//! transaction: a job on a plain table in place, a range of blocks at a
//! time (`in_place`), every other job in key order
//! (`batch::work_rows`); then the failures, counters and cursor in the
//! job's row, and at the end of a pass the job's completion or its next
//! pass. The worker runs it for every runnable job; `pq.migrate_column_now`
//! in a session.
use crate::{
    journal::events,
    lifecycle::{
        batch::{
            failed_keys, failures_have_relations, migrator, work_rows, Batch, BatchArgs, Scope, TableSql, Work, Worked,
            DEFAULT_BATCH, MAX_BATCH_ERRORS,
        },
        blind_index, in_place, tracking,
    },
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::prelude::*;
use serde_json::json;

/// Where a local job's pass has got to.
enum Cursor {
    /// The key of the last row claimed (batches in key order).
    Key(String),
    /// The next block, and the block the pass ends before (batches done
    /// in place over ranges of blocks: `in_place`).
    Blocks(u32, u32),
}

/// One batch of job `id`, in the caller's transaction (the worker's, as
/// superuser; the tracked table itself is touched as its owner).
pub fn run_batch(id: i64, actor: &str) -> PqResult<Batch> {
    let from_kind = if catalog::pq_column_exists(c"job_queue", c"from_kind") { "from_kind" } else { "NULL::text" };
    // 0.11.0: where a pass over blocks has got to.
    let by_blocks = catalog::pq_column_exists(c"job_queue", c"cursor_block");
    let blocks = if by_blocks { "cursor_block, pass_end_block" } else { "NULL::bigint, NULL::bigint" };
    let job = catalog::write_row(
        &format!(
            "SELECT tracked_id, tenant, batch_size, state, cursor_key, kind, {from_kind}, {blocks} FROM pq.job_queue
              WHERE id = $1 AND state IN ('queued', 'running') FOR UPDATE SKIP LOCKED"
        ),
        &[id.into()],
        |row| {
            let block = |n: usize| -> PqResult<Option<u32>> { Ok(row.get::<i64>(n)?.and_then(|b| u32::try_from(b).ok())) };
            Ok((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?,
                row.get::<i32>(3)?.unwrap_or(DEFAULT_BATCH),
                row.get::<String>(4)?.unwrap_or_default(),
                row.get::<String>(5)?,
                row.get::<String>(6)?.unwrap_or_default(),
                row.get::<String>(7)?,
                block(8)?.zip(block(9)?),
            ))
        },
    )?;
    let Some((tracked_id, only_tenant, batch_size, state, cursor, kind, from_kind, at_block)) = job else { return Ok(Batch::Idle) };
    let work = Work::from_row(&kind, from_kind);
    let t = tracking::load(tracked_id)?;
    if t.distribution_column.is_some() {
        // Its shards are on the nodes, whose workers run it (`shard_jobs`).
        return Err(PqError::Sql {
            code: b"0A000",
            message: "a job on a Citus table runs on the nodes that hold its shards, not in a session".into(),
            hint: Some("queue it with pq.migrate_column or pq.reencrypt; pq.jobs and pq.job_shards show its progress".into()),
        });
    }
    let sql = TableSql::new(&t, only_tenant.is_some(), &work);
    let tenant = only_tenant.clone().or_else(|| t.tenant.clone());
    let in_place = if by_blocks { in_place::plan(&t)? } else { None };
    let args = BatchArgs::new(&work, tenant.clone(), failed_keys(id)?, if in_place.is_some() { None } else { cursor })?;
    if state == "queued" {
        let total = sql.remaining(&args)?;
        catalog::write_one::<bool>(
            "UPDATE pq.job_queue SET state = 'running', started_at = now(), updated_at = now(), rows_total = $2
              WHERE id = $1 RETURNING true",
            &[id.into(), total.into()],
        )?;
        events::record("job_started", only_tenant.as_deref().or(t.tenant.as_deref()), None, actor, None, json!({ "job": id, "rows": total }))?;
    }

    let step = match &in_place {
        // A job queued (or queued again) starts a pass at the first block.
        Some(plan) => {
            let (from, end) = at_block.filter(|_| state != "queued").unwrap_or((0, plan.blocks));
            let job = in_place::Job { t: &t, tracked_id, sql: &sql, args: &args, work: &work, tenant: tenant.as_deref() };
            plan.step(&job, batch_size, from, end)?
                .map(|(worked, next)| (worked, Cursor::Blocks(next, end)))
        }
        None => {
            let worked = work_rows(&t, tracked_id, &sql, &args, Scope::AfterCursor(batch_size), &work)?;
            let last = worked.last.clone().unwrap_or_default();
            (worked.claimed > 0).then_some((worked, Cursor::Key(last)))
        }
    };
    let Some((Worked { claimed, done, failures, .. }, cursor)) = step else {
        // The end of a pass: done, or another pass for rows that were locked.
        let reset = if by_blocks { ", cursor_block = NULL, pass_end_block = NULL" } else { "" };
        if sql.remaining(&args)? == 0 {
            catalog::write_one::<bool>(
                &format!(
                    "UPDATE pq.job_queue SET state = 'completed', finished_at = now(), updated_at = now(), cursor_key = NULL{reset}
                      WHERE id = $1 RETURNING true"
                ),
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
            if matches!(work, Work::Reencrypt) && t.blind.is_some() {
                // The terms moved with the values: old versions that no
                // tracked column uses any more give no terms from now on.
                let tenants = match only_tenant.as_deref().or(t.tenant.as_deref()) {
                    Some(one) => vec![one.to_owned()],
                    None => sql.tenants()?,
                };
                catalog::as_owner(|| blind_index::retire_unused(&tenants, actor))?;
            }
            if matches!(work, Work::Migrate { .. }) {
                // This pass saw every row of the column again: failures that
                // earlier migrations of it recorded are superseded.
                catalog::run(
                    "DELETE FROM pq.job_failures f USING pq.job_queue j
                      WHERE f.job_id = j.id AND j.tracked_id = $1 AND j.kind = 'migrate' AND j.id < $2
                        AND j.state IN ('completed', 'failed', 'cancelled')",
                    &[tracked_id.into(), id.into()],
                )?;
                (migrator()?.finished)(only_tenant.as_deref().or(t.tenant.as_deref()), actor)?;
            }
            return Ok(Batch::Completed);
        }
        catalog::write_one::<bool>(
            &format!("UPDATE pq.job_queue SET cursor_key = NULL{reset}, pass = pass + 1, updated_at = now() WHERE id = $1 RETURNING true"),
            &[id.into()],
        )?;
        return Ok(Batch::Worked(0));
    };

    let failed_count = failures.len();
    if failed_count > 0 {
        let mut rels = Vec::with_capacity(failed_count);
        let mut keys = Vec::with_capacity(failed_count);
        let mut reasons = Vec::with_capacity(failed_count);
        for (at, key, reason) in failures {
            rels.push(pg_sys::Oid::from(at.rel));
            keys.push(key);
            reasons.push(reason);
        }
        if failures_have_relations() {
            catalog::run(
                "INSERT INTO pq.job_failures (job_id, relid, row_key, reason)
                 SELECT $1, r, k, why FROM unnest($2::oid[], $3::text[], $4::text[]) AS f(r, k, why) ON CONFLICT DO NOTHING",
                &[id.into(), rels.into(), keys.into(), reasons.into()],
            )?;
        } else {
            catalog::run(
                "INSERT INTO pq.job_failures (job_id, row_key, reason)
                 SELECT $1, k, why FROM unnest($2::text[], $3::text[]) AS f(k, why) ON CONFLICT DO NOTHING",
                &[id.into(), keys.into(), reasons.into()],
            )?;
        }
    }
    let (key, (next_block, end_block)) = match cursor {
        Cursor::Key(key) => (Some(key), (None, None)),
        Cursor::Blocks(next, end) => (None, (Some(i64::from(next)), Some(i64::from(end)))),
    };
    let blocks = if by_blocks { ", cursor_block = $6, pass_end_block = $7" } else { "" };
    catalog::write_one::<bool>(
        &format!(
            "UPDATE pq.job_queue SET rows_done = rows_done + $2, rows_failed = rows_failed + $3, cursor_key = $4{blocks},
                    updated_at = now(), batch_errors = 0, last_error = CASE WHEN $3 > 0 THEN $5 ELSE last_error END
              WHERE id = $1 RETURNING true"
        ),
        &[
            id.into(),
            done.into(),
            (failed_count as i64).into(),
            key.into(),
            work.failed_rows(failed_count, "pq.job_failures").as_str().into(),
            next_block.into(),
            end_block.into(),
        ],
    )?;
    Ok(Batch::Worked(claimed))
}

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
