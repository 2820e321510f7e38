//! Keys, from the bottom up: the per-backend cache of unwrapped keys and
//! access decisions and what invalidates it (`cache`); calls to the master
//! key providers (`provider`); who may use and see a tenant (`access`); the
//! master data key and the one-time recovery keys (`master`); tenant key
//! versions, loaded, unwrapped, created, backed up and restored
//! (`versions`); the other secrets under the master key, classical keys
//! and the audit key (`secrets`); tenants and grants (`tenants`); master
//! key rotation and status (`master_keys`); every stored version checked
//! end to end (`verify`).
//!
//! May call: platform, journal.
pub mod access;
pub mod cache;
pub mod master;
pub mod master_keys;
pub mod provider;
pub mod secrets;
pub mod tenants;
pub mod verify;
pub mod versions;

/// The cache's invalidation callbacks and end-of-transaction hook and,
/// while preloading, the shared key generation and provider status; from
/// `_PG_init`.
pub fn init(preloading: bool) {
    cache::register_callbacks();
    if preloading {
        cache::init_shared_memory();
        provider::init_shared_memory();
    }
}
