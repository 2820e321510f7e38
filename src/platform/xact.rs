//! The end of a transaction, for every area: one PostgreSQL transaction
//! callback that runs, in the order they were registered (from `_PG_init`,
//! floor by floor, bottom first), the hooks the areas register here. So an
//! area below (the key cache, say) never calls an area above (the audit
//! trail's checkpoint lines) to tell it a transaction ended.
//!
//! A hook runs after COMMIT (with `committed`), ABORT or PREPARE, in the
//! backend's own transaction-end callback: it must not raise and must not
//! run SQL. It only drops, flushes or wakes.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

/// A hook: `committed` is true after a commit (not after a PREPARE).
pub type Hook = fn(committed: bool);

thread_local! {
    static HOOKS: RefCell<Vec<Hook>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Adds `hook`, run at the end of every transaction from now on. Call from
/// `_PG_init` (once per process; a forked backend inherits the postmaster's).
pub fn at_end(hook: Hook) {
    if !REGISTERED.replace(true) {
        // SAFETY: registers a plain function that runs the hooks below,
        // none of which raises.
        unsafe { pg_sys::RegisterXactCallback(Some(transaction_event), std::ptr::null_mut()) };
    }
    HOOKS.with_borrow_mut(|h| h.push(hook));
}

#[pg_guard]
unsafe extern "C-unwind" fn transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if !matches!(
        event,
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE
    ) {
        return;
    }
    let committed = event == XACT_EVENT_COMMIT;
    // One borrow per hook, none held while it runs (no allocation either).
    let mut i = 0;
    while let Some(hook) = HOOKS.with_borrow(|h| h.get(i).copied()) {
        hook(committed);
        i += 1;
    }
}
