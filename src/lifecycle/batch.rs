//! What a batch of a re-encryption or migration job does to a tracked
//! table, in the caller's transaction: what a job does (`Work`), the
//! statements that touch the table (`TableSql`), and the part of a batch
//! that runs them (`work_rows`), which local jobs (`local_jobs`, and
//! `in_place` for a range it cannot do in place) and the shards of Citus
//! tables (`shard_jobs`) share.
//!
//! A batch claims the rows of its scope that are not under their
//! tenant's active version (up to `batch_size` in key order after the
//! job's cursor, or those of a range of blocks) with FOR UPDATE SKIP
//! LOCKED, so the application's own writes wait at most one batch and
//! rows it holds are left for a later pass; re-encrypts them in the
//! server; writes them back with one UPDATE (the table is read and written
//! as its owner, see `TableSql`); and returns the rows that failed (with
//! the reason, never a plaintext), for the caller to record with the
//! job's counters and cursor in the same transaction. A crash loses at
//! most the batch in flight, which the next run redoes; rows already under
//! the active version are never touched again.
use crate::{
    journal::latency::{self, Op},
    keys::{cache::VersionKeys, versions},
    lifecycle::{
        blind_index,
        rotation,
        row_trigger,
        tracking::{quote_ident, Tracked},
    },
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::{Envelope, Kid, Kind};
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
    /// The migration of one value at a time, for a range done in place
    /// (`in_place`). Call as owner.
    pub one_by_one: fn(from_kind: Option<&str>) -> PqResult<Box<dyn MigrateValue>>,
}

/// Migrates one value at a time inside an in-place UPDATE: the value as a
/// keyed envelope of `tenant`, or an error (pgcrypto's own ERROR raises)
/// that sends the range the careful way, which tries every key and
/// records why a value cannot be migrated. Call as owner.
pub trait MigrateValue {
    fn migrate(&mut self, value: &[u8], aad: &[u8], tenant: &str) -> PqResult<Vec<u8>>;
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

    /// Locks the rows of `scope` that need work, skipping rows others
    /// hold: (key as text, relation, ctid, value, AAD, tenant).
    fn claim(&self, args: &BatchArgs, scope: Scope) -> PqResult<Vec<Claimed>> {
        let mut datums = args.datums();
        let (range, order) = match scope {
            // An ordered index scan that stops at the limit.
            Scope::AfterCursor(limit) => (
                if args.cursor.is_some() { format!(" AND {}", after_cursor(self.t)) } else { String::new() },
                format!(
                    " ORDER BY {} LIMIT {limit}",
                    self.t.keys.iter().map(|k| format!("t.{}", quote_ident(&k.0))).collect::<Vec<_>>().join(", ")
                ),
            ),
            // A TID range scan of those blocks.
            Scope::Blocks(from, to) => {
                datums.push(block_start(from).into());
                datums.push(block_start(to).into());
                (" AND t.ctid >= $6 AND t.ctid < $7".to_owned(), String::new())
            }
        };
        let query = format!(
            "SELECT {key}, t.tableoid, t.ctid, t.{col}, {aad}, {tenant}
               FROM {table} AS t
              WHERE {condition}{range}{order}
              FOR UPDATE OF t SKIP LOCKED",
            key = key_text(self.t),
            col = quote_ident(&self.t.column),
            aad = self.t.aad_expr,
            tenant = self.tenant_expr,
            table = self.t.table,
            condition = self.condition,
        );
        self.as_owner(|| {
            catalog::write_rows(&query, &datums, |row| {
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

impl TableSql<'_> {
    /// Re-encrypts every row of blocks `from..to` that needs it with one
    /// UPDATE (a TID range scan), each value by `function` (the extension's
    /// `pq_job_rewrite`, schema-qualified) inside the statement: nothing is
    /// claimed first or copied out and back. Waits for rows others hold
    /// (the caller bounds that with a lock timeout). Returns the rows written.
    pub(super) fn rewrite(&self, tracked_id: i32, args: &BatchArgs, function: &str, from: u32, to: u32) -> PqResult<usize> {
        let col = quote_ident(&self.t.column);
        let query = format!(
            "UPDATE {table} AS t SET {col} = {function}(t.{col}::bytea, ({aad})::bytea, {tenant})
              WHERE t.ctid >= $6 AND t.ctid < $7 AND {condition}",
            table = self.t.table,
            aad = self.t.aad_expr,
            tenant = self.tenant_expr,
            condition = self.condition,
        );
        let mut datums = args.datums();
        datums.push(block_start(from).into());
        datums.push(block_start(to).into());
        self.as_owner(|| row_trigger::writing_back(tracked_id, || catalog::write_count(&query, &datums)))
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

/// Which rows a batch claims.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scope {
    /// Up to this many, in key order after the job's cursor.
    AfterCursor(i32),
    /// Those of blocks `from..to` of a plain table (`in_place`).
    Blocks(u32, u32),
}

/// The first tid of block `block`: `ctid >= block_start(a) AND ctid <
/// block_start(b)` is a TID range scan of blocks a..b.
pub(super) fn block_start(block: u32) -> pg_sys::ItemPointerData {
    let mut tid = pg_sys::ItemPointerData::default();
    pgrx::itemptr::item_pointer_set_all(&mut tid, block, 0);
    tid
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

    pub(super) fn datums(&self) -> Vec<pgrx::datum::DatumWithOid<'_>> {
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
    pub(super) rel: u32,
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
pub(super) fn failures_have_relations() -> bool {
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
pub(super) fn failed_keys(id: i64) -> PqResult<Vec<String>> {
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
pub(super) struct BatchKeys {
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
    pub(super) fn reencrypt(&mut self, value: &[u8], aad: &[u8], tenant: &str) -> Result<Vec<u8>, &'static str> {
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
    scope: Scope,
    work: &Work,
) -> PqResult<Worked> {
    // A batch's latency: claim, crypto and write-back, under the job's
    // tenant ('' for a column of several tenants).
    let timer = latency::start(Op::JobBatch);
    let rows = sql.claim(args, scope)?;
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

/// After this many failed batches in a row, a job fails.
pub(super) const MAX_BATCH_ERRORS: i32 = 3;
