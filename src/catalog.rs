//! Access to the extension's own tables from SQL functions that run as the
//! caller: reads and writes happen as the extension's owner with a pinned
//! search_path, and other backends learn of key and grant changes through
//! PostgreSQL's relcache invalidation (broadcast at commit).
use crate::errors::{PqError, PqResult};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;

/// The role calling the SQL function.
pub fn caller() -> pg_sys::Oid {
    // SAFETY: reads a backend global; we are on the backend's main thread.
    unsafe { pg_sys::GetUserId() }
}

/// True if `role` is a superuser.
pub fn is_superuser(role: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup of an existing role oid; no error path for a valid oid.
    unsafe { pg_sys::superuser_arg(role) }
}

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
    static WATCHED: RefCell<HashSet<pg_sys::Oid>> = RefCell::new(HashSet::new());
    static STALE: Cell<bool> = const { Cell::new(false) };
}

fn extension_owner() -> PqResult<pg_sys::Oid> {
    if let Some(owner) = OWNER.get() {
        return Ok(owner);
    }
    let owner = one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'apg_pqcrypto'",
        &[],
    )?
    .ok_or_else(|| PqError::Internal("extension apg_pqcrypto is not installed in this database".into()))?;
    OWNER.set(Some(owner));
    Ok(owner)
}

/// Restores the caller's identity and settings, also when `f` unwinds.
struct OwnerScope {
    user: pg_sys::Oid,
    context: i32,
    guc_level: i32,
}

impl Drop for OwnerScope {
    fn drop(&mut self) {
        // SAFETY: undoes exactly what `as_owner` did, in reverse order.
        unsafe {
            pg_sys::AtEOXact_GUC(true, self.guc_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.context);
        }
    }
}

/// Runs `f` as the extension's owner with `search_path = pg_catalog, pq, pg_temp`,
/// the way a SECURITY DEFINER function would, but only around the catalog
/// work, so that the fast paths (cache hits) pay nothing.
pub fn as_owner<R>(f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
    let owner = extension_owner()?;
    let mut user = pg_sys::Oid::INVALID;
    let mut context = 0;
    // SAFETY: the standard pattern of fmgr_security_definer; restored by OwnerScope.
    let _scope = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        let guc_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pq, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        OwnerScope { user, context, guc_level }
    };
    f()
}

/// Remembers a table whose changes must drop this backend's caches.
pub fn watch(table: pg_sys::Oid) {
    WATCHED.with_borrow_mut(|w| w.insert(table));
}

/// True once since the last call if a watched table or role membership changed.
pub fn take_stale() -> bool {
    STALE.replace(false)
}

/// Statement trigger on every key table: whoever changes the rows (our
/// functions, a DBA, pg_restore), every backend drops its cached keys and
/// access decisions at commit, through a relcache invalidation.
#[pg_trigger]
fn pq_key_tables_changed<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
    // SAFETY: queues a transactional relcache invalidation for the trigger's own relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    STALE.set(true);
    Ok(None)
}

/// The oid of one of the extension's tables, e.g. `pq.tenant_grants`.
pub fn table_oid(table: &str) -> PqResult<pg_sys::Oid> {
    one::<pg_sys::Oid>("SELECT $1::pg_catalog.regclass::pg_catalog.oid", &[table.into()])?
        .ok_or_else(|| PqError::Internal(format!("table {table} is missing")))
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::Oid::INVALID || WATCHED.with_borrow(|w| w.contains(&relid)) {
        STALE.set(true);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn membership_changed(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    STALE.set(true);
}

/// Registers the invalidation callbacks; called once per process from _PG_init.
pub fn register_callbacks() {
    // SAFETY: registers plain functions that only set a flag; they never error.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0));
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHMEMMEMROLE as i32,
            Some(membership_changed),
            pg_sys::Datum::from(0),
        );
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHOID as i32,
            Some(membership_changed),
            pg_sys::Datum::from(0),
        );
    }
}

/// The first column of the first row of `query`, or None when there is no
/// row (pgrx's `Spi::get_one` treats that as an error) or the value is NULL.
pub fn one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> PqResult<Option<T>> {
    row(query, args, |row| Ok(row.get::<T>(1)?)).map(Option::flatten)
}

/// Applies `f` to the first row of `query`, if there is one.
pub fn row<R>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> PqResult<R>,
) -> PqResult<Option<R>> {
    Spi::connect_mut(|client| {
        let table = client.update(query, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        f(&table.first()).map(Some)
    })
}

/// 42704 unless `tenant` exists. Call as owner.
pub fn require_tenant(tenant: &str) -> PqResult<()> {
    let exists = one::<bool>("SELECT EXISTS (SELECT 1 FROM pq.tenants WHERE name = $1)", &[tenant.into()])?;
    if exists == Some(true) {
        Ok(())
    } else {
        Err(PqError::UnknownTenant(tenant.to_owned()))
    }
}
