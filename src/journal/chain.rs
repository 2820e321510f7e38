//! The hash-chained audit trail's writing end: `pq.audit_log` rows
//! appended by the extension for what a transaction did (never a secret:
//! names, versions, key ids, hashes, counts). Checkpoints and verification
//! are in `audit::checkpoint`. Encodings: `pqcore::audit`, docs/FORMAT.md
//! §11.
//!
//! Writers never wait for each other (since 0.11.0). The chain lock
//! serialises the *chaining*: a writer that gets it without waiting chains
//! the committed rows waiting in `pq.audit_pending`, then its own, and
//! holds it to the end of its transaction; a writer that does not get it
//! (or runs SERIALIZABLE) adds its row to `pq.audit_pending` in its own
//! transaction and wakes the worker when it commits. The worker,
//! `pq.audit_flush()` and every checkpoint chain the committed pending rows
//! in the order they were written. Ids follow the order in which rows were
//! chained: gap-free, one predecessor each; a row committed before another
//! transaction wrote one is chained before it.
use crate::platform::{
    catalog,
    clock::{micros_sql, now_unix_micros, timestamptz},
    errors::{PqError, PqResult},
    latch,
};
use pgrx::prelude::*;
use pqcore::audit::{AuditRow, Hash, HASH_LEN};
use serde_json::Value;
use std::cell::Cell;
use std::ffi::CString;
use std::sync::LazyLock;

/// Pending rows chained per statement by [`drain`].
const DRAIN_BATCH: i64 = 1000;

thread_local! {
    /// This transaction added a row to pending: its later rows go there too,
    /// so that its rows are chained in the order it wrote them.
    static WENT_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// End of a transaction: the next one starts afresh.
pub fn end_of_transaction() {
    WENT_PENDING.set(false);
}

/// A stored 32-byte hash.
pub fn hash_of(bytes: &[u8]) -> PqResult<Hash> {
    bytes.try_into().map_err(|_| PqError::internal("a stored hash has the wrong length", String::new()))
}

/// The audit tables exist (between a new library and ALTER EXTENSION
/// UPDATE to 0.5.0 they do not, and nothing is chained).
pub fn installed() -> bool {
    catalog::pq_table_exists(c"audit_log")
}

/// `pq.audit_pending` exists (0.11.0): writers need not wait.
fn pending_installed() -> bool {
    catalog::pq_table_exists(c"audit_pending")
}

/// The chain's head, (last id, its hash) or (0, zeros) for an empty log,
/// under the latest snapshot (catalog::latest_row). Take the lock first.
fn head() -> PqResult<(i64, Hash)> {
    let head = catalog::latest_row(c"SELECT id, row_hash FROM pq.audit_log ORDER BY id DESC LIMIT 1", &[], |col| {
        let (id, id_null) = col(1);
        let (hash, hash_null) = col(2);
        // SAFETY: the query's columns are bigint and bytea.
        Ok(unsafe { i64::from_datum(id, id_null).zip(Vec::<u8>::from_datum(hash, hash_null)) })
    })?
    .flatten();
    match head {
        Some((id, hash)) => Ok((id, hash_of(&hash)?)),
        None => Ok((0, [0u8; HASH_LEN])),
    }
}

/// Takes the chain lock (waiting for its holder's commit), chains every
/// committed pending row and returns the head: what a checkpoint signs.
/// Call as owner.
pub fn locked_head() -> PqResult<(i64, Hash)> {
    catalog::lock_audit_chain()?;
    let head = head()?;
    if pending_installed() {
        return drain(head).map(|(head, _)| head);
    }
    Ok(head)
}

/// Chains every committed pending row now: `pq.audit_flush()` and the
/// worker. Waits for a holder of the chain lock to commit. Returns how
/// many rows were chained. Call as owner.
pub fn flush() -> PqResult<i64> {
    if !installed() || !pending_installed() {
        return Ok(0);
    }
    catalog::lock_audit_chain()?;
    let (_, chained) = drain(head()?)?;
    Ok(chained)
}

/// The worker's round: chains the committed pending rows if the chain
/// lock is free now (a holder chains them itself, or wakes the worker
/// again). Returns how many rows were chained. Call as owner.
pub fn flush_if_free() -> PqResult<i64> {
    if !pending()? || !catalog::try_lock_audit_chain() {
        return Ok(0);
    }
    let (_, chained) = drain(head()?)?;
    Ok(chained)
}

/// True if rows wait in `pq.audit_pending`. Call as owner.
pub fn pending() -> PqResult<bool> {
    if !installed() || !pending_installed() {
        return Ok(false);
    }
    Ok(catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pq.audit_pending)", &[])?.unwrap_or(false))
}

/// Appends one row to the chain in the caller's transaction (it commits or
/// rolls back with what it records). Call as owner.
pub fn append(event: &str, tenant: Option<&str>, actor: &str, details: &Value) -> PqResult<()> {
    if !installed() {
        return Ok(());
    }
    append_canonical(event, tenant, actor, &canonical(details)?)
}

/// The canonical text of `details` (jsonb's): the row is written with it,
/// and hashing that same text is what a verifier reproduces from
/// `details::text`.
pub fn canonical(details: &Value) -> PqResult<String> {
    Ok(catalog::one::<String>("SELECT $1::jsonb::text", &[pgrx::JsonB(details.clone()).into()])?.unwrap_or_else(|| "{}".into()))
}

/// The longest actor (a role name, or the `user_id` an application passes)
/// a row records.
pub const MAX_ACTOR: usize = 256;

/// As [`append`], with the details already in [`canonical`] form. Chains
/// the row now if the chain lock is free (and keeps it to the end of the
/// transaction), else leaves it in `pq.audit_pending`. Before ALTER
/// EXTENSION UPDATE to 0.11.0 it waits for the lock.
pub fn append_canonical(event: &str, tenant: Option<&str>, actor: &str, details_text: &str) -> PqResult<()> {
    if actor.len() > MAX_ACTOR {
        return Err(PqError::InvalidParameter(format!("a user id may have at most {MAX_ACTOR} bytes")));
    }
    if !installed() {
        return Ok(());
    }
    let ts = now_unix_micros();
    if !pending_installed() {
        catalog::lock_audit_chain()?;
        return chain(head()?, &[Pending { ts, event: event.into(), tenant: tenant.map(Into::into), actor: actor.into(), details: details_text.into() }])
            .map(|_| ());
    }
    // Under SERIALIZABLE a row always waits: chaining it here would mean
    // reading the pending rows (to chain those committed before it first),
    // and that read would tie this transaction to every writer of one in
    // PostgreSQL's serialization checks.
    if !WENT_PENDING.get() && !catalog::serializable() && catalog::try_lock_audit_chain() {
        let head = drain(head()?)?.0;
        let row = Pending { ts, event: event.into(), tenant: tenant.map(Into::into), actor: actor.into(), details: details_text.into() };
        return chain(head, &[row]).map(|_| ());
    }
    WENT_PENDING.set(true);
    catalog::latest_write_rows(
        c"INSERT INTO pq.audit_pending (ts, event, tenant, actor, details) VALUES ($1, $2, $3, $4, $5::jsonb)",
        &[
            (pg_sys::TIMESTAMPTZOID, timestamptz(ts)?.into_datum()),
            (pg_sys::TEXTOID, event.into_datum()),
            (pg_sys::TEXTOID, tenant.into_datum()),
            (pg_sys::TEXTOID, actor.into_datum()),
            (pg_sys::TEXTOID, details_text.into_datum()),
        ],
        |_| Ok(()),
    )?;
    latch::wake_at_commit();
    Ok(())
}

/// A row not yet chained: what its writer recorded, when.
struct Pending {
    ts: i64,
    event: String,
    tenant: Option<String>,
    actor: String,
    details: String,
}

/// Under the chain lock: takes the committed pending rows (and this
/// transaction's own) out of `pq.audit_pending` in the order they were
/// written and chains them after `head`. Returns the new head and how
/// many rows were chained.
fn drain(mut head: (i64, Hash)) -> PqResult<((i64, Hash), i64)> {
    // Made once per backend; the text is the key of its kept plan. It is
    // built from constants and holds no NUL (an empty text would fail to
    // prepare, an error, not a panic).
    static QUERY: LazyLock<CString> = LazyLock::new(|| {
        CString::new(format!(
            "DELETE FROM pq.audit_pending WHERE seq IN (SELECT seq FROM pq.audit_pending ORDER BY seq LIMIT {DRAIN_BATCH})
             RETURNING seq, {}, event, tenant, actor, details::text",
            micros_sql("ts")
        ))
        .unwrap_or_default()
    });
    let query = QUERY.as_c_str();
    let mut chained = 0i64;
    loop {
        let mut rows = catalog::latest_write_rows(query, &[], |col| {
            // SAFETY: the columns are bigint, bigint, text, text, text, text.
            unsafe {
                let get_text = |n: i32| {
                    let (d, null) = col(n);
                    String::from_datum(d, null)
                };
                let (seq, seq_null) = col(1);
                let (ts, ts_null) = col(2);
                Ok((
                    i64::from_datum(seq, seq_null).unwrap_or_default(),
                    Pending {
                        ts: i64::from_datum(ts, ts_null).unwrap_or_default(),
                        event: get_text(3).unwrap_or_default(),
                        tenant: get_text(4),
                        actor: get_text(5).unwrap_or_default(),
                        details: get_text(6).unwrap_or_default(),
                    },
                ))
            }
        })?;
        if rows.is_empty() {
            return Ok((head, chained));
        }
        rows.sort_by_key(|(seq, _)| *seq);
        let n = rows.len() as i64;
        let rows: Vec<Pending> = rows.into_iter().map(|(_, p)| p).collect();
        head = chain(head, &rows)?;
        chained += n;
        if n < DRAIN_BATCH {
            return Ok((head, chained));
        }
    }
}

/// Under the chain lock: writes `rows` after `head`, ids and hashes in
/// order, in one statement. Returns the new head.
fn chain(head: (i64, Hash), rows: &[Pending]) -> PqResult<(i64, Hash)> {
    let (mut id, mut prev) = head;
    let mut ids = Vec::with_capacity(rows.len());
    let mut tss = Vec::with_capacity(rows.len());
    let mut prevs = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for r in rows {
        id += 1;
        let row = AuditRow { id: id as u64, ts_micros: r.ts, event: &r.event, tenant: r.tenant.as_deref(), actor: &r.actor, details: &r.details };
        let hash = row.chain_hash(&prev);
        ids.push(id);
        tss.push(timestamptz(r.ts)?);
        prevs.push(prev.to_vec());
        hashes.push(hash.to_vec());
        prev = hash;
    }
    // A kept plan (catalog::latest_write_rows): the statement reads no
    // table, so the snapshot it runs under does not matter.
    catalog::latest_write_rows(
        c"INSERT INTO pq.audit_log (id, ts, event, tenant, actor, details, prev_hash, row_hash)
          SELECT id, ts, event, tenant, actor, details::jsonb, prev_hash, row_hash
            FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS r (id, ts, event, tenant, actor, details, prev_hash, row_hash)",
        &[
            (pg_sys::INT8ARRAYOID, ids.into_datum()),
            (pg_sys::TIMESTAMPTZARRAYOID, tss.into_datum()),
            (pg_sys::TEXTARRAYOID, rows.iter().map(|r| r.event.as_str()).collect::<Vec<&str>>().into_datum()),
            (pg_sys::TEXTARRAYOID, rows.iter().map(|r| r.tenant.as_deref()).collect::<Vec<Option<&str>>>().into_datum()),
            (pg_sys::TEXTARRAYOID, rows.iter().map(|r| r.actor.as_str()).collect::<Vec<&str>>().into_datum()),
            (pg_sys::TEXTARRAYOID, rows.iter().map(|r| r.details.as_str()).collect::<Vec<&str>>().into_datum()),
            (pg_sys::BYTEAARRAYOID, prevs.into_datum()),
            (pg_sys::BYTEAARRAYOID, hashes.into_datum()),
        ],
        |_| Ok(()),
    )?;
    Ok((id, prev))
}
