//! Progress of migrations run in a session (`pq.migrate_column_now`),
//! which other sessions cannot see in pq.jobs before the caller commits:
//! like pg_stat_progress_*, each such backend keeps its counters in a
//! shared-memory slot (when the library is preloaded), and
//! `pq.migration_progress` shows them beside the worker's jobs.
use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::pg_shmem_init;

/// Migrations in progress in sessions at once (more are not shown).
const SLOTS: usize = 16;

#[derive(Copy, Clone, Default)]
struct Slot {
    pid: i32,
    job: i64,
    relid: u32,
    done: i64,
    failed: i64,
    total: i64,
    updated: i64,
}

#[derive(Copy, Clone, Default)]
pub struct Slots([Slot; SLOTS]);

// SAFETY: plain integers, no pointers.
unsafe impl PGRXSharedMemory for Slots {}

// SAFETY: a named shared-memory lock, initialised once by pg_shmem_init! while preloading.
static PROGRESS: PgLwLock<Slots> = unsafe { PgLwLock::new(c"apg_pqcrypto_migration_progress") };

/// From _PG_init while preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(PROGRESS);
}

thread_local! {
    /// True while this backend holds a slot.
    static HOLDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn pid() -> i32 {
    // SAFETY: this backend's own pid, set at start.
    unsafe { pg_sys::MyProcPid }
}

/// Publishes this backend's progress on job `job`.
pub fn report(job: i64, relid: pg_sys::Oid, done: i64, failed: i64, total: i64) {
    if !crate::platform::shmem::preloaded() {
        return;
    }
    let me = pid();
    // SAFETY: a clock read.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let mut slots = PROGRESS.exclusive();
    let index = slots.0.iter().position(|s| s.pid == me).or_else(|| slots.0.iter().position(|s| s.pid == 0));
    if let Some(i) = index {
        slots.0[i] = Slot { pid: me, job, relid: relid.to_u32(), done, failed, total, updated: now };
        HOLDS.with(|h| h.set(true));
    }
}

/// Frees this backend's slot, if it holds one: when its migration ends,
/// and at every transaction end (an ERROR ends a migration too).
pub fn finish() {
    if !HOLDS.with(|h| h.replace(false)) {
        return;
    }
    let me = pid();
    for slot in PROGRESS.exclusive().0.iter_mut().filter(|s| s.pid == me) {
        *slot = Slot::default();
    }
}

/// (pid, job, table, done, failed, total, updated) of every slot in use.
type Row = (i32, i64, pg_sys::Oid, i64, i64, i64, pgrx::datum::TimestampWithTimeZone);

fn rows() -> Vec<Row> {
    if !crate::platform::shmem::preloaded() {
        return Vec::new();
    }
    PROGRESS
        .share()
        .0
        .iter()
        .filter(|s| s.pid != 0)
        .filter_map(|s| {
            let at = pgrx::datum::TimestampWithTimeZone::try_from(s.updated).ok()?;
            Some((s.pid, s.job, pg_sys::Oid::from(s.relid), s.done, s.failed, s.total, at))
        })
        .collect()
}

#[pg_schema]
pub mod pq {
    use super::*;

    /// The shared-memory slots behind pq.migration_progress.
    #[pg_extern(volatile, parallel_restricted)]
    pub fn migration_sessions() -> TableIterator<
        'static,
        (
            name!(pid, i32),
            name!(job, i64),
            name!(table_name, pg_sys::Oid),
            name!(rows_done, i64),
            name!(rows_failed, i64),
            name!(rows_total, i64),
            name!(updated_at, pgrx::datum::TimestampWithTimeZone),
        ),
    > {
        TableIterator::new(rows())
    }
}
