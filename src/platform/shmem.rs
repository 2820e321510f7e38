//! Whether this process has the library's shared memory: only when
//! `shared_preload_libraries` loaded it (then the background worker,
//! forward-secure sessions, the shared counters and the key generation
//! counter exist). Set in `_PG_init` while preloading.
use std::sync::atomic::{AtomicBool, Ordering};

static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Records that the library is being preloaded; from `_PG_init`.
pub fn mark_preloaded() {
    PRELOADED.store(true, Ordering::Relaxed);
}

/// True when the library was loaded by shared_preload_libraries.
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}
