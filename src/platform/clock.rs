//! Time as the audit encodings count it (Unix microseconds, FORMAT.md §11)
//! and as PostgreSQL stores it (microseconds since 2000-01-01).
use crate::platform::errors::{PqError, PqResult};
use pgrx::prelude::*;

/// PostgreSQL's epoch (2000-01-01) in Unix microseconds.
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Now, in Unix microseconds (the encodings' clock).
pub fn now_unix_micros() -> i64 {
    // SAFETY: a clock read; never raises.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    now + PG_EPOCH_UNIX_MICROS
}

/// The transaction's start (SQL's `now()`), in Unix microseconds.
pub fn transaction_start_unix_micros() -> i64 {
    // SAFETY: reads a backend global set at transaction start.
    let start = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    start + PG_EPOCH_UNIX_MICROS
}

/// The transaction's start (SQL's `now()`) as a timestamptz argument: for
/// statements that may not call now() themselves (Citus takes only
/// immutable expressions in `ON CONFLICT DO UPDATE` on a reference table).
pub fn transaction_start() -> PqResult<pgrx::datum::TimestampWithTimeZone> {
    timestamptz(transaction_start_unix_micros())
}

/// A Unix-microsecond time as a timestamptz argument.
pub fn timestamptz(unix_micros: i64) -> PqResult<pgrx::datum::TimestampWithTimeZone> {
    unix_micros
        .checked_sub(PG_EPOCH_UNIX_MICROS)
        .and_then(|pg| pgrx::datum::TimestampWithTimeZone::try_from(pg).ok())
        .ok_or_else(|| PqError::InvalidParameter("timestamp out of range".into()))
}

/// A timestamptz argument in Unix microseconds (finite, and at most
/// i64::MAX microseconds after 1970: PostgreSQL's last years are beyond).
pub fn unix_micros(ts: pgrx::datum::TimestampWithTimeZone) -> PqResult<i64> {
    if !ts.is_finite() {
        return Err(PqError::InvalidParameter("the timestamp must be finite".into()));
    }
    ts.into_inner()
        .checked_add(PG_EPOCH_UNIX_MICROS)
        .ok_or_else(|| PqError::InvalidParameter("the timestamp is beyond what a record holds (year 294247)".into()))
}

/// SQL that reads a timestamptz column as Unix microseconds, exactly.
pub fn micros_sql(column: &str) -> String {
    format!("(extract(epoch FROM {column}) * 1000000)::bigint")
}
