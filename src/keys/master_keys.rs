//! Master data keys and their providers at the SQL level:
//! `pq.rotate_master_key(provider)` (a new MDK wrapped by a provider, every
//! tenant secret rewrapped under it: the way to move between providers) and
//! `pq.master_key_status()` (which provider holds each MDK and whether it
//! answers). The providers themselves are in crates/providers; `keys::provider`
//! builds and bounds their calls.
use crate::{
    journal::events,
    keys::{
        cache,
        master::{self, create_mdk, mdk, rewrap_secret, stored_kid, unwrapping},
        provider, secrets, versions,
    },
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pqcore::{Kid, Purpose, WrapContext};
use serde_json::json;

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
    let rows = versions::stored_seeds(None)?;
    for row in &rows {
        let (tenant, version, kem, dsa) = (row.tenant.as_str(), &row.version, &row.kem, &row.dsa);
        let from = mdk(stored_kid(&row.mdk_id)?)?;
        let (suite, signature) = (row.suite()?, row.signature()?);
        let (kem, dsa) = unwrapping(|| {
            let rewrap = |wrapped: &[u8], purpose| {
                rewrap_secret(&from, &new, wrapped, &WrapContext { tenant, version: *version as u32, purpose }, || {
                    ("a stored tenant key is damaged", format!("tenant {tenant} version {version}: a seed does not unwrap"))
                })
            };
            Ok((rewrap(kem, Purpose::kem_seed(suite))?, rewrap(dsa, Purpose::dsa_seed(signature))?))
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
    secrets::rewrap_classical(&new)?;
    secrets::rewrap_audit_keys(&new)?;
    Ok(MasterRotation { old, new: new.id(), key_ref, versions_rewrapped: rows.len() as i32 })
}

/// What `pq.rotate_master_key` returns.
pub struct Rotated {
    pub mdk_id: Vec<u8>,
    pub provider: String,
    pub key_ref: String,
    pub versions_rewrapped: i32,
}

/// A new master data key wrapped by `provider` (default: the
/// master_key_provider setting); every tenant secret is rewrapped under it
/// in this transaction. Ciphertexts are untouched (they depend on DEKs,
/// which do not change).
fn rotate_master_key(provider_name: Option<&str>) -> PqResult<Rotated> {
    crate::platform::roles::require_admin_on_primary("rotate the master key")?;
    let provider_name = match provider_name {
        Some(name) => provider::canonical(name).map_err(|_| PqError::Sql {
            code: b"22023",
            message: format!("unknown master key provider \"{}\"", crate::platform::errors::echo(name)),
            hint: Some(provider::NAMES_HINT.into()),
        })?,
        None => provider::configured()?,
    };
    let actor = events::session_user();
    catalog::as_owner(|| {
        catalog::run("LOCK TABLE pq.master_keys IN EXCLUSIVE MODE", &[])?;
        let r = rotate_master_data_key(provider_name)?;
        let (old_id, old_provider) = r.old.map(|(id, p)| (id.to_hex(), p)).unzip();
        events::record(
            "master_key_rotated",
            None,
            None,
            &actor,
            None,
            json!({
                "old_mdk_id": old_id,
                "new_mdk_id": r.new.to_hex(),
                "old_provider": old_provider,
                "provider": provider_name,
                "versions_rewrapped": r.versions_rewrapped,
            }),
        )?;
        if escrow_stale()? {
            pgrx::warning!("{}", ESCROW_STALE_WARNING);
        }
        Ok(Rotated {
            mdk_id: r.new.as_bytes().to_vec(),
            provider: provider_name.into(),
            key_ref: r.key_ref,
            versions_rewrapped: r.versions_rewrapped,
        })
    })
}

/// A row of pq.master_keys, and whether a key version needs it (it is
/// active, or a version's seeds are wrapped under it).
struct StoredMdk {
    id: Vec<u8>,
    state: String,
    provider: String,
    key_ref: String,
    wrapped: Vec<u8>,
    system_identifier: Option<String>,
    needed: bool,
}

/// Every stored MDK, oldest first. Call as owner.
fn stored_mdks() -> PqResult<Vec<StoredMdk>> {
    catalog::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT m.id, m.state, m.provider, m.provider_key_id, m.wrapped_key, m.system_identifier,
                    m.state = 'active' OR EXISTS (SELECT 1 FROM pq.tenant_key_versions v
                                                    WHERE v.mdk_id = m.id AND v.wrapped_kem_seed IS NOT NULL)
               FROM pq.master_keys m ORDER BY m.created_at, m.id",
            None,
            &[],
        )? {
            out.push(StoredMdk {
                id: row.get::<Vec<u8>>(1)?.unwrap_or_default(),
                state: row.get::<String>(2)?.unwrap_or_default(),
                provider: row.get::<String>(3)?.unwrap_or_default(),
                key_ref: row.get::<String>(4)?.unwrap_or_default(),
                wrapped: row.get::<Vec<u8>>(5)?.unwrap_or_default(),
                system_identifier: row.get::<String>(6)?,
                needed: row.get::<bool>(7)?.unwrap_or(false),
            });
        }
        Ok(out)
    })
}

/// One row of `pq.rewrap_master_key()`: an MDK, its provider, its key
/// reference before and after, and whether its blob moved.
type RewrapRow = (Vec<u8>, String, String, String, bool);

/// Moves every stored MDK blob that a key version needs and whose provider
/// can (vault_transit) to the newest version of its key inside the
/// provider: the MDK is neither generated anew nor seen here, and no tenant
/// secret changes. Other MDKs are listed unmoved.
fn rewrap_master_key() -> PqResult<Vec<RewrapRow>> {
    crate::platform::roles::require_admin_on_primary("rewrap the master key")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        catalog::run("LOCK TABLE pq.master_keys IN EXCLUSIVE MODE", &[])?;
        let rows = stored_mdks()?;
        let mut out = Vec::with_capacity(rows.len());
        for StoredMdk { id, provider: provider_name, key_ref: old_ref, wrapped, system_identifier, needed, .. } in rows {
            let kid = stored_kid(&id)?;
            // Only what a key version needs, and only where the provider
            // can: a retired key or a key file is never asked.
            let moved = if needed && provider::REWRAPS.contains(&provider_name.as_str()) {
                provider::rewrap(&provider_name, &old_ref, &wrapped, &provider::binding(kid, system_identifier))?
            } else {
                None
            };
            // Already at the newest version (the same reference): the
            // stored blob stays.
            let Some((blob, new_ref)) = moved.filter(|(_, new_ref)| *new_ref != old_ref) else {
                out.push((id, provider_name, old_ref.clone(), old_ref, false));
                continue;
            };
            catalog::write_one::<bool>(
                "UPDATE pq.master_keys SET wrapped_key = $2, provider_key_id = $3 WHERE id = $1 RETURNING true",
                &[id.as_slice().into(), blob.as_slice().into(), new_ref.as_str().into()],
            )?;
            events::record(
                "master_key_rewrapped",
                None,
                None,
                &actor,
                None,
                json!({ "mdk_id": kid.to_hex(), "provider": provider_name, "old_key_ref": old_ref, "key_ref": new_ref }),
            )?;
            out.push((id, provider_name, old_ref, new_ref, true));
        }
        Ok(out)
    })
}

/// One row of `pq.master_key_status()`.
type StatusRow = (
    Vec<u8>,
    String,
    String,
    String,
    Option<bool>,
    Option<TimestampWithTimeZone>,
    Option<Interval>,
    i64,
    Option<String>,
);

/// Every MDK with its provider and key reference; for the active one and
/// any that a key version still needs, a live unwrap through the provider
/// (the cache is left alone) says whether it answered. Times and call counts
/// are this backend's. Never a secret, a PIN or a credential; failure
/// details go to the server log.
fn master_key_status() -> PqResult<Vec<StatusRow>> {
    crate::platform::roles::require_monitor("read the master key status")?;
    let rows = catalog::as_owner(stored_mdks)?;
    let now = cache::now();
    let mut out = Vec::with_capacity(rows.len());
    for StoredMdk { id, state, provider: provider_name, key_ref, needed, .. } in rows {
        let kid = Kid::from_slice(&id).map_err(|_| PqError::internal("a stored key id has the wrong length", String::new()))?;
        let (answered, message) = if needed {
            match catalog::as_owner(|| master::probe_mdk(kid)) {
                Ok(()) => (Some(true), None),
                Err(PqError::Provider { message, detail_log, .. }) => {
                    if let Some(detail) = detail_log {
                        crate::platform::errors::log_server_only(format!(
                            "apg_pqcrypto: master key provider check failed: {detail}"
                        ));
                    }
                    (Some(false), Some(message))
                }
                Err(other) => return Err(other),
            }
        } else {
            (None, None)
        };
        let status = provider::status(&provider_name);
        let last_success = status.last_success.and_then(|at| TimestampWithTimeZone::try_from(at).ok());
        let cache_age = master::mdk_cached_at(kid).map(|at| Interval::from_micros((now - at).max(0)));
        out.push((id, state, provider_name, key_ref, answered, last_success, cache_age, status.calls, message));
    }
    Ok(out)
}

/// True when escrow is enabled and its latest split is not of the active
/// MDK (or there is none): the warning of the worker and of master key
/// rotation. Call as owner.
pub fn escrow_stale() -> PqResult<bool> {
    if !catalog::pq_table_exists(c"escrow_config") {
        return Ok(false);
    }
    Ok(catalog::one::<bool>(
        "SELECT c.enabled AND NOT EXISTS (SELECT 1 FROM pq.escrow_shares s JOIN pq.master_keys m
                                            ON m.id = s.mdk_id AND m.state = 'active')
           FROM pq.escrow_config c",
        &[],
    )?
    .unwrap_or(false))
}

/// The warning text while the escrow is stale.
pub const ESCROW_STALE_WARNING: &str =
    "the key escrow is stale: the active master key has no escrow shares; split it again with pq.escrow_split and hand the new records to the custodians";

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// A new master data key wrapped by `provider` (NULL: the
    /// apg_pqcrypto.master_key_provider setting), with every tenant secret
    /// rewrapped under it in this transaction.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn rotate_master_key(
        provider: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(mdk_id, Vec<u8>),
            name!(provider, String),
            name!(key_ref, String),
            name!(versions_rewrapped, i32),
        ),
    > {
        let r = super::rotate_master_key(provider).or_raise();
        TableIterator::once((r.mdk_id, r.provider, r.key_ref, r.versions_rewrapped))
    }

    /// Every stored master data key moved to the newest version of its
    /// provider's key inside the provider (vault_transit's rewrap), where
    /// the provider can.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn rewrap_master_key() -> TableIterator<
        'static,
        (
            name!(mdk_id, Vec<u8>),
            name!(provider, String),
            name!(old_key_ref, String),
            name!(key_ref, String),
            name!(rewrapped, bool),
        ),
    > {
        TableIterator::new(super::rewrap_master_key().or_raise())
    }

    /// Each master data key's provider, key reference and whether the
    /// provider answered just now.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn master_key_status() -> TableIterator<
        'static,
        (
            name!(mdk_id, Vec<u8>),
            name!(state, String),
            name!(provider, String),
            name!(key_ref, String),
            name!(answered, Option<bool>),
            name!(last_success, Option<TimestampWithTimeZone>),
            name!(cache_age, Option<Interval>),
            name!(provider_calls, i64),
            name!(message, Option<String>),
        ),
    > {
        TableIterator::new(super::master_key_status().or_raise())
    }
}
