//! The values: keyed and sealed envelopes, batches and raw-key functions
//! (`envelope`), signatures (`sign`), forward-secure sessions (`sessions`),
//! blind index terms for equality search (`blind`), the suites served
//! (`algorithms`).
//!
//! May call: platform, journal, keys.
pub mod algorithms;
pub mod blind;
pub mod envelope;
pub mod sessions;
pub mod sign;

/// While preloading, the forward-secure sessions' shared memory; from `_PG_init`.
pub fn init(preloading: bool) {
    if preloading {
        sessions::init_shared_memory();
    }
}
