//! Key lifecycle: `pq.rotate_tenant_key`, the version states
//! (`pq.disable_key_version`, `pq.enable_key_version`,
//! `pq.destroy_key_version`, `pq.set_min_decryption_version`),
//! and `pq.rewrap`. Each runs in the caller's
//! transaction, so a crash at any moment leaves the state before or after,
//! never between; each records its event (`journal::events`).
//!
//! States: active (encrypts, decrypts, signs, verifies; one per tenant),
//! retired (decrypts and verifies), disabled (refuses everything with PQ003,
//! reversible), destroyed (secrets erased; signatures still verify).
use crate::{
    journal::events,
    keys::{access, cache::{KeyState, VersionKeys}, versions},
    lifecycle::tracking,
    platform::{catalog, datum::PgBytea, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::{keyed_len, sealed, Envelope, Kind, SignatureSuite, Suite};
use serde_json::json;

/// What a rotation returns.
pub struct Rotation {
    pub kid: Vec<u8>,
    pub version: i32,
    pub archived: bool,
}

/// Checks that the caller administers keys and sees `tenant`, and that this
/// is not a standby.
pub(crate) fn require_key_admin(tenant: &str, what: &'static str) -> PqResult<()> {
    crate::platform::roles::require_admin(what)?;
    access::require_visible(tenant)?;
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly(what));
    }
    Ok(())
}

/// Locks the tenant's row, so that lifecycle changes of one tenant run one
/// at a time. Call as owner.
pub(crate) fn lock_tenant(tenant: &str) -> PqResult<()> {
    catalog::write_one::<bool>("SELECT true FROM pq.tenants WHERE name = $1 FOR UPDATE", &[tenant.into()])?
        .map(|_| ())
        .ok_or_else(|| PqError::UnknownTenant(echo(tenant)))
}

/// Retires the active version (if any) and creates the next one, active,
/// under the tenant's suite. Call as owner; the worker calls it too.
pub fn rotate_as_owner(tenant: &str, reason: &str, actor: &str) -> PqResult<Rotation> {
    rotate_to_suite(tenant, reason, actor, None, None)
}

/// [`rotate_as_owner`], moving the tenant to the KEM `kem` and the
/// signature suite `signature` where given: the new version and every later
/// one use them; older versions keep theirs. Call as owner.
pub fn rotate_to_suite(
    tenant: &str,
    reason: &str,
    actor: &str,
    kem: Option<Suite>,
    signature: Option<SignatureSuite>,
) -> PqResult<Rotation> {
    lock_tenant(tenant)?;
    if let Some(at) = crate::keys::tenants::shredded_at(tenant)? {
        return Err(PqError::KeyState(format!("tenant \"{}\" was shredded at {at}: it gets no new keys", echo(tenant))));
    }
    let old = catalog::write_one::<i32>(
        "UPDATE pq.tenant_key_versions SET state = 'retired', retired_at = now()
          WHERE tenant = $1 AND state = 'active' RETURNING version",
        &[tenant.into()],
    )?;
    let next = catalog::one::<i32>(
        "SELECT coalesce(max(version), 0) + 1 FROM pq.tenant_key_versions WHERE tenant = $1",
        &[tenant.into()],
    )?
    .unwrap_or(1);
    let (was_kem, was_signature) = versions::tenant_suites(tenant, true)?;
    // A policy requiring CNSA 2.0 moves a rotation that names no suite to
    // the CNSA 2.0 suites (also the worker's scheduled rotations).
    let cnsa2 = versions::requires_cnsa2(tenant, true)?;
    let (default_kem, default_signature) =
        if cnsa2 { (Suite::MlKem1024, SignatureSuite::MlDsa87) } else { (was_kem, was_signature) };
    let (kem, signature) = (kem.unwrap_or(default_kem), signature.unwrap_or(default_signature));
    crate::keys::tenants::require_schema_for(kem, signature)?;
    check_suites(tenant, cnsa2, kem, signature)?;
    if (kem, signature) != (was_kem, was_signature) {
        catalog::write_one::<bool>(
            "UPDATE pq.tenants SET kem = $2, signature = $3 WHERE name = $1 RETURNING true",
            &[tenant.into(), kem.name().into(), signature.name().into()],
        )?;
    }
    let kid = versions::insert_version(tenant, next, kem, signature)?;
    let mut details = json!({ "old_version": old, "kid": kid.to_hex(), "kem": kem.name(), "signature": signature.name() });
    if (kem, signature) != (was_kem, was_signature) {
        details["suite_changed_from"] = json!({ "kem": was_kem.name(), "signature": was_signature.name() });
    }
    events::record("key_rotated", Some(tenant), Some(next), actor, Some(reason), details)?;
    Ok(Rotation { kid: kid.as_bytes().to_vec(), version: next, archived: old.is_some() })
}

/// Refuses (22023) key material of `kem` and `signature` for a tenant whose
/// policy requires CNSA 2.0 (`cnsa2`).
fn check_suites(tenant: &str, cnsa2: bool, kem: pqcore::Suite, signature: pqcore::SignatureSuite) -> PqResult<()> {
    if cnsa2 && !pqcore::algorithms::cnsa2(kem, signature) {
        return Err(PqError::InvalidParameter(format!(
            "the policy of tenant \"{}\" requires CNSA 2.0 suites (kem 'ml-kem-1024', signature 'ml-dsa-87'), not {} and {}",
            echo(tenant),
            kem.name(),
            signature.name()
        )));
    }
    Ok(())
}

fn rotate(tenant: &str, reason: &str, actor: &str, kem: &str, signature: &str) -> PqResult<Rotation> {
    require_key_admin(tenant, "rotate tenant keys")?;
    // '' keeps the tenant's suite.
    let kem = (!kem.is_empty()).then(|| crate::keys::tenants::parse_kem(kem)).transpose()?;
    let signature = (!signature.is_empty()).then(|| crate::keys::tenants::parse_signature(signature)).transpose()?;
    catalog::as_owner(|| rotate_to_suite(tenant, reason, actor, kem, signature))
}

/// The state and kid of one version. Call as owner.
fn version_state(tenant: &str, version: i32) -> PqResult<(KeyState, Vec<u8>)> {
    catalog::row(
        "SELECT state, kid FROM pq.tenant_key_versions WHERE tenant = $1 AND version = $2",
        &[tenant.into(), version.into()],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<Vec<u8>>(2)?.unwrap_or_default())),
    )?
    .ok_or_else(|| PqError::InvalidParameter(format!("tenant \"{}\" has no key version {version}", echo(tenant))))
    .and_then(|(state, kid)| Ok((KeyState::parse(&state)?, kid)))
}

/// PQ003 while tracked columns hold ciphertexts of the version, or the
/// current value of a configuration key is an envelope under it, unless
/// forced.
fn check_unused(tenant: &str, version: i32, kid: &[u8], force: bool, what: &str) -> PqResult<()> {
    if force {
        return Ok(());
    }
    let (count, columns) = tracking::usage(tenant, kid)?;
    let values = config_values_under(tenant, kid)?;
    let (users, hint) = match (count > 0, values > 0) {
        (false, false) => return Ok(()),
        (true, false) => (format!("{count} ciphertexts in {columns} tracked columns"), "re-encrypt them first (pq.reencrypt), or pass force => true"),
        (false, true) => (
            format!("the current values of {values} configuration keys"),
            "set them again first (pq.config_set(tenant, key, pq.config_get(tenant, key))), or pass force => true",
        ),
        (true, true) => (
            format!("{count} ciphertexts in {columns} tracked columns and the current values of {values} configuration keys"),
            "re-encrypt the columns (pq.reencrypt) and set the values again (pq.config_set(tenant, key, pq.config_get(tenant, key))) first, or pass force => true",
        ),
    };
    Err(PqError::KeyStateHint(format!("cannot {what} version {version}: {users} still use it"), hint))
}

/// The tenant's configuration keys whose current value (the newest record,
/// if not a deletion) is an envelope under `kid`. Older records keep their
/// envelopes only to be hashed, never to be read. None before the store
/// existed (0.5.0). Call as owner.
fn config_values_under(tenant: &str, kid: &[u8]) -> PqResult<i64> {
    if !catalog::pq_table_exists(c"config_records") {
        return Ok(0);
    }
    Ok(catalog::one::<i64>(
        "SELECT count(*) FROM (SELECT DISTINCT ON (key) envelope FROM pq.config_records
                                WHERE tenant = $1 ORDER BY key, version DESC) c
          WHERE substr(c.envelope, 3, 16) = $2",
        &[tenant.into(), kid.into()],
    )?
    .unwrap_or(0))
}

/// What `set_state` does to one version.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Disable,
    Enable,
    Destroy,
}

/// Applies `change` to `tenant`'s `version`; false when it is already so.
/// Call as owner, with the tenant locked.
fn change_state(tenant: &str, version: i32, change: Change, force: bool, actor: &str, reason: Option<&str>) -> PqResult<bool> {
    let (state, kid) = version_state(tenant, version)?;
    let refuse = |m: String| Err(PqError::KeyState(m));
    match (change, state) {
        (_, KeyState::Active) if change != Change::Enable => {
            return Err(PqError::KeyStateHint(
                format!("version {version} is the active version"),
                "rotate the tenant key first (pq.rotate_tenant_key)",
            ))
        }
        (Change::Enable, KeyState::Disabled) => {}
        (Change::Enable, KeyState::Destroyed) => return refuse(format!("version {version} is destroyed")),
        (Change::Enable, _) => return Ok(false),
        (Change::Disable, KeyState::Retired) => check_unused(tenant, version, &kid, force, "disable")?,
        (Change::Disable, KeyState::Disabled) => return Ok(false),
        (Change::Disable, KeyState::Destroyed) => return refuse(format!("version {version} is destroyed")),
        (Change::Destroy, KeyState::Retired | KeyState::Disabled) => check_unused(tenant, version, &kid, force, "destroy")?,
        (Change::Destroy, KeyState::Destroyed) => return Ok(false),
        _ => return Ok(false),
    }
    let (sql, event) = match change {
        Change::Disable => ("UPDATE pq.tenant_key_versions SET state = 'disabled', disabled_at = now()", "version_disabled"),
        Change::Enable => ("UPDATE pq.tenant_key_versions SET state = 'retired', disabled_at = NULL", "version_enabled"),
        Change::Destroy => (
            "UPDATE pq.tenant_key_versions SET state = 'destroyed', destroyed_at = now(),
                    wrapped_kem_seed = NULL, wrapped_dsa_seed = NULL, sealed_dek = NULL",
            "version_destroyed",
        ),
    };
    catalog::write_one::<bool>(
        &format!("{sql} WHERE tenant = $1 AND version = $2 RETURNING true"),
        &[tenant.into(), version.into()],
    )?;
    events::record(event, Some(tenant), Some(version), actor, reason, json!({ "forced": force }))?;
    Ok(true)
}

fn set_state(tenant: &str, version: i32, change: Change, force: bool) -> PqResult<bool> {
    require_key_admin(tenant, "change key versions")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        lock_tenant(tenant)?;
        change_state(tenant, version, change, force, &actor, None)
    })
}

fn destroy(tenant: &str, version: i32, confirm: &str, force: bool) -> PqResult<bool> {
    let expected = format!("destroy {tenant} v{version}");
    if confirm != expected {
        return Err(PqError::InvalidParameter(format!(
            "to destroy a key version, confirm => '{}'",
            echo(&expected)
        )));
    }
    set_state(tenant, version, Change::Destroy, force)
}

/// Retires the blind index key of a retired version: `pq_blind_indexes`
/// stops giving its terms. Refused for the active version, and while tracked
/// columns still hold ciphertexts of the version (their terms would be
/// under it too), unless forced. False when it was not live.
fn retire_index_key(tenant: &str, version: i32, force: bool) -> PqResult<bool> {
    require_key_admin(tenant, "retire blind index keys")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        lock_tenant(tenant)?;
        let (state, kid) = version_state(tenant, version)?;
        if state == KeyState::Active {
            return Err(PqError::KeyStateHint(
                format!("version {version} is the active version: its blind index key makes every new term"),
                "rotate the tenant key and recompute stored terms first",
            ));
        }
        if state == KeyState::Destroyed {
            return Ok(false);
        }
        check_unused(tenant, version, &kid, force, "retire the blind index key of")?;
        let retired = catalog::write_one::<bool>(
            "UPDATE pq.tenant_key_versions SET blind_index_retired_at = now()
              WHERE tenant = $1 AND version = $2 AND blind_index_retired_at IS NULL RETURNING true",
            &[tenant.into(), version.into()],
        )?
        .unwrap_or(false);
        if retired {
            events::record("blind_index_key_retired", Some(tenant), Some(version), &actor, None, json!({ "forced": force }))?;
        }
        Ok(retired)
    })
}

/// Disables every retired version below `minimum`; returns how many.
fn set_min_decryption_version(tenant: &str, minimum: i32, force: bool) -> PqResult<i32> {
    require_key_admin(tenant, "change key versions")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        lock_tenant(tenant)?;
        let active = catalog::one::<i32>(
            "SELECT version FROM pq.tenant_key_versions WHERE tenant = $1 AND state = 'active'",
            &[tenant.into()],
        )?;
        if active.is_some_and(|a| a < minimum) {
            return Err(PqError::KeyStateHint(
                format!("the active version is below {minimum}"),
                "rotate the tenant key first (pq.rotate_tenant_key)",
            ));
        }
        let versions: Vec<i32> = catalog::rows(
            "SELECT version FROM pq.tenant_key_versions WHERE tenant = $1 AND version < $2 AND state = 'retired'
              ORDER BY version",
            &[tenant.into(), minimum.into()],
            |r| Ok(r.get::<i32>(1)?.unwrap_or_default()),
        )?;
        let reason = format!("minimum decryption version {minimum}");
        for &v in &versions {
            change_state(tenant, v, Change::Disable, force, &actor, Some(&reason))?;
        }
        Ok(versions.len() as i32)
    })
}

/// The plaintext of `parsed` (keyed or sealed, under `old`) made again
/// under `active`, keeping its kind: keyed stays keyed (made by the
/// server), sealed stays sealed (to the active public key: it still proves
/// nothing about its maker). `build(len, fill)` makes the output (a result
/// datum for `pq.rewrap`, a Rust buffer for a job's batch). The plaintext
/// never leaves the server; it lives in a zeroizing buffer.
pub fn reencrypt<T>(
    parsed: Envelope<'_>,
    aad: &[u8],
    old: &VersionKeys,
    active: &VersionKeys,
    build: impl FnOnce(usize, &mut dyn FnMut(&mut [u8]) -> PqResult<()>) -> PqResult<T>,
) -> PqResult<T> {
    match parsed {
        Envelope::Keyed(env) => {
            let plain = old.cipher.decrypt(&env, aad)?;
            build(keyed_len(plain.expose().len())?, &mut |out| Ok(active.cipher.encrypt_to(plain.expose(), aad, out)?))
        }
        Envelope::Sealed(env) => {
            let plain = sealed::open(&old.kem, &env, aad)?;
            // A batch item comes back as a single sealed envelope.
            build(sealed::sealed_len_for(active.kem.suite(), plain.expose().len())?, &mut |out| {
                Ok(sealed::seal_to(active.kem.public_key(), plain.expose(), aad, out)?)
            })
        }
        Envelope::Signature(_) => Err(PqError::WrongKind { found: Kind::Signature, function: "pq.rewrap" }),
    }
}

/// `pq.rewrap`: an envelope under its tenant's active version (see [`reencrypt`]).
pub fn rewrap(envelope: &[u8], aad: &[u8]) -> PqResult<PgBytea> {
    let parsed = Envelope::parse(envelope)?;
    if parsed.kind() == Kind::Signature {
        return Err(PqError::WrongKind { found: Kind::Signature, function: "pq.rewrap" });
    }
    let old = versions::version_by_kid(parsed.kid())?;
    let active = versions::active_version(&old.tenant, "rewrap")?;
    if parsed.kid() == active.kid() {
        return PgBytea::copy_of(envelope);
    }
    reencrypt(parsed, aad, &old, &active, |len, fill| PgBytea::build(len, fill))
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Retires the tenant's active version and makes a new one active. With
    /// `kem` ('ml-kem-768', 'ml-kem-1024', 'x-wing') or `signature`
    /// ('ml-dsa-65', 'ml-dsa-87'), the new version and every later one use
    /// that suite ('' keeps the tenant's); older versions keep theirs. Its
    /// C symbol is new in 0.11.0; the one below serves older scripts.
    #[pg_extern(volatile, strict, parallel_unsafe, name = "rotate_tenant_key")]
    pub fn rotate_tenant_key_suite(
        tenant: &str,
        reason: &str,
        user_id: default!(&str, "session_user"),
        kem: default!(&str, "''"),
        signature: default!(&str, "''"),
    ) -> TableIterator<
        'static,
        (name!(success, bool), name!(new_key_id, Vec<u8>), name!(new_version, i32), name!(old_key_archived, bool)),
    > {
        let r = rotate(tenant, reason, user_id, kem, signature).or_raise();
        TableIterator::once((true, r.kid, r.version, r.archived))
    }

    /// `pq.rotate_tenant_key(text, text, text)` of the install scripts
    /// before 0.11.0 (no SQL of its own now).
    #[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
    pub fn rotate_tenant_key(
        tenant: &str,
        reason: &str,
        user_id: &str,
    ) -> TableIterator<
        'static,
        (name!(success, bool), name!(new_key_id, Vec<u8>), name!(new_version, i32), name!(old_key_archived, bool)),
    > {
        let r = rotate(tenant, reason, user_id, "", "").or_raise();
        TableIterator::once((true, r.kid, r.version, r.archived))
    }

    /// Disables a retired version: it refuses everything (PQ003) until
    /// enabled again. Refused while tracked columns still use it, unless forced.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn disable_key_version(tenant: &str, version: i32, force: default!(bool, false)) -> bool {
        set_state(tenant, version, Change::Disable, force).or_raise()
    }

    /// Makes a disabled version retired again.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn enable_key_version(tenant: &str, version: i32) -> bool {
        set_state(tenant, version, Change::Enable, false).or_raise()
    }

    /// Erases a version's secrets, irreversibly. `confirm` must be
    /// 'destroy <tenant> v<version>'.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn destroy_key_version(tenant: &str, version: i32, confirm: &str, force: default!(bool, false)) -> bool {
        destroy(tenant, version, confirm, force).or_raise()
    }

    /// Disables every retired version below `version`; returns how many.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn set_min_decryption_version(tenant: &str, version: i32, force: default!(bool, false)) -> i32 {
        super::set_min_decryption_version(tenant, version, force).or_raise()
    }

    /// Retires the blind index key of a retired version (`pq_blind_indexes`
    /// stops giving its terms). True if it was live.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn retire_blind_index_key(tenant: &str, version: i32, force: default!(bool, false)) -> bool {
        retire_index_key(tenant, version, force).or_raise()
    }

    /// Re-encrypts a keyed or tenant-sealed envelope under the tenant's
    /// active version, without the plaintext leaving the server.
    #[pg_extern(volatile, strict, parallel_restricted)]
    pub fn rewrap(envelope: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
        super::rewrap(envelope, aad).or_raise()
    }
}
