//! The values: keyed and sealed envelopes, batches and raw-key functions
//! (`envelope`), signatures (`sign`), forward-secure sessions (`sessions`).
//!
//! May call: platform, journal, keys.
pub mod envelope;
pub mod sessions;
pub mod sign;

/// While preloading, the forward-secure sessions' shared memory; from `_PG_init`.
pub fn init(preloading: bool) {
    if preloading {
        sessions::init_shared_memory();
    }
}
