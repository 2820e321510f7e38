//! The background worker: started under shared_preload_libraries, connected
//! to `apg_pqcrypto.worker_database` as the bootstrap superuser. Each round
//! it applies the rotation policies (policy.rs) and runs one batch of every
//! runnable re-encryption job (jobs.rs), each in its own transaction; it
//! goes round again at once while jobs have work, and otherwise sleeps
//! `apg_pqcrypto.worker_naptime` seconds. SIGTERM stops it between batches,
//! SIGHUP reloads the settings; the postmaster restarts it 5 s after a
//! crash, and a job resumes at its last committed batch. It never touches
//! PostgreSQL from another thread (it starts none).
use crate::{
    catalog,
    errors::{PqError, PqResult},
    gucs,
    jobs::{self, Batch},
    policy,
};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// How the worker appears in pg_stat_activity.backend_type and in events.
pub const NAME: &str = "apg_pqcrypto worker";

/// Registers the worker; from _PG_init while preloading.
pub fn register() {
    BackgroundWorkerBuilder::new(NAME)
        .set_function("apg_pqcrypto_worker_main")
        .set_library("apg_pqcrypto")
        .set_type(NAME)
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Runs `f` in a transaction of its own: committed if it returns Ok,
/// rolled back if it returns Err or raises (the error is returned as text).
fn in_transaction<R>(f: impl FnOnce() -> PqResult<R>) -> Result<R, String> {
    // SAFETY: the worker's main loop is outside any transaction; this is the
    // documented sequence for starting one in a background worker.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let result = PgTryBuilder::new(AssertUnwindSafe(|| f().map_err(PqError::describe)))
        .catch_others(|e| {
            Err(match &e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r)
                | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => r.message().to_owned(),
            })
        })
        .execute();
    // SAFETY: ends the transaction started above; after an error (caught and
    // flushed by pgrx) the transaction is aborted instead.
    unsafe {
        if result.is_ok() {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::AbortCurrentTransaction();
        }
    }
    result
}

/// One round: policies, then a batch of every runnable job. True if any
/// job did work (then the next round starts at once).
fn round() -> bool {
    let installed = in_transaction(|| {
        Ok(catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'apg_pqcrypto')", &[])?
            .unwrap_or(false))
    });
    if installed != Ok(true) {
        return false;
    }
    if let Err(e) = in_transaction(|| policy::run_due(NAME)) {
        warning!("apg_pqcrypto worker: applying rotation policies failed: {e}");
    }
    let mut worked = false;
    for id in in_transaction(jobs::runnable).unwrap_or_default() {
        if BackgroundWorker::sigterm_received() {
            break;
        }
        match in_transaction(|| jobs::run_batch(id, NAME)) {
            Ok(Batch::Worked) => worked = true,
            Ok(Batch::Completed | Batch::Idle) => {}
            Err(e) => {
                warning!("apg_pqcrypto worker: a batch of job {id} failed: {e}");
                let _ = in_transaction(|| jobs::record_error(id, &e, NAME));
            }
        }
    }
    worked
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn apg_pqcrypto_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = gucs::worker_database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("{NAME} started in database \"{database}\"");
    let mut busy = false;
    loop {
        let nap = if busy { Duration::ZERO } else { gucs::worker_naptime() };
        if !BackgroundWorker::wait_latch(Some(nap)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reload settings.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        busy = round();
    }
    log!("{NAME} stopping");
}
