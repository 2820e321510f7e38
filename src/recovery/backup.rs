//! Disaster-recovery key backups (docs/RECOVERY.md, FORMAT.md §15):
//! `pq.export_key_backup` seals every secret a restore needs, with a
//! description of tenants, versions and optionally policies and grants, to
//! a recovery officer's public key; `pq.restore_begin` makes a one-time
//! restore key whose secret the cluster's provider wraps; the officer
//! re-seals the bundle to it offline (`apg-pq backup reseal`);
//! `pq.restore_key_backup` restores it into this cluster, under the
//! bundle's tenant names or another. Bundles never go into a table;
//! `pq.backups` records each export and restore.
//!
//! Over 500 lines on purpose: export and restore are the two halves of one
//! document format (§15), kept side by side so that what one writes and the
//! other checks cannot drift apart.
use crate::{
    journal::events,
    keys::{{master, secrets, versions}, provider, tenants},
    platform::{catalog, errors::{echo, PqError, PqResult}, secure_mem},
    recovery::escrow::invalid,
};
use pgrx::prelude::*;
use pgrx::JsonB;
use pqcore::{
    backup::{self, Payload, Secret, SecretKind, BUNDLE_HEADER_LEN, BUNDLE_VERSION, KIND_KEY_BACKUP},
    Error as CoreError, Kid, RecipientKey, SignatureSuite, Suite,
};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// The `format` of the bundle document this version writes and reads.
const DOC_FORMAT: i64 = 1;

/// The document of one tenant: versions (no secrets), and its policy and
/// grants when `metadata`.
fn tenant_doc(tenant: &str, metadata: bool) -> PqResult<Value> {
    catalog::write_one::<JsonB>(
        "SELECT jsonb_build_object('name', t.name, 'kem', t.kem, 'created_at', t.created_at, 'created_by', t.created_by,
                  'signature', coalesce(to_jsonb(t)->>'signature', 'ml-dsa-65'),
                  'versions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'version', v.version, 'state', v.state, 'kid', encode(v.kid, 'hex'),
                      'signing_kid', encode(v.signing_kid, 'hex'), 'public_key', encode(v.public_key, 'hex'),
                      'verifying_key', encode(v.verifying_key, 'hex'), 'sealed_dek', encode(v.sealed_dek, 'hex'),
                      'created_at', v.created_at, 'activated_at', v.activated_at, 'retired_at', v.retired_at,
                      'disabled_at', v.disabled_at, 'destroyed_at', v.destroyed_at) ORDER BY v.version), '[]')
                    FROM pq.tenant_key_versions v WHERE v.tenant = t.name))
             || CASE WHEN $2 THEN jsonb_build_object(
                  'policy', (SELECT to_jsonb(p) - 'tenant' FROM pq.tenant_policies p WHERE p.tenant = t.name),
                  'grants', (SELECT coalesce(jsonb_agg(g.role_name ORDER BY g.role_name), '[]')
                               FROM pq.tenant_grants g WHERE g.tenant = t.name))
                ELSE '{}' END
           FROM pq.tenants t WHERE t.name = $1",
        &[tenant.into(), metadata.into()],
    )?
    .map(|j| j.0)
    .ok_or_else(|| PqError::UnknownTenant(echo(tenant)))
}

/// Adds the secrets of `tenant`'s versions and classical keys to
/// `secrets`, and the classical keys (with their refs) to `doc`.
/// Returns (versions, classical keys). Inside `secure_mem::scope`.
fn tenant_secrets(tenant: &str, doc: &mut Value, secrets: &mut Vec<Secret>) -> PqResult<(i32, i32)> {
    let rows = versions::stored_seeds(Some(tenant))?;
    for row in &rows {
        let (kem, dsa) = versions::version_seeds(row)?;
        let reference: [u8; 16] =
            row.kid.as_slice().try_into().map_err(|_| PqError::internal("a stored key id has the wrong length", String::new()))?;
        secrets.push(Secret { kind: SecretKind::KemSeed, reference, bytes: Zeroizing::new(kem.expose().to_vec()) });
        secrets.push(Secret { kind: SecretKind::DsaSeed, reference, bytes: Zeroizing::new(dsa.expose().to_vec()) });
    }
    let classical = secrets::classical_keys(tenant)?;
    let mut entries = Vec::with_capacity(classical.len());
    for c in classical.into_iter().rev() {
        let reference = pqcore::rng::random_id()?;
        entries.push(json!({
            "ref": hex::encode(reference),
            "kind": c.kind,
            "options": c.options,
            "public_key": c.public_key.as_deref().map(hex::encode),
            "has_passphrase": c.passphrase.is_some(),
        }));
        secrets.push(Secret { kind: SecretKind::ClassicalKey, reference, bytes: c.key });
        if let Some(p) = c.passphrase {
            secrets.push(Secret { kind: SecretKind::ClassicalPassphrase, reference, bytes: p });
        }
    }
    let n_classical = entries.len() as i32;
    if let Value::Object(map) = doc {
        map.insert("classical_keys".into(), Value::Array(entries));
    }
    Ok((rows.len() as i32, n_classical))
}

fn export(tenant: Option<&str>, recipient: Option<&[u8]>, include_metadata: bool) -> PqResult<Vec<u8>> {
    crate::platform::roles::require_admin_on_primary("export key backups")?;
    let recipient = recipient.ok_or_else(|| invalid("recipient_public_key is required: the recovery officer's public key"))?;
    // Bundles (FORMAT.md §15) are sealed 'S' or 'X': not to ML-KEM-1024 keys yet.
    let to = RecipientKey::from_slice(recipient)
        .ok()
        .filter(|k| k.suite() != Suite::MlKem1024)
        .ok_or_else(|| invalid("recipient_public_key is an ML-KEM-768 (1184 bytes) or X-Wing (1216 bytes) public key"))?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        catalog::run("LOCK TABLE pq.master_keys IN SHARE MODE", &[])?;
        let names: Vec<String> = catalog::write_rows(
            "SELECT name FROM pq.tenants WHERE $1::text IS NULL OR name = $1 ORDER BY name FOR SHARE",
            &[tenant.into()],
            |row| Ok(row.get::<String>(1)?.unwrap_or_default()),
        )?;
        if let (Some(t), true) = (tenant, names.is_empty()) {
            return Err(PqError::UnknownTenant(echo(t)));
        }
        let backup_id = pqcore::rng::random_id()?;
        let created = (crate::platform::clock::now_unix_micros() / 1_000_000).max(0) as u64;
        let (bundle, versions, classical) = secure_mem::scope(|| {
            let mut secrets = Vec::new();
            let mut docs = Vec::with_capacity(names.len());
            let (mut versions, mut classical) = (0, 0);
            for name in &names {
                let mut doc = tenant_doc(name, include_metadata)?;
                let (v, c) = tenant_secrets(name, &mut doc, &mut secrets)?;
                versions += v;
                classical += c;
                docs.push(doc);
            }
            let doc = json!({
                "format": DOC_FORMAT,
                "backup_id": hex::encode(backup_id),
                "created": created,
                "source_system_identifier": provider::system_identifier(),
                "extension_version": env!("CARGO_PKG_VERSION"),
                "include_metadata": include_metadata,
                "tenants": docs,
            });
            let payload = Payload { doc: doc.to_string(), secrets };
            Ok::<_, PqError>((backup::seal(to.recipient(), backup_id, created, &payload)?, versions, classical))
        })?;
        log_backup("export", &backup_id, &names, to.kid(), include_metadata, versions, classical, json!({}))?;
        events::record(
            "key_backup_exported",
            tenant,
            None,
            &actor,
            None,
            json!({
                "backup_id": hex::encode(backup_id),
                "tenants": names,
                "sealed_to": to.kid().to_hex(),
                "include_metadata": include_metadata,
                "versions": versions,
                "classical_keys": classical,
            }),
        )?;
        Ok(bundle)
    })
}

#[allow(clippy::too_many_arguments)]
fn log_backup(
    operation: &str,
    backup_id: &[u8],
    tenants: &[String],
    sealed_to: Kid,
    include_metadata: bool,
    versions: i32,
    classical: i32,
    details: Value,
) -> PqResult<()> {
    catalog::write_one::<bool>(
        "INSERT INTO pq.backups (operation, backup_id, tenants, sealed_to, include_metadata, versions, classical_keys, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING true",
        &[
            operation.into(),
            backup_id.into(),
            tenants.to_vec().into(),
            sealed_to.as_bytes().as_slice().into(),
            include_metadata.into(),
            versions.into(),
            classical.into(),
            JsonB(details).into(),
        ],
    )?;
    Ok(())
}

fn restore_begin() -> PqResult<(Vec<u8>, Vec<u8>)> {
    crate::platform::roles::require_admin_on_primary("begin a key backup restore")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let (kid, public_key) = master::create_recovery_key("restore")?;
        events::record(
            "restore_key_created",
            None,
            None,
            &actor,
            None,
            json!({ "kid": kid.to_hex(), "provider": provider::configured()? }),
        )?;
        Ok((public_key, kid.as_bytes().to_vec()))
    })
}

/// The bundle's header, with the errors a user can act on.
fn bundle_header(bundle: &[u8]) -> PqResult<backup::BundleHeader> {
    match bundle.first() {
        None => return Err(invalid("the key backup bundle is empty")),
        Some(&v) if v != BUNDLE_VERSION => {
            return Err(PqError::Sql {
                code: b"22023",
                message: format!("key backup bundle format version {v} is not supported: this apg_pqcrypto reads version {BUNDLE_VERSION}"),
                hint: Some("restore it with the apg_pqcrypto version that exported it, or a newer one".into()),
            })
        }
        _ => {}
    }
    if bundle.len() >= 2 && bundle[1] != KIND_KEY_BACKUP {
        return Err(invalid("this is not a key backup bundle (FORMAT.md §15)"));
    }
    backup::BundleHeader::parse(bundle).map(|(h, _)| h).map_err(|e| match e {
        CoreError::Malformed(pqcore::Malformed::Truncated) => {
            invalid(format!("the key backup bundle is truncated ({} bytes; the header alone is {BUNDLE_HEADER_LEN})", bundle.len()))
        }
        _ => invalid("the key backup bundle is malformed or truncated"),
    })
}

fn field<'a>(v: &'a Value, key: &str) -> PqResult<&'a Value> {
    v.get(key).ok_or_else(|| invalid(format!("the bundle's document lacks \"{key}\"")))
}

fn text<'a>(v: &'a Value, key: &str) -> PqResult<&'a str> {
    field(v, key)?.as_str().ok_or_else(|| invalid(format!("the bundle's \"{key}\" is not text")))
}

fn bytes(v: &Value, key: &str) -> PqResult<Vec<u8>> {
    hex::decode(text(v, key)?).map_err(|_| invalid(format!("the bundle's \"{key}\" is not hexadecimal")))
}

fn restore(bundle: &[u8], target: Option<&str>, overwrite: bool) -> PqResult<Vec<(String, String, i32, i32)>> {
    crate::platform::roles::require_admin_on_primary("restore key backups")?;
    let header = bundle_header(bundle)?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        catalog::run("LOCK TABLE pq.master_keys IN SHARE MODE", &[])?;
        let secret = master::recovery_secret(header.kid, "restore").map_err(|e| match e {
            PqError::UnknownKid => PqError::Sql {
                code: b"PQ002",
                message: "the bundle is sealed to a key that is not one of this cluster's restore keys".into(),
                hint: Some("re-seal it with: apg-pq backup reseal --restore-key <the public key from pq.restore_begin>".into()),
            },
            other => other,
        })?;
        let (payload, doc) = secure_mem::scope(|| {
            let (_, payload) = backup::open(bundle, &secret).map_err(|e| match e {
                CoreError::DecryptionFailed => PqError::Sql {
                    code: b"PQ001",
                    message: "the key backup bundle does not open: it was changed or truncated".into(),
                    hint: None,
                },
                _ => invalid("the key backup bundle's contents are malformed"),
            })?;
            let doc: Value = serde_json::from_str(&payload.doc).map_err(|_| invalid("the bundle's document is not JSON"))?;
            Ok::<_, PqError>((payload, doc))
        })?;
        if doc.get("format").and_then(Value::as_i64) != Some(DOC_FORMAT) {
            return Err(invalid(format!("the bundle's document format is not {DOC_FORMAT}: restore it with a newer apg_pqcrypto")));
        }
        let tenants = field(&doc, "tenants")?.as_array().ok_or_else(|| invalid("the bundle's \"tenants\" is not an array"))?;
        if target.is_some() && tenants.len() != 1 {
            return Err(invalid(format!(
                "target_tenant renames one tenant, and this bundle holds {}: restore it without target_tenant",
                tenants.len()
            )));
        }
        let mut out = Vec::with_capacity(tenants.len());
        for t in tenants {
            let source = text(t, "name")?.to_owned();
            let name = target.unwrap_or(&source).to_owned();
            let (versions, classical) = secure_mem::scope(|| restore_tenant(t, &name, &payload, overwrite))?;
            out.push((source, name, versions, classical));
        }
        master::consume_recovery_key(header.kid)?;
        let names: Vec<String> = out.iter().map(|(_, n, _, _)| n.clone()).collect();
        let versions = out.iter().map(|r| r.2).sum();
        let classical = out.iter().map(|r| r.3).sum();
        let renamed: Value = out.iter().map(|(s, n, _, _)| (s.clone(), Value::from(n.as_str()))).collect::<serde_json::Map<_, _>>().into();
        let metadata = doc.get("include_metadata").and_then(Value::as_bool).unwrap_or(false);
        let details = json!({
            "source_system_identifier": doc.get("source_system_identifier"),
            "exported": header.created,
            "tenants_from": renamed,
            "overwrite": overwrite,
        });
        log_backup("restore", &header.backup_id, &names, header.kid, metadata, versions, classical, details.clone())?;
        let mut event = details;
        if let Value::Object(m) = &mut event {
            m.insert("backup_id".into(), hex::encode(header.backup_id).into());
            m.insert("versions".into(), versions.into());
            m.insert("classical_keys".into(), classical.into());
        }
        events::record("key_backup_restored", target, None, &actor, None, event)?;
        Ok(out)
    })
}

/// Restores one tenant of a bundle as `name`; returns (versions, classical keys).
fn restore_tenant(t: &Value, name: &str, payload: &Payload, overwrite: bool) -> PqResult<(i32, i32)> {
    tenants::check_tenant_name(name)?;
    let suite = Suite::parse(text(t, "kem")?).ok_or_else(|| invalid("the bundle names an unknown kem"))?;
    let existing = catalog::write_one::<String>("SELECT kem FROM pq.tenants WHERE name = $1 FOR UPDATE", &[name.into()])?;
    match existing {
        None => {
            catalog::write_one::<bool>(
                "INSERT INTO pq.tenants (name, kem, created_at, created_by)
                 VALUES ($1, $2, coalesce(($3::jsonb->>'created_at')::timestamptz, now()), coalesce($3::jsonb->>'created_by', session_user))
                 RETURNING true",
                &[name.into(), suite.name().into(), JsonB(t.clone()).into()],
            )?;
            if let Some(signature) = t.get("signature").and_then(Value::as_str) {
                let signature = tenants::parse_signature(signature).map_err(|_| invalid("the bundle names an unknown signature"))?;
                tenants::require_schema_for(suite, signature)?;
                if signature != SignatureSuite::MlDsa65 {
                    catalog::write_one::<bool>(
                        "UPDATE pq.tenants SET signature = $2 WHERE name = $1 RETURNING true",
                        &[name.into(), signature.name().into()],
                    )?;
                }
            }
        }
        Some(_) if crate::keys::tenants::shredded_at(name)?.is_some() => {
            return Err(PqError::KeyStateHint(
                format!("tenant \"{}\" was shredded: its keys are not restored under its name", echo(name)),
                "restore under another name (target_tenant) if the erasure is to be undone",
            ));
        }
        Some(_) if !overwrite => {
            return Err(PqError::Sql {
                code: b"42710",
                message: format!("tenant \"{}\" exists already", echo(name)),
                hint: Some("pass overwrite => true to replace its key versions with the bundle's, or restore under another name (target_tenant)".into()),
            });
        }
        Some(kem) if kem != suite.name() => {
            return Err(invalid(format!("tenant \"{}\" here uses {kem}, the bundle's uses {}", echo(name), suite.name())));
        }
        Some(_) => {}
    }
    let versions = field(t, "versions")?.as_array().ok_or_else(|| invalid("the bundle's \"versions\" is not an array"))?;
    let mut restored = 0;
    for v in versions {
        restore_version(v, name, payload, overwrite)?;
        restored += 1;
    }
    let classical = restore_classical(t, name, payload)?;
    if let Some(policy) = t.get("policy").filter(|p| p.is_object()) {
        if overwrite {
            catalog::write_one::<bool>("DELETE FROM pq.tenant_policies WHERE tenant = $1 RETURNING true", &[name.into()])?;
        }
        catalog::write_one::<bool>(
            "INSERT INTO pq.tenant_policies
             SELECT * FROM jsonb_populate_record(NULL::pq.tenant_policies, $2::jsonb || jsonb_build_object('tenant', $1::text))
             ON CONFLICT (tenant) DO NOTHING RETURNING true",
            &[name.into(), JsonB(policy.clone()).into()],
        )?;
    }
    for role in t.get("grants").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let granted = catalog::write_one::<bool>(
            "INSERT INTO pq.tenant_grants (tenant, role, role_name)
             SELECT $1, r.oid::pg_catalog.regrole, r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname = $2
             ON CONFLICT (tenant, role) DO NOTHING RETURNING true",
            &[name.into(), role.into()],
        )?;
        let exists = catalog::one::<bool>("SELECT true FROM pg_catalog.pg_roles WHERE rolname = $1", &[role.into()])?.is_some();
        if granted.is_none() && !exists {
            pgrx::notice!("role \"{}\" does not exist here: its grant on tenant \"{}\" was not restored", echo(role), echo(name));
        }
    }
    Ok((restored, classical))
}

fn restore_version(v: &Value, name: &str, payload: &Payload, overwrite: bool) -> PqResult<()> {
    let version = field(v, "version")?.as_i64().and_then(|n| i32::try_from(n).ok()).filter(|n| *n > 0)
        .ok_or_else(|| invalid("the bundle's \"version\" is not a positive number"))?;
    let state = text(v, "state")?;
    let kid = bytes(v, "kid")?;
    let reference: [u8; 16] = kid.as_slice().try_into().map_err(|_| invalid("the bundle's \"kid\" is not 16 bytes"))?;
    let (public_key, verifying_key) = (bytes(v, "public_key")?, bytes(v, "verifying_key")?);
    let signing_kid = bytes(v, "signing_kid")?;
    // Each version has its own suites (a rotation may have moved the
    // tenant): its public keys' lengths tell them.
    let suite = RecipientKey::from_slice(&public_key)
        .map(|k| k.suite())
        .map_err(|_| invalid(format!("the bundle's key version {version} has no valid public key")))?;
    let signature = SignatureSuite::of_public_key_len(verifying_key.len())
        .ok_or_else(|| invalid(format!("the bundle's key version {version} has no valid verifying key")))?;
    tenants::require_schema_for(suite, signature)?;
    let clash = catalog::write_row(
        "SELECT tenant, version FROM pq.tenant_key_versions WHERE (kid = $1 OR signing_kid = $4) AND NOT (tenant = $2 AND version = $3)",
        &[kid.as_slice().into(), name.into(), version.into(), signing_kid.as_slice().into()],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<i32>(2)?.unwrap_or_default())),
    )?;
    if let Some((other, n)) = clash {
        return Err(PqError::Sql {
            code: b"23505",
            message: format!("the bundle's key version {version} is in this cluster already, as tenant \"{}\" version {n}", echo(&other)),
            hint: Some("a key version lives under one tenant; restore into a cluster that does not hold it".into()),
        });
    }
    let present = catalog::write_one::<bool>(
        "SELECT true FROM pq.tenant_key_versions WHERE tenant = $1 AND version = $2 FOR UPDATE",
        &[name.into(), version.into()],
    )?
    .is_some();
    if present && !overwrite {
        return Err(PqError::Sql {
            code: b"23505",
            message: format!("tenant \"{}\" already has key version {version}", echo(name)),
            hint: Some("pass overwrite => true to replace it with the bundle's".into()),
        });
    }
    if state == "active" {
        let other = catalog::write_one::<i32>(
            "SELECT version FROM pq.tenant_key_versions WHERE tenant = $1 AND state = 'active' AND version <> $2",
            &[name.into(), version.into()],
        )?;
        if let Some(n) = other {
            return Err(PqError::Sql {
                code: b"23505",
                message: format!("tenant \"{}\" has another active key version ({n}) than the bundle's ({version})", echo(name)),
                hint: Some("restore under another tenant name (target_tenant)".into()),
            });
        }
    }
    let (mdk_id, wrapped_kem, wrapped_dsa, sealed_dek) = if state == "destroyed" {
        // No seeds to derive them from: the public keys must still be valid
        // keys of the version's suite whose ids are the kids (a destroyed
        // version's verifying key keeps verifying old signatures).
        if !public_keys_match(suite, &public_key, &kid, &verifying_key, &signing_kid) {
            return Err(invalid(format!("the bundle's key version {version} does not match its public keys")));
        }
        (master::active_mdk_for_restore()?, None, None, None)
    } else {
        let missing = || invalid(format!("the bundle lacks the secrets of key version {version}"));
        let kem_seed = payload.secret(SecretKind::KemSeed, &reference).ok_or_else(missing)?;
        let dsa_seed = payload.secret(SecretKind::DsaSeed, &reference).ok_or_else(missing)?;
        let sealed_dek = bytes(v, "sealed_dek")?;
        let restored = versions::RestoredVersion { tenant: name, version, suite, signature, kem_seed, dsa_seed, sealed_dek: &sealed_dek };
        let ((d_kid, d_signing, d_public, d_verifying), (mdk_id, wk, wd)) = versions::wrap_restored(&restored)?;
        if d_kid.as_bytes()[..] != kid[..] || d_signing.as_bytes()[..] != signing_kid[..] || d_public != public_key || d_verifying != verifying_key {
            return Err(invalid(format!("the bundle's key version {version} does not match its secrets")));
        }
        (mdk_id, Some(wk), Some(wd), Some(sealed_dek))
    };
    if present {
        catalog::write_one::<bool>(
            "DELETE FROM pq.tenant_key_versions WHERE tenant = $1 AND version = $2 RETURNING true",
            &[name.into(), version.into()],
        )?;
    }
    catalog::write_one::<bool>(
        "INSERT INTO pq.tenant_key_versions (tenant, version, state, kid, signing_kid, mdk_id, wrapped_kem_seed, wrapped_dsa_seed,
                                             sealed_dek, public_key, verifying_key, created_at, activated_at, retired_at,
                                             disabled_at, destroyed_at)
         SELECT $1, $2, j->>'state', $3, $4, $5, $6, $7, $8, $9, $10, coalesce((j->>'created_at')::timestamptz, now()),
                coalesce((j->>'activated_at')::timestamptz, now()), (j->>'retired_at')::timestamptz, (j->>'disabled_at')::timestamptz,
                (j->>'destroyed_at')::timestamptz
           FROM (SELECT $11::jsonb AS j) s RETURNING true",
        &[
            name.into(),
            version.into(),
            kid.as_slice().into(),
            signing_kid.as_slice().into(),
            mdk_id.as_bytes().as_slice().into(),
            wrapped_kem.as_deref().into(),
            wrapped_dsa.as_deref().into(),
            sealed_dek.as_deref().into(),
            public_key.as_slice().into(),
            verifying_key.as_slice().into(),
            JsonB(v.clone()).into(),
        ],
    )?;
    Ok(())
}

/// True if `public_key` is a key of `suite` with id `kid` and
/// `verifying_key` an ML-DSA-65 key with id `signing_kid`.
fn public_keys_match(suite: Suite, public_key: &[u8], kid: &[u8], verifying_key: &[u8], signing_kid: &[u8]) -> bool {
    let kem = RecipientKey::from_slice(public_key).ok().filter(|k| k.suite() == suite);
    let dsa = pqcore::VerifyingKey::from_slice(verifying_key).ok();
    match (kem, dsa) {
        (Some(kem), Some(dsa)) => kem.kid().as_bytes()[..] == kid[..] && dsa.kid().as_bytes()[..] == signing_kid[..],
        _ => false,
    }
}

/// Restores the classical keys the tenant does not hold already.
fn restore_classical(t: &Value, name: &str, payload: &Payload) -> PqResult<i32> {
    let entries = match t.get("classical_keys").and_then(Value::as_array) {
        Some(e) if !e.is_empty() => e,
        _ => return Ok(0),
    };
    let held = secrets::classical_keys(name)?;
    let mut restored = 0;
    for e in entries {
        let reference: [u8; 16] =
            bytes(e, "ref")?.as_slice().try_into().map_err(|_| invalid("the bundle's classical key \"ref\" is not 16 bytes"))?;
        let kind = text(e, "kind")?;
        let options = e.get("options").and_then(Value::as_str).unwrap_or("");
        let key = payload
            .secret(SecretKind::ClassicalKey, &reference)
            .ok_or_else(|| invalid("the bundle lacks the secret of a classical key"))?;
        if held.iter().any(|h| h.kind == kind && h.key[..] == key[..]) {
            continue;
        }
        let passphrase = payload.secret(SecretKind::ClassicalPassphrase, &reference);
        let public_key = match e.get("public_key") {
            Some(Value::String(_)) => Some(bytes(e, "public_key")?),
            _ => None,
        };
        secrets::insert_classical(name, kind, options, key, passphrase, public_key.as_deref())?;
        restored += 1;
    }
    Ok(restored)
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::required;
    use crate::platform::errors::OrRaise;

    /// One bundle with the secrets and description of `tenant`'s keys (NULL:
    /// every tenant), sealed to the recovery officer's `recipient_public_key`.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn export_key_backup(
        tenant: default!(Option<&str>, "NULL"),
        recipient_public_key: default!(Option<&[u8]>, "NULL"),
        include_metadata: default!(Option<bool>, true),
    ) -> Vec<u8> {
        let include_metadata = required(include_metadata, "include_metadata").or_raise();
        super::export(tenant, recipient_public_key, include_metadata).or_raise()
    }

    /// A one-time restore key: its public key, to which the officer
    /// re-seals a bundle with `apg-pq backup reseal`, and its kid.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn restore_begin() -> TableIterator<'static, (name!(restore_public_key, Vec<u8>), name!(kid, Vec<u8>))> {
        TableIterator::once(super::restore_begin().or_raise())
    }

    /// Restores a bundle re-sealed to one of this cluster's restore keys;
    /// `target_tenant` restores a one-tenant bundle under another name;
    /// existing versions are replaced only with `overwrite`.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn restore_key_backup(
        bundle: Option<&[u8]>,
        target_tenant: default!(Option<&str>, "NULL"),
        overwrite: default!(Option<bool>, false),
    ) -> TableIterator<
        'static,
        (
            name!(source_tenant, String),
            name!(tenant, String),
            name!(versions, i32),
            name!(classical_keys, i32),
        ),
    > {
        let bundle = required(bundle, "bundle").or_raise();
        let overwrite = required(overwrite, "overwrite").or_raise();
        TableIterator::new(super::restore(bundle, target_tenant, overwrite).or_raise())
    }
}
