//! apg_pqcrypto: post-quantum encryption, signatures and per-tenant key
//! management for PostgreSQL. This crate is the glue: it parses SQL
//! arguments, calls the core crate (`crates/core`), and maps errors.
//!
//! Where to find a SQL function's Rust: `envelope.rs` (encrypt, decrypt,
//! seal, open, inspect), `sign.rs` (signatures, key pairs), `tenants.rs`
//! (tenants and grants); `keystore.rs` caches keys, `provider.rs` holds the
//! master key, `catalog.rs` reaches the key tables, `gucs.rs` the settings,
//! `errors.rs` the SQLSTATEs.
use pgrx::prelude::*;

mod catalog;
mod envelope;
mod errors;
mod gucs;
mod keystore;
mod provider;
mod sign;
mod tenants;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    catalog::register_callbacks();
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
