//! Leaving pgcrypto: where each tenant's migration stands (`state`),
//! classical keys and values (`classical`), column migrations, their
//! status and trigger (`column`), in-session progress (`progress`).
//!
//! May call: platform, journal, keys, data, lifecycle.
pub mod classical;
pub mod column;
pub mod progress;
pub mod state;

/// What migration jobs do (for `lifecycle::jobs`), the in-session
/// progress's end-of-transaction hook and, while preloading, its shared
/// memory; from `_PG_init`.
pub fn init(preloading: bool) {
    crate::platform::xact::at_end(|_| progress::finish());
    crate::lifecycle::batch::register_migrator(&column::MIGRATOR);
    if preloading {
        progress::init_shared_memory();
    }
}
