//! Tenant keys as SQL functions use them: looked up in the key tables,
//! unwrapped under the master data key, and cached per backend for
//! `apg_pqcrypto.key_cache_ttl` seconds. A cache hit costs no SPI call, no
//! unwrapping and no ML-KEM key expansion. Entries are wiped (zeroizing
//! drops) on expiry, on any change to the key or grant tables (relcache
//! invalidation, see catalog.rs), and at backend exit.
//!
//! The decrypt path only reads, so it works in read-only transactions and on
//! a hot standby.
use crate::{
    catalog,
    errors::{PqError, PqResult},
    gucs, provider,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pqcore::{
    open_dek, Dek, KemSecretKey, KemSeed, KeyedCipher, Kid, MasterDataKey, Purpose, SigningKey,
    DsaSeed, VerifyingKey, WrapContext,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Lifecycle state of a key version (the `state` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Encrypts and decrypts; one per tenant.
    Active,
    /// Decrypts and verifies only.
    Retired,
    /// Secrets erased; nothing works.
    Destroyed,
}

impl KeyState {
    fn parse(s: &str) -> PqResult<Self> {
        match s {
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            "destroyed" => Ok(KeyState::Destroyed),
            other => Err(PqError::Internal(format!("unknown key state {other}"))),
        }
    }
}

/// One tenant key version, unwrapped.
pub struct VersionKeys {
    pub tenant: String,
    pub version: i32,
    pub state: KeyState,
    pub kem: KemSecretKey,
    pub cipher: KeyedCipher,
    mdk_id: Kid,
    signing: RefCell<Option<Rc<SigningKey>>>,
    loaded: Micros,
}

impl VersionKeys {
    pub fn kid(&self) -> Kid {
        self.kem.kid()
    }
}

/// Microseconds since 2000-01-01: PostgreSQL's statement start time, which
/// costs no system call to read (the per-value path must stay cheap).
type Micros = i64;

fn now() -> Micros {
    // SAFETY: reads a backend global set at statement start.
    unsafe { pg_sys::GetCurrentStatementStartTimestamp() }
}

fn ttl_micros() -> Micros {
    gucs::key_cache_ttl().as_micros() as Micros
}

#[derive(Default)]
struct Cache {
    mdks: HashMap<Kid, (Rc<MasterDataKey>, Micros)>,
    versions: HashMap<Kid, Rc<VersionKeys>>,
    active: HashMap<String, Kid>,
    verifying: HashMap<Kid, (String, Rc<VerifyingKey>)>,
    /// Per role: tenants it may use (true) or may not (false).
    access: HashMap<pg_sys::Oid, HashMap<String, bool>>,
    /// The last (role, tenant) found allowed: the common case of one
    /// application role using one tenant skips the hash lookup.
    last_allowed: Option<(pg_sys::Oid, String)>,
    last_sweep: Micros,
    exit_hook: bool,
}

impl Cache {
    fn fresh(&self, loaded: Micros, now: Micros) -> bool {
        now - loaded < ttl_micros()
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Drops everything after a key-table change, and wipes expired keys at
/// most once a second; called at the start of every lookup. Lookups also
/// check the age of what they find, so nothing older than the TTL is used.
fn refresh() {
    let stale = catalog::take_stale();
    let now = now();
    CACHE.with_borrow_mut(|c| {
        if stale {
            c.mdks.clear();
            c.versions.clear();
            c.active.clear();
            c.verifying.clear();
            c.access.clear();
            c.last_allowed = None;
            return;
        }
        if now - c.last_sweep < 1_000_000 {
            return;
        }
        c.last_sweep = now;
        let ttl = ttl_micros();
        c.mdks.retain(|_, (_, at)| now - *at < ttl);
        c.versions.retain(|_, v| now - v.loaded < ttl);
        let versions = &c.versions;
        c.active.retain(|_, kid| versions.contains_key(kid));
    });
}

/// Wipes every cached key (backend exit).
pub fn clear() {
    CACHE.with_borrow_mut(|c| *c = Cache::default());
}

#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: i32, _arg: pg_sys::Datum) {
    clear();
}

fn remember<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    CACHE.with_borrow_mut(|c| {
        if !c.exit_hook {
            // SAFETY: registers a callback that only drops Rust values.
            unsafe { pg_sys::on_proc_exit(Some(on_exit), pg_sys::Datum::from(0)) };
            c.exit_hook = true;
        }
        f(c)
    })
}

fn cache_enabled() -> bool {
    !gucs::key_cache_ttl().is_zero()
}

fn bytes_to_kid(bytes: &[u8]) -> PqResult<Kid> {
    Kid::from_slice(bytes).map_err(|_| PqError::Internal("stored key id has the wrong length".into()))
}

// ---------------------------------------------------------------- access

/// Checks that the calling role may use `tenant`'s keys: superusers, and
/// members of a role granted the tenant with `pq.grant_tenant`.
/// 42704 for an unknown tenant, 42501 without a grant.
pub fn check_access(tenant: &str) -> PqResult<()> {
    refresh();
    check_access_now(tenant)
}

/// `check_access` for callers that have just refreshed the cache.
fn check_access_now(tenant: &str) -> PqResult<()> {
    let role = catalog::caller();
    let cached = CACHE.with_borrow(|c| match &c.last_allowed {
        // The per-row case: the same role and tenant as last time.
        Some((r, t)) if *r == role && t == tenant => None,
        _ => Some(c.access.get(&role).and_then(|t| t.get(tenant)).copied()),
    });
    let Some(cached) = cached else { return Ok(()) };
    let allowed = match cached {
        Some(allowed) => allowed,
        None => {
            let allowed = catalog::as_owner(|| {
                watch_tables()?;
                catalog::require_tenant(tenant)?;
                if catalog::is_superuser(role) {
                    return Ok(true);
                }
                Ok(catalog::one::<bool>(
                    "SELECT EXISTS (SELECT 1 FROM pq.tenant_grants g JOIN pg_roles r ON r.rolname = g.role_name
                      WHERE g.tenant = $1 AND pg_has_role($2, r.oid, 'USAGE'))",
                    &[tenant.into(), role.into()],
                )?
                .unwrap_or(false))
            })?;
            if cache_enabled() {
                remember(|c| c.access.entry(role).or_default().insert(tenant.to_owned(), allowed));
            }
            allowed
        }
    };
    if !allowed {
        return Err(PqError::PermissionDenied(format!("permission denied for the keys of tenant \"{tenant}\"")));
    }
    if cache_enabled() {
        CACHE.with_borrow_mut(|c| c.last_allowed = Some((role, tenant.to_owned())));
    }
    Ok(())
}

/// Registers the key and grant tables for invalidation (idempotent; runs on
/// access-cache misses only, so a recreated extension's tables are watched too).
fn watch_tables() -> PqResult<()> {
    for table in ["pq.tenant_grants", "pq.tenant_key_versions", "pq.master_keys", "pq.tenants"] {
        catalog::watch(catalog::table_oid(table)?);
    }
    Ok(())
}

// ---------------------------------------------------------------- master data key

/// The MDK with this id (read path: never creates anything).
fn mdk(id: Kid) -> PqResult<Rc<MasterDataKey>> {
    let now = now();
    let hit = CACHE.with_borrow(|c| c.mdks.get(&id).filter(|(_, at)| c.fresh(*at, now)).map(|(m, _)| m.clone()));
    if let Some(mdk) = hit {
        return Ok(mdk);
    }
    let row = catalog::row(
        "SELECT provider, provider_key_id, wrapped_key FROM pq.master_keys WHERE id = $1",
        &[id.as_bytes().as_slice().into()],
        |row| Ok((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<Vec<u8>>(3)?)),
    )?;
    let Some((Some(provider_name), Some(key_id), Some(wrapped))) = row else {
        return Err(PqError::Internal(format!("master data key {} is missing", id.to_hex())));
    };
    let provider = provider::current(false)?;
    if provider.name() != provider_name || provider.key_id() != key_id {
        return Err(PqError::Provider {
            message: format!(
                "master data key {} was wrapped by {provider_name} key {key_id}, but the configured provider holds {} key {}",
                id.to_hex(),
                provider.name(),
                provider.key_id()
            ),
            hint: Some("configure the master key provider the key was created with, or restore its key".into()),
        });
    }
    let key = provider.unwrap(id, &wrapped)?;
    let mdk = Rc::new(MasterDataKey::new(id, &key));
    if cache_enabled() {
        remember(|c| c.mdks.insert(id, (mdk.clone(), now)));
    }
    Ok(mdk)
}

/// The active MDK, created (and wrapped by the provider) on first use.
fn active_mdk_for_write() -> PqResult<Rc<MasterDataKey>> {
    let existing = catalog::one::<Vec<u8>>("SELECT id FROM pq.master_keys WHERE state = 'active'", &[])?;
    if let Some(id) = existing {
        return mdk(bytes_to_kid(&id)?);
    }
    let provider = provider::current(true)?;
    let id = Kid(Dek::generate()?.expose()[..16].try_into().map_err(|_| PqError::Internal("id".into()))?);
    let key = Dek::generate()?;
    let wrapped = provider.wrap(id, &key)?;
    Spi::run_with_args(
        "INSERT INTO pq.master_keys (id, provider, provider_key_id, wrapped_key) VALUES ($1, $2, $3, $4)",
        &[
            id.as_bytes().as_slice().into(),
            provider.name().into(),
            provider.key_id().into(),
            wrapped.as_slice().into(),
        ],
    )?;
    Ok(Rc::new(MasterDataKey::new(id, &key)))
}

// ---------------------------------------------------------------- tenant key versions

const VERSION_COLUMNS: &str =
    "tenant, version, state, kid, mdk_id, wrapped_kem_seed, sealed_dek FROM pq.tenant_key_versions";

/// Loads and unwraps the version a query selects (as owner), if any.
fn load_version(query: &str, arg: pgrx::datum::DatumWithOid<'_>) -> PqResult<Option<Rc<VersionKeys>>> {
    let row = catalog::row(&format!("SELECT {VERSION_COLUMNS} {query}"), &[arg], |row| {
        Ok((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<i32>(2)?.unwrap_or_default(),
            row.get::<String>(3)?.unwrap_or_default(),
            row.get::<Vec<u8>>(4)?.unwrap_or_default(),
            row.get::<Vec<u8>>(5)?.unwrap_or_default(),
            row.get::<Vec<u8>>(6)?,
            row.get::<Vec<u8>>(7)?,
        ))
    })?;
    let Some((tenant, version, state, kid, mdk_id, wrapped_seed, sealed_dek)) = row else {
        return Ok(None);
    };
    let state = KeyState::parse(&state)?;
    let (Some(wrapped_seed), Some(sealed_dek)) = (wrapped_seed, sealed_dek) else {
        return Err(PqError::KeyState(format!("key version {version} of tenant \"{tenant}\" is destroyed")));
    };
    if state == KeyState::Destroyed {
        return Err(PqError::KeyState(format!("key version {version} of tenant \"{tenant}\" is destroyed")));
    }
    let kid = bytes_to_kid(&kid)?;
    let mdk_id = bytes_to_kid(&mdk_id)?;
    let mdk = mdk(mdk_id)?;
    let context = WrapContext { tenant: &tenant, version: version as u32, purpose: Purpose::KemSeed };
    let seed = mdk.unwrap(&wrapped_seed, &context).map_err(|_| {
        PqError::Internal(format!("the wrapped key of version {version} of tenant \"{tenant}\" does not unwrap"))
    })?;
    let kem = KemSecretKey::from_seed(&KemSeed::from_slice(seed.expose())?)?;
    if kem.kid() != kid {
        return Err(PqError::Internal(format!("key version {version} of tenant \"{tenant}\" does not match its kid")));
    }
    let dek = open_dek(&kem, &sealed_dek)
        .map_err(|_| PqError::Internal(format!("the DEK of version {version} of tenant \"{tenant}\" does not open")))?;
    let cipher = KeyedCipher::new(&dek, kid);
    Ok(Some(Rc::new(VersionKeys {
        tenant,
        version,
        state,
        kem,
        cipher,
        mdk_id,
        signing: RefCell::new(None),
        loaded: now(),
    })))
}

fn cache_version(keys: &Rc<VersionKeys>) {
    if cache_enabled() {
        remember(|c| {
            if keys.state == KeyState::Active {
                c.active.insert(keys.tenant.clone(), keys.kid());
            }
            c.versions.insert(keys.kid(), keys.clone());
        });
    }
}

/// The active version of `tenant`, for encrypting and signing.
pub fn active_version(tenant: &str) -> PqResult<Rc<VersionKeys>> {
    refresh();
    check_access_now(tenant)?;
    let now = now();
    let hit = CACHE.with_borrow(|c| {
        c.active.get(tenant).and_then(|kid| c.versions.get(kid)).filter(|v| c.fresh(v.loaded, now)).cloned()
    });
    if let Some(keys) = hit {
        return Ok(keys);
    }
    let keys = catalog::as_owner(|| {
        load_version("WHERE tenant = $1 AND state = 'active'", tenant.into())?
            .ok_or_else(|| PqError::KeyState(format!("tenant \"{tenant}\" has no active key version")))
    })?;
    cache_version(&keys);
    Ok(keys)
}

/// The version whose kid an envelope names, for decrypting. PQ002 when no
/// version has it; 42501 when it belongs to a tenant the caller may not use.
pub fn version_by_kid(kid: Kid) -> PqResult<Rc<VersionKeys>> {
    refresh();
    let now = now();
    let hit = CACHE.with_borrow(|c| c.versions.get(&kid).filter(|v| c.fresh(v.loaded, now)).cloned());
    let keys = match hit {
        Some(keys) => keys,
        None => {
            let tenant = catalog::as_owner(|| {
                catalog::one::<String>(
                    "SELECT tenant FROM pq.tenant_key_versions WHERE kid = $1",
                    &[kid.as_bytes().as_slice().into()],
                )
            })?
            .ok_or(PqError::UnknownKid)?;
            check_access(&tenant)?;
            let keys = catalog::as_owner(|| {
                load_version("WHERE kid = $1", kid.as_bytes().as_slice().into())?.ok_or(PqError::UnknownKid)
            })?;
            cache_version(&keys);
            return Ok(keys);
        }
    };
    check_access_now(&keys.tenant)?;
    Ok(keys)
}

/// The signing key of a version, unwrapped on first use.
pub fn signing_key(keys: &VersionKeys) -> PqResult<Rc<SigningKey>> {
    if let Some(key) = keys.signing.borrow().clone() {
        return Ok(key);
    }
    let wrapped = catalog::as_owner(|| {
        catalog::one::<Vec<u8>>(
            "SELECT wrapped_dsa_seed FROM pq.tenant_key_versions WHERE kid = $1",
            &[keys.kid().as_bytes().as_slice().into()],
        )
    })?
    .ok_or_else(|| PqError::KeyState(format!("the signing key of tenant \"{}\" is destroyed", keys.tenant)))?;
    let mdk = catalog::as_owner(|| mdk(keys.mdk_id))?;
    let context = WrapContext { tenant: &keys.tenant, version: keys.version as u32, purpose: Purpose::DsaSeed };
    let seed = mdk
        .unwrap(&wrapped, &context)
        .map_err(|_| PqError::Internal(format!("the signing key of tenant \"{}\" does not unwrap", keys.tenant)))?;
    let key = Rc::new(SigningKey::from_seed(&DsaSeed::from_slice(seed.expose())?));
    *keys.signing.borrow_mut() = Some(key.clone());
    Ok(key)
}

/// The verifying key of `tenant`'s version with ML-DSA kid `signing_kid`, if
/// there is one (any state but destroyed).
pub fn verifying_key(tenant: &str, signing_kid: Kid) -> PqResult<Option<Rc<VerifyingKey>>> {
    check_access(tenant)?;
    let hit = CACHE.with_borrow(|c| {
        c.verifying.get(&signing_kid).filter(|(t, _)| t == tenant).map(|(_, k)| k.clone())
    });
    if hit.is_some() {
        return Ok(hit);
    }
    let bytes = catalog::as_owner(|| {
        catalog::one::<Vec<u8>>(
            "SELECT verifying_key FROM pq.tenant_key_versions
              WHERE tenant = $1 AND signing_kid = $2 AND state <> 'destroyed'",
            &[tenant.into(), signing_kid.as_bytes().as_slice().into()],
        )
    })?;
    let Some(bytes) = bytes else { return Ok(None) };
    let key = Rc::new(VerifyingKey::from_slice(&bytes)?);
    if cache_enabled() {
        remember(|c| c.verifying.insert(signing_kid, (tenant.to_owned(), key.clone())));
    }
    Ok(Some(key))
}

// ---------------------------------------------------------------- writes

/// A new key version for `tenant` (the caller has checked the right to do
/// so); returns its kid. Runs as owner.
pub fn insert_version(tenant: &str, version: i32) -> PqResult<Kid> {
    let mdk = active_mdk_for_write()?;
    let keys = pqcore::TenantKeys::generate()?;
    let wrap = |secret: &[u8], purpose| {
        mdk.wrap(secret, &WrapContext { tenant, version: version as u32, purpose })
    };
    let wrapped_kem = wrap(keys.kem_seed.expose(), Purpose::KemSeed)?;
    let wrapped_dsa = wrap(keys.dsa_seed.expose(), Purpose::DsaSeed)?;
    let kid = keys.kem.kid();
    Spi::run_with_args(
        "INSERT INTO pq.tenant_key_versions
           (tenant, version, state, kid, signing_kid, mdk_id, wrapped_kem_seed, wrapped_dsa_seed,
            sealed_dek, public_key, verifying_key)
         VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            tenant.into(),
            version.into(),
            kid.as_bytes().as_slice().into(),
            keys.signing.kid().as_bytes().as_slice().into(),
            mdk.id().as_bytes().as_slice().into(),
            wrapped_kem.as_slice().into(),
            wrapped_dsa.as_slice().into(),
            keys.sealed_dek.as_slice().into(),
            keys.kem.public_key().as_bytes().as_slice().into(),
            keys.signing.verifying_key().as_bytes().as_slice().into(),
        ],
    )?;
    Ok(kid)
}

/// The tenant and version a kid belongs to, if the caller may use that
/// tenant (pq_inspect shows nothing about other tenants' keys).
pub fn describe_kid(kid: Kid, kind: pqcore::Kind) -> PqResult<Option<(String, i32)>> {
    let column = if kind == pqcore::Kind::Signature { "signing_kid" } else { "kid" };
    let row = catalog::as_owner(|| {
        catalog::row(
            &format!("SELECT tenant, version FROM pq.tenant_key_versions WHERE {column} = $1"),
            &[kid.as_bytes().as_slice().into()],
            |row| Ok((row.get::<String>(1)?, row.get::<i32>(2)?)),
        )
    })?;
    let Some((Some(tenant), Some(version))) = row else { return Ok(None) };
    match check_access(&tenant) {
        Ok(()) => Ok(Some((tenant, version))),
        Err(PqError::PermissionDenied(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
