//! apg_pqcrypto: post-quantum encryption, signatures and per-tenant key
//! management for PostgreSQL. This crate is the glue: it parses SQL
//! arguments, calls the core crate (`crates/core`), and maps errors.
//!
//! Where to find a SQL function's Rust: `envelope.rs` (encrypt, decrypt,
//! unseal, seal, open, inspect), `sign.rs` (signatures, key pairs),
//! `tenants.rs` (tenants and grants), `lifecycle.rs` (rotation, version
//! states, rewrap), `master_keys.rs` (master key rotation between
//! providers, provider status), `tracking.rs` (tracked columns,
//! key usage), `jobs.rs` (re-encryption jobs), `policy.rs` (rotation
//! policies), `classical.rs` (pgcrypto keys and values: register, classify,
//! decrypt_any, dual-mode writes), `migration.rs` (migrations off pgcrypto,
//! their status and trigger), `progress.rs` (in-session migration progress), `escrow.rs` (key escrow:
//! custodians, splits, recovery requests), `backup.rs` (disaster-recovery
//! key backups and restores); `worker.rs` is the background worker and `events.rs` the
//! lifecycle event log. Beneath them: `access.rs` decides who
//! may use and see a tenant, `keystore.rs` loads and unwraps keys,
//! `cache.rs` keeps them per backend, `secure_mem.rs` locks them in memory,
//! `provider.rs` calls the master key providers (crates/providers), `catalog.rs` reaches the key
//! tables, `datum.rs` builds results in place, `log_redaction.rs` keeps
//! arguments out of the server log, `gucs.rs` the settings, `errors.rs`
//! the SQLSTATEs.
use pgrx::prelude::*;

mod audit;
mod data;
mod journal;
mod keys;
mod lifecycle;
mod migration;
mod platform;
mod recovery;
mod worker;

/// Rust allocations go to the system allocator, except those made while
/// unwrapping keys, which go to locked, undumpable memory (secure_mem.rs).
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
