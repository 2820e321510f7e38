//! What the row triggers of tracked tables (`blind_index`, `enforcement`)
//! share: the tracked column a trigger stands for, read once per
//! transaction and table, the write-back of a batch (`batch`), which they
//! leave alone, and how they read a row's value and tenant.
use crate::{
    lifecycle::{blind_column, tracking::{self, Tracked}},
    platform::{catalog, errors::PqResult},
};
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// The tracked column whose batch is writing back values and terms.
    static WRITING_BACK: Cell<Option<i32>> = const { Cell::new(None) };
}

/// Runs a batch's write-back of tracked column `id`: its rows come with
/// their terms made under the active version, and the row triggers leave
/// them (the blind index trigger would otherwise decrypt each value again,
/// as the table's owner, who need not be granted the tenant; enforcement
/// does not apply to the extension's own jobs).
pub fn writing_back<R>(id: i32, f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
    struct Reset(Option<i32>);
    impl Drop for Reset {
        fn drop(&mut self) {
            WRITING_BACK.set(self.0);
        }
    }
    let _reset = Reset(WRITING_BACK.replace(Some(id)));
    f()
}

/// True while a batch writes back tracked column `id` (see [`writing_back`]).
pub fn writing_back_now(id: i32) -> bool {
    WRITING_BACK.get() == Some(id)
}

/// What [`cached_for_trigger`] finds: the tracked column's id and definition.
pub type Found = Option<(i32, Rc<Tracked>)>;
/// (local transaction id, tracking generation) and what [`cached_for_trigger`] found then.
type FoundCache = ((u32, u64), HashMap<(u32, String, bool), Found>);

thread_local! {
    /// Row triggers' configurations read in this transaction: one look-up
    /// per table, not one per row written; tracking or untracking a column
    /// in this backend starts afresh.
    static FOUND: RefCell<FoundCache> = RefCell::new(((0, 0), HashMap::new()));
}

/// [`tracking::for_trigger`] with the column's definition, for a row trigger: read
/// once per transaction and table.
pub fn cached_for_trigger(relid: pg_sys::Oid, column: &str, blind_only: bool) -> PqResult<Found> {
    // SAFETY: MyProc is this backend's own PGPROC; lxid its local transaction id.
    let now = (unsafe { (*pg_sys::MyProc).lxid }, blind_column::generation());
    let key = (relid.to_u32(), column.to_owned(), blind_only);
    let hit = FOUND.with_borrow_mut(|c| {
        if c.0 != now {
            *c = (now, HashMap::new());
        }
        c.1.get(&key).cloned()
    });
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let found = catalog::as_owner(|| {
        tracking::for_trigger(relid, column, blind_only)?.map(|(id, ..)| Ok((id, Rc::new(tracking::load(id)?)))).transpose()
    })?;
    FOUND.with_borrow_mut(|c| c.1.insert(key, found.clone()));
    Ok(found)
}

/// A column of a row as bytes: a bytea column's bytes, a text column's
/// UTF-8 bytes; None for NULL or a column it cannot read.
pub fn bytes_of(tuple: &PgHeapTuple<'_, impl pgrx::WhoAllocated>, column: &str) -> Option<Vec<u8>> {
    match tuple.get_by_name::<&[u8]>(column) {
        Ok(v) => v.map(<[u8]>::to_vec),
        Err(_) => tuple.get_by_name::<String>(column).ok().flatten().map(String::into_bytes),
    }
}

/// The tenant of a row of tracked column `t`: the fixed one, or the row's
/// tenant column.
pub fn row_tenant(t: &Tracked, tuple: &PgHeapTuple<'_, impl pgrx::WhoAllocated>) -> Option<String> {
    match (&t.tenant, &t.tenant_column) {
        (Some(fixed), _) => Some(fixed.clone()),
        (None, Some(tc)) => tuple.get_by_name::<String>(tc).ok().flatten(),
        (None, None) => None,
    }
}
