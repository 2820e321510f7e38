//! Keys: the master key providers (`provider`), the master data key and
//! the tenant key versions as they are stored, unwrapped and cached
//! (`keystore`, `cache`), who may use and see a tenant (`access`), tenants
//! and grants (`tenants`), and master key rotation (`master_keys`).
//!
//! May call: platform, journal.
pub mod access;
pub mod cache;
pub mod keystore;
pub mod master_keys;
pub mod provider;
pub mod tenants;

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
