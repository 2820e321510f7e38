//! The background worker: started under shared_preload_libraries, connected
//! to `apg_pqcrypto.worker_database` as the bootstrap superuser. Each round
//! it chains the audit rows left pending (`journal::chain`; writers wake it
//! when they commit one), applies the rotation policies (`lifecycle::policy`) and runs one batch of every
//! runnable job (`lifecycle::batch`), each in its own transaction; it
//! goes round again at once while jobs have work, and otherwise sleeps
//! `apg_pqcrypto.worker_naptime` seconds. SIGTERM stops it between batches,
//! SIGHUP reloads the settings; the postmaster restarts it 5 s after a
//! crash, and a job resumes at its last committed batch. It never touches
//! PostgreSQL from another thread (it starts none).
//!
//! The top floor: it may call every area (docs/ARCHITECTURE.md).
use crate::{
    audit::checkpoint,
    data::sessions,
    journal::{chain, monitor},
    lifecycle::{batch::Batch, jobs, local_jobs, policy, shard_jobs},
    platform::{catalog, cluster, errors::PqResult, gucs, latch},
};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// How the worker appears in pg_stat_activity.backend_type and in events.
pub const NAME: &str = "apg_pqcrypto worker";

/// Registers the worker; from _PG_init while preloading (its latch's
/// shared slot is `platform::latch`).
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

/// The longest the worker waits for a lock in any statement: a lock held
/// elsewhere delays a round by this much at most, never stalls the worker.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

/// Why a transaction of the worker failed.
#[derive(Debug, PartialEq, Eq)]
struct Failed {
    message: String,
    /// Nothing is wrong with the work itself: try again later. A lock it
    /// needed was held past [`LOCK_TIMEOUT`] (55P03), a deadlock or
    /// serialization failure (40P01, 40001), or on Citus another node was
    /// out of reach or restarting (class 08, 57P01–57P03).
    retry_later: bool,
}

/// True for the errors of [`Failed::retry_later`].
fn transient(code: pgrx::PgSqlErrorCode) -> bool {
    use pgrx::PgSqlErrorCode::*;
    matches!(
        code,
        ERRCODE_LOCK_NOT_AVAILABLE
            | ERRCODE_T_R_DEADLOCK_DETECTED
            | ERRCODE_T_R_SERIALIZATION_FAILURE
            | ERRCODE_CONNECTION_EXCEPTION
            | ERRCODE_CONNECTION_FAILURE
            | ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
            | ERRCODE_SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION
            | ERRCODE_ADMIN_SHUTDOWN
            | ERRCODE_CRASH_SHUTDOWN
            | ERRCODE_CANNOT_CONNECT_NOW
    )
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs `f` in a transaction of its own, under the pinned search_path and
/// the worker's lock timeout: committed if it returns Ok, rolled back if it
/// returns Err or raises. The worker runs as the bootstrap superuser in a
/// database whose owner may have set its search_path (`ALTER DATABASE …
/// SET`): no statement of the worker is parsed under that path.
fn in_transaction<R>(f: impl FnOnce() -> PqResult<R>) -> Result<R, Failed> {
    // SAFETY: the worker's main loop is outside any transaction; this is the
    // documented sequence for starting one in a background worker.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        // READ COMMITTED whatever default_transaction_isolation says (a
        // database owner may set it): every statement of the worker takes
        // a new snapshot, which a shard batch relies on (its placement
        // check must see a shard move that committed while it waited for
        // the shard's lock). What SET TRANSACTION ISOLATION LEVEL does,
        // before the transaction's first snapshot.
        pg_sys::XactIsoLevel = pg_sys::XACT_READ_COMMITTED as i32;
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let pinned = || {
        catalog::pinned(|| {
            catalog::run(LOCK_TIMEOUT, &[])?;
            f()
        })
    };
    let result = PgTryBuilder::new(AssertUnwindSafe(|| {
        pinned().map_err(|e| Failed { message: e.describe(), retry_later: false })
    }))
    .catch_others(|e| {
        Err(match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => Failed {
                message: r.message().to_owned(),
                retry_later: transient(r.sql_error_code()),
            },
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
    sessions::sweep();
    let installed = in_transaction(|| {
        Ok(catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'apg_pqcrypto')", &[])?
            .unwrap_or(false))
    });
    if !matches!(installed, Ok(true)) {
        return false;
    }
    if let Err(e) = in_transaction(|| catalog::as_owner(chain::flush_if_free)) {
        warning!("apg_pqcrypto worker: chaining the pending audit rows failed: {e}");
    }
    if let Err(e) = in_transaction(|| catalog::as_owner(|| monitor::flush(NAME))) {
        warning!("apg_pqcrypto worker: flushing the counters failed: {e}");
    }
    // On a Citus worker node the key and job tables are the coordinator's
    // reference tables: its worker alone rotates, checkpoints and runs
    // the jobs of its own tables (docs/SCALE-OUT.md); here only this
    // node's own chain, counters and key checks, and the shards of
    // distributed tables' jobs that this node holds.
    if in_transaction(cluster::is_worker_node).unwrap_or(false) {
        verify_keys_if_due();
        return run_shard_jobs();
    }
    if let Err(e) = in_transaction(|| policy::run_due(NAME)) {
        warning!("apg_pqcrypto worker: applying rotation policies failed: {e}");
    }
    if let Some(interval) = gucs::audit_checkpoint_interval() {
        if let Err(e) = in_transaction(|| catalog::as_owner(|| checkpoint::checkpoint_if_due(interval))) {
            warning!("apg_pqcrypto worker: the audit checkpoint failed: {e}");
        }
    }
    warn_if_escrow_stale();
    verify_keys_if_due();
    let mut worked = false;
    for (id, migration) in in_transaction(jobs::runnable).unwrap_or_default() {
        worked |= run_job(&format!("job {id}"), migration, || local_jobs::run_batch(id, NAME), |e| local_jobs::record_error(id, e, NAME));
    }
    // The jobs of Citus distributed tables: their counters and ends here,
    // their batches on the nodes that hold the shards (this one too, if
    // it holds some).
    if let Err(e) = in_transaction(|| catalog::as_owner(|| shard_jobs::settle(NAME))) {
        warning!("apg_pqcrypto worker: adding up the shards of distributed jobs failed: {e}");
    }
    run_shard_jobs() || worked
}

/// Batch after batch of one job (`batch`: a batch, in its own transaction;
/// `record_error`: a failed batch's error) for up to a second, then on to
/// the next job and the policies. A migration pauses
/// migration_batch_delay between its batches. True if a batch did work.
fn run_job(
    what: &str,
    migration: bool,
    batch: impl Fn() -> PqResult<Batch>,
    record_error: impl Fn(&str) -> PqResult<()>,
) -> bool {
    let mut worked = false;
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while !BackgroundWorker::sigterm_received() && std::time::Instant::now() < until {
        match in_transaction(&batch) {
            Ok(Batch::Worked(_)) => {
                worked = true;
                let delay = gucs::migration_batch_delay();
                if migration && !delay.is_zero() && !BackgroundWorker::wait_latch(Some(delay)) {
                    break;
                }
            }
            Ok(Batch::Completed | Batch::Idle) => break,
            Err(e) if e.retry_later => {
                // Not the job's fault (a lock held elsewhere, a node out of
                // reach): the next round tries again, without counting a
                // failure.
                warning!("apg_pqcrypto worker: {what} waits for a lock or another node, and will try again: {e}");
                break;
            }
            Err(e) => {
                warning!("apg_pqcrypto worker: a batch of {what} failed: {e}");
                let _ = in_transaction(|| record_error(&e.message));
                break;
            }
        }
    }
    worked
}

/// Batches of the shards of distributed tables' jobs whose placements this
/// node holds (`lifecycle::shard_jobs`). True if a batch did work.
fn run_shard_jobs() -> bool {
    let mut worked = false;
    let shards = in_transaction(shard_jobs::runnable_here).unwrap_or_else(|e| {
        warning!("apg_pqcrypto worker: listing the shards of distributed jobs failed: {e}");
        Vec::new()
    });
    for (id, shard, migration) in shards {
        worked |= run_job(
            &format!("job {id} on shard {shard}"),
            migration,
            || shard_jobs::run_batch(id, shard),
            |e| shard_jobs::record_error(id, shard, e),
        );
    }
    worked
}

/// Checks every stored key version (pq.verify_keys) when the worker starts
/// and then every apg_pqcrypto.verify_keys_interval; logs a WARNING per
/// version that fails and a LOG line with the counts.
fn verify_keys_if_due() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let Some(interval) = gucs::verify_keys_interval() else { return };
    if LAST.get().is_some_and(|at| at.elapsed() < interval) {
        return;
    }
    LAST.set(Some(std::time::Instant::now()));
    match in_transaction(|| catalog::as_owner(|| crate::keys::verify::verify_stored(None))) {
        Ok(checks) => {
            let failed: Vec<_> = checks.iter().filter(|c| c.problem.is_some()).collect();
            for c in &failed {
                warning!(
                    "apg_pqcrypto worker: key version {} of tenant \"{}\" ({}) failed verification: {}",
                    c.version,
                    c.tenant,
                    c.state,
                    c.problem.as_deref().unwrap_or_default()
                );
            }
            log!("{NAME} verified {} key versions: {} failed", checks.len(), failed.len());
        }
        Err(e) => warning!("apg_pqcrypto worker: verifying the stored keys failed: {e}"),
    }
}

/// Warns in the server log while the key escrow is stale (once per active
/// master key: again after the next rotation).
fn warn_if_escrow_stale() {
    thread_local! {
        static WARNED_FOR: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    }
    let state = in_transaction(|| {
        catalog::as_owner(|| {
            let stale = crate::keys::master_keys::escrow_stale()?;
            let active = catalog::one::<Vec<u8>>("SELECT id FROM pq.master_keys WHERE state = 'active'", &[])?;
            Ok((stale, active))
        })
    });
    if let Ok((stale, active)) = state {
        let first = WARNED_FOR.with_borrow_mut(|w| {
            let first = stale && *w != active;
            *w = if stale { active } else { None };
            first
        });
        if first {
            warning!("apg_pqcrypto worker: {}", crate::keys::master_keys::ESCROW_STALE_WARNING);
        }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn apg_pqcrypto_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = gucs::worker_database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // SAFETY: MyProc is this process's own PGPROC once connected.
    latch::publish_worker(Some(unsafe { (*pg_sys::MyProc).pgprocno }));
    log!("{NAME} started in database \"{database}\"");
    let mut busy = false;
    loop {
        // Wake for the next session expiry too, so its key is wiped on time.
        let nap = if busy { Duration::ZERO } else { gucs::worker_naptime().min(sessions::until_next_expiry()) };
        if !BackgroundWorker::wait_latch(Some(nap)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reload settings.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            log!("{NAME} reloaded its settings (naptime {} s)", gucs::worker_naptime().as_secs());
        }
        busy = round();
    }
    latch::publish_worker(None);
    log!("{NAME} stopping");
    // SIGTERM arrives between batches (each is its own transaction, so
    // nothing is half done). Exit code 1 asks the postmaster to start the
    // worker again after the restart time: pg_terminate_backend restarts
    // it; at shutdown the postmaster starts nothing.
    // SAFETY: the standard exit of a background worker, outside any transaction.
    unsafe { pg_sys::proc_exit(1) };
}
