//! Citus (distributed PostgreSQL), seen from below: whether it is loaded
//! and which relations are shards of the extension's tables. Nothing here
//! runs a query or needs Citus to be installed; without it every answer is
//! "no". What needs Citus's catalogs (this node's group, Citus tables) is
//! in `cluster`.
//!
//! - **Nested reads.** A function of ours that Citus pushes down into a
//!   shard task (a worker evaluating `pq_decrypt` over its shard) reads the
//!   key tables, which `pq.citus_setup()` made reference tables. Citus
//!   refuses any query on a Citus table inside a shard task unless
//!   `citus.allow_nested_distributed_execution` is on; `catalog` turns it
//!   on inside its own pinned scope only (never for a caller's statement),
//!   and Citus then reads the reference table's placement on this node
//!   (local execution: every node holds one).
//! - **Shards of key tables.** A reference table's rows live in a shard
//!   relation named `<table>_<shard id>` on every node; its triggers fire
//!   there, and the key cache must treat a change to the shard as a change
//!   to the table.
use pgrx::pg_sys;
use std::cell::Cell;

/// The Citus setting that allows our reads inside a shard task.
pub const NESTED_SETTING: &std::ffi::CStr = c"citus.allow_nested_distributed_execution";

thread_local! {
    /// Citus is loaded in this process (it defines its settings when
    /// preloaded; it cannot be unloaded, so a true answer is kept).
    static LOADED: Cell<bool> = const { Cell::new(false) };
}

/// True if the Citus library is loaded in this backend (it must be
/// preloaded, so this is the same for the server's lifetime).
pub fn loaded() -> bool {
    if LOADED.get() {
        return true;
    }
    // SAFETY: a lookup of a setting by name; missing_ok, so no error.
    let found = unsafe { !pg_sys::GetConfigOption(NESTED_SETTING.as_ptr(), true, false).is_null() };
    if found {
        LOADED.set(true);
    }
    found
}

/// If `relname` is the shard of one of `tables` (`<table>_<digits>`),
/// that table's name.
pub fn shard_of<'a>(relname: &str, tables: &[&'a std::ffi::CStr]) -> Option<&'a std::ffi::CStr> {
    let (base, id) = relname.rsplit_once('_')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tables.iter().copied().find(|t| t.to_bytes() == base.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn shard_names_map_to_their_table() {
        let tables = [c"tenants", c"tenant_grants"];
        assert_eq!(shard_of("tenants_102009", &tables), Some(c"tenants"));
        assert_eq!(shard_of("tenant_grants_7", &tables), Some(c"tenant_grants"));
        assert_eq!(shard_of("tenants", &tables), None);
        assert_eq!(shard_of("tenants_", &tables), None);
        assert_eq!(shard_of("tenants_12a", &tables), None);
        assert_eq!(shard_of("other_12", &tables), None);
    }
}
