//! Waking the background worker: it publishes its PGPROC number here when
//! it starts, and a backend that gave it work (a queued job, a session
//! whose expiry comes sooner than the worker's nap) sets its latch now or
//! when the transaction commits. Below every area, so that the areas that
//! give work never call the worker itself.
use crate::platform::{shmem, xact};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};
use std::cell::Cell;
use std::sync::atomic::{AtomicI32, Ordering};

/// The worker's PGPROC number (-1: not running), in shared memory.
// SAFETY: initialised by pg_shmem_init! in init_shared_memory, before use.
static WORKER_PROC: PgAtomic<AtomicI32> = unsafe { PgAtomic::new(c"apg_pqcrypto_worker_proc") };

thread_local! {
    /// This transaction gave the worker work.
    static WAKE_AT_COMMIT: Cell<bool> = const { Cell::new(false) };
}

/// Creates the shared slot and the commit hook; from `_PG_init` while preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(WORKER_PROC = AtomicI32::new(-1));
    xact::at_end(end_of_transaction);
}

/// The worker, once connected: wake me through my latch (`None`: I stop).
pub fn publish_worker(procno: Option<i32>) {
    WORKER_PROC.get().store(procno.unwrap_or(-1), Ordering::Release);
}

/// Asks for the worker to be woken when this transaction commits.
pub fn wake_at_commit() {
    if shmem::preloaded() {
        WAKE_AT_COMMIT.set(true);
    }
}

fn end_of_transaction(committed: bool) {
    if WAKE_AT_COMMIT.replace(false) && committed {
        wake_now();
    }
}

/// Wakes the worker now (it recomputes its nap: a new session's expiry).
pub fn wake_now() {
    if !shmem::preloaded() {
        return;
    }
    let procno = WORKER_PROC.get().load(Ordering::Acquire);
    // SAFETY: procno was published by the running worker and indexes
    // ProcGlobal->allProcs; SetLatch on another process's latch is how
    // PostgreSQL wakes it, and is safe if that process has exited.
    unsafe {
        if procno >= 0 && !pg_sys::ProcGlobal.is_null() {
            let proc = (*pg_sys::ProcGlobal).allProcs.add(procno as usize);
            pg_sys::SetLatch(&raw mut (*proc).procLatch);
        }
    }
}
