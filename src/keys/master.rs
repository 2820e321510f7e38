//! The master data key (MDK): read from `pq.master_keys`, unwrapped by the
//! provider recorded beside it, kept in the backend's cache, created and
//! wrapped by the configured provider on first use, and wrapped again after
//! an escrow recovery. Also the one-time keys of recovery requests and
//! restores, whose seeds are wrapped under a random key that a provider
//! wraps exactly as it wraps an MDK (FORMAT.md §6). Every unwrapping runs
//! in locked, undumpable memory (`secure_mem`).
use crate::{
    keys::{cache, provider},
    platform::{
        catalog,
        errors::{PqError, PqResult},
        secure_mem,
    },
};
use pqcore::{mdk_id, Dek, Kid, MasterDataKey, Purpose, RecipientSecret, Suite, WrapContext};
use std::rc::Rc;

pub(super) fn stored_kid(bytes: &[u8]) -> PqResult<Kid> {
    Kid::from_slice(bytes).map_err(|_| PqError::internal("a stored key id has the wrong length", String::new()))
}

/// Runs `f` (unwrapping keys) in locked memory and reports, once, if the
/// memory could not be locked.
pub(super) fn unwrapping<R>(f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
    let result = secure_mem::scope(f);
    if let Some(warning) = secure_mem::take_warning() {
        pgrx::warning!("{warning}");
    }
    result
}

/// The MDK with this id (read path: never creates anything), unwrapped by
/// the provider that pq.master_keys says wrapped it. Call as owner.
pub(super) fn mdk(id: Kid) -> PqResult<Rc<MasterDataKey>> {
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
pub(super) fn unwrap_stored(id: Kid) -> PqResult<Dek> {
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
pub(super) fn active_mdk_for_write() -> PqResult<Rc<MasterDataKey>> {
    match active_mdk_id()? {
        Some(id) => mdk(id),
        None => Ok(create_mdk(provider::configured()?)?.0),
    }
}

/// A new MDK, wrapped by provider `provider_name` and stored as the active
/// one (there must be no active one); returns it with the provider's key
/// reference. Call as owner.
pub(super) fn create_mdk(provider_name: &'static str) -> PqResult<(Rc<MasterDataKey>, String)> {
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
pub(super) fn rewrap_secret(
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

/// The active MDK's id (created on first use), for rows restored without
/// secrets (destroyed versions). Call as owner.
pub fn active_mdk_for_restore() -> PqResult<Kid> {
    Ok(active_mdk_for_write()?.id())
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
