//! One batch of a re-encryption or migration job, in the caller's
//! transaction (the worker's, or `pq.migrate_column_now`'s). About 700
//! lines: what a job does (`Work`), the statements that touch a tracked
//! table (`TableSql`), the part of a batch that runs them (`work_rows`,
//! which `shard_jobs` shares for the shards of Citus tables) and the one
//! function that runs a local job's batch belong together.
//!
//! A batch is one transaction: it claims up to `batch_size` rows that are
//! not under their tenant's active version, in key order after the job's
//! cursor, with FOR UPDATE SKIP LOCKED (so the application's own writes
//! wait at most one batch, and rows it holds are left for a later pass);
//! re-encrypts them in the server; writes them back with one UPDATE (the
//! table is read and written as its owner, see `TableSql`);
//! records rows that fail (with the reason, never a plaintext); and moves
//! the job's counters and cursor, all in that same transaction. A crash
//! loses at most the batch in flight, which the next run redoes; rows
//! already under the active version are never touched again. When a pass
//! reaches the end of the table, the job completes if no row needs work,
//! and otherwise starts another pass for the rows that were locked.
use crate::{
    journal::{events, latency::{self, Op}},
    keys::{cache::VersionKeys, versions},
    lifecycle::{
        blind_index,
        rotation,
        row_trigger,
        tracking::{self, quote_ident, Tracked},
    },
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::{Envelope, Kid, Kind};
use serde_json::json;
use std::collections::HashMap;
use std::rc::Rc;

/// The batch size of a job queued without one.
pub const DEFAULT_BATCH: i32 = 1000;

/// What a job does to each row it claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Re-encrypt under the tenant's active version (rows not under it).
    Reencrypt,
    /// Decrypt a classical value and encrypt it as a keyed envelope (rows
    /// not under any of the tenant's versions); `from_kind` restricts it
    /// to one classical kind.
    Migrate { from_kind: Option<String> },
}

impl Work {
    /// The work of a job row: its kind and, for a migration, the classical
    /// kind it reads ('any' or NULL: whatever each value is).
    pub fn from_row(kind: &str, from_kind: Option<String>) -> Self {
        if kind == "migrate" {
            Work::Migrate { from_kind: from_kind.filter(|k| k != "any") }
        } else {
            Work::Reencrypt
        }
    }

    /// A job's last_error after `count` rows of a batch failed, recorded in `table`.
    pub fn failed_rows(&self, count: usize, table: &str) -> String {
        let done = match self {
            Work::Reencrypt => "re-encrypted",
            Work::Migrate { .. } => "migrated",
        };
        format!("{count} rows could not be {done} (see {table})")
    }

    /// The job kind and the classical kind it reads, as the queue stores them.
    pub fn kinds(&self) -> (&'static str, Option<&str>) {
        match self {
            Work::Reencrypt => ("reencrypt", None),
            Work::Migrate { from_kind } => ("migrate", Some(from_kind.as_deref().unwrap_or("any"))),
        }
    }
}

/// A claimed row, as a migration sees it: (value, aad, tenant).
pub type Row<'a> = (&'a [u8], &'a [u8], &'a str);

/// What a migration job does with the rows it claims. The migration area
/// (above this one) registers it from `_PG_init`, so that jobs never call
/// up into it.
pub struct Migrator {
    /// The migrated value of each (value, aad, tenant) of a batch, or why
    /// not; `from_kind` restricts it to one classical kind. Call as owner.
    pub migrate: fn(from_kind: Option<&str>, rows: &[Row<'_>]) -> PqResult<Vec<Result<Vec<u8>, String>>>,
    /// A migration job covering `tenant` (every tenant in progress: None)
    /// completed. Call as owner.
    pub finished: fn(tenant: Option<&str>, actor: &str) -> PqResult<()>,
}

thread_local! {
    static MIGRATOR: std::cell::Cell<Option<&'static Migrator>> = const { std::cell::Cell::new(None) };
}

/// Registers what migration jobs do; from `_PG_init`.
pub fn register_migrator(migrator: &'static Migrator) {
    MIGRATOR.set(Some(migrator));
}

pub(super) fn migrator() -> PqResult<&'static Migrator> {
    MIGRATOR.get().ok_or_else(|| PqError::internal("migration jobs are not registered", String::new()))
}

/// What one call of `run_batch` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// This many rows were claimed (transformed or recorded as failed);
    /// none at the end of a pass that left rows others held.
    Worked(i64),
    /// The job finished.
    Completed,
    /// Nothing to do now (paused, cancelled, or locked by another worker).
    Idle,
}

/// The statements of a batch that touch the tracked table. They run as the
/// table's owner, as a security-restricted operation with a safe
/// search_path and row_security off (what PostgreSQL does for maintenance
/// of a user's table): the table's triggers, index expressions, defaults
/// and policies never run with the worker's superuser rights, and a policy
/// that would hide rows from the owner stops the batch instead of letting
/// a job finish with rows it never saw. They read no table of ours: the
/// key ids come in as parameters ($4 tenants, $5 their active kids for a
/// re-encryption; $5 every kid of the tenants for a migration), with $1
/// the failed rows, $2 the tenant and $3 the cursor.
///
/// A row is addressed by `(tableoid, ctid)`: a ctid alone is unique only
/// within one relation, and a partitioned table or an inheritance tree is
/// many relations. Failed rows are remembered by (relation, key) for the
/// same reason (an inheritance tree's key need not be unique across it).
pub(super) struct TableSql<'a> {
    t: &'a Tracked,
    /// "this row is not under its tenant's active version" (table alias `t`)
    /// plus the job's tenant restriction and the failed rows.
    condition: String,
    tenant_expr: String,
}

impl<'a> TableSql<'a> {
    pub(super) fn new(t: &'a Tracked, only_tenant: bool, work: &Work) -> Self {
        let col = quote_ident(&t.column);
        let tenant_expr = match &t.tenant_column {
            Some(tc) => format!("t.{}::text", quote_ident(tc)),
            None => "$2::text".to_owned(),
        };
        let only = if only_tenant { format!(" AND {tenant_expr} = $2") } else { String::new() };
        let pending = match work {
            // A row whose tenant has no active version (shredded) cannot be
            // re-encrypted: it is not pending.
            Work::Reencrypt => format!(
                "array_position($4::text[], {tenant_expr}) IS NOT NULL
                 AND substr(t.{col}, 3, 16) IS DISTINCT FROM ($5::bytea[])[array_position($4::text[], {tenant_expr})]"
            ),
            Work::Migrate { .. } => format!("NOT (substr(t.{col}, 3, 16) = ANY($5::bytea[]))"),
        };
        // A shard's failed rows are known by key alone: its relation
        // changes when the shard moves to another node.
        let failure_id = if t.distribution_column.is_some() { key_text(t) } else { failure_id_sql(&key_text(t)) };
        let condition = format!("t.{col} IS NOT NULL AND {pending} {only} AND NOT ({failure_id} = ANY($1::text[]))");
        TableSql { t, condition, tenant_expr }
    }

    fn as_owner<R>(&self, f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
        catalog::as_role(self.t.owner, true, c"pg_catalog, pg_temp", || {
            catalog::run("SET LOCAL row_security = off", &[])?;
            f()
        })
    }

    /// Rows that still need work, not counting recorded failures.
    pub(super) fn remaining(&self, args: &BatchArgs) -> PqResult<i64> {
        let query = format!("SELECT count(*) FROM {} AS t WHERE {}", self.t.table, self.condition);
        self.as_owner(|| Ok(catalog::one::<i64>(&query, &args.datums())?.unwrap_or(0)))
    }

    /// The tenants the table's rows name (a tracked column with a tenant column).
    pub(super) fn tenants(&self) -> PqResult<Vec<String>> {
        let query = format!("SELECT DISTINCT {} FROM {} AS t", self.tenant_expr, self.t.table);
        self.as_owner(|| catalog::rows(&query, &[], |r| Ok(r.get::<String>(1)?.unwrap_or_default())))
    }

    /// Locks up to `limit` rows that need work, in key order after the
    /// cursor (an ordered index scan that stops at the limit), skipping rows
    /// others hold: (key as text, relation, ctid, value, AAD, tenant).
    fn claim(&self, args: &BatchArgs, limit: i32) -> PqResult<Vec<Claimed>> {
        let after = if args.cursor.is_some() { format!(" AND {}", after_cursor(self.t)) } else { String::new() };
        let query = format!(
            "SELECT {key}, t.tableoid, t.ctid, t.{col}, {aad}, {tenant}
               FROM {table} AS t
              WHERE {condition}{after}
              ORDER BY {order}
              LIMIT {limit}
              FOR UPDATE OF t SKIP LOCKED",
            key = key_text(self.t),
            order = self.t.keys.iter().map(|k| format!("t.{}", quote_ident(&k.0))).collect::<Vec<_>>().join(", "),
            col = quote_ident(&self.t.column),
            aad = self.t.aad_expr,
            tenant = self.tenant_expr,
            table = self.t.table,
            condition = self.condition,
        );
        self.as_owner(|| {
            catalog::write_rows(&query, &args.datums(), |row| {
                Ok(Claimed {
                    key: row.get::<String>(1)?.unwrap_or_default(),
                    at: RowId::new(row.get::<pg_sys::Oid>(2)?, row.get::<pg_sys::ItemPointerData>(3)?),
                    value: row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                    aad: row.get::<Vec<u8>>(5)?.unwrap_or_default(),
                    tenant: row.get::<String>(6)?,
                })
            })
        })
    }

    /// Writes the new values back to the rows claimed, by (relation, ctid):
    /// a ctid cannot change while this transaction holds the row's lock,
    /// and with its relation it names one row of a partitioned table or an
    /// inheritance tree. Refuses (the batch rolls back) unless exactly the
    /// claimed rows were written, each once (RETURNING names the claimed
    /// row each write matched: a row matched twice or never shows).
    /// Returns the rows written.
    /// With a blind index column, `terms` holds each value's term (made
    /// under the active version), written in the same UPDATE.
    fn write_back(&self, tracked_id: i32, rows: Vec<RowId>, values: Vec<Vec<u8>>, terms: Vec<Vec<u8>>) -> PqResult<usize> {
        let also_term = match &self.t.blind {
            Some(b) => format!(", {} = u.term", quote_ident(&b.column)),
            None => String::new(),
        };
        let query = format!(
            "UPDATE {table} AS t SET {col} = u.v{also_term}
               FROM unnest($1::oid[], $2::tid[], $3::bytea[], $4::bytea[]) AS u(rel, tid, v, term)
              WHERE t.tableoid = u.rel AND t.ctid = u.tid
             RETURNING u.rel, u.tid",
            table = self.t.table,
            col = quote_ident(&self.t.column),
        );
        let (rels, tids): (Vec<pg_sys::Oid>, Vec<pg_sys::ItemPointerData>) = rows.iter().map(RowId::datums).unzip();
        let mut written = self.as_owner(|| {
            // A nested loop of TID look-ups, not a scan of the whole table.
            catalog::run("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off", &[])?;
            row_trigger::writing_back(tracked_id, || {
                catalog::write_rows(&query, &[rels.into(), tids.into(), values.into(), terms.into()], |row| {
                    Ok(RowId::new(row.get::<pg_sys::Oid>(1)?, row.get::<pg_sys::ItemPointerData>(2)?))
                })
            })
        })?;
        let mut claimed = rows;
        claimed.sort();
        written.sort();
        if written != claimed {
            return Err(PqError::Sql {
                code: b"55000",
                message: format!(
                    "the write-back of a batch changed {} rows where {} were claimed: nothing of this batch is kept",
                    written.len(),
                    claimed.len()
                ),
                hint: Some("a BEFORE UPDATE trigger on the table may be skipping or moving rows".into()),
            });
        }
        Ok(written.len())
    }
}

/// A row's claim key as SQL text (table alias `t`): the key column as
/// text, or for a key of several columns the text of an array of theirs
/// (`{acme,42}`), which a cursor reads back in [`after_cursor`].
fn key_text(t: &Tracked) -> String {
    match t.keys.as_slice() {
        [(one, _)] => format!("t.{}::text", quote_ident(one)),
        keys => format!("ARRAY[{}]::text", keys.iter().map(|k| format!("t.{}::text", quote_ident(&k.0))).collect::<Vec<_>>().join(", ")),
    }
}

/// "The row's key is after the cursor $3" (table alias `t`), in key order:
/// a row comparison for a key of several columns, which an index on them
/// serves as a range scan.
fn after_cursor(t: &Tracked) -> String {
    match t.keys.as_slice() {
        [(one, ty)] => format!("t.{} > CAST($3 AS {ty})", quote_ident(one)),
        keys => format!(
            "({}) > ({})",
            keys.iter().map(|k| format!("t.{}", quote_ident(&k.0))).collect::<Vec<_>>().join(", "),
            keys.iter().enumerate().map(|(i, (_, ty))| format!("CAST(($3::text[])[{}] AS {ty})", i + 1)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The parameters of a batch's table statements (see [`TableSql`]).
pub(super) struct BatchArgs {
    pub(super) failed: Vec<String>,
    pub(super) tenant: String,
    pub(super) cursor: Option<String>,
    pub(super) active_tenants: Vec<String>,
    pub(super) active_kids: Vec<Vec<u8>>,
}

impl BatchArgs {
    /// The arguments of a batch of `work` over `tenant`'s rows (every
    /// tenant's: None), after `cursor`, skipping the `failed` rows.
    pub(super) fn new(work: &Work, tenant: Option<String>, failed: Vec<String>, cursor: Option<String>) -> PqResult<Self> {
        let (active_tenants, active_kids) = match work {
            Work::Reencrypt => active_kids(tenant.as_deref())?,
            Work::Migrate { .. } => (Vec::new(), versions::known_kids(tenant.as_deref())?),
        };
        Ok(BatchArgs { failed, tenant: tenant.unwrap_or_default(), cursor, active_tenants, active_kids })
    }

    fn datums(&self) -> Vec<pgrx::datum::DatumWithOid<'_>> {
        vec![
            self.failed.clone().into(),
            self.tenant.as_str().into(),
            self.cursor.as_deref().unwrap_or_default().into(),
            self.active_tenants.clone().into(),
            self.active_kids.clone().into(),
        ]
    }
}

/// Where a claimed row is: its relation (a partition or an inheritance
/// child of the tracked table, or the table itself) and its ctid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RowId {
    /// The relation's OID.
    rel: u32,
    /// The ctid's block and offset.
    block: u32,
    offset: u16,
}

impl RowId {
    fn new(rel: Option<pg_sys::Oid>, tid: Option<pg_sys::ItemPointerData>) -> Self {
        let (block, offset) = tid.map(pgrx::itemptr::item_pointer_get_both).unwrap_or((0, 0));
        RowId { rel: rel.unwrap_or(pg_sys::Oid::INVALID).to_u32(), block, offset }
    }

    fn datums(&self) -> (pg_sys::Oid, pg_sys::ItemPointerData) {
        let mut tid = pg_sys::ItemPointerData::default();
        pgrx::itemptr::item_pointer_set_all(&mut tid, self.block, self.offset);
        (pg_sys::Oid::from(self.rel), tid)
    }
}

/// A row claimed by a batch.
struct Claimed {
    key: String,
    at: RowId,
    value: Vec<u8>,
    aad: Vec<u8>,
    tenant: Option<String>,
}

/// True once pq.job_failures records the relation of a failed row (0.8.0;
/// before ALTER EXTENSION UPDATE a failure is known by its key alone).
fn failures_have_relations() -> bool {
    catalog::pq_column_exists(c"job_failures", c"relid")
}

/// The SQL text a failed row is known by in the claim's filter: "relation
/// key" (table alias `t`; `key` is the key as text), or the key alone
/// before 0.8.0.
fn failure_id_sql(key: &str) -> String {
    if failures_have_relations() {
        format!("(t.tableoid::text || ' ' || {key})")
    } else {
        key.to_owned()
    }
}

/// The rows job `id` recorded as failed, as [`failure_id_sql`] spells them
/// (few; they are skipped as a filter, which keeps the claim an ordered
/// index scan that stops at the batch size, where NOT EXISTS would become
/// an anti-join over the whole table).
fn failed_keys(id: i64) -> PqResult<Vec<String>> {
    let id_sql = if failures_have_relations() { "relid::text || ' ' || row_key" } else { "row_key" };
    catalog::rows(&format!("SELECT {id_sql} FROM pq.job_failures WHERE job_id = $1"), &[id.into()], |r| {
        Ok(r.get::<String>(1)?.unwrap_or_default())
    })
}

/// The active key id of every tenant (of `tenant` alone when given).
fn active_kids(tenant: Option<&str>) -> PqResult<(Vec<String>, Vec<Vec<u8>>)> {
    catalog::connect(|client| {
        let rows = client.select(
            "SELECT tenant, kid FROM pq.tenant_key_versions WHERE state = 'active' AND ($1::text IS NULL OR tenant = $1)",
            None,
            &[tenant.into()],
        )?;
        let mut out = (Vec::new(), Vec::new());
        for row in rows {
            out.0.push(row.get::<String>(1)?.unwrap_or_default());
            out.1.push(row.get::<Vec<u8>>(2)?.unwrap_or_default());
        }
        Ok(out)
    })
}

/// The key versions a batch uses, each looked up once per batch (a batch
/// is one transaction: what the first lookup decided holds for the rest).
#[derive(Default)]
struct BatchKeys {
    by_kid: HashMap<Kid, Result<Rc<VersionKeys>, &'static str>>,
    active: HashMap<String, Result<Rc<VersionKeys>, &'static str>>,
}

impl BatchKeys {
    fn by_kid(&mut self, kid: Kid) -> Result<Rc<VersionKeys>, &'static str> {
        self.by_kid
            .entry(kid)
            .or_insert_with(|| {
                versions::version_by_kid(kid).map_err(|e| match e {
                    PqError::UnknownKid => "unknown key id",
                    PqError::KeyState(_) | PqError::KeyStateHint(..) => "its key version is disabled or destroyed",
                    _ => "its key version could not be loaded",
                })
            })
            .clone()
    }

    fn active(&mut self, tenant: &str) -> Result<Rc<VersionKeys>, &'static str> {
        if let Some(found) = self.active.get(tenant) {
            return found.clone();
        }
        let found = versions::active_version(tenant, "re-encrypt").map_err(|_| "the tenant has no usable active version");
        self.active.insert(tenant.to_owned(), found.clone());
        found
    }

    /// Re-encrypts one value for `tenant` (see [`rotation::reencrypt`]), or
    /// says why not (never with the plaintext).
    fn reencrypt(&mut self, value: &[u8], aad: &[u8], tenant: &str) -> Result<Vec<u8>, &'static str> {
        let parsed = Envelope::parse(value).map_err(|_| "not a v1 envelope")?;
        if parsed.kind() == Kind::Signature {
            return Err("a signature envelope, not a ciphertext");
        }
        let old = self.by_kid(parsed.kid())?;
        if old.tenant != tenant {
            return Err("an envelope of another tenant");
        }
        let active = self.active(tenant)?;
        let buffer = |len: usize, fill: &mut dyn FnMut(&mut [u8]) -> PqResult<()>| {
            if len > crate::platform::datum::MAX_PAYLOAD {
                return Err(PqError::TooLarge);
            }
            let mut out = Vec::new();
            out.try_reserve_exact(len).map_err(|_| PqError::OutOfMemory)?;
            out.resize(len, 0);
            fill(&mut out)?;
            Ok(out)
        };
        rotation::reencrypt(parsed, aad, &old, &active, buffer).map_err(|e| match e {
            PqError::Core(pqcore::Error::DecryptionFailed) => "authentication failed (wrong AAD or damaged value)",
            PqError::OutOfMemory | PqError::Core(pqcore::Error::OutOfMemory) => "out of memory",
            PqError::TooLarge => "too large",
            _ => "it could not be re-encrypted",
        })
    }
}

/// What one batch did to the rows it claimed.
pub(super) struct Worked {
    pub(super) claimed: i64,
    /// Rows written back.
    pub(super) done: i64,
    /// Rows that could not be transformed: (where, key, why).
    pub(super) failures: Vec<(RowId, String, String)>,
    /// The last claimed row's key: the job's next cursor.
    pub(super) last: Option<String>,
}

/// Claims up to `batch_size` rows of `sql`'s table that need `work`,
/// transforms them, and writes them back, in the caller's transaction: the
/// part of a batch that touches the table (a local job's or a shard's).
pub(super) fn work_rows(
    t: &Tracked,
    tracked_id: i32,
    sql: &TableSql<'_>,
    args: &BatchArgs,
    batch_size: i32,
    work: &Work,
) -> PqResult<Worked> {
    // A batch's latency: claim, crypto and write-back, under the job's
    // tenant ('' for a column of several tenants).
    let timer = latency::start(Op::JobBatch);
    let rows = sql.claim(args, batch_size)?;
    let claimed = rows.len() as i64;
    let last = rows.last().map(|r| r.key.clone());
    let mut targets = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    let mut failures: Vec<(RowId, String, String)> = Vec::new();
    let results: Vec<Result<Vec<u8>, String>> = match work {
        Work::Migrate { from_kind } if !rows.is_empty() => {
            let inputs: Vec<(&[u8], &[u8], &str)> = rows
                .iter()
                .map(|r| (r.value.as_slice(), r.aad.as_slice(), r.tenant.as_deref().unwrap_or_default()))
                .collect();
            (migrator()?.migrate)(from_kind.as_deref(), &inputs)?
        }
        _ => {
            let mut keys = BatchKeys::default();
            rows.iter()
                .map(|r| keys.reencrypt(&r.value, &r.aad, r.tenant.as_deref().unwrap_or_default()).map_err(str::to_owned))
                .collect()
        }
    };
    let mut terms = Vec::with_capacity(rows.len());
    // A blind index column gets the term of each new value.
    let results = match &t.blind {
        Some(b) => blind_index::with_terms(b, results, rows.iter().map(|r| r.aad.as_slice()))?,
        None => results.into_iter().map(|r| r.map(|new| (new, Vec::new()))).collect(),
    };
    for (row, result) in rows.into_iter().zip(results) {
        match result {
            Ok((new, term)) => {
                targets.push(row.at);
                values.push(new);
                terms.push(term);
            }
            Err(reason) => failures.push((row.at, row.key, reason)),
        }
    }
    let written = if targets.is_empty() { 0 } else { sql.write_back(tracked_id, targets, values, terms)? };
    let done = written as i64;
    if claimed > 0 {
        latency::finish(Op::JobBatch, &args.tenant, timer);
    }
    if done + failures.len() as i64 != claimed {
        return Err(PqError::Sql {
            code: b"55000",
            message: "the write-back of a batch changed fewer rows than it re-encrypted".into(),
            hint: Some("a BEFORE UPDATE trigger on the table may be skipping rows".into()),
        });
    }
    Ok(Worked { claimed, done, failures, last })
}

/// One batch of job `id`, in the caller's transaction (the worker's, as
/// superuser; the tracked table itself is touched as its owner).
pub fn run_batch(id: i64, actor: &str) -> PqResult<Batch> {
    let from_kind = if catalog::pq_column_exists(c"job_queue", c"from_kind") { "from_kind" } else { "NULL::text" };
    let job = catalog::write_row(
        &format!(
            "SELECT tracked_id, tenant, batch_size, state, cursor_key, kind, {from_kind} FROM pq.job_queue
              WHERE id = $1 AND state IN ('queued', 'running') FOR UPDATE SKIP LOCKED"
        ),
        &[id.into()],
        |row| {
            Ok((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?,
                row.get::<i32>(3)?.unwrap_or(DEFAULT_BATCH),
                row.get::<String>(4)?.unwrap_or_default(),
                row.get::<String>(5)?,
                row.get::<String>(6)?.unwrap_or_default(),
                row.get::<String>(7)?,
            ))
        },
    )?;
    let Some((tracked_id, only_tenant, batch_size, state, cursor, kind, from_kind)) = job else { return Ok(Batch::Idle) };
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
    let args = BatchArgs::new(&work, tenant, failed_keys(id)?, cursor)?;
    if state == "queued" {
        let total = sql.remaining(&args)?;
        catalog::write_one::<bool>(
            "UPDATE pq.job_queue SET state = 'running', started_at = now(), updated_at = now(), rows_total = $2
              WHERE id = $1 RETURNING true",
            &[id.into(), total.into()],
        )?;
        events::record("job_started", only_tenant.as_deref().or(t.tenant.as_deref()), None, actor, None, json!({ "job": id, "rows": total }))?;
    }

    let Worked { claimed, done, failures, last } = work_rows(&t, tracked_id, &sql, &args, batch_size, &work)?;

    if claimed == 0 {
        // The end of a pass: done, or another pass for rows that were locked.
        if sql.remaining(&args)? == 0 {
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
            "UPDATE pq.job_queue SET cursor_key = NULL, pass = pass + 1, updated_at = now() WHERE id = $1 RETURNING true",
            &[id.into()],
        )?;
        return Ok(Batch::Worked(0));
    }

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
    let last = last.unwrap_or_default();
    catalog::write_one::<bool>(
        "UPDATE pq.job_queue SET rows_done = rows_done + $2, rows_failed = rows_failed + $3, cursor_key = $4,
                updated_at = now(), batch_errors = 0, last_error = CASE WHEN $3 > 0 THEN $5 ELSE last_error END
          WHERE id = $1 RETURNING true",
        &[
            id.into(),
            done.into(),
            (failed_count as i64).into(),
            last.as_str().into(),
            work.failed_rows(failed_count, "pq.job_failures").as_str().into(),
        ],
    )?;
    Ok(Batch::Worked(claimed))
}

/// After this many failed batches in a row, a job fails.
pub(super) const MAX_BATCH_ERRORS: i32 = 3;

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
