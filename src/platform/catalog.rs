//! Access to the extension's own tables from SQL functions that run as the
//! caller: queries run as the extension's owner with a pinned search_path.
//! Reads are read-only SPI queries, which assign no transaction id, so every
//! lookup works in a read-only transaction and on a hot standby; only the
//! functions that change keys and grants write.
use crate::platform::{citus, errors::{PqError, PqResult}};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// The role that called the SQL function, while code runs as another
    /// role inside [`as_role`] (None outside every such scope).
    static OUTER_CALLER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// The role calling the SQL function: also inside [`as_owner`] and
/// [`as_role`], where the current user is another one (access decisions
/// and per-role counts are about the caller, never the owner).
pub fn caller() -> pg_sys::Oid {
    OUTER_CALLER.get().unwrap_or_else(super::leaf::user_id)
}

/// Runs `f` with `role` as the caller of access decisions (see [`caller`]),
/// whoever the current user is: for the extension's own work inside a
/// statement that runs as another role (a job's values re-encrypted inside
/// its UPDATE, `lifecycle::in_place`), with the authority of the role that
/// started that work.
pub fn acting_for<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<pg_sys::Oid>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OUTER_CALLER.set(self.0);
        }
    }
    let _restore = Restore(OUTER_CALLER.replace(Some(role)));
    f()
}

/// End of a transaction: no role scope outlives it (an ERROR that skipped
/// a scope's drop is undone by PostgreSQL; this forgets its caller too).
pub fn end_of_transaction() {
    OUTER_CALLER.set(None);
    SCOPE_PATH.set(PINNED_PATH);
}

/// True if `role` is a superuser.
pub fn is_superuser(role: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup of an existing role oid; no error path for a valid oid.
    unsafe { pg_sys::superuser_arg(role) }
}

/// True if `role` has the privileges of `pq_admin` (membership with inherit).
pub fn is_admin(role: pg_sys::Oid) -> bool {
    has_privs_of(role, c"pq_admin")
}

/// True if `role` has the privileges of `pq_monitor` (0.10.0: reads the
/// statistics and health the monitoring needs, administers nothing).
pub fn is_monitor(role: pg_sys::Oid) -> bool {
    has_privs_of(role, c"pq_monitor")
}

fn has_privs_of(role: pg_sys::Oid, of: &std::ffi::CStr) -> bool {
    // SAFETY: syscache lookups; missing_ok turns an absent role into InvalidOid.
    unsafe {
        let of = pg_sys::get_role_oid(of.as_ptr(), true);
        of != pg_sys::Oid::INVALID && pg_sys::has_privs_of_role(role, of)
    }
}

/// True on a hot standby.
pub fn in_recovery() -> bool {
    // SAFETY: reads shared state; never raises.
    unsafe { pg_sys::RecoveryInProgress() }
}

thread_local! {
    static OWNER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

fn extension_owner() -> PqResult<pg_sys::Oid> {
    if let Some(owner) = OWNER.get() {
        return Ok(owner);
    }
    let owner = one::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'apg_pqcrypto'",
        &[],
    )?
    .ok_or_else(|| PqError::internal("extension apg_pqcrypto is not installed in this database", String::new()))?;
    OWNER.set(Some(owner));
    Ok(owner)
}

/// The search_path of every statement the extension runs, for a caller or
/// in the worker (DESIGN.md §7): PostgreSQL's own functions and operators
/// first, then the extension's schema (only its owner creates objects
/// there); temporary objects never shadow a function or an operator.
pub const PINNED_PATH: &std::ffi::CStr = c"pg_catalog, pq, pg_temp";

/// A GUC nest level whose every change is rolled back when it ends, also
/// when `f` unwinds: what PostgreSQL does around index functions and other
/// maintenance of a user's table (`AtEOXact_GUC(false, …)`), so that not
/// even a plain `SET` or `set_config(…, false)` made inside escapes it.
struct GucScope {
    level: i32,
}

impl GucScope {
    /// Opens a level with `search_path` set to `path` (and, under Citus,
    /// our own reads of the key tables allowed inside a shard task: see
    /// `platform::citus`).
    fn with_path(path: &std::ffi::CStr) -> Self {
        // SAFETY: the sequence of fmgr_security_definer's SET clause: a new
        // nest level, then values saved at that level; undone in Drop.
        unsafe {
            let level = pg_sys::NewGUCNestLevel();
            save_setting(c"search_path", path);
            if citus::loaded() {
                save_setting(citus::NESTED_SETTING, c"on");
            }
            GucScope { level }
        }
    }
}

/// Sets `name` to `value` at the innermost GUC nest level.
///
/// # Safety
/// Call only inside a level opened with `NewGUCNestLevel`, with a setting
/// that exists and is user-settable.
unsafe fn save_setting(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    pg_sys::set_config_option(
        name.as_ptr(),
        value.as_ptr(),
        pg_sys::GucContext::PGC_USERSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_SAVE,
        true,
        0,
        false,
    );
}

impl Drop for GucScope {
    fn drop(&mut self) {
        // SAFETY: pops exactly the level opened in `with_path`, restoring
        // every setting changed since to its value before.
        unsafe { pg_sys::AtEOXact_GUC(false, self.level) };
    }
}

thread_local! {
    /// The path of the innermost [`as_role`] scope ([`PINNED_PATH`] outside any).
    static SCOPE_PATH: Cell<&'static std::ffi::CStr> = const { Cell::new(PINNED_PATH) };
}

/// The path statements must run under here, if the one in force is not it.
fn path_to_pin() -> Option<&'static std::ffi::CStr> {
    let wanted = SCOPE_PATH.get();
    // SAFETY: reads the backend's current search_path string (NULL before
    // the GUC machinery initialised it).
    let current = unsafe { pg_sys::namespace_search_path };
    // SAFETY: a NUL-terminated string owned by the GUC machinery.
    let pinned = !current.is_null() && unsafe { std::ffi::CStr::from_ptr(current) } == wanted;
    (!pinned).then_some(wanted)
}

/// Runs `f` with the search_path pinned: [`PINNED_PATH`], or inside
/// [`as_role`] the path that scope chose. Every helper of this module that
/// runs a statement goes through here, so no statement of the extension is
/// parsed under a path a caller, a database owner (`ALTER DATABASE … SET
/// search_path`) or a table's trigger chose. Costs a string comparison
/// when the path is pinned already (inside [`as_owner`]).
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    let _scope = path_to_pin().map(GucScope::with_path);
    f()
}

/// Runs `f` with the search_path pinned and each of `settings` set (a
/// superuser-only one needs a superuser); all are undone when `f` ends,
/// also when it unwinds. For the statements that only some settings allow.
pub fn with_settings<R>(settings: &[(&std::ffi::CStr, &std::ffi::CStr)], f: impl FnOnce() -> R) -> R {
    let _scope = GucScope::with_path(SCOPE_PATH.get());
    for (name, value) in settings {
        // SAFETY: inside the level `_scope` opened; set_config_option
        // raises (as SET would) for an unknown or forbidden setting.
        unsafe { save_setting(name, value) };
    }
    f()
}

/// Restores the caller's identity and settings, also when `f` unwinds.
struct RoleScope {
    user: pg_sys::Oid,
    context: i32,
    path: &'static std::ffi::CStr,
    outer: Option<pg_sys::Oid>,
    _gucs: GucScope,
}

impl Drop for RoleScope {
    fn drop(&mut self) {
        SCOPE_PATH.set(self.path);
        OUTER_CALLER.set(self.outer);
        // SAFETY: undoes what `as_role` did; the settings are restored by
        // the GucScope field, dropped after this.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Runs `f` as `role` with `search_path`, the way a SECURITY DEFINER
/// function would; with `restricted`, also as a security-restricted
/// operation (what PostgreSQL does for maintenance of a user's table:
/// no SET ROLE, no temporary objects, no escaping the owner's rights).
pub fn as_role<R>(
    role: pg_sys::Oid,
    restricted: bool,
    search_path: &'static std::ffi::CStr,
    f: impl FnOnce() -> PqResult<R>,
) -> PqResult<R> {
    let mut user = pg_sys::Oid::INVALID;
    let mut context = 0;
    // SAFETY: the standard pattern of fmgr_security_definer; restored by RoleScope.
    let _scope = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let mut flags = context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32;
        if restricted {
            flags |= pg_sys::SECURITY_RESTRICTED_OPERATION as i32;
        }
        pg_sys::SetUserIdAndSecContext(role, flags);
        let outer = OUTER_CALLER.get();
        // A restricted scope runs a user's code (a table's triggers, index
        // expressions, defaults) as that user: inside it the caller, whom
        // access decisions are about, is that user too, never the role
        // that opened the scope (the worker's superuser, a job's admin).
        OUTER_CALLER.set(if restricted { None } else { Some(outer.unwrap_or(user)) });
        RoleScope { user, context, path: SCOPE_PATH.replace(search_path), outer, _gucs: GucScope::with_path(search_path) }
    };
    f()
}

/// Runs `f` as the extension's owner with `search_path = pg_catalog, pq, pg_temp`,
/// the way a SECURITY DEFINER function would, but only around the catalog
/// work, so that the fast paths (cache hits) pay nothing.
pub fn as_owner<R>(f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
    as_role(extension_owner()?, false, PINNED_PATH, f)
}

/// True if the extension's table `pq.<table>` exists. Between installing a
/// new library and `ALTER EXTENSION apg_pqcrypto UPDATE`, the library runs
/// against the previous version's tables: code that reads a table added
/// later asks first.
pub fn pq_table_exists(table: &std::ffi::CStr) -> bool {
    pq_relid(table) != pg_sys::Oid::INVALID
}

/// The OID of relation pq.`table`, or InvalidOid when there is none (no
/// extension, or a version before the one that made it).
pub fn pq_relid(table: &std::ffi::CStr) -> pg_sys::Oid {
    relid(c"pq", table)
}

/// The OID of relation `schema`.`table`, or InvalidOid when there is none.
pub fn relid(schema: &std::ffi::CStr, table: &std::ffi::CStr) -> pg_sys::Oid {
    // SAFETY: syscache lookups with missing_ok; InvalidOid when absent.
    unsafe {
        let schema = pg_sys::get_namespace_oid(schema.as_ptr(), true);
        if schema == pg_sys::Oid::INVALID {
            return schema;
        }
        pg_sys::get_relname_relid(table.as_ptr(), schema)
    }
}

/// True if table pq.`table` has column `column` (a version before
/// `ALTER EXTENSION UPDATE` may not have it yet).
pub fn pq_column_exists(table: &std::ffi::CStr, column: &std::ffi::CStr) -> bool {
    let relid = pq_relid(table);
    // SAFETY: a syscache lookup; 0 when the column is absent.
    relid != pg_sys::Oid::INVALID && unsafe { pg_sys::get_attnum(relid, column.as_ptr()) } > 0
}

/// True once the extension's objects are those of 0.10.0 or later
/// (`ALTER EXTENSION UPDATE` done): shredding, enforcement, unusual-access
/// alerts and key DDL auditing need them. Its mark is pq.tenants.shredded_at.
pub fn has_0_10_objects() -> bool {
    pq_column_exists(c"tenants", c"shredded_at")
}

/// The first column of the first row of a read-only `query`, or None when
/// there is no row or the value is NULL.
pub fn one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> PqResult<Option<T>> {
    row(query, args, |row| Ok(row.get::<T>(1)?)).map(Option::flatten)
}

/// Applies `f` to the first row of a read-only `query`, if there is one.
/// Read-only: no transaction id is assigned (pgrx runs it read-only unless
/// the transaction has already written).
pub fn row<R>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> PqResult<R>,
) -> PqResult<Option<R>> {
    connect(|client| {
        let table = client.select(query, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        f(&table.first()).map(Some)
    })
}

/// `f` with a read-only SPI connection, under the pinned search_path: for
/// the queries that read many rows. Every read of the extension goes
/// through here or the helpers built on it.
pub fn connect<R>(f: impl FnOnce(&pgrx::spi::SpiClient<'_>) -> PqResult<R>) -> PqResult<R> {
    pinned(|| Spi::connect(f))
}

/// `f` applied to every row of a read-only `query`.
pub fn rows<R>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    mut f: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>) -> PqResult<R>,
) -> PqResult<Vec<R>> {
    connect(|client| {
        let table = client.select(query, None, args)?;
        let mut out = Vec::with_capacity(table.len());
        for row in table {
            out.push(f(&row)?);
        }
        Ok(out)
    })
}

/// Runs a statement that returns nothing the caller needs (a lock, a
/// `SET LOCAL`, a DML statement whose rows are not read).
pub fn run(query: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> PqResult<()> {
    pinned(|| Ok(Spi::run_with_args(query, args)?))
}

/// As [`one`], for a statement that writes (or locks rows).
pub fn write_one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> PqResult<Option<T>> {
    write_row(query, args, |row| Ok(row.get::<T>(1)?)).map(Option::flatten)
}

/// As [`row`], for a statement that writes (or locks rows).
pub fn write_row<R>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    f: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> PqResult<R>,
) -> PqResult<Option<R>> {
    let mut f = Some(f);
    let mut rows = write_rows(query, args, |row| match f.take() {
        Some(f) => f(row).map(Some),
        None => Ok(None),
    })?;
    Ok(if rows.is_empty() { None } else { rows.swap_remove(0) })
}

/// Runs a statement that writes, to completion; the rows it wrote.
pub fn write_count(query: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> PqResult<usize> {
    pinned(|| Spi::connect_mut(|client| Ok(client.update(query, None, args)?.len())))
}

/// `f` applied to every row of a statement that writes (or locks rows). It
/// runs to completion (no row limit): a DML statement stopped at its first
/// RETURNING row would skip its AFTER STATEMENT triggers, the ones that
/// invalidate every backend's key cache.
pub fn write_rows<R>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    mut f: impl FnMut(&pgrx::spi::SpiTupleTable<'_>) -> PqResult<R>,
) -> PqResult<Vec<R>> {
    pinned(|| Spi::connect_mut(|client| {
        let mut table = client.update(query, None, args)?;
        let mut out = Vec::with_capacity(table.len());
        while table.next().is_some() {
            out.push(f(&table)?);
        }
        Ok(out)
    }))
}

/// Why [`attempt`] failed: the error PostgreSQL raised inside it.
pub struct Refused(pub Box<pg_sys::panic::CaughtError>);

/// Runs `f` in a subtransaction, as a PL/pgSQL block with an EXCEPTION
/// clause does: its effects are kept if it returns, rolled back if it
/// raises an ERROR, which is then returned instead of propagated. A
/// cancel, a shutdown or an out-of-memory (SQLSTATE classes 57, 53, 58)
/// is raised again after the rollback: those end the statement.
pub fn attempt<R>(f: impl FnOnce() -> R) -> Result<R, Refused> {
    // SAFETY: the sequence of PL/pgSQL's exec_stmt_block: start an internal
    // subtransaction, stay in the caller's memory context, and after it is
    // released or rolled back restore that context and resource owner.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Ok(f()))).catch_others(|e| Err(Refused(Box::new(e)))).execute();
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        if let Err(Refused(e)) = result {
            if ends_statement(&e) {
                (*e).rethrow();
            }
            return Err(Refused(e));
        }
        result
    }
}

impl Refused {
    /// The SQLSTATE of the error, as five characters.
    pub fn code(&self) -> String {
        crate::platform::errors::sqlstate_text(error_code(&self.0))
    }
}

fn error_code(e: &pg_sys::panic::CaughtError) -> i32 {
    use pg_sys::panic::CaughtError::*;
    match e {
        PostgresError(r) | ErrorReport(r) | RustPanic { ereport: r, .. } => r.sql_error_code() as i32,
    }
}

/// A cancel, a shutdown, insufficient resources or a system error.
fn ends_statement(e: &pg_sys::panic::CaughtError) -> bool {
    let code = error_code(e);
    let class = code & 0xFFF; // the first two characters, six bits each
    [b"57000", b"53000", b"58000"].iter().any(|c| crate::platform::errors::sqlstate_code(c) & 0xFFF == class)
}

/// A plan of [`latest_row`], kept for the backend's life (`SPI_keepplan`):
/// the chain's writers read the head with it on every write. PostgreSQL's
/// plan cache re-plans it after DDL on what it reads, under the search_path
/// it was made with (the pinned one, part of the key).
struct KeptPlan {
    query: Box<[u8]>,
    types: Vec<pg_sys::Oid>,
    path: &'static std::ffi::CStr,
    plan: pg_sys::SPIPlanPtr,
}

thread_local! {
    /// Few: one per query text (the callers pass literals).
    static LATEST_PLANS: std::cell::RefCell<Vec<KeptPlan>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One value of the row [`latest_row`] found: the datum and its null flag.
pub type Column<'a> = &'a dyn Fn(i32) -> (pg_sys::Datum, bool);

/// Applies `f` to the first row of a read-only `query` run under the
/// *latest* snapshot rather than the transaction's. Under REPEATABLE READ
/// and SERIALIZABLE the transaction snapshot can predate rows that other
/// transactions committed since; chain heads (audit log, config records)
/// are read this way after taking the lock that serialises their writers,
/// the way PostgreSQL's foreign-key checks read referenced rows. `args`
/// are (type, datum) pairs, None for NULL. Call as owner.
pub fn latest_row<R>(
    query: &std::ffi::CStr,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
    f: impl FnOnce(Column<'_>) -> PqResult<R>,
) -> PqResult<Option<R>> {
    let mut f = Some(f);
    let rows = latest(query, args, true, |col| match f.take() {
        Some(f) => f(col).map(Some),
        None => Ok(None),
    })?;
    Ok(rows.into_iter().next().flatten())
}

/// As [`latest_row`], for a statement that writes (a `DELETE … RETURNING`
/// of rows other transactions committed after this one's snapshot): `f`
/// applied to every row it returns.
pub fn latest_write_rows<R>(
    query: &std::ffi::CStr,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
    f: impl FnMut(Column<'_>) -> PqResult<R>,
) -> PqResult<Vec<R>> {
    latest(query, args, false, f)
}

fn latest<R>(
    query: &std::ffi::CStr,
    args: &[(pg_sys::Oid, Option<pg_sys::Datum>)],
    read_only: bool,
    mut f: impl FnMut(Column<'_>) -> PqResult<R>,
) -> PqResult<Vec<R>> {
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.0).collect();
    let mut values: Vec<pg_sys::Datum> = args.iter().map(|a| a.1.unwrap_or(pg_sys::Datum::from(0))).collect();
    let nulls: Vec<std::ffi::c_char> =
        args.iter().map(|a| if a.1.is_some() { b' ' } else { b'n' } as std::ffi::c_char).collect();
    let _path = path_to_pin().map(GucScope::with_path);
    // SAFETY: a connect/finish pair around one execution of a plan
    // prepared once and kept; the tuples are read before SPI_finish frees
    // them, and the caller's `f` copies what it keeps (FromDatum copies
    // varlenas). An ERROR longjmps out; transaction abort cleans up SPI
    // and snapshots.
    unsafe {
        if pg_sys::SPI_connect() < 0 {
            return Err(PqError::internal("catalog query failed", "SPI_connect".into()));
        }
        let path = SCOPE_PATH.get();
        let kept = LATEST_PLANS.with_borrow(|plans| {
            plans.iter().find(|p| &*p.query == query.to_bytes() && p.types == types && p.path == path).map(|p| p.plan)
        });
        let plan = match kept {
            Some(plan) => plan,
            None => {
                let plan = pg_sys::SPI_prepare(query.as_ptr(), types.len() as i32, types.as_mut_ptr());
                if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
                    pg_sys::SPI_finish();
                    return Err(PqError::internal("catalog query failed", "SPI_prepare".into()));
                }
                LATEST_PLANS.with_borrow_mut(|plans| {
                    plans.push(KeptPlan { query: query.to_bytes().into(), types: types.clone(), path, plan })
                });
                plan
            }
        };
        let rc = pg_sys::SPI_execute_snapshot(
            plan,
            values.as_mut_ptr(),
            nulls.as_ptr(),
            pg_sys::GetLatestSnapshot(),
            std::ptr::null_mut(),
            read_only,
            !read_only,
            if read_only { 1 } else { 0 },
        );
        let result = if rc < 0 {
            Err(PqError::internal("catalog query failed", format!("SPI_execute_snapshot: {rc}")))
        } else if pg_sys::SPI_tuptable.is_null() {
            Ok(Vec::new())
        } else {
            let table = pg_sys::SPI_tuptable;
            let desc = (*table).tupdesc;
            let mut out = Vec::with_capacity(pg_sys::SPI_processed as usize);
            let mut failed = None;
            for i in 0..pg_sys::SPI_processed as usize {
                let tuple = *(*table).vals.add(i);
                let column = move |n: i32| {
                    let mut isnull = false;
                    let datum = pg_sys::SPI_getbinval(tuple, desc, n, &mut isnull);
                    (datum, isnull)
                };
                match f(&column) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(out),
            }
        };
        pg_sys::SPI_finish();
        result
    }
}

/// Serialises the writers of the audit chain (and of the config records,
/// which always append to it) until the end of the transaction. Take it
/// last: after every row lock and key creation the transaction needs, so
/// that no holder of it waits for a transaction that waits for it.
///
/// The lock is on `pq.audit_chain_lock`, a table on which no role but the
/// extension's owner has any privilege: LOCK TABLE checks privileges before
/// it waits, so no other role can hold it and freeze key administration
/// (an advisory lock, which any role may take, could). Before ALTER
/// EXTENSION UPDATE to 0.8.0 the table does not exist and the advisory lock
/// of the earlier versions serialises the writers instead.
///
/// The lock is taken as `LOCK TABLE pq.audit_chain_lock IN EXCLUSIVE MODE`
/// takes it, without a statement to parse and plan on every write of the
/// chain (and taking it again in the same transaction is a local lookup).
/// The callers run as the extension's owner, whose privilege LOCK TABLE
/// would check. Waiting can end in an ERROR (deadlock, lock_timeout,
/// statement_timeout, cancel), which PostgreSQL raises as usual.
pub fn lock_audit_chain() -> PqResult<()> {
    let relid = pq_relid(c"audit_chain_lock");
    if relid != pg_sys::Oid::INVALID {
        // SAFETY: locks a relation that exists (found just now) until the
        // end of the transaction; an ERROR while waiting is raised through
        // pgrx's guard like any other.
        unsafe { pg_sys::LockRelationOid(relid, pg_sys::ExclusiveLock as pg_sys::LOCKMODE) };
        return Ok(());
    }
    // 0x70714155 = "pqAU"
    one::<bool>("SELECT true FROM pg_catalog.pg_advisory_xact_lock(1886470485, 1)", &[])?;
    Ok(())
}

/// Takes the chain lock if no other transaction holds it, without waiting
/// (true: this transaction holds it to its end). False before ALTER
/// EXTENSION UPDATE to 0.8.0, when the lock table does not exist.
pub fn try_lock_audit_chain() -> bool {
    let relid = pq_relid(c"audit_chain_lock");
    // SAFETY: as in lock_audit_chain; a conditional acquire never waits.
    relid != pg_sys::Oid::INVALID && unsafe { pg_sys::ConditionalLockRelationOid(relid, pg_sys::ExclusiveLock as pg_sys::LOCKMODE) }
}

/// Serialises the writers of one configuration key (`tenant`, `key`) until
/// the end of the transaction, and no other key's: a lock on an object of
/// a class no catalog has (pq.config_records' own oid, the key's hash), so
/// no statement of any role can take or hold it. Two keys whose hashes
/// collide share it, which only serialises them.
pub fn lock_config_key(tenant: &str, key: &str) -> PqResult<()> {
    let relid = pq_relid(c"config_records");
    if relid == pg_sys::Oid::INVALID {
        return Err(PqError::internal("pq.config_records is missing", String::new()));
    }
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(tenant, key), &mut h);
    let hash = std::hash::Hasher::finish(&h);
    // SAFETY: a heavyweight lock held to the end of the transaction; an
    // ERROR while waiting (deadlock, lock_timeout, cancel) is raised
    // through pgrx's guard like any other.
    unsafe {
        pg_sys::LockDatabaseObject(relid, pg_sys::Oid::from((hash as u32) ^ ((hash >> 32) as u32)), 0, pg_sys::ExclusiveLock as pg_sys::LOCKMODE)
    };
    Ok(())
}

/// The transaction is SERIALIZABLE.
pub fn serializable() -> bool {
    // SAFETY: reads a backend global.
    unsafe { pg_sys::XactIsoLevel == pg_sys::XACT_SERIALIZABLE as i32 }
}
