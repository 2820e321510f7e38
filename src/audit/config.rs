//! The signed configuration store: `pq.config_set`, `pq.config_set_sealed`,
//! `pq.config_delete`, `pq.config_get`, `pq.config_head`, and the client
//! signers (`pq.config_register_signer`, `pq.config_drop_signer`). Checking
//! the records is `audit::config_verify`.
//!
//! Every change is a new row of `pq.config_records`: the envelope, the
//! fields of the canonical change record (`pqcore::audit::ConfigChange`,
//! docs/FORMAT.md §11), the hash of the previous record of the key, and a
//! signature envelope by the tenant's active ML-DSA-65 key; plus a row of
//! the audit chain naming the record's hash, so that removing the newest
//! record of a key is seen too.
use crate::{
    data::envelope,
    journal::{chain, events},
    keys::{access, versions},
    platform::{catalog, datum::PgText, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::audit::{
    config_aad, sealed_value_signed, sha256, ConfigChange, ConfigOp, Hash, CONFIG_CHANGE_CONTEXT, MAX_CONFIG_KEY_LEN,
};
use pqcore::{keyed_len, Envelope, Kind, VerifyingKey};
use serde_json::json;

pub(super) fn check_key(key: &str) -> PqResult<()> {
    if key.is_empty() || key.len() > MAX_CONFIG_KEY_LEN || key.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter(format!(
            "configuration keys are 1 to {MAX_CONFIG_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

pub(super) fn check_user(user: &str) -> PqResult<()> {
    if user.len() > 255 || user.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter("user_id is at most 255 bytes without control characters".into()));
    }
    Ok(())
}

fn unknown_key(key: &str) -> PqError {
    PqError::Sql {
        code: b"42704",
        message: format!("configuration key \"{}\" does not exist for this tenant", echo(key)),
        hint: None,
    }
}

pub(super) fn stored_hash(bytes: Option<Vec<u8>>) -> PqResult<Option<Hash>> {
    bytes
        .map(|b| b.as_slice().try_into().map_err(|_| PqError::internal("a stored hash has the wrong length", String::new())))
        .transpose()
}

/// The newest record of a key: (version, record_hash, new_hash), read
/// under the latest snapshot. Call as owner with the chain lock held.
fn head(tenant: &str, key: &str) -> PqResult<Option<(i64, Hash, Option<Hash>)>> {
    let args = [(pg_sys::TEXTOID, tenant.into_datum()), (pg_sys::TEXTOID, key.into_datum())];
    let row = catalog::latest_row(
        c"SELECT version, record_hash, new_hash FROM pq.config_records
           WHERE tenant = $1 AND key = $2 ORDER BY version DESC LIMIT 1",
        &args,
        |col| {
            let (v, v_null) = col(1);
            let (r, r_null) = col(2);
            let (n, n_null) = col(3);
            // SAFETY: the query's columns are bigint, bytea, bytea.
            Ok(unsafe { (i64::from_datum(v, v_null), Vec::<u8>::from_datum(r, r_null), Vec::<u8>::from_datum(n, n_null)) })
        },
    )?;
    match row {
        Some((Some(version), Some(record), new)) => Ok(Some((version, stored_hash(Some(record))?.unwrap_or_default(), stored_hash(new)?))),
        _ => Ok(None),
    }
}

/// The message format of the client signatures `pq.config_set_sealed`
/// takes (FORMAT.md §11.3): it binds the record the value replaces.
const SEALED_FORMAT: u8 = 2;

/// What a change stores besides the record fields.
struct Stored<'a> {
    op: ConfigOp,
    envelope: Option<&'a [u8]>,
    /// A sealed value's client signature, checked against the key's head.
    client_signature: Option<&'a [u8]>,
}

/// The newest record of a key as [`head`] returns it.
type Head = Option<(i64, Hash, Option<Hash>)>;

/// A change ready to store: made from one reading of the key's head.
struct Prepared<'a> {
    change: ConfigChange<'a>,
    record_hash: Hash,
    signature: Vec<u8>,
    signer: Option<(String, Vec<u8>)>,
    event: &'static str,
    /// The audit row's details, as the chain stores and hashes them.
    details: String,
}

/// Makes the record of a change of `key` that replaces `previous`: checks
/// a deletion names a key that exists and a client's signature binds
/// `previous`, and signs the record. Call as owner.
fn prepare<'a>(
    tenant: &'a str,
    key: &'a str,
    user: &'a str,
    stored: &Stored<'_>,
    signing: &pqcore::SigningKey,
    previous: &Head,
) -> PqResult<Prepared<'a>> {
    if stored.op == ConfigOp::Delete && previous.as_ref().is_none_or(|(_, _, new)| new.is_none()) {
        return Err(unknown_key(key));
    }
    // A client's signature binds the record it replaces: a replayed
    // (envelope, signature) does not verify.
    let signer = match (stored.client_signature, stored.envelope) {
        (Some(signature), Some(sealed)) => {
            let replaces = previous.as_ref().map(|(_, record, _)| *record);
            Some(signer_of(tenant, key, sealed, signature, replaces.as_ref())?)
        }
        _ => None,
    };
    let version = previous.as_ref().map_or(1, |(v, _, _)| v + 1);
    let ts = crate::platform::clock::now_unix_micros();
    let change = ConfigChange {
        op: stored.op,
        tenant,
        key,
        version: version as u64,
        old_hash: previous.as_ref().and_then(|(_, _, new)| *new),
        new_hash: stored.envelope.map(sha256),
        user,
        ts_micros: ts,
        prev_hash: previous.as_ref().map(|(_, record, _)| *record),
    };
    let record_hash = change.record_hash();
    let signature = signing.sign_envelope(&change.encode(), CONFIG_CHANGE_CONTEXT)?;
    let event = match stored.op {
        ConfigOp::Set => "config_set",
        ConfigOp::SetSealed => "config_set_sealed",
        ConfigOp::Delete => "config_deleted",
    };
    let mut details = json!({ "key": key, "version": version, "user_id": user, "record_hash": hex::encode(record_hash) });
    if let Some((signer, _)) = &signer {
        details["signer"] = json!(signer);
    }
    Ok(Prepared {
        change,
        record_hash,
        signature,
        signer,
        event,
        details: chain::canonical(&details)?,
    })
}

/// Appends a change of `key`: takes the key's lock (catalog::
/// lock_config_key: writers of other keys never wait; no row lock, so a
/// rotation, which locks the tenant's row, never waits for config
/// writers), reads the key's head, signs the record with the tenant's
/// active key, stores it and chains an audit row (journal::chain, which
/// never waits either). Returns the new version. The caller has checked
/// the key name; active_version checks the tenant and the caller's right
/// to it.
///
/// Writers of one key wait for each other until commit, so a server-
/// signed change is signed before the lock, from the head read then, and
/// the head is read again under the lock: only if another writer changed
/// the same key in between is the record made and signed again. What is
/// stored is always made from the head read under the lock. (A client-
/// signed change is checked under the lock only: a signature that fails
/// is counted once.)
fn append(tenant: &str, key: &str, user: &str, stored: Stored<'_>) -> PqResult<i64> {
    check_user(user)?;
    // The signing key first: it checks the role's right to the tenant and
    // the key's state before anything is locked.
    let keys = versions::active_version(tenant, "change configuration")?;
    let signing = versions::signing_key(&keys)?;
    catalog::as_owner(|| {
        if !chain::installed() {
            return Err(PqError::KeyStateHint(
                "the configuration store needs apg_pqcrypto 0.5.0".into(),
                "run ALTER EXTENSION apg_pqcrypto UPDATE",
            ));
        }
        let early = if stored.client_signature.is_none() {
            let previous = head(tenant, key)?;
            prepare(tenant, key, user, &stored, &signing, &previous).ok().map(|p| (previous, p))
        } else {
            None
        };
        catalog::lock_config_key(tenant, key)?;
        let previous = head(tenant, key)?;
        let p = match early {
            Some((seen, p)) if seen == previous => p,
            _ => prepare(tenant, key, user, &stored, &signing, &previous)?,
        };
        // Before ALTER EXTENSION UPDATE to 0.8.0 there is no format column.
        let (format_column, format_value) = if catalog::pq_column_exists(c"config_records", c"client_signature_format") {
            (", client_signature_format", if p.signer.is_some() { ", 2" } else { ", NULL" })
        } else {
            ("", "")
        };
        catalog::write_one::<bool>(
            &format!(
                "INSERT INTO pq.config_records (tenant, key, version, op, envelope, user_id, ts, old_hash, new_hash,
                                                prev_hash, record_hash, signature, signer, signer_public_key, client_signature
                                                {format_column})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 {format_value}) RETURNING true"
            ),
            &[
                tenant.into(),
                key.into(),
                (p.change.version as i64).into(),
                stored.op.name().into(),
                stored.envelope.into(),
                user.into(),
                crate::platform::clock::timestamptz(p.change.ts_micros)?.into(),
                p.change.old_hash.as_ref().map(|h| h.as_slice()).into(),
                p.change.new_hash.as_ref().map(|h| h.as_slice()).into(),
                p.change.prev_hash.as_ref().map(|h| h.as_slice()).into(),
                p.record_hash.as_slice().into(),
                p.signature.as_slice().into(),
                p.signer.as_ref().map(|s| s.0.as_str()).into(),
                p.signer.as_ref().map(|s| s.1.as_slice()).into(),
                stored.client_signature.into(),
            ],
        )?;
        chain::append_canonical(p.event, Some(tenant), &events::session_user(), &p.details)?;
        Ok(p.change.version as i64)
    })
}

fn config_set(tenant: &str, key: &str, value: &str, user: &str) -> PqResult<i64> {
    check_key(key)?;
    let keys = versions::active_version(tenant, "encrypt")?;
    let mut sealed = vec![0u8; keyed_len(value.len())?];
    keys.cipher.encrypt_to(value.as_bytes(), &config_aad(tenant, key), &mut sealed)?;
    crate::journal::monitor::used(tenant, crate::journal::monitor::Counted::Encrypt);
    append(tenant, key, user, Stored { op: ConfigOp::Set, envelope: Some(&sealed), client_signature: None })
}

/// The registered signer of `tenant` whose key verifies the client's
/// signature over the sealed value replacing the record `replaces`, as
/// (name, public key).
fn signer_of(tenant: &str, key: &str, sealed: &[u8], signature: &[u8], replaces: Option<&Hash>) -> PqResult<(String, Vec<u8>)> {
    let signers: Vec<(String, Vec<u8>)> = catalog::as_owner(|| {
        catalog::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT name, public_key FROM pq.config_signers WHERE tenant = $1 ORDER BY name",
                None,
                &[tenant.into()],
            )? {
                out.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<Vec<u8>>(2)?.unwrap_or_default()));
            }
            Ok::<_, PqError>(out)
        })
    })?;
    let (message, context) = sealed_value_signed(SEALED_FORMAT, tenant, key, sealed, replaces)
        .ok_or_else(|| PqError::internal("unknown sealed value format", String::new()))?;
    for (name, public) in signers {
        if VerifyingKey::from_slice(&public)?.verify(&message, context, signature)? {
            return Ok((name, public));
        }
    }
    crate::journal::monitor::failed(Some(tenant), crate::journal::monitor::Counted::FailedVerify);
    Err(PqError::Sql {
        code: b"PQ001",
        message: "the signature of the sealed value does not verify under any signer registered for this tenant".into(),
        hint: Some(
            "a registered signer (pq.config_register_signer) signs FORMAT.md §11.3's message, which names the record \
             the value replaces (pq.config_head): a signature is good for one change of the key"
                .into(),
        ),
    })
}

fn config_set_sealed(tenant: &str, key: &str, sealed: &[u8], signature: &[u8], user: &str) -> PqResult<i64> {
    check_key(key)?;
    access::require_usable(tenant)?;
    let parsed = Envelope::parse(sealed)?;
    if parsed.kind() != Kind::Sealed {
        return Err(PqError::WrongKind { found: parsed.kind(), function: "pq.config_set_sealed" });
    }
    // Sealed to a key version of this tenant that can still open it.
    match versions::describe_kid(parsed.kid(), Kind::Sealed)? {
        Some((owner, _)) if owner == tenant => {}
        _ => return Err(PqError::UnknownKid),
    }
    versions::version_by_kid(parsed.kid())?;
    append(tenant, key, user, Stored { op: ConfigOp::SetSealed, envelope: Some(sealed), client_signature: Some(signature) })
}

fn config_delete(tenant: &str, key: &str, user: &str) -> PqResult<i64> {
    check_key(key)?;
    append(tenant, key, user, Stored { op: ConfigOp::Delete, envelope: None, client_signature: None })
}

/// The version and record hash of the key's newest record: what a client
/// signs a sealed value against (§11.3). Version 0 and 32 zero bytes for a
/// key that was never set.
fn config_head(tenant: &str, key: &str) -> PqResult<(i64, Vec<u8>)> {
    check_key(key)?;
    access::require_usable(tenant)?;
    let head = catalog::as_owner(|| {
        catalog::row(
            "SELECT version, record_hash FROM pq.config_records WHERE tenant = $1 AND key = $2 ORDER BY version DESC LIMIT 1",
            &[tenant.into(), key.into()],
            |row| Ok((row.get::<i64>(1)?.unwrap_or(0), row.get::<Vec<u8>>(2)?.unwrap_or_default())),
        )
    })?;
    Ok(head.unwrap_or_else(|| (0, vec![0u8; pqcore::audit::HASH_LEN])))
}

fn config_get(tenant: &str, key: &str) -> PqResult<PgText> {
    check_key(key)?;
    access::require_usable(tenant)?;
    let stored = catalog::as_owner(|| {
        catalog::row(
            "SELECT envelope FROM pq.config_records WHERE tenant = $1 AND key = $2 ORDER BY version DESC LIMIT 1",
            &[tenant.into(), key.into()],
            |row| Ok(row.get::<Vec<u8>>(1)?),
        )
    })?
    .flatten()
    .ok_or_else(|| unknown_key(key))?;
    let aad = config_aad(tenant, key);
    let value = match Envelope::parse(&stored)?.kind() {
        Kind::Sealed => envelope::unseal(&stored, &aad, "pq.config_get")?,
        _ => envelope::decrypt(&stored, &aad, "pq.config_get")?,
    };
    value.into_text()
}

fn register_signer(tenant: &str, name: &str, public_key: &[u8]) -> PqResult<bool> {
    crate::platform::roles::require_admin("register config signers")?;
    access::require_visible(tenant)?;
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter("signer names are 1 to 63 bytes without control characters".into()));
    }
    // Client signatures over sealed values (FORMAT.md §11.3) are ML-DSA-65.
    let key = VerifyingKey::from_slice(public_key)?;
    if key.suite() != pqcore::SignatureSuite::MlDsa65 {
        return Err(PqError::InvalidParameter("a config signer's public key is an ML-DSA-65 key (1952 bytes)".into()));
    }
    catalog::as_owner(|| {
        let inserted = catalog::write_one::<bool>(
            "INSERT INTO pq.config_signers (tenant, name, public_key) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, name) DO NOTHING RETURNING true",
            &[tenant.into(), name.into(), public_key.into()],
        )?
        .unwrap_or(false);
        if !inserted {
            return Err(PqError::Sql {
                code: b"42710",
                message: format!("signer \"{}\" is already registered for this tenant", echo(name)),
                hint: Some("drop it first with pq.config_drop_signer".into()),
            });
        }
        events::record(
            "config_signer_registered",
            Some(tenant),
            None,
            &events::session_user(),
            None,
            json!({ "signer": name, "kid": key.kid().to_hex() }),
        )?;
        Ok(true)
    })
}

fn drop_signer(tenant: &str, name: &str) -> PqResult<bool> {
    crate::platform::roles::require_admin("drop config signers")?;
    access::require_visible(tenant)?;
    catalog::as_owner(|| {
        let dropped = catalog::write_one::<bool>(
            "DELETE FROM pq.config_signers WHERE tenant = $1 AND name = $2 RETURNING true",
            &[tenant.into(), name.into()],
        )?
        .unwrap_or(false);
        if dropped {
            events::record("config_signer_dropped", Some(tenant), None, &events::session_user(), None, json!({ "signer": name }))?;
        }
        Ok(dropped)
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Stores `value` under `key` as a keyed envelope (AAD binding tenant
    /// and key) and records a new signed version; returns the version.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn config_set(tenant: &str, key: &str, value: &str, user_id: default!(&str, "session_user")) -> i64 {
        super::config_set(tenant, key, value, user_id).or_raise()
    }

    /// Stores an envelope the client sealed to the tenant's public key (AAD
    /// as pq.config_set's) and signed with a registered signer's ML-DSA-65
    /// key over `str(tenant) || str(key) || SHA-256(envelope) ||
    /// record_hash` (of `pq.config_head`), context "apg-pq config-sealed
    /// v2". The server never sees the plaintext.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn config_set_sealed(
        tenant: &str,
        key: &str,
        envelope: &[u8],
        signature: &[u8],
        user_id: default!(&str, "session_user"),
    ) -> i64 {
        super::config_set_sealed(tenant, key, envelope, signature, user_id).or_raise()
    }

    /// Deletes `key`: a new signed version without a value.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn config_delete(tenant: &str, key: &str, user_id: default!(&str, "session_user")) -> i64 {
        super::config_delete(tenant, key, user_id).or_raise()
    }

    /// The version and record hash of `key`'s newest record (0 and 32 zero
    /// bytes if it was never set): a client signing a sealed value for
    /// `pq.config_set_sealed` signs against it (FORMAT.md §11.3).
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn config_head(tenant: &str, key: &str) -> TableIterator<'static, (name!(version, i64), name!(record_hash, Vec<u8>))> {
        TableIterator::once(super::config_head(tenant, key).or_raise())
    }

    /// The current value of `key` (42704 if it does not exist or was deleted).
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn config_get(tenant: &str, key: &str) -> PgText {
        super::config_get(tenant, key).or_raise()
    }

    /// Registers a client's ML-DSA-65 public key (1952 bytes) as a signer of
    /// the tenant's sealed configuration values.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn config_register_signer(tenant: &str, name: &str, public_key: &[u8]) -> bool {
        register_signer(tenant, name, public_key).or_raise()
    }

    /// Removes a signer (records it signed keep its public key and still verify).
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn config_drop_signer(tenant: &str, name: &str) -> bool {
        drop_signer(tenant, name).or_raise()
    }
}
