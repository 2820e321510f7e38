//! Tenant keys as SQL functions use them: looked up in the key tables,
//! unwrapped under the master data key, and kept in the backend's cache
//! (`cache.rs`, which says when entries go). A cache hit costs no SPI call,
//! no unwrapping and no ML-KEM key expansion. Unwrapping runs inside
//! `secure_mem::scope`, so cached secrets live in locked, undumpable memory.
//!
//! Lookups only read (read-only SPI, no transaction id), so decryption
//! works in read-only transactions and on a hot standby.
use crate::{
    keys::{access, cache::{self, KeyState, VersionKeys}, provider},
    platform::{catalog, errors::{PqError, PqResult}, secure_mem},
};
use pqcore::{
    dek_suite, mdk_id, open_dek, Dek, DsaSeed, KeyedCipher, Kid, MasterDataKey, Purpose, RecipientSecret, SigningKey,
    Suite, VerifyingKey, WrapContext,
};
use std::cell::RefCell;
use std::rc::Rc;

fn stored_kid(bytes: &[u8]) -> PqResult<Kid> {
    Kid::from_slice(bytes).map_err(|_| PqError::internal("a stored key id has the wrong length", String::new()))
}

/// Runs `f` (unwrapping keys) in locked memory and reports, once, if the
/// memory could not be locked.
fn unwrapping<R>(f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
    let result = secure_mem::scope(f);
    if let Some(warning) = secure_mem::take_warning() {
        pgrx::warning!("{warning}");
    }
    result
}

// ---------------------------------------------------------------- master data key

/// The MDK with this id (read path: never creates anything), unwrapped by
/// the provider that pq.master_keys says wrapped it. Call as owner.
fn mdk(id: Kid) -> PqResult<Rc<MasterDataKey>> {
    let now = cache::now();
    let hit = cache::with(|c| c.mdks.get(&id).filter(|(_, at)| c.fresh(*at, now)).map(|(m, _)| m.clone()));
    if let Some(mdk) = hit {
        return Ok(mdk);
    }
    let key = unwrap_stored(id)?;
    let mdk = unwrapping(|| Ok(Rc::new(MasterDataKey::from_mdk(&key))))?;
    drop(key);
    if cache::enabled() {
        cache::with_mut(|c| c.mdks.insert(id, (mdk.clone(), now)));
    }
    Ok(mdk)
}

/// Reads the MDK `id` from pq.master_keys and unwraps it through the
/// provider recorded there (a provider call; no cache). Call as owner.
fn unwrap_stored(id: Kid) -> PqResult<Dek> {
    let system_identifier =
        if catalog::pq_column_exists(c"master_keys", c"system_identifier") { "system_identifier" } else { "NULL::text" };
    let row = catalog::row(
        &format!("SELECT provider, provider_key_id, wrapped_key, {system_identifier} FROM pq.master_keys WHERE id = $1"),
        &[id.as_bytes().as_slice().into()],
        |row| Ok((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<Vec<u8>>(3)?, row.get::<String>(4)?)),
    )?;
    let Some((Some(provider_name), Some(key_ref), Some(wrapped), system_identifier)) = row else {
        return Err(PqError::internal("the master data key is missing", format!("master data key {}", id.to_hex())));
    };
    provider::unwrap(&provider_name, &key_ref, &wrapped, &provider::binding(id, system_identifier))
}

/// The active MDK's id, if there is one.
pub fn active_mdk_id() -> PqResult<Option<Kid>> {
    catalog::one::<Vec<u8>>("SELECT id FROM pq.master_keys WHERE state = 'active'", &[])?
        .map(|id| stored_kid(&id))
        .transpose()
}

/// Asks the provider of MDK `id` to unwrap it, leaving the cache as it is
/// (pq.master_key_status). Call as owner.
pub fn probe_mdk(id: Kid) -> PqResult<()> {
    unwrap_stored(id).map(drop)
}

/// How long ago the MDK `id` was unwrapped into this backend's cache.
pub fn mdk_cached_at(id: Kid) -> Option<cache::Micros> {
    cache::with(|c| c.mdks.get(&id).map(|(_, at)| *at))
}

/// The active MDK, created (and wrapped by the configured provider) on
/// first use. Call as owner.
fn active_mdk_for_write() -> PqResult<Rc<MasterDataKey>> {
    match active_mdk_id()? {
        Some(id) => mdk(id),
        None => Ok(create_mdk(provider::configured()?)?.0),
    }
}

/// A new MDK, wrapped by provider `provider_name` and stored as the active
/// one (there must be no active one); returns it with the provider's key
/// reference. Call as owner.
fn create_mdk(provider_name: &'static str) -> PqResult<(Rc<MasterDataKey>, String)> {
    // Before ALTER EXTENSION UPDATE to 0.3.0 there is no system_identifier
    // column; only file wraps (which do not use it) can be made then.
    let bound = catalog::pq_column_exists(c"master_keys", c"system_identifier");
    if !bound && provider_name != "file" {
        return Err(PqError::Provider {
            message: format!("the {provider_name} master key provider needs apg_pqcrypto 0.3.0"),
            hint: Some("run ALTER EXTENSION apg_pqcrypto UPDATE".into()),
            detail_log: None,
        });
    }
    let key = unwrapping(|| Ok(Dek::generate()?))?;
    let id = mdk_id(&key);
    let binding = provider::binding(id, Some(provider::system_identifier()));
    let (wrapped, key_ref) = provider::wrap(provider_name, &key, &binding)?;
    let mdk = unwrapping(|| Ok(Rc::new(MasterDataKey::from_mdk(&key))))?;
    drop(key);
    let mut args: Vec<pgrx::datum::DatumWithOid<'_>> =
        vec![id.as_bytes().as_slice().into(), provider_name.into(), key_ref.as_str().into(), wrapped.as_slice().into()];
    let query = if bound {
        args.push(binding.system_identifier.as_str().into());
        "INSERT INTO pq.master_keys (id, provider, provider_key_id, wrapped_key, system_identifier)
         VALUES ($1, $2, $3, $4, $5) RETURNING true"
    } else {
        "INSERT INTO pq.master_keys (id, provider, provider_key_id, wrapped_key) VALUES ($1, $2, $3, $4) RETURNING true"
    };
    catalog::write_one::<bool>(query, &args)?;
    if cache::enabled() {
        cache::with_mut(|c| c.mdks.insert(id, (mdk.clone(), cache::now())));
    }
    Ok((mdk, key_ref))
}

/// `wrapped` (under `from`) wrapped under `new` for the same place; a
/// secret that does not unwrap is an internal error that `damaged` names
/// (public message, log detail).
fn rewrap_secret(
    from: &MasterDataKey,
    new: &MasterDataKey,
    wrapped: &[u8],
    context: &WrapContext<'_>,
    damaged: impl FnOnce() -> (&'static str, String),
) -> PqResult<Vec<u8>> {
    let secret = from.unwrap(wrapped, context).map_err(|_| {
        let (message, detail) = damaged();
        PqError::internal(message, detail)
    })?;
    Ok(new.wrap(secret.expose(), context)?)
}

/// A stored key version with its wrapped seeds.
pub struct StoredSeeds {
    pub tenant: String,
    pub version: i32,
    pub kid: Vec<u8>,
    pub mdk_id: Vec<u8>,
    pub kem: Vec<u8>,
    pub dsa: Vec<u8>,
    pub sealed_dek: Vec<u8>,
}

impl StoredSeeds {
    /// The version's suite, from its sealed DEK.
    pub fn suite(&self) -> PqResult<Suite> {
        dek_suite(&self.sealed_dek).map_err(|_| {
            PqError::internal(
                "a stored tenant key is damaged",
                format!("tenant {} version {}: the sealed DEK", self.tenant, self.version),
            )
        })
    }
}

/// Every version of `tenant` (None: of every tenant) that has seeds, by
/// tenant and version. Call as owner.
pub fn stored_seeds(tenant: Option<&str>) -> PqResult<Vec<StoredSeeds>> {
    catalog::write_rows(
        "SELECT tenant, version, kid, mdk_id, wrapped_kem_seed, wrapped_dsa_seed, sealed_dek FROM pq.tenant_key_versions
          WHERE wrapped_kem_seed IS NOT NULL AND ($1::text IS NULL OR tenant = $1) ORDER BY tenant, version",
        &[tenant.into()],
        |row| {
            Ok(StoredSeeds {
                tenant: row.get::<String>(1)?.unwrap_or_default(),
                version: row.get::<i32>(2)?.unwrap_or_default(),
                kid: row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                mdk_id: row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                kem: row.get::<Vec<u8>>(5)?.unwrap_or_default(),
                dsa: row.get::<Vec<u8>>(6)?.unwrap_or_default(),
                sealed_dek: row.get::<Vec<u8>>(7)?.unwrap_or_default(),
            })
        },
    )
}

/// What [`rotate_master_data_key`] did.
pub struct MasterRotation {
    /// The retired MDK's id and provider, if there was an active one.
    pub old: Option<(Kid, String)>,
    pub new: Kid,
    /// The new MDK's key reference in its provider.
    pub key_ref: String,
    pub versions_rewrapped: i32,
}

/// Retires the active MDK, creates a new one wrapped by provider
/// `provider_name`, and rewraps every tenant version's seeds under it.
/// Call as owner, with pq.master_keys locked.
pub fn rotate_master_data_key(provider_name: &'static str) -> PqResult<MasterRotation> {
    let old = catalog::write_row(
        "UPDATE pq.master_keys SET state = 'retired' WHERE state = 'active' RETURNING id, provider",
        &[],
        |row| Ok((row.get::<Vec<u8>>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default())),
    )?
    .map(|(id, provider)| Ok::<_, PqError>((stored_kid(&id)?, provider)))
    .transpose()?;
    let (new, key_ref) = create_mdk(provider_name)?;
    let rows = stored_seeds(None)?;
    for row in &rows {
        let (tenant, version, kem, dsa) = (row.tenant.as_str(), &row.version, &row.kem, &row.dsa);
        let from = mdk(stored_kid(&row.mdk_id)?)?;
        let suite = row.suite()?;
        let (kem, dsa) = unwrapping(|| {
            let rewrap = |wrapped: &[u8], purpose| {
                rewrap_secret(&from, &new, wrapped, &WrapContext { tenant, version: *version as u32, purpose }, || {
                    ("a stored tenant key is damaged", format!("tenant {tenant} version {version}: a seed does not unwrap"))
                })
            };
            Ok((rewrap(kem, Purpose::kem_seed(suite))?, rewrap(dsa, Purpose::DsaSeed)?))
        })?;
        catalog::write_one::<bool>(
            "UPDATE pq.tenant_key_versions SET wrapped_kem_seed = $3, wrapped_dsa_seed = $4, mdk_id = $5
              WHERE tenant = $1 AND version = $2 RETURNING true",
            &[
                tenant.into(),
                (*version).into(),
                kem.as_slice().into(),
                dsa.as_slice().into(),
                new.id().as_bytes().as_slice().into(),
            ],
        )?;
    }
    rewrap_classical(&new)?;
    rewrap_audit_keys(&new)?;
    Ok(MasterRotation { old, new: new.id(), key_ref, versions_rewrapped: rows.len() as i32 })
}

// ---------------------------------------------------------------- tenant key versions

/// The columns `load_version` reads; `expires` is activated_at + max_key_age
/// in PostgreSQL's microseconds since 2000-01-01.
const VERSION_COLUMNS: &str = "v.tenant, v.version, v.state, v.kid, v.mdk_id, v.wrapped_kem_seed, v.sealed_dek,
    ((extract(epoch FROM v.activated_at) - 946684800) * 1000000)::bigint + p.max_key_age * 1000000
    FROM pq.tenant_key_versions v LEFT JOIN pq.tenant_policies p ON p.tenant = v.tenant";
/// The same before `ALTER EXTENSION UPDATE` to 0.2.0 (no policies yet).
const VERSION_COLUMNS_0_1: &str = "v.tenant, v.version, v.state, v.kid, v.mdk_id, v.wrapped_kem_seed, v.sealed_dek,
    NULL::bigint FROM pq.tenant_key_versions v";

/// Loads and unwraps the version a query selects (as owner), if any.
/// Errors name no tenant: the caller may have reached it through a kid.
fn load_version(query: &str, arg: pgrx::datum::DatumWithOid<'_>) -> PqResult<Option<Rc<VersionKeys>>> {
    let columns = if catalog::pq_table_exists(c"tenant_policies") { VERSION_COLUMNS } else { VERSION_COLUMNS_0_1 };
    let row = catalog::row(&format!("SELECT {columns} {query}"), &[arg], |row| {
        Ok((
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<i32>(2)?.unwrap_or_default(),
            row.get::<String>(3)?.unwrap_or_default(),
            row.get::<Vec<u8>>(4)?.unwrap_or_default(),
            row.get::<Vec<u8>>(5)?.unwrap_or_default(),
            row.get::<Vec<u8>>(6)?,
            row.get::<Vec<u8>>(7)?,
            row.get::<i64>(8)?,
        ))
    })?;
    let Some((tenant, version, state, kid, mdk_id, wrapped_seed, sealed_dek, expires)) = row else {
        return Ok(None);
    };
    let state = KeyState::parse(&state)?;
    if state == KeyState::Disabled {
        return Err(PqError::KeyState("the key version of this envelope is disabled".into()));
    }
    let (Some(wrapped_seed), Some(sealed_dek), false) = (wrapped_seed, sealed_dek, state == KeyState::Destroyed) else {
        return Err(PqError::KeyState("the key version of this envelope is destroyed".into()));
    };
    let kid = stored_kid(&kid)?;
    let mdk = mdk(stored_kid(&mdk_id)?)?;
    let damaged = |what: &str| {
        PqError::internal("a stored tenant key is damaged", format!("tenant {tenant} version {version}: {what}"))
    };
    let suite = dek_suite(&sealed_dek).map_err(|_| damaged("the sealed DEK is malformed"))?;
    let keys = unwrapping(|| {
        let context = WrapContext { tenant: &tenant, version: version as u32, purpose: Purpose::kem_seed(suite) };
        let seed = mdk.unwrap(&wrapped_seed, &context).map_err(|_| damaged("the KEM seed does not unwrap"))?;
        let kem = RecipientSecret::from_seed(suite, seed.expose())?;
        if kem.kid() != kid {
            return Err(damaged("the KEM seed does not match the kid"));
        }
        let dek = open_dek(&kem, &sealed_dek).map_err(|_| damaged("the sealed DEK does not open"))?;
        let cipher = KeyedCipher::new(&dek, kid);
        Ok(Rc::new(VersionKeys {
            tenant: tenant.clone(),
            version,
            state,
            kem,
            cipher,
            mdk_id: mdk.id(),
            signing: RefCell::new(None),
            loaded: cache::now(),
            expires,
        }))
    })?;
    Ok(Some(keys))
}

fn cache_version(keys: &Rc<VersionKeys>) {
    if cache::enabled() {
        cache::with_mut(|c| {
            if keys.state == KeyState::Active {
                c.active.insert(keys.tenant.clone(), keys.kid());
            }
            c.versions.insert(keys.kid(), keys.clone());
        });
    }
}

/// The active version of `tenant`, for encrypting and signing. On a hot
/// standby: 25006 (`what` names the operation).
pub fn active_version(tenant: &str, what: &'static str) -> PqResult<Rc<VersionKeys>> {
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly(what));
    }
    access::require_usable(tenant)?;
    let now = cache::now();
    let hit = cache::with(|c| {
        c.active.get(tenant).and_then(|kid| c.versions.get(kid)).filter(|v| c.fresh(v.loaded, now)).cloned()
    });
    let keys = match hit {
        Some(keys) => keys,
        None => {
            let keys = catalog::as_owner(|| {
                load_version("WHERE v.tenant = $1 AND v.state = 'active'", tenant.into())?.ok_or_else(|| {
                    PqError::KeyState(format!("tenant \"{}\" has no active key version", crate::platform::errors::echo(tenant)))
                })
            })?;
            cache_version(&keys);
            keys
        }
    };
    if keys.expires.is_some_and(|at| now >= at) {
        return Err(PqError::KeyStateHint(
            format!("the active key version of tenant \"{}\" is older than its max_key_age", crate::platform::errors::echo(tenant)),
            "rotate it: SELECT * FROM pq.rotate_tenant_key(tenant, reason)",
        ));
    }
    Ok(keys)
}

/// The version whose kid an envelope names, for decrypting. PQ002 when no
/// version has it; 42501 when it belongs to a tenant the caller may not use.
pub fn version_by_kid(kid: Kid) -> PqResult<Rc<VersionKeys>> {
    cache::refresh();
    let now = cache::now();
    let hit = cache::with(|c| c.versions.get(&kid).filter(|v| c.fresh(v.loaded, now)).cloned());
    if let Some(keys) = hit {
        access::require_usable_unnamed(&keys.tenant)?;
        return Ok(keys);
    }
    let tenant = catalog::as_owner(|| {
        catalog::one::<String>("SELECT tenant FROM pq.tenant_key_versions WHERE kid = $1", &[kid.as_bytes().as_slice().into()])
    })?
    .ok_or(PqError::UnknownKid)?;
    access::require_usable_unnamed(&tenant)?;
    let keys =
        catalog::as_owner(|| load_version("WHERE v.kid = $1", kid.as_bytes().as_slice().into())?.ok_or(PqError::UnknownKid))?;
    cache_version(&keys);
    Ok(keys)
}

/// The signing key of a version, unwrapped on first use.
pub fn signing_key(keys: &VersionKeys) -> PqResult<Rc<SigningKey>> {
    if let Some(key) = keys.signing.borrow().clone() {
        return Ok(key);
    }
    let (wrapped, mdk) = catalog::as_owner(|| {
        let wrapped = catalog::one::<Vec<u8>>(
            "SELECT wrapped_dsa_seed FROM pq.tenant_key_versions WHERE kid = $1",
            &[keys.kid().as_bytes().as_slice().into()],
        )?
        .ok_or_else(|| PqError::KeyState("the signing key of this key version is destroyed".into()))?;
        Ok((wrapped, mdk(keys.mdk_id)?))
    })?;
    let key = unwrapping(|| {
        let context = WrapContext { tenant: &keys.tenant, version: keys.version as u32, purpose: Purpose::DsaSeed };
        let seed = mdk.unwrap(&wrapped, &context).map_err(|_| {
            PqError::internal(
                "a stored tenant key is damaged",
                format!("tenant {} version {}: the ML-DSA seed does not unwrap", keys.tenant, keys.version),
            )
        })?;
        Ok(Rc::new(SigningKey::from_seed(&DsaSeed::from_slice(seed.expose())?)))
    })?;
    *keys.signing.borrow_mut() = Some(key.clone());
    Ok(key)
}

/// The verifying key of `tenant`'s version with ML-DSA kid `signing_kid`, if
/// there is one: active, retired and destroyed versions verify (the key is
/// public); a disabled one is PQ003.
pub fn verifying_key(tenant: &str, signing_kid: Kid) -> PqResult<Option<Rc<VerifyingKey>>> {
    access::require_usable(tenant)?;
    let now = cache::now();
    let hit = cache::with(|c| {
        c.verifying
            .get(&signing_kid)
            .filter(|(t, _, at)| t == tenant && c.fresh(*at, now))
            .map(|(_, k, _)| k.clone())
    });
    if hit.is_some() {
        return Ok(hit);
    }
    let row = catalog::as_owner(|| {
        catalog::row(
            "SELECT verifying_key, state FROM pq.tenant_key_versions WHERE tenant = $1 AND signing_kid = $2",
            &[tenant.into(), signing_kid.as_bytes().as_slice().into()],
            |row| Ok((row.get::<Vec<u8>>(1)?, row.get::<String>(2)?)),
        )
    })?;
    let Some((Some(bytes), Some(state))) = row else { return Ok(None) };
    if KeyState::parse(&state)? == KeyState::Disabled {
        return Err(PqError::KeyState("the key version that made this signature is disabled".into()));
    }
    let key = Rc::new(VerifyingKey::from_slice(&bytes)?);
    if cache::enabled() {
        cache::with_mut(|c| c.verifying.insert(signing_kid, (tenant.to_owned(), key.clone(), now)));
    }
    Ok(Some(key))
}

// ---------------------------------------------------------------- writes

/// A new key version for `tenant` with a KEM key of `suite` (the caller has
/// checked the right to do so); returns its kid. Runs as owner.
pub fn insert_version(tenant: &str, version: i32, suite: Suite) -> PqResult<Kid> {
    let mdk = active_mdk_for_write()?;
    let (keys, wrapped_kem, wrapped_dsa) = unwrapping(|| {
        let keys = pqcore::TenantKeys::generate(suite)?;
        let wrap = |secret: &[u8], purpose| mdk.wrap(secret, &WrapContext { tenant, version: version as u32, purpose });
        let wrapped_kem = wrap(keys.kem_seed.expose(), Purpose::kem_seed(suite))?;
        let wrapped_dsa = wrap(keys.dsa_seed.expose(), Purpose::DsaSeed)?;
        Ok((keys, wrapped_kem, wrapped_dsa))
    })?;
    let kid = keys.kem.kid();
    catalog::write_one::<bool>(
        "INSERT INTO pq.tenant_key_versions
           (tenant, version, state, kid, signing_kid, mdk_id, wrapped_kem_seed, wrapped_dsa_seed,
            sealed_dek, public_key, verifying_key)
         VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10) RETURNING true",
        &[
            tenant.into(),
            version.into(),
            kid.as_bytes().as_slice().into(),
            keys.signing.kid().as_bytes().as_slice().into(),
            mdk.id().as_bytes().as_slice().into(),
            wrapped_kem.as_slice().into(),
            wrapped_dsa.as_slice().into(),
            keys.sealed_dek.as_slice().into(),
            keys.kem.public_key().as_bytes().into(),
            keys.signing.verifying_key().as_bytes().as_slice().into(),
        ],
    )?;
    Ok(kid)
}

/// The KEM suite a tenant chose at creation (ML-KEM-768 before 0.6.0).
/// `writing`: the caller writes (a rotation), so the lookup must see a
/// tenant created earlier in this transaction; otherwise it is read-only
/// (a session, also on a hot standby). Runs as owner.
pub fn tenant_suite(tenant: &str, writing: bool) -> PqResult<Suite> {
    if !catalog::pq_column_exists(c"tenants", c"kem") {
        return Ok(Suite::MlKem768);
    }
    let query = "SELECT kem FROM pq.tenants WHERE name = $1";
    let name = if writing {
        catalog::write_one::<String>(query, &[tenant.into()])?
    } else {
        catalog::one::<String>(query, &[tenant.into()])?
    };
    Ok(name.as_deref().and_then(Suite::parse).unwrap_or(Suite::MlKem768))
}

/// Every kid of `tenant`'s versions (of every tenant when None), any state.
pub fn known_kids(tenant: Option<&str>) -> PqResult<Vec<Vec<u8>>> {
    catalog::connect(|client| {
        let rows = client.select(
            "SELECT kid FROM pq.tenant_key_versions WHERE $1::text IS NULL OR tenant = $1",
            None,
            &[tenant.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.get::<Vec<u8>>(1)?.unwrap_or_default());
        }
        Ok(out)
    })
}

/// The tenant and version a kid belongs to, if the caller sees that tenant
/// (pq_inspect shows nothing about other tenants' keys).
pub fn describe_kid(kid: Kid, kind: pqcore::Kind) -> PqResult<Option<(String, i32)>> {
    let column = if kind == pqcore::Kind::Signature { "v.signing_kid" } else { "v.kid" };
    let row = catalog::as_owner(|| {
        catalog::row(
            &format!("SELECT v.tenant, v.version FROM pq.tenant_key_versions v WHERE {column} = $1"),
            &[kid.as_bytes().as_slice().into()],
            |row| Ok((row.get::<String>(1)?, row.get::<i32>(2)?)),
        )
    })?;
    let Some((Some(tenant), Some(version))) = row else { return Ok(None) };
    Ok(access::visible(&tenant)?.then_some((tenant, version)))
}

// ---------------------------------------------------------------- classical keys

/// A tenant's classical (pgcrypto) key, unwrapped; wiped when dropped.
pub struct ClassicalSecret {
    pub id: i32,
    /// pgp_sym, pgp_pub or raw.
    pub kind: String,
    /// pgcrypto options (pgp kinds) or the raw cipher's settings.
    pub options: String,
    pub key: zeroize::Zeroizing<Vec<u8>>,
    /// The passphrase of a pgp_pub secret key, if it has one.
    pub passphrase: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// The public key matching a pgp_pub secret key, for dual-mode writes.
    pub public_key: Option<Vec<u8>>,
}

/// Stores a classical key of `tenant`, wrapped under the active MDK, and
/// returns its id. Call as owner.
pub fn insert_classical(
    tenant: &str,
    kind: &str,
    options: &str,
    key: &[u8],
    passphrase: Option<&[u8]>,
    public_key: Option<&[u8]>,
) -> PqResult<i32> {
    let mdk = active_mdk_for_write()?;
    let id = catalog::write_one::<i64>("SELECT nextval(pg_catalog.pg_get_serial_sequence('pq.classical_keys', 'id'))", &[])?
        .ok_or_else(|| PqError::internal("no id for a classical key", String::new()))? as i32;
    let context = |purpose| WrapContext { tenant, version: id as u32, purpose };
    let wrapped_key = mdk.wrap(key, &context(Purpose::ClassicalKey))?;
    let wrapped_passphrase = passphrase.map(|p| mdk.wrap(p, &context(Purpose::ClassicalPassphrase))).transpose()?;
    catalog::write_one::<bool>(
        "INSERT INTO pq.classical_keys (id, tenant, kind, options, mdk_id, wrapped_key, wrapped_passphrase, public_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING true",
        &[
            id.into(),
            tenant.into(),
            kind.into(),
            options.into(),
            mdk.id().as_bytes().as_slice().into(),
            wrapped_key.as_slice().into(),
            wrapped_passphrase.as_deref().into(),
            public_key.into(),
        ],
    )?;
    Ok(id)
}

/// The classical keys of `tenant`, newest first, unwrapped. Call as owner.
pub fn classical_keys(tenant: &str) -> PqResult<Vec<ClassicalSecret>> {
    type Row = (i32, String, String, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
    let rows: Vec<Row> = catalog::connect(|client| {
        let rows = client.select(
            "SELECT id, kind, options, mdk_id, wrapped_key, wrapped_passphrase, public_key FROM pq.classical_keys
              WHERE tenant = $1 ORDER BY id DESC",
            None,
            &[tenant.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                row.get::<Vec<u8>>(5)?.unwrap_or_default(),
                row.get::<Vec<u8>>(6)?,
                row.get::<Vec<u8>>(7)?,
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, kind, options, mdk_id, wrapped_key, wrapped_passphrase, public_key) in rows {
        let mdk = mdk(stored_kid(&mdk_id)?)?;
        let damaged = || PqError::internal("a stored classical key is damaged", format!("tenant {tenant} classical key {id}"));
        let unwrap = |wrapped: &[u8], purpose| {
            mdk.unwrap(wrapped, &WrapContext { tenant, version: id as u32, purpose })
                .map(|p| zeroize::Zeroizing::new(p.expose().to_vec()))
                .map_err(|_| damaged())
        };
        // In locked, undumpable memory, like the tenant keys.
        let (key, passphrase) = unwrapping(|| {
            Ok((unwrap(&wrapped_key, Purpose::ClassicalKey)?, wrapped_passphrase.map(|w| unwrap(&w, Purpose::ClassicalPassphrase)).transpose()?))
        })?;
        out.push(ClassicalSecret { id, kind, options, key, passphrase, public_key });
    }
    Ok(out)
}

/// Rewraps every classical key under `new` (master key rotation). Call as owner.
fn rewrap_classical(new: &MasterDataKey) -> PqResult<()> {
    if !catalog::pq_table_exists(c"classical_keys") {
        return Ok(());
    }
    /// id, tenant, mdk_id, wrapped key, wrapped passphrase.
    type Row = (i32, String, Vec<u8>, Vec<u8>, Option<Vec<u8>>);
    let rows: Vec<Row> = catalog::connect(|client| {
        let rows = client.select(
            "SELECT id, tenant, mdk_id, wrapped_key, wrapped_passphrase FROM pq.classical_keys ORDER BY id",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                row.get::<Vec<u8>>(5)?,
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    for (id, tenant, old_id, key, passphrase) in rows {
        let from = mdk(stored_kid(&old_id)?)?;
        let (key, passphrase) = unwrapping(|| {
            let rewrap = |wrapped: &[u8], purpose| {
                rewrap_secret(&from, new, wrapped, &WrapContext { tenant: &tenant, version: id as u32, purpose }, || {
                    ("a stored classical key is damaged", format!("tenant {tenant} classical key {id}"))
                })
            };
            Ok((rewrap(&key, Purpose::ClassicalKey)?, passphrase.map(|p| rewrap(&p, Purpose::ClassicalPassphrase)).transpose()?))
        })?;
        catalog::write_one::<bool>(
            "UPDATE pq.classical_keys SET wrapped_key = $2, wrapped_passphrase = $3, mdk_id = $4 WHERE id = $1 RETURNING true",
            &[id.into(), key.as_slice().into(), passphrase.as_deref().into(), new.id().as_bytes().as_slice().into()],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------- the audit key

/// The active system audit key (ML-DSA-65 + Ed25519), created and wrapped
/// under the active MDK on first use. Call as owner; writes when it creates.
pub fn audit_key() -> PqResult<(Kid, pqcore::audit::AuditKey)> {
    let row = catalog::row(
        "SELECT kid, mdk_id, wrapped_ml_dsa_seed, wrapped_ed25519_seed FROM pq.audit_keys WHERE state = 'active'",
        &[],
        |row| {
            Ok((
                row.get::<Vec<u8>>(1)?.unwrap_or_default(),
                row.get::<Vec<u8>>(2)?.unwrap_or_default(),
                row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?.unwrap_or_default(),
            ))
        },
    )?;
    let Some((kid, mdk_id, wrapped_dsa, wrapped_ed)) = row else {
        return create_audit_key();
    };
    let kid = stored_kid(&kid)?;
    let from = mdk(stored_kid(&mdk_id)?)?;
    let damaged = || PqError::internal("the stored audit key is damaged", format!("audit key {}", kid.to_hex()));
    let key = unwrapping(|| {
        let dsa = from.unwrap(&wrapped_dsa, &audit_context(Purpose::AuditSeed)).map_err(|_| damaged())?;
        let ed = from.unwrap(&wrapped_ed, &audit_context(Purpose::AuditEd25519Seed)).map_err(|_| damaged())?;
        Ok(pqcore::audit::AuditKey::from_seeds(&DsaSeed::from_slice(dsa.expose())?, ed.expose())?)
    })?;
    if key.verifying_key()?.kid() != kid {
        return Err(damaged());
    }
    Ok((kid, key))
}

/// Audit keys are system keys: no tenant, version 0.
fn audit_context(purpose: Purpose) -> WrapContext<'static> {
    WrapContext { tenant: "", version: 0, purpose }
}

fn create_audit_key() -> PqResult<(Kid, pqcore::audit::AuditKey)> {
    let mdk = active_mdk_for_write()?;
    let (key, wrapped_dsa, wrapped_ed) = unwrapping(|| {
        let (dsa_seed, ed_seed, key) = pqcore::audit::AuditKey::generate()?;
        let wrapped_dsa = mdk.wrap(dsa_seed.expose(), &audit_context(Purpose::AuditSeed))?;
        let wrapped_ed = mdk.wrap(&ed_seed[..], &audit_context(Purpose::AuditEd25519Seed))?;
        Ok((key, wrapped_dsa, wrapped_ed))
    })?;
    let public = key.verifying_key()?;
    catalog::write_one::<bool>(
        "INSERT INTO pq.audit_keys (kid, ml_dsa_public_key, ed25519_public_key, mdk_id, wrapped_ml_dsa_seed, wrapped_ed25519_seed)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING true",
        &[
            public.kid().as_bytes().as_slice().into(),
            public.ml_dsa().as_bytes().as_slice().into(),
            public.ed25519().as_slice().into(),
            mdk.id().as_bytes().as_slice().into(),
            wrapped_dsa.as_slice().into(),
            wrapped_ed.as_slice().into(),
        ],
    )?;
    Ok((public.kid(), key))
}

/// Rewraps the audit keys' seeds under a new MDK (master key rotation).
fn rewrap_audit_keys(new: &MasterDataKey) -> PqResult<()> {
    if !catalog::pq_table_exists(c"audit_keys") {
        return Ok(());
    }
    /// kid, mdk_id, wrapped ML-DSA seed, wrapped Ed25519 seed.
    type Row = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
    let rows: Vec<Row> = catalog::connect(|client| {
        let rows = client.select(
            "SELECT kid, mdk_id, wrapped_ml_dsa_seed, wrapped_ed25519_seed FROM pq.audit_keys ORDER BY created_at",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((
                row.get::<Vec<u8>>(1)?.unwrap_or_default(),
                row.get::<Vec<u8>>(2)?.unwrap_or_default(),
                row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?.unwrap_or_default(),
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    for (kid, old_id, dsa, ed) in rows {
        let from = mdk(stored_kid(&old_id)?)?;
        let (dsa, ed) = unwrapping(|| {
            let rewrap = |wrapped: &[u8], purpose| {
                rewrap_secret(&from, new, wrapped, &audit_context(purpose), || {
                    ("the stored audit key is damaged", format!("audit key {}", hex::encode(&kid)))
                })
            };
            Ok((rewrap(&dsa, Purpose::AuditSeed)?, rewrap(&ed, Purpose::AuditEd25519Seed)?))
        })?;
        catalog::write_one::<bool>(
            "UPDATE pq.audit_keys SET wrapped_ml_dsa_seed = $2, wrapped_ed25519_seed = $3, mdk_id = $4 WHERE kid = $1 RETURNING true",
            &[kid.as_slice().into(), dsa.as_slice().into(), ed.as_slice().into(), new.id().as_bytes().as_slice().into()],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------- escrow and restore (0.7.0)

/// The active MDK's id and the key itself (created on first use; a
/// provider call): what `pq.escrow_split` splits. Call as owner.
pub fn active_mdk_key() -> PqResult<(Kid, Dek)> {
    let id = match active_mdk_id()? {
        Some(id) => id,
        None => active_mdk_for_write()?.id(),
    };
    Ok((id, unwrapping(|| unwrap_stored(id))?))
}

/// Wraps `mdk` (recovered from escrow) with provider `provider_name` in
/// place of its lost wrap; returns the provider's key reference. The
/// caches of every backend drop it (pq.master_keys changed). Call as owner.
pub fn rewrap_mdk(mdk: &Dek, provider_name: &'static str) -> PqResult<String> {
    let id = mdk_id(mdk);
    let binding = provider::binding(id, Some(provider::system_identifier()));
    let (wrapped, key_ref) = provider::wrap(provider_name, mdk, &binding)?;
    catalog::write_one::<bool>(
        "UPDATE pq.master_keys SET provider = $2, provider_key_id = $3, wrapped_key = $4, system_identifier = $5
          WHERE id = $1 RETURNING true",
        &[
            id.as_bytes().as_slice().into(),
            provider_name.into(),
            key_ref.as_str().into(),
            wrapped.as_slice().into(),
            binding.system_identifier.as_str().into(),
        ],
    )?
    .ok_or_else(|| PqError::internal("the master data key is missing", format!("master data key {}", id.to_hex())))?;
    cache::with_mut(|c| c.mdks.remove(&id));
    Ok(key_ref)
}

/// A one-time ML-KEM-768 key for an escrow recovery request or a restore
/// (`purpose`): its seed wrapped under a fresh random key that the
/// configured provider wraps (the new KEK, in a recovery). Returns its kid
/// and public key. Call as owner.
pub fn create_recovery_key(purpose: &str) -> PqResult<(Kid, Vec<u8>)> {
    let provider_name = provider::configured()?;
    let (kid, public_key, key_id, wrapped_seed, wrapped_key, key_ref, system_identifier) = unwrapping(|| {
        let wrapping_key = Dek::generate()?;
        let key_id = mdk_id(&wrapping_key);
        let binding = provider::binding(key_id, Some(provider::system_identifier()));
        let (wrapped_key, key_ref) = provider::wrap(provider_name, &wrapping_key, &binding)?;
        let (seed, secret) = RecipientSecret::generate(Suite::MlKem768)?;
        let kid = secret.kid();
        let kid_hex = kid.to_hex();
        let context = WrapContext { tenant: &kid_hex, version: 0, purpose: Purpose::RecoveryKeySeed };
        let wrapped_seed = MasterDataKey::from_mdk(&wrapping_key).wrap(seed.expose(), &context)?;
        let public_key = secret.public_key().as_bytes().to_vec();
        Ok((kid, public_key, key_id, wrapped_seed, wrapped_key, key_ref, binding.system_identifier))
    })?;
    catalog::write_one::<bool>(
        "INSERT INTO pq.recovery_keys (kid, purpose, public_key, provider, provider_key_id, key_id, wrapped_key,
                                       system_identifier, wrapped_seed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING true",
        &[
            kid.as_bytes().as_slice().into(),
            purpose.into(),
            public_key.as_slice().into(),
            provider_name.into(),
            key_ref.as_str().into(),
            key_id.as_bytes().as_slice().into(),
            wrapped_key.as_slice().into(),
            system_identifier.as_str().into(),
            wrapped_seed.as_slice().into(),
        ],
    )?;
    Ok((kid, public_key))
}

/// The secret half of an unused one-time key of `purpose`, unwrapped
/// through its provider (in locked memory). PQ002 if this cluster has no
/// such key, 55000 if it was used. Call as owner.
pub fn recovery_secret(kid: Kid, purpose: &str) -> PqResult<RecipientSecret> {
    let row = catalog::write_row(
        "SELECT provider, provider_key_id, key_id, wrapped_key, system_identifier, wrapped_seed
           FROM pq.recovery_keys WHERE kid = $1 AND purpose = $2 FOR UPDATE",
        &[kid.as_bytes().as_slice().into(), purpose.into()],
        |row| {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?,
                row.get::<String>(5)?,
                row.get::<Vec<u8>>(6)?,
            ))
        },
    )?;
    let Some((provider_name, key_ref, key_id, wrapped_key, system_identifier, wrapped_seed)) = row else {
        return Err(PqError::UnknownKid);
    };
    let (Some(wrapped_key), Some(wrapped_seed)) = (wrapped_key, wrapped_seed) else {
        return Err(PqError::Sql {
            code: b"55000",
            message: format!("this {purpose} key was used already"),
            hint: Some(if purpose == "restore" {
                "call pq.restore_begin for a new restore key and re-seal the bundle to it".into()
            } else {
                "start a new request with pq.escrow_request_recovery".into()
            }),
        });
    };
    let key_id = stored_kid(&key_id)?;
    unwrapping(|| {
        let wrapping_key = provider::unwrap(&provider_name, &key_ref, &wrapped_key, &provider::binding(key_id, system_identifier))?;
        let kid_hex = kid.to_hex();
        let context = WrapContext { tenant: &kid_hex, version: 0, purpose: Purpose::RecoveryKeySeed };
        let seed = MasterDataKey::from_mdk(&wrapping_key).unwrap(&wrapped_seed, &context).map_err(|_| {
            PqError::internal("a stored recovery key is damaged", format!("recovery key {kid_hex}"))
        })?;
        Ok(RecipientSecret::from_seed(Suite::MlKem768, seed.expose())?)
    })
}

/// Marks a one-time key used and drops its wrapped secrets. Call as owner.
pub fn consume_recovery_key(kid: Kid) -> PqResult<()> {
    catalog::write_one::<bool>(
        "UPDATE pq.recovery_keys SET used_at = now(), wrapped_key = NULL, wrapped_seed = NULL
          WHERE kid = $1 RETURNING true",
        &[kid.as_bytes().as_slice().into()],
    )?;
    Ok(())
}

/// The plaintext seeds (KEM, ML-DSA) of a stored version, for a backup.
/// Call as owner, inside `secure_mem::scope`.
pub fn version_seeds(v: &StoredSeeds) -> PqResult<(pqcore::Plaintext, pqcore::Plaintext)> {
    let mdk = mdk(stored_kid(&v.mdk_id)?)?;
    let (tenant, version) = (v.tenant.as_str(), v.version);
    let unwrap = |wrapped: &[u8], purpose| {
        mdk.unwrap(wrapped, &WrapContext { tenant, version: version as u32, purpose }).map_err(|_| {
            PqError::internal("a stored tenant key is damaged", format!("tenant {tenant} version {version}: a seed does not unwrap"))
        })
    };
    Ok((unwrap(&v.kem, Purpose::kem_seed(v.suite()?))?, unwrap(&v.dsa, Purpose::DsaSeed)?))
}

/// A version restored from a backup, checked and wrapped under the active MDK.
pub struct RestoredVersion<'a> {
    pub tenant: &'a str,
    pub version: i32,
    pub suite: Suite,
    pub kem_seed: &'a [u8],
    pub dsa_seed: &'a [u8],
    pub sealed_dek: &'a [u8],
}

/// What [`wrap_restored`] derives: kid, signing kid, public key, verifying key.
pub type DerivedKeys = (Kid, Kid, Vec<u8>, Vec<u8>);

/// The MDK's id and the KEM and DSA seeds wrapped under it.
pub type WrappedSeeds = (Kid, Vec<u8>, Vec<u8>);

/// Derives a restored version's public keys from its seeds and checks that
/// its sealed DEK opens with them; then wraps the seeds under the active
/// MDK. Returns the derived keys and (mdk_id, wrapped KEM, wrapped DSA).
/// Call as owner.
pub fn wrap_restored(v: &RestoredVersion<'_>) -> PqResult<(DerivedKeys, WrappedSeeds)> {
    let mdk = active_mdk_for_write()?;
    unwrapping(|| {
        let damaged = || PqError::InvalidParameter(format!("the bundle's key version {} of \"{}\" is damaged", v.version, echo_tenant(v.tenant)));
        let kem = RecipientSecret::from_seed(v.suite, v.kem_seed).map_err(|_| damaged())?;
        let dsa_seed = DsaSeed::from_slice(v.dsa_seed).map_err(|_| damaged())?;
        let signing = SigningKey::from_seed(&dsa_seed);
        open_dek(&kem, v.sealed_dek).map_err(|_| damaged())?;
        let context = |purpose| WrapContext { tenant: v.tenant, version: v.version as u32, purpose };
        let wrapped_kem = mdk.wrap(v.kem_seed, &context(Purpose::kem_seed(v.suite)))?;
        let wrapped_dsa = mdk.wrap(v.dsa_seed, &context(Purpose::DsaSeed))?;
        let derived = (kem.kid(), signing.kid(), kem.public_key().as_bytes().to_vec(), signing.verifying_key().as_bytes().to_vec());
        Ok((derived, (mdk.id(), wrapped_kem, wrapped_dsa)))
    })
}

/// The active MDK's id (created on first use), for rows restored without
/// secrets (destroyed versions). Call as owner.
pub fn active_mdk_for_restore() -> PqResult<Kid> {
    Ok(active_mdk_for_write()?.id())
}

fn echo_tenant(tenant: &str) -> String {
    crate::platform::errors::echo(tenant)
}
