//! The per-backend cache of unwrapped keys and access decisions, and the
//! rules that keep it honest:
//!
//! - **Invalidation.** Any change to a key or grant table (our functions,
//!   a DBA by hand, pg_restore, a logical-replication apply worker) and any
//!   change of role membership reaches every backend as a relcache or
//!   syscache invalidation; the next lookup then starts from nothing.
//! - **Snapshots.** A lookup right after an invalidation may still read the
//!   key tables through an older snapshot (a REPEATABLE READ or
//!   SERIALIZABLE transaction's, or a statement's taken just before the
//!   invalidation arrived), and would cache what that snapshot shows. So
//!   at the end of every transaction in which an invalidation arrived,
//!   everything is dropped again: no decision outlives the transaction that
//!   read it from an old snapshot, and the next transaction reads afresh.
//! - **Expiry.** Entries live `apg_pqcrypto.key_cache_ttl` seconds; expired
//!   ones are wiped at the end of every transaction, and never used after
//!   expiry. With a TTL of 0 nothing is kept after a call.
//!
//! - **Generation.** With the library preloaded, a counter in shared memory
//!   goes up when a transaction that changed the key tables commits (a
//!   rotation, say); every backend compares it at each lookup, so the next
//!   encryption anywhere uses the new version without waiting for its
//!   transaction to end. Without preloading, the invalidations do the same
//!   at each backend's next transaction.
//!
//! Secrets in entries are zeroized when dropped, live in locked memory
//! (`secure_mem`), and are wiped at backend exit.
use crate::journal::latency::{self, CacheEvent};
use crate::platform::{
    errors::{PqError, PqResult},
    catalog, citus, gucs, leaf, secure_mem, shmem::preloaded, xact,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pqcore::blind::{BlindError, IndexKey};
use pqcore::{KeyedCipher, Kid, MasterDataKey, RecipientSecret, SigningKey, VerifyingKey};
use pgrx::{pg_shmem_init, PgAtomic};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped after every commit that changed the key tables (shared memory).
static GENERATION: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"apg_pqcrypto_key_generation") };
/// Creates the shared generation counter; from _PG_init, when preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(GENERATION);
}

/// Microseconds since 2000-01-01, PostgreSQL's timestamp unit.
pub type Micros = i64;

/// The statement's start time: costs no system call on the per-row path.
pub fn now() -> Micros {
    leaf::statement_start()
}

fn ttl_micros() -> Micros {
    gucs::key_cache_ttl().as_micros() as Micros
}

pub fn enabled() -> bool {
    !gucs::key_cache_ttl().is_zero()
}

/// Lifecycle state of a key version (the `state` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Encrypts and decrypts; one per tenant.
    Active,
    /// Decrypts and verifies only.
    Retired,
    /// Refuses everything (PQ003) until enabled again.
    Disabled,
    /// Secrets erased; nothing decrypts. Signatures still verify (the
    /// verifying key is public).
    Destroyed,
}

impl KeyState {
    pub fn parse(s: &str) -> PqResult<Self> {
        match s {
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            "disabled" => Ok(KeyState::Disabled),
            "destroyed" => Ok(KeyState::Destroyed),
            other => Err(PqError::internal("a key version has an unknown state", format!("state {other}"))),
        }
    }
}

/// One tenant key version, unwrapped.
pub struct VersionKeys {
    pub tenant: String,
    pub version: i32,
    pub state: KeyState,
    /// ML-KEM-768, ML-KEM-1024 or X-Wing: the version's KEM suite.
    pub kem: RecipientSecret,
    pub cipher: KeyedCipher,
    /// Unwrapped on first use, under the MDK the row names then (a master
    /// key rotation may have rewrapped it since the version was cached).
    pub(in crate::keys) signing: RefCell<Option<Rc<SigningKey>>>,
    pub loaded: Micros,
    /// When the version passes its tenant's max_key_age (no encryption or
    /// signing after it), if the tenant's policy sets one.
    pub(in crate::keys) expires: Option<Micros>,
    /// The tenant's policy requires CNSA 2.0 and this version is of other
    /// suites: it encrypts and signs nothing (it still decrypts and verifies).
    pub(in crate::keys) outside_policy: bool,
    /// Blind index keys of this version by context, made on first use.
    pub(in crate::keys) index_keys: RefCell<Vec<ContextKey>>,
}

/// A blind index context and its key.
pub type ContextKey = (Box<[u8]>, Rc<IndexKey>);

/// Beyond this many contexts a version's index keys start afresh.
const MAX_INDEX_KEYS: usize = 64;

impl VersionKeys {
    pub fn kid(&self) -> Kid {
        self.kem.kid()
    }

    /// This version's blind index key for `context` (FORMAT.md §16),
    /// derived once and kept with the version's other keys.
    pub fn index_key(&self, context: &[u8]) -> Result<Rc<IndexKey>, BlindError> {
        if let Some((_, key)) = self.index_keys.borrow().iter().find(|(c, _)| &c[..] == context) {
            return Ok(key.clone());
        }
        // The keyed HMAC state lives in locked memory, like the version's other keys.
        let key = secure_mem::scope(|| IndexKey::derive(&self.cipher, context).map(Rc::new))?;
        let mut keys = self.index_keys.borrow_mut();
        if keys.len() >= MAX_INDEX_KEYS {
            keys.clear();
        }
        keys.push((context.into(), key.clone()));
        Ok(key)
    }
}

/// What a role may do with a tenant, as read from the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantAccess {
    pub exists: bool,
    pub granted: bool,
}

/// Beyond this many remembered decisions, the map starts afresh (callers
/// choose tenant names, so it must not grow without bound).
const MAX_DECISIONS: usize = 4096;

#[derive(Default)]
pub struct Cache {
    pub mdks: HashMap<Kid, (Rc<MasterDataKey>, Micros)>,
    pub versions: HashMap<Kid, Rc<VersionKeys>>,
    pub active: HashMap<String, Kid>,
    pub verifying: HashMap<Kid, (String, Rc<VerifyingKey>, Micros)>,
    /// Per role, per tenant name.
    pub access: HashMap<pg_sys::Oid, HashMap<String, (TenantAccess, Micros)>>,
    decisions: usize,
    /// The last (role, tenant) found allowed: the common case of one
    /// application role using one tenant skips the hash lookup.
    pub last_allowed: Option<(pg_sys::Oid, String)>,
    /// The version the last decryption used and the active version the
    /// last encryption used, each with the role that was allowed to use it:
    /// a statement decrypts or encrypts row after row with one key, and a
    /// repeat skips the hash lookups and the access check (which already
    /// passed for that role in this cache's life). Dropped with everything
    /// else, and by the sweep when the version or the decision expires.
    last_decrypt: Option<(pg_sys::Oid, Rc<VersionKeys>)>,
    last_encrypt: Option<(pg_sys::Oid, Rc<VersionKeys>)>,
    exit_hook: bool,
}

impl Cache {
    pub fn fresh(&self, loaded: Micros, now: Micros) -> bool {
        now - loaded < ttl_micros()
    }

    /// The decision for `role` and `tenant`, if it has not expired.
    pub fn access(&self, role: pg_sys::Oid, tenant: &str, now: Micros) -> Option<TenantAccess> {
        let (access, at) = self.access.get(&role)?.get(tenant)?;
        self.fresh(*at, now).then_some(*access)
    }

    pub fn remember_access(&mut self, role: pg_sys::Oid, tenant: &str, access: TenantAccess, now: Micros) {
        if self.decisions >= MAX_DECISIONS {
            self.access.clear();
            self.decisions = 0;
        }
        if self.access.entry(role).or_default().insert(tenant.to_owned(), (access, now)).is_none() {
            self.decisions += 1;
        }
    }

    /// The version of `kid` if the last decryption by `role` used it and it is fresh.
    pub fn repeat_decrypt(&self, kid: Kid, role: pg_sys::Oid, now: Micros) -> Option<Rc<VersionKeys>> {
        let (r, keys) = self.last_decrypt.as_ref()?;
        (*r == role && keys.kid() == kid && self.fresh(keys.loaded, now)).then(|| keys.clone())
    }

    /// The active version of `tenant` if the last encryption by `role` used it and it is fresh.
    pub fn repeat_encrypt(&self, tenant: &str, role: pg_sys::Oid, now: Micros) -> Option<Rc<VersionKeys>> {
        let (r, keys) = self.last_encrypt.as_ref()?;
        (*r == role && keys.tenant == tenant && self.fresh(keys.loaded, now)).then(|| keys.clone())
    }

    /// Remembers that `role` was allowed `keys` for a decryption (call
    /// only after the access check passed).
    pub fn used_for_decrypt(&mut self, role: pg_sys::Oid, keys: &Rc<VersionKeys>) {
        self.last_decrypt = Some((role, keys.clone()));
    }

    /// Remembers that `role` was allowed the active version `keys` for an
    /// encryption (call only after the access check passed).
    pub fn used_for_encrypt(&mut self, role: pg_sys::Oid, keys: &Rc<VersionKeys>) {
        self.last_encrypt = Some((role, keys.clone()));
    }

    fn is_empty(&self) -> bool {
        self.mdks.is_empty()
            && self.versions.is_empty()
            && self.verifying.is_empty()
            && self.access.is_empty()
            && self.last_allowed.is_none()
            && self.last_decrypt.is_none()
            && self.last_encrypt.is_none()
    }

    fn drop_all(&mut self) {
        for v in self.versions.values() {
            latency::cache(&v.tenant, CacheEvent::Eviction);
        }
        self.mdks.clear();
        self.versions.clear();
        self.active.clear();
        self.verifying.clear();
        self.access.clear();
        self.decisions = 0;
        self.last_allowed = None;
        self.last_decrypt = None;
        self.last_encrypt = None;
    }

    /// Drops every entry older than the TTL at `now`.
    fn sweep(&mut self, now: Micros) {
        let ttl = ttl_micros();
        self.mdks.retain(|_, (_, at)| now - *at < ttl);
        self.versions.retain(|_, v| {
            let keep = now - v.loaded < ttl;
            if !keep {
                latency::cache(&v.tenant, CacheEvent::Eviction);
            }
            keep
        });
        let versions = &self.versions;
        self.active.retain(|_, kid| versions.contains_key(kid));
        self.verifying.retain(|_, (_, _, at)| now - *at < ttl);
        for tenants in self.access.values_mut() {
            tenants.retain(|_, (_, at)| now - *at < ttl);
        }
        self.access.retain(|_, tenants| !tenants.is_empty());
        self.decisions = self.access.values().map(HashMap::len).sum();
        let access = &self.access;
        let decided = |role: &pg_sys::Oid, tenant: &str| access.get(role).is_some_and(|m| m.contains_key(tenant));
        if self.last_allowed.as_ref().is_some_and(|(r, t)| !decided(r, t)) {
            self.last_allowed = None;
        }
        let kept = |(r, keys): &(pg_sys::Oid, Rc<VersionKeys>)| decided(r, &keys.tenant) && now - keys.loaded < ttl;
        if !self.last_decrypt.as_ref().is_some_and(kept) {
            self.last_decrypt = None;
        }
        if !self.last_encrypt.as_ref().is_some_and(kept) {
            self.last_encrypt = None;
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    static WATCHED: RefCell<HashSet<pg_sys::Oid>> = RefCell::new(HashSet::new());
    /// An invalidation arrived since the last lookup.
    static STALE: Cell<bool> = const { Cell::new(false) };
    /// An invalidation arrived during the current transaction.
    static CHANGED_IN_XACT: Cell<bool> = const { Cell::new(false) };
    /// This transaction wrote the key tables: bump the generation at commit.
    static WROTE_IN_XACT: Cell<bool> = const { Cell::new(false) };
    /// The generation this backend's cache was filled under
    /// ([`NEVER_LOOKED`] before its first lookup).
    static SEEN_GENERATION: Cell<u64> = const { Cell::new(NEVER_LOOKED) };
    /// The backend's first lookup found key tables written since the
    /// server started: this transaction's snapshot may predate a change.
    static FIRST_LOOKUP_IN_XACT: Cell<bool> = const { Cell::new(false) };
}

/// Reads the cache.
pub fn with<R>(f: impl FnOnce(&Cache) -> R) -> R {
    CACHE.with_borrow(f)
}

/// Writes the cache (when caching is enabled; callers check).
pub fn with_mut<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with_borrow_mut(|c| {
        if !c.exit_hook {
            // SAFETY: registers a callback that only drops Rust values.
            unsafe { pg_sys::on_proc_exit(Some(on_exit), pg_sys::Datum::from(0)) };
            c.exit_hook = true;
        }
        f(c)
    })
}

/// No generation yet: the shared counter starts at 0 and only grows.
const NEVER_LOOKED: u64 = u64::MAX;

/// Starts a lookup: if anything changed since the last one, forget everything.
pub fn refresh() {
    if preloaded() {
        let generation = GENERATION.get().load(Ordering::Acquire);
        let seen = SEEN_GENERATION.replace(generation);
        if seen != generation && !(seen == NEVER_LOOKED && generation == 0) {
            if seen == NEVER_LOOKED {
                // Whatever was cached before is dropped now, and what this
                // transaction loads at its end, but for master data keys
                // (see end_of_transaction).
                STALE.set(true);
                FIRST_LOOKUP_IN_XACT.set(true);
            } else {
                mark_changed();
            }
        }
    }
    if STALE.replace(false) {
        CACHE.with_borrow_mut(Cache::drop_all);
    }
}

/// Wipes every cached key and decision.
pub fn clear() {
    CACHE.with_borrow_mut(Cache::drop_all);
}

/// Records that key tables or role memberships changed.
pub fn mark_changed() {
    STALE.set(true);
    CHANGED_IN_XACT.set(true);
}

/// Records that this transaction wrote the key tables (the trigger).
pub fn key_tables_written() {
    WROTE_IN_XACT.set(true);
    mark_changed();
}

/// Remembers a table whose changes must drop this backend's caches.
pub fn watch(table: pg_sys::Oid) {
    WATCHED.with_borrow_mut(|w| w.insert(table));
}

/// Number of cached keys and decisions (for tests).
#[cfg(any(test, feature = "pg_test"))]
pub fn entries() -> usize {
    with(|c| c.mdks.len() + c.versions.len() + c.verifying.len() + c.decisions + c.last_allowed.iter().len())
}

/// End of a transaction: drop what may have been read from an old
/// snapshot, then what has expired.
pub fn end_of_transaction(now: Micros) {
    secure_mem::reset_scope();
    let changed = CHANGED_IN_XACT.replace(false);
    let first_lookup = FIRST_LOOKUP_IN_XACT.replace(false);
    CACHE.with_borrow_mut(|c| {
        if c.is_empty() {
            return;
        }
        if changed || !enabled() {
            c.drop_all();
        } else if first_lookup {
            // A master data key is known by the hash of its bytes (checked
            // when it was unwrapped): no snapshot makes it stale, and
            // keeping it spares the provider a second call. Versions and
            // access decisions may come from an old snapshot: dropped.
            let mdks = std::mem::take(&mut c.mdks);
            c.drop_all();
            c.mdks = mdks;
            c.sweep(now);
        } else {
            c.sweep(now);
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: i32, _arg: pg_sys::Datum) {
    clear();
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::Oid::INVALID || WATCHED.with_borrow(|w| w.contains(&relid)) {
        mark_changed();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn membership_changed(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    mark_changed();
}

/// The end of a transaction (a `platform::xact` hook): after a commit that
/// changed the key tables, bump the shared generation (after the commit is
/// visible, so that others then read the new state); then drop what may be
/// stale or expired.
fn transaction_ended(committed: bool) {
    if WROTE_IN_XACT.replace(false) && committed && preloaded() {
        GENERATION.get().fetch_add(1, Ordering::AcqRel);
    }
    // SAFETY: a clock read; never raises.
    end_of_transaction(unsafe { pg_sys::GetCurrentTimestamp() });
}

/// Trigger on every key table: whoever changes the rows (our functions, a
/// DBA, pg_restore, a logical-replication apply worker), every backend
/// drops its cached keys and access decisions at commit, through a
/// relcache invalidation. Statement triggers are ENABLE ALWAYS; row
/// triggers, ENABLE REPLICA, cover rows applied by logical replication
/// (sql/finalize.sql).
#[pg_trigger]
fn pq_key_tables_changed<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
    // SAFETY: queues a transactional relcache invalidation for the trigger's own relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    // Under Citus the trigger fires on a reference table's shard on every
    // node; backends watch the table itself (`watch_key_tables`).
    if citus::loaded() {
        if let Some(table) = trigger.table_name().ok().and_then(|name| citus::shard_of(&name, &KEY_TABLES)) {
            let table_id = catalog::pq_relid(table);
            if table_id != pg_sys::Oid::INVALID && table_id != relid {
                // SAFETY: as above, for the table whose shard this is.
                unsafe { pg_sys::CacheInvalidateRelcacheByRelid(table_id) };
            }
        }
    }
    key_tables_written();
    Ok(None)
}

/// The key and grant tables, whose changes drop every backend's cache.
pub const KEY_TABLES: [&std::ffi::CStr; 5] =
    [c"master_keys", c"tenants", c"tenant_key_versions", c"tenant_grants", c"tenant_policies"];

/// Registers the key tables for invalidation (cheap syscache lookups; run
/// on cache misses, so a recreated extension's tables are watched too).
pub fn watch_key_tables() {
    for table in KEY_TABLES {
        let oid = catalog::pq_relid(table);
        if oid != pg_sys::Oid::INVALID {
            watch(oid);
        }
    }
}

/// Registers the invalidation callbacks and the end-of-transaction hook;
/// once per process, from _PG_init.
pub fn register_callbacks() {
    // SAFETY: registers plain functions that only set flags; they never raise.
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
    xact::at_end(transaction_ended);
}
