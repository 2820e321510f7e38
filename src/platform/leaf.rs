//! Two PostgreSQL functions the per-row paths call on every value, declared
//! here without pgrx's guard. pgrx wraps every `pg_sys` function in a
//! setjmp-based guard that turns an `ereport` into a Rust panic; these two
//! only read a backend global and can never raise, so the guard (a
//! `sigsetjmp` and a thread check per call, together about one per cent of a
//! `pq_decrypt`) buys nothing. Nothing else belongs here: a function that
//! can raise, allocate or take a lock must go through `pg_sys`.
use pgrx::pg_sys::{Oid, TimestampTz};

extern "C" {
    // miscinit.c: `return CurrentUserId;` (after an Assert).
    #[link_name = "GetUserId"]
    fn get_user_id() -> Oid;
    // xact.c: `return stmtStartTimestamp;`
    #[link_name = "GetCurrentStatementStartTimestamp"]
    fn get_current_statement_start_timestamp() -> TimestampTz;
}

/// The current user (`GetUserId()`).
#[inline]
pub fn user_id() -> Oid {
    // SAFETY: reads a backend global; never raises; main thread only, like
    // every caller of the per-row paths.
    unsafe { get_user_id() }
}

/// The current statement's start time (`GetCurrentStatementStartTimestamp()`).
#[inline]
pub fn statement_start() -> TimestampTz {
    // SAFETY: reads a backend global; never raises.
    unsafe { get_current_statement_start_timestamp() }
}
