//! The hash-chained audit trail's writing end: `pq.audit_log` rows
//! appended by the extension in the transaction that does what they record
//! (never a secret: names, versions, key ids, hashes, counts), serialised
//! by the chain lock. Checkpoints and verification are in
//! `audit::checkpoint`. Encodings: `pqcore::audit`, docs/FORMAT.md §11.
use crate::platform::{
    catalog,
    clock::{now_unix_micros, timestamptz},
    errors::{PqError, PqResult},
};
use pgrx::prelude::*;
use pqcore::audit::{AuditRow, Hash, HASH_LEN};
use serde_json::Value;

/// A stored 32-byte hash.
pub fn hash_of(bytes: &[u8]) -> PqResult<Hash> {
    bytes.try_into().map_err(|_| PqError::internal("a stored hash has the wrong length", String::new()))
}

/// The audit tables exist (between a new library and ALTER EXTENSION
/// UPDATE to 0.5.0 they do not, and nothing is chained).
pub fn installed() -> bool {
    catalog::pq_table_exists(c"audit_log")
}

/// Takes the chain lock and reads the head: (last id, its hash), or (0,
/// zeros) for an empty log, under the latest snapshot (catalog::latest_row).
pub fn locked_head() -> PqResult<(i64, Hash)> {
    catalog::lock_audit_chain()?;
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

/// Appends one row to the chain in the caller's transaction (it commits or
/// rolls back with what it records). Call as owner. Takes the chain lock
/// until the end of the transaction.
pub fn append(event: &str, tenant: Option<&str>, actor: &str, details: &Value) -> PqResult<()> {
    if !installed() {
        return Ok(());
    }
    append_canonical(event, tenant, actor, &canonical(details)?)
}

/// The canonical text of `details` (jsonb's): the row is written with it,
/// and hashing that same text is what a verifier reproduces from
/// `details::text`. Needs no lock: make it before [`append_canonical`].
pub fn canonical(details: &Value) -> PqResult<String> {
    Ok(catalog::one::<String>("SELECT $1::jsonb::text", &[pgrx::JsonB(details.clone()).into()])?.unwrap_or_else(|| "{}".into()))
}

/// As [`append`], with the details already in [`canonical`] form.
pub fn append_canonical(event: &str, tenant: Option<&str>, actor: &str, details_text: &str) -> PqResult<()> {
    if !installed() {
        return Ok(());
    }
    let (prev_id, prev_hash) = locked_head()?;
    let ts = now_unix_micros();
    let row = AuditRow { id: (prev_id + 1) as u64, ts_micros: ts, event, tenant, actor, details: details_text };
    let hash = row.chain_hash(&prev_hash);
    catalog::write_one::<bool>(
        "INSERT INTO pq.audit_log (id, ts, event, tenant, actor, details, prev_hash, row_hash)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING true",
        &[
            (prev_id + 1).into(),
            timestamptz(ts)?.into(),
            event.into(),
            tenant.into(),
            actor.into(),
            details_text.into(),
            prev_hash.as_slice().into(),
            hash.as_slice().into(),
        ],
    )?;
    Ok(())
}
