//! The floor everything stands on: PostgreSQL plumbing that knows nothing of
//! tenants or keys.
//!
//! - `errors`: the error type and its SQLSTATEs; `gucs`: the settings;
//!   `args`: regclass and jsonb arguments that bad input cannot make fail
//!   internally;
//!   `datum`: results built in place; `secure_mem`: locked, undumpable
//!   memory for secrets; `log_redaction`: the server log's redaction.
//! - `catalog`: SPI to the extension's tables under a pinned search_path,
//!   as the extension's owner; `roles`: who administers keys; `clock`: time
//!   in the encodings' units.
//! - `citus`: whether Citus is loaded, and the shards it made of our
//!   tables; `cluster`: Citus's catalogs (this node's group, Citus tables).
//! - `xact`: the end-of-transaction registry the areas hook into; `shmem`:
//!   whether the library's shared memory exists; `latch`: waking the
//!   background worker; `leaf`: two never-raising PostgreSQL calls of the
//!   per-row paths, without pgrx's guard.
//!
//! May call: nothing above it (pgrx, crates/core and crates/providers only).
pub mod args;
pub mod catalog;
pub mod citus;
pub mod cluster;
pub mod clock;
pub mod datum;
pub mod errors;
pub mod gucs;
pub mod latch;
pub mod leaf;
pub mod log_redaction;
pub mod roles;
pub mod secure_mem;
pub mod shmem;
pub mod xact;

/// Settings, log redaction and the end-of-transaction registry, and while
/// preloading the worker's latch; from `_PG_init`, before every other area.
pub fn init(preloading: bool) {
    gucs::init(preloading);
    xact::at_end(|_| catalog::end_of_transaction());
    log_redaction::install();
    if preloading {
        shmem::mark_preloaded();
        latch::init_shared_memory();
    }
}
