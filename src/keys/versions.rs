//! Tenant key versions as SQL functions use them: looked up in the key
//! tables, unwrapped under the master data key, and kept in the backend's
//! cache (`cache`, which says when entries go). A cache hit costs no SPI
//! call, no unwrapping and no ML-KEM key expansion. Lookups only read
//! (read-only SPI, no transaction id), so decryption works in read-only
//! transactions and on a hot standby. Also the writes: a new version, and
//! the seeds of a stored version for a backup or from a restore.
use crate::{
    journal::latency::{self, CacheEvent, Op},
    keys::{
        access,
        cache::{self, KeyState, VersionKeys},
        master::{active_mdk_for_write, mdk, stored_kid, unwrapping},
    },
    platform::{
        catalog,
        errors::{echo, PqError, PqResult},
    },
};
use pqcore::{
    dek_suite, open_dek, Dek, DsaSeed, KeyedCipher, Kid, MasterDataKey, Purpose, RecipientSecret, SignatureSuite, SigningKey,
    Suite, VerifyingKey, WrapContext,
};
use std::cell::RefCell;
use std::rc::Rc;

/// The columns `load_version` reads; `expires` is activated_at + max_key_age
/// in PostgreSQL's microseconds since 2000-01-01.
/// `cnsa2` is true when the policy requires the CNSA 2.0 suites (0.11.0).
const VERSION_COLUMNS: &str = "v.tenant, v.version, v.state, v.kid, v.mdk_id, v.wrapped_kem_seed, v.sealed_dek,
    ((extract(epoch FROM v.activated_at) - 946684800) * 1000000)::bigint + p.max_key_age * 1000000,
    coalesce((to_jsonb(p)->>'require_suite') = 'cnsa2', false), octet_length(v.verifying_key)
    FROM pq.tenant_key_versions v LEFT JOIN pq.tenant_policies p ON p.tenant = v.tenant";
/// The same before `ALTER EXTENSION UPDATE` to 0.2.0 (no policies yet).
const VERSION_COLUMNS_0_1: &str = "v.tenant, v.version, v.state, v.kid, v.mdk_id, v.wrapped_kem_seed, v.sealed_dek,
    NULL::bigint, false, octet_length(v.verifying_key) FROM pq.tenant_key_versions v";

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
            row.get::<bool>(9)?.unwrap_or(false),
            row.get::<i32>(10)?.unwrap_or_default(),
        ))
    })?;
    let Some((tenant, version, state, kid, mdk_id, wrapped_seed, sealed_dek, expires, cnsa2, vk_len)) = row else {
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
    latency::cache(&tenant, CacheEvent::Miss);
    let timer = latency::start(Op::KeyUnwrap);
    let keys = unwrapping(|| {
        let (kem, dek) = open_stored(&mdk, &tenant, version, kid, &wrapped_seed, &sealed_dek).map_err(damaged)?;
        let signature = signature_suite_of(vk_len as usize)?;
        let outside_policy = cnsa2 && !pqcore::algorithms::cnsa2(kem.suite(), signature);
        let cipher = KeyedCipher::new(&dek, kid);
        Ok(Rc::new(VersionKeys {
            tenant: tenant.clone(),
            version,
            state,
            kem,
            cipher,
            signing: RefCell::new(None),
            loaded: cache::now(),
            expires,
            outside_policy,
            index_keys: RefCell::new(Vec::new()),
        }))
    })?;
    latency::finish(Op::KeyUnwrap, &tenant, timer);
    latency::cache(&tenant, CacheEvent::Unwrap);
    Ok(Some(keys))
}

/// A stored version's KEM key and DEK: the seed unwrapped under `mdk`,
/// checked against the stored kid, and the sealed DEK opened with it; or
/// what is wrong, without key material. Call inside `unwrapping`.
pub(super) fn open_stored(
    mdk: &MasterDataKey,
    tenant: &str,
    version: i32,
    kid: Kid,
    wrapped_seed: &[u8],
    sealed_dek: &[u8],
) -> Result<(RecipientSecret, Dek), &'static str> {
    let suite = dek_suite(sealed_dek).map_err(|_| "the sealed DEK is malformed")?;
    let context = WrapContext { tenant, version: version as u32, purpose: Purpose::kem_seed(suite) };
    let seed = mdk.unwrap(wrapped_seed, &context).map_err(|_| "the KEM seed does not unwrap")?;
    let kem = RecipientSecret::from_seed(suite, seed.expose()).map_err(|_| "the KEM seed is malformed")?;
    if kem.kid() != kid {
        return Err("the KEM seed does not give the stored kid");
    }
    let dek = open_dek(&kem, sealed_dek).map_err(|_| "the sealed DEK does not open")?;
    Ok((kem, dek))
}

/// A stored version's ML-DSA signing key of `suite`, its seed unwrapped
/// under `mdk`; or what is wrong, without key material. Call inside `unwrapping`.
pub(super) fn open_signing(
    mdk: &MasterDataKey,
    tenant: &str,
    version: i32,
    wrapped: &[u8],
    suite: SignatureSuite,
) -> Result<SigningKey, &'static str> {
    let context = WrapContext { tenant, version: version as u32, purpose: Purpose::dsa_seed(suite) };
    let seed = mdk.unwrap(wrapped, &context).map_err(|_| "the ML-DSA seed does not unwrap")?;
    let seed = DsaSeed::from_slice(seed.expose()).map_err(|_| "the ML-DSA seed is malformed")?;
    Ok(SigningKey::from_seed_for(suite, &seed))
}

/// The signature suite of a stored verifying key of `len` bytes.
pub fn signature_suite_of(len: usize) -> PqResult<SignatureSuite> {
    SignatureSuite::of_public_key_len(len)
        .ok_or_else(|| PqError::internal("a stored tenant key is damaged", format!("a verifying key of {len} bytes")))
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
    let keys = active_for_reading(tenant)?;
    if keys.expires.is_some_and(|at| cache::now() >= at) {
        return Err(PqError::KeyStateHint(
            format!("the active key version of tenant \"{}\" is older than its max_key_age", echo(tenant)),
            "rotate it: SELECT * FROM pq.rotate_tenant_key(tenant, reason)",
        ));
    }
    if keys.outside_policy {
        return Err(PqError::KeyStateHint(
            format!("the active key version of tenant \"{}\" is not of the CNSA 2.0 suites its policy requires", echo(tenant)),
            "rotate it (the rotation takes ML-KEM-1024 and ML-DSA-87): SELECT * FROM pq.rotate_tenant_key(tenant, reason)",
        ));
    }
    Ok(keys)
}

/// The active version of `tenant` for what only reads (a blind index term
/// of a lookup): also on a hot standby and past max_key_age.
pub fn active_for_reading(tenant: &str) -> PqResult<Rc<VersionKeys>> {
    cache::refresh();
    let now = cache::now();
    let role = catalog::caller();
    if let Some(keys) = cache::with(|c| c.repeat_encrypt(tenant, role, now)) {
        latency::cache(&keys.tenant, CacheEvent::Hit);
        return Ok(keys);
    }
    access::require_usable(tenant)?;
    let hit = cache::with(|c| {
        c.active.get(tenant).and_then(|kid| c.versions.get(kid)).filter(|v| c.fresh(v.loaded, now)).cloned()
    });
    if let Some(keys) = hit {
        latency::cache(&keys.tenant, CacheEvent::Hit);
        if cache::enabled() {
            cache::with_mut(|c| c.used_for_encrypt(role, &keys));
        }
        return Ok(keys);
    }
    let keys = catalog::as_owner(|| {
        load_version("WHERE v.tenant = $1 AND v.state = 'active'", tenant.into())?
            .ok_or_else(|| PqError::KeyState(format!("tenant \"{}\" has no active key version", echo(tenant))))
    })?;
    cache_version(&keys);
    Ok(keys)
}

/// The versions of `tenant` whose blind index keys are live (FORMAT.md
/// §16.3): the active one first, then retired ones whose index key has not
/// been retired, newest first. Refuses (42501) a tenant the caller may not use.
pub fn live_index_versions(tenant: &str) -> PqResult<Vec<Rc<VersionKeys>>> {
    let active = active_for_reading(tenant)?;
    let older = catalog::as_owner(|| {
        catalog::rows(
            "SELECT kid FROM pq.tenant_key_versions
              WHERE tenant = $1 AND state = 'retired' AND blind_index_retired_at IS NULL
              ORDER BY version DESC",
            &[tenant.into()],
            |row| Ok(row.get::<Vec<u8>>(1)?.unwrap_or_default()),
        )
    })?;
    let mut out = vec![active];
    for kid in older {
        out.push(version_by_kid(stored_kid(&kid)?)?);
    }
    Ok(out)
}

/// The version whose kid an envelope names, for decrypting. PQ002 when no
/// version has it; 42501 when it belongs to a tenant the caller may not use.
pub fn version_by_kid(kid: Kid) -> PqResult<Rc<VersionKeys>> {
    cache::refresh();
    let now = cache::now();
    let role = catalog::caller();
    if let Some(keys) = cache::with(|c| c.repeat_decrypt(kid, role, now)) {
        latency::cache(&keys.tenant, CacheEvent::Hit);
        return Ok(keys);
    }
    let hit = cache::with(|c| c.versions.get(&kid).filter(|v| c.fresh(v.loaded, now)).cloned());
    if let Some(keys) = hit {
        access::require_usable_unnamed(&keys.tenant)?;
        latency::cache(&keys.tenant, CacheEvent::Hit);
        if cache::enabled() {
            cache::with_mut(|c| c.used_for_decrypt(role, &keys));
        }
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
    // The seed and the MDK id are read together: a master key rotation
    // since the version was cached has rewrapped the seed under another
    // MDK than the one the cached keys were opened with.
    let (wrapped, mdk, suite) = catalog::as_owner(|| {
        let (wrapped, mdk_id, vk_len) = catalog::row(
            "SELECT wrapped_dsa_seed, mdk_id, octet_length(verifying_key) FROM pq.tenant_key_versions WHERE kid = $1",
            &[keys.kid().as_bytes().as_slice().into()],
            |row| Ok((row.get::<Vec<u8>>(1)?, row.get::<Vec<u8>>(2)?, row.get::<i32>(3)?)),
        )?
        .and_then(|(wrapped, mdk_id, vk_len)| Some((wrapped?, mdk_id?, vk_len?)))
        .ok_or_else(|| PqError::KeyState("the signing key of this key version is destroyed".into()))?;
        Ok((wrapped, mdk(stored_kid(&mdk_id)?)?, signature_suite_of(vk_len as usize)?))
    })?;
    let key = unwrapping(|| {
        open_signing(&mdk, &keys.tenant, keys.version, &wrapped, suite).map(Rc::new).map_err(|what| {
            PqError::internal("a stored tenant key is damaged", format!("tenant {} version {}: {what}", keys.tenant, keys.version))
        })
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

/// A new key version for `tenant` with a KEM key of `suite` and a signing
/// key of `signature` (the caller has checked the right to do so); returns
/// its kid. Runs as owner.
pub fn insert_version(tenant: &str, version: i32, suite: Suite, signature: SignatureSuite) -> PqResult<Kid> {
    let mdk = active_mdk_for_write()?;
    let (keys, wrapped_kem, wrapped_dsa) = unwrapping(|| {
        let keys = pqcore::TenantKeys::generate(suite, signature)?;
        let wrap = |secret: &[u8], purpose| mdk.wrap(secret, &WrapContext { tenant, version: version as u32, purpose });
        let wrapped_kem = wrap(keys.kem_seed.expose(), Purpose::kem_seed(suite))?;
        let wrapped_dsa = wrap(keys.dsa_seed.expose(), Purpose::dsa_seed(signature))?;
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
            keys.signing.verifying_key().as_bytes().into(),
        ],
    )?;
    Ok(kid)
}

/// One row of `query` with `tenant` as $1. `writing`: the caller writes (a
/// rotation), so the read must see what this transaction wrote; otherwise
/// it is read-only (a session, also on a hot standby). Runs as owner.
fn tenant_row<R>(query: &str, tenant: &str, writing: bool, f: impl FnOnce(&pgrx::spi::SpiTupleTable<'_>) -> PqResult<R>) -> PqResult<Option<R>> {
    if writing { catalog::write_row(query, &[tenant.into()], f) } else { catalog::row(query, &[tenant.into()], f) }
}

/// The suites of `tenant`'s next versions: its `kem` (ML-KEM-768 before
/// 0.6.0) and `signature` (ML-DSA-65 before 0.11.0), read through
/// `to_jsonb` so that a schema without those columns reads the defaults.
/// `writing` as for [`tenant_row`]. Runs as owner.
pub fn tenant_suites(tenant: &str, writing: bool) -> PqResult<(Suite, SignatureSuite)> {
    let names = tenant_row(
        "SELECT to_jsonb(t)->>'kem', to_jsonb(t)->>'signature' FROM pq.tenants t WHERE t.name = $1",
        tenant,
        writing,
        |row| Ok((row.get::<String>(1)?, row.get::<String>(2)?)),
    )?;
    let (kem, signature) = names.unwrap_or_default();
    Ok((
        kem.as_deref().and_then(Suite::parse).unwrap_or(Suite::MlKem768),
        signature.as_deref().and_then(SignatureSuite::parse).unwrap_or_default(),
    ))
}

/// True if `tenant`'s policy requires the CNSA 2.0 suites (0.11.0).
/// `writing` as for [`tenant_row`]. Runs as owner.
pub fn requires_cnsa2(tenant: &str, writing: bool) -> PqResult<bool> {
    if !catalog::pq_table_exists(c"tenant_policies") {
        return Ok(false);
    }
    let query = "SELECT (to_jsonb(p)->>'require_suite') = 'cnsa2' FROM pq.tenant_policies p WHERE p.tenant = $1";
    Ok(tenant_row(query, tenant, writing, |row| Ok(row.get::<bool>(1)?))?.flatten().unwrap_or(false))
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

/// A stored key version with its wrapped seeds.
pub struct StoredSeeds {
    pub tenant: String,
    pub version: i32,
    pub kid: Vec<u8>,
    pub mdk_id: Vec<u8>,
    pub kem: Vec<u8>,
    pub dsa: Vec<u8>,
    pub sealed_dek: Vec<u8>,
    /// Length of the stored verifying key (it tells the signature suite).
    pub verifying_key_len: i32,
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

    /// The version's signature suite, from its verifying key.
    pub fn signature(&self) -> PqResult<SignatureSuite> {
        signature_suite_of(self.verifying_key_len as usize)
    }
}

/// Every version of `tenant` (None: of every tenant) that has seeds, by
/// tenant and version. Call as owner.
pub fn stored_seeds(tenant: Option<&str>) -> PqResult<Vec<StoredSeeds>> {
    catalog::write_rows(
        "SELECT tenant, version, kid, mdk_id, wrapped_kem_seed, wrapped_dsa_seed, sealed_dek, octet_length(verifying_key)
           FROM pq.tenant_key_versions
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
                verifying_key_len: row.get::<i32>(8)?.unwrap_or_default(),
            })
        },
    )
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
    Ok((unwrap(&v.kem, Purpose::kem_seed(v.suite()?))?, unwrap(&v.dsa, Purpose::dsa_seed(v.signature()?))?))
}

/// A version restored from a backup, checked and wrapped under the active MDK.
pub struct RestoredVersion<'a> {
    pub tenant: &'a str,
    pub version: i32,
    pub suite: Suite,
    pub signature: SignatureSuite,
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
        let damaged = || PqError::InvalidParameter(format!("the bundle's key version {} of \"{}\" is damaged", v.version, echo(v.tenant)));
        let kem = RecipientSecret::from_seed(v.suite, v.kem_seed).map_err(|_| damaged())?;
        let dsa_seed = DsaSeed::from_slice(v.dsa_seed).map_err(|_| damaged())?;
        let signing = SigningKey::from_seed_for(v.signature, &dsa_seed);
        open_dek(&kem, v.sealed_dek).map_err(|_| damaged())?;
        let context = |purpose| WrapContext { tenant: v.tenant, version: v.version as u32, purpose };
        let wrapped_kem = mdk.wrap(v.kem_seed, &context(Purpose::kem_seed(v.suite)))?;
        let wrapped_dsa = mdk.wrap(v.dsa_seed, &context(Purpose::dsa_seed(v.signature)))?;
        let derived = (kem.kid(), signing.kid(), kem.public_key().as_bytes().to_vec(), signing.verifying_key().as_bytes().to_vec());
        Ok((derived, (mdk.id(), wrapped_kem, wrapped_dsa)))
    })
}
