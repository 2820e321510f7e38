//! apg_pqcrypto: post-quantum encryption, signatures and per-tenant key
//! management for PostgreSQL. This crate is the glue: it parses SQL
//! arguments, calls the core crate (`crates/core`), and maps errors.
//!
//! The code stands in floors, one folder per area; an area calls only the
//! areas below it (docs/ARCHITECTURE.md draws the plan and follows the main
//! calls through it). From the ground up:
//!
//! - `platform`: PostgreSQL plumbing (errors, settings, SPI under a pinned
//!   search_path, locked memory, log redaction, the end-of-transaction
//!   registry, the worker's latch);
//! - `journal`: the event log, the audit chain's appends, the counters;
//! - `keys`: the cache, the providers, access decisions, the master data
//!   key, tenant key versions, tenants and grants, master key rotation;
//! - `data`: envelopes, signatures, forward-secure sessions;
//! - `lifecycle`: rotation and version states, tracked columns, jobs and
//!   their batches, rotation policies;
//! - `migration`: pgcrypto keys and values, column migrations;
//! - `recovery`: key escrow, recovery requests, key backups;
//! - `audit`: checkpoints and verification, the signed configuration
//!   store, the compliance report;
//! - `scale`: scale-out on Citus (`pq.citus_setup()`);
//! - `worker`: the background worker.
//!
//! A SQL function's Rust is in its area's folder, in the `pq` module (or at
//! the top level for the `pq_*` functions) of the file its doc names.
use pgrx::prelude::*;

mod audit;
mod data;
mod journal;
mod keys;
mod lifecycle;
mod migration;
mod platform;
mod recovery;
mod scale;
mod worker;

/// Rust allocations go to the system allocator, except those made while
/// unwrapping keys, which go to locked, undumpable memory (`platform::secure_mem`).
#[global_allocator]
static ALLOCATOR: platform::secure_mem::Router = platform::secure_mem::Router;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: reads a postmaster global that is set while preloading.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    // Floor by floor, bottom first: the end-of-transaction hooks run in
    // this order.
    platform::init(preloading);
    journal::init(preloading);
    keys::init(preloading);
    data::init(preloading);
    migration::init(preloading);
    audit::init();
    if preloading {
        worker::register();
    }
    // Backends are forked from the postmaster: a child must never reuse the
    // parent's read-ahead random bytes (salts and nonces).
    // SAFETY: registers a plain function; it touches only this thread's pool.
    if unsafe { libc::pthread_atfork(None, None, Some(discard_random_pool)) } == 0 {
        pqcore::rng::fork_handler_installed();
    }
}

extern "C" fn discard_random_pool() {
    pqcore::rng::discard_pool();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("tests.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
