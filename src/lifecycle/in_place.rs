//! Job batches done in place (0.11.0): the batches of a local
//! re-encryption or migration job over a plain table go through it range
//! of blocks by range of blocks, and do each range with one UPDATE (a TID
//! range scan) that calls `pq_job_rewrite` on every value needing it:
//! re-encrypted under its tenant's active version, or a classical value
//! decrypted by pgcrypto and encrypted as a keyed envelope. Nothing is
//! claimed first, copied out of the table or sent back in: the statement
//! does what a plain `UPDATE … SET c = pq_encrypt(…, pq_decrypt(c))` does,
//! a range at a time, each range in the job's own transaction with its
//! counters and cursor.
//!
//! The UPDATE runs in a subtransaction and waits at most [`LOCK_WAIT`] for
//! a row the application holds. If a value cannot be done in place (its
//! version disabled, a damaged value, pgcrypto refusing the first
//! candidate key), a row was held longer, a row changed under the
//! statement or a trigger skipped one, the subtransaction is rolled back
//! and the same range is done the careful way (`batch::work_rows`: rows
//! claimed with FOR UPDATE SKIP LOCKED, every key tried, failures recorded
//! with their reasons), so a job's outcome is the same either way.
//!
//! Used for a column without a blind index column, on a plain table
//! without inheritance children, row security or rules (a DO INSTEAD rule
//! would turn the UPDATE into something else, and the job would see a
//! range with nothing to do), whose owner may call `pq_job_rewrite`;
//! every other job runs in key order (`local_jobs`, `batch`).
use crate::{
    journal::latency::{self, Op},
    lifecycle::{
        batch::{migrator, work_rows, BatchArgs, BatchKeys, MigrateValue, Scope, TableSql, Work, Worked},
        tracking::Tracked,
    },
    platform::{catalog, errors::{OrRaise, PqError, PqResult}},
};
use pgrx::prelude::*;
use std::cell::RefCell;

/// The longest an in-place UPDATE waits for a lock (a row the application
/// holds, or the table's lock) before the range is done the careful way.
const LOCK_WAIT: &std::ffi::CStr = c"100ms";

/// How a job's table is gone through in place.
pub(super) struct Plan {
    /// `pq_job_rewrite`, schema-qualified.
    function: String,
    /// The table's size in blocks now: where a pass that starts now ends.
    pub(super) blocks: u32,
    /// Rows per block, from the table's statistics.
    rows_per_block: Option<f64>,
}

/// How a job goes through `t` in place, or None if it cannot
/// (see the module's documentation).
pub(super) fn plan(t: &Tracked) -> PqResult<Option<Plan>> {
    if t.blind.is_some() || t.distribution_column.is_some() {
        return Ok(None);
    }
    let found = catalog::row(
        "SELECT c.relkind OPERATOR(pg_catalog.=) 'r' AND NOT c.relhassubclass AND NOT c.relrowsecurity
                AND NOT c.relhasrules AND p.oid IS NOT NULL
                AND pg_catalog.has_schema_privilege($2, n.oid, 'USAGE')
                AND pg_catalog.has_function_privilege($2, p.oid, 'EXECUTE'),
                pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.pq_job_rewrite',
                pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::pg_catalog.int8,
                CASE WHEN c.relpages OPERATOR(pg_catalog.>) 0 AND c.reltuples OPERATOR(pg_catalog.>) 0
                     THEN c.reltuples::pg_catalog.float8 OPERATOR(pg_catalog./) c.relpages END
           FROM pg_catalog.pg_class c, pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
           LEFT JOIN pg_catalog.pg_proc p ON p.pronamespace OPERATOR(pg_catalog.=) n.oid
                  AND p.proname OPERATOR(pg_catalog.=) 'pq_job_rewrite'
                  AND p.proargtypes OPERATOR(pg_catalog.=) '17 17 25'::pg_catalog.oidvector
          WHERE c.oid OPERATOR(pg_catalog.=) $1 AND e.extname OPERATOR(pg_catalog.=) 'apg_pqcrypto'",
        &[t.relid.into(), t.owner.into()],
        |row| {
            Ok((
                row.get::<bool>(1)?.unwrap_or(false),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<i64>(3)?.unwrap_or(0),
                row.get::<f64>(4)?,
            ))
        },
    )?;
    Ok(match found {
        Some((true, function, blocks, rows_per_block)) => {
            Some(Plan { function, blocks: u32::try_from(blocks).unwrap_or(u32::MAX), rows_per_block })
        }
        _ => None,
    })
}

/// The job a pass belongs to, as its ranges need it.
pub(super) struct Job<'a> {
    pub(super) t: &'a Tracked,
    pub(super) tracked_id: i32,
    pub(super) sql: &'a TableSql<'a>,
    pub(super) args: &'a BatchArgs,
    pub(super) work: &'a Work,
    /// The one tenant the job covers, if it covers one.
    pub(super) tenant: Option<&'a str>,
}

impl Plan {
    /// Blocks in a range of about `batch_size` rows.
    fn blocks_per_range(&self, batch_size: i32) -> u32 {
        // 64 rows a block without statistics: 40-byte values.
        let per_block = self.rows_per_block.filter(|r| *r >= 1.0).unwrap_or(64.0);
        ((f64::from(batch_size.max(1)) / per_block).ceil() as u32).max(1)
    }

    /// One batch of `job`'s pass over blocks `from..end`: the first range
    /// with work in it (ranges without go by in the same transaction). The
    /// rows done and the block the next batch starts at; None if nothing in
    /// the rest of the pass needed work (its end).
    pub(super) fn step(&self, job: &Job<'_>, batch_size: i32, from: u32, end: u32) -> PqResult<Option<(Worked, u32)>> {
        let size = self.blocks_per_range(batch_size);
        let mut from = from;
        while from < end {
            let to = end.min(from.saturating_add(size));
            let worked = self.range(job, from, to)?;
            from = to;
            if worked.claimed > 0 {
                return Ok(Some((worked, from)));
            }
        }
        Ok(None)
    }

    /// Does the rows of blocks `from..to` that need it: in place, or the
    /// careful way if that fails (see the module's documentation).
    fn range(&self, job: &Job<'_>, from: u32, to: u32) -> PqResult<Worked> {
        let timer = latency::start(Op::JobBatch);
        let in_place = catalog::attempt(|| {
            match catalog::with_settings(&[(c"lock_timeout", LOCK_WAIT)], || self.rewrite(job, from, to)) {
                Ok(done) => done,
                // As a Rust panic, which the subtransaction catches and rolls
                // back (`raise` would jump past it to the worker's top).
                Err(e) => pgrx::error!("{}", e.describe()),
            }
        });
        match in_place {
            Ok(done) => {
                if done > 0 {
                    latency::finish(Op::JobBatch, &job.args.tenant, timer);
                }
                let done = done as i64;
                Ok(Worked { claimed: done, done, failures: Vec::new(), last: None })
            }
            Err(refused) => {
                // Said once per range: a job that slows down says why (the
                // class of error only; a trigger's message may quote a value).
                // A row held past the wait (skipped, and tried again in a later
                // pass: it recurs while it is held) or changed under the
                // statement (as often as the application writes): said at
                // DEBUG1. What a value or a trigger refused: at LOG.
                let code = refused.code();
                let done = if *job.work == Work::Reencrypt { "re-encrypted" } else { "migrated" };
                let said = format!("apg_pqcrypto: blocks {from}..{to} of {} are {done} row by row ({code})", job.t.table);
                if ["55P03", "40P01", "40001"].contains(&code.as_str()) {
                    debug1!("{said}");
                } else {
                    log!("{said}");
                }
                work_rows(job.t, job.tracked_id, job.sql, job.args, Scope::Blocks(from, to), job.work)
            }
        }
    }

    /// The in-place UPDATE of blocks `from..to`, each value done by
    /// `pq_job_rewrite` under this batch's [`Rewrite`]. Refuses (so the
    /// caller rolls it back) unless every value done was written.
    fn rewrite(&self, job: &Job<'_>, from: u32, to: u32) -> PqResult<usize> {
        let batch = Rewrite::enter(job.work, job.tenant)?;
        let written = job.sql.rewrite(job.tracked_id, job.args, &self.function, from, to)?;
        let values = batch.values();
        if values != written {
            // A row changed under the statement (looked at again, or no
            // longer in the range), or a BEFORE UPDATE trigger skipped a row
            // (the careful way then says so).
            return Err(PqError::Sql {
                code: b"40001",
                message: format!("an in-place batch changed {values} values and wrote {written} rows"),
                hint: None,
            });
        }
        Ok(written)
    }
}

/// What `pq_job_rewrite` does to each value.
enum Each {
    Reencrypt(BatchKeys),
    Migrate(Box<dyn MigrateValue>),
}

/// The batch `pq_job_rewrite` serves, while its UPDATE runs.
struct Rewrite {
    each: Each,
    /// The one tenant the job covers, if it covers one.
    tenant: Option<String>,
    /// The role the job's own key lookups are made for (the worker, or
    /// the caller of `pq.migrate_column_now`), whoever runs the UPDATE.
    caller: pg_sys::Oid,
    /// Values re-encrypted.
    values: usize,
}

thread_local! {
    static ACTIVE: RefCell<Option<Rewrite>> = const { RefCell::new(None) };
}

/// The batch in force from [`Rewrite::enter`] until this drops (also when
/// the UPDATE raises).
struct Entered(Option<Rewrite>);

impl Rewrite {
    fn enter(work: &Work, tenant: Option<&str>) -> PqResult<Entered> {
        let each = match work {
            Work::Reencrypt => Each::Reencrypt(BatchKeys::default()),
            Work::Migrate { from_kind } => Each::Migrate(catalog::as_owner(|| (migrator()?.one_by_one)(from_kind.as_deref()))?),
        };
        let batch = Rewrite { each, tenant: tenant.map(str::to_owned), caller: catalog::caller(), values: 0 };
        Ok(Entered(ACTIVE.replace(Some(batch))))
    }
}

impl Entered {
    fn values(&self) -> usize {
        ACTIVE.with_borrow(|active| active.as_ref().map_or(0, |b| b.values))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        ACTIVE.set(self.0.take());
    }
}

/// One value of the in-place batch running in this backend: `value`
/// re-encrypted under `tenant`'s active version with the same AAD. Refused
/// outside such a batch, and for a tenant the job does not cover; a value
/// that cannot be re-encrypted (never with its plaintext) stops the batch's
/// UPDATE, and the range is done the careful way.
fn rewrite_value(value: &[u8], aad: &[u8], tenant: &str) -> PqResult<Vec<u8>> {
    ACTIVE.with_borrow_mut(|active| {
        let Some(batch) = active.as_mut() else {
            return Err(PqError::Sql {
                code: b"42501",
                message: "pq_job_rewrite serves the re-encryption and migration jobs' own statements only".into(),
                hint: Some("re-encrypt a value with pq.rewrap(envelope, aad)".into()),
            });
        };
        if batch.tenant.as_deref().is_some_and(|only| only != tenant) {
            return Err(PqError::Sql { code: b"42501", message: "not a tenant of the running job".into(), hint: None });
        }
        let caller = batch.caller;
        let new = catalog::acting_for(caller, || match &mut batch.each {
            Each::Reencrypt(keys) => keys.reencrypt(value, aad, tenant).map_err(|why| PqError::Sql {
                code: b"55000",
                message: format!("a value cannot be re-encrypted in place: {why}"),
                hint: None,
            }),
            Each::Migrate(each) => catalog::as_owner(|| each.migrate(value, aad, tenant)),
        })?;
        batch.values += 1;
        Ok(new)
    })
}

/// The job engine's re-encryption or migration of one value inside an
/// in-place batch's UPDATE (`lifecycle::in_place`); refuses (42501)
/// anywhere else.
#[pg_extern(volatile, parallel_unsafe)]
fn pq_job_rewrite(value: Option<&[u8]>, aad: Option<&[u8]>, tenant: Option<&str>) -> Vec<u8> {
    rewrite_value(value.unwrap_or_default(), aad.unwrap_or_default(), tenant.unwrap_or_default()).or_raise()
}
