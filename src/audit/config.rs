//! The signed configuration store: `pq.config_set`, `pq.config_set_sealed`,
//! `pq.config_delete`, `pq.config_get`, `pq.config_history`,
//! `pq.config_verify`, the client signers (`pq.config_register_signer`,
//! `pq.config_drop_signer`), and `pq.sign_config_change` /
//! `pq.verify_config_signature` for applications that keep their own tables.
//!
//! Every change is a new row of `pq.config_records`: the envelope, the
//! fields of the canonical change record (`pqcore::audit::ConfigChange`,
//! docs/FORMAT.md §11), the hash of the previous record of the key, and a
//! signature envelope by the tenant's active ML-DSA-65 key; plus a row of
//! the audit chain naming the record's hash, so that removing the newest
//! record of a key is seen too.
use crate::{
    data::{envelope, sign},
    journal::{chain, events},
    keys::{access, versions},
    platform::{catalog, datum::PgText, errors::{echo, PqError, PqResult}},
};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pqcore::audit::{
    config_aad, sealed_value_signed, sha256, ConfigChange, ConfigOp, Hash, CONFIG_CHANGE_CONTEXT, MAX_CONFIG_KEY_LEN,
};
use pqcore::{keyed_len, Envelope, Kind, VerifyingKey};
use serde_json::json;

fn check_key(key: &str) -> PqResult<()> {
    if key.is_empty() || key.len() > MAX_CONFIG_KEY_LEN || key.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter(format!(
            "configuration keys are 1 to {MAX_CONFIG_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_user(user: &str) -> PqResult<()> {
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

fn stored_hash(bytes: Option<Vec<u8>>) -> PqResult<Option<Hash>> {
    bytes
        .map(|b| b.as_slice().try_into().map_err(|_| PqError::internal("a stored hash has the wrong length", String::new())))
        .transpose()
}

/// The newest record of a key: (version, record_hash, new_hash), read
/// under the latest snapshot. Call as owner with the chain lock held.
fn head(tenant: &str, key: &str) -> PqResult<Option<(i64, Hash, Option<Hash>)>> {
    let args = [(pg_sys::TEXTOID, tenant.into_datum()), (pg_sys::TEXTOID, key.into_datum())];
    let args: Vec<(pg_sys::Oid, pg_sys::Datum)> =
        args.into_iter().map(|(t, d)| (t, d.unwrap_or(pg_sys::Datum::from(0)))).collect();
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

/// Appends a change of `key`: takes the chain lock (and no row lock: a
/// rotation, which locks the tenant's row and then appends to the chain,
/// must never wait for config writers), reads the key's head, signs the
/// record with the tenant's active key, stores it and chains an audit row.
/// Returns the new version. The caller has checked the key name;
/// active_version checks the tenant and the caller's right to it.
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
        catalog::lock_audit_chain()?;
        let previous = head(tenant, key)?;
        if stored.op == ConfigOp::Delete && previous.as_ref().is_none_or(|(_, _, new)| new.is_none()) {
            return Err(unknown_key(key));
        }
        // A client's signature binds the record it replaces, read here under
        // the chain lock: a replayed (envelope, signature) does not verify.
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
        // Before ALTER EXTENSION UPDATE to 0.8.0 there is no format column.
        let (format_column, format_value) = if catalog::pq_column_exists(c"config_records", c"client_signature_format") {
            (", client_signature_format", if signer.is_some() { ", 2" } else { ", NULL" })
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
                version.into(),
                stored.op.name().into(),
                stored.envelope.into(),
                user.into(),
                crate::platform::clock::timestamptz(ts)?.into(),
                change.old_hash.as_ref().map(|h| h.as_slice()).into(),
                change.new_hash.as_ref().map(|h| h.as_slice()).into(),
                change.prev_hash.as_ref().map(|h| h.as_slice()).into(),
                record_hash.as_slice().into(),
                signature.as_slice().into(),
                signer.as_ref().map(|s| s.0.as_str()).into(),
                signer.as_ref().map(|s| s.1.as_slice()).into(),
                stored.client_signature.into(),
            ],
        )?;
        let event = match stored.op {
            ConfigOp::Set => "config_set",
            ConfigOp::SetSealed => "config_set_sealed",
            ConfigOp::Delete => "config_deleted",
        };
        let mut details = json!({ "key": key, "version": version, "user_id": user, "record_hash": hex::encode(record_hash) });
        if let Some((signer, _)) = &signer {
            details["signer"] = json!(signer);
        }
        chain::append(event, Some(tenant), &events::session_user(), &details)?;
        Ok(version)
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

/// One stored record with the results of its checks.
struct Checked {
    key: String,
    version: i64,
    op: String,
    user: String,
    ts: Option<TimestampWithTimeZone>,
    signer: Option<String>,
    signature_valid: bool,
    chain_valid: bool,
    problem: Option<String>,
}

type RecordRow = (
    String,
    i64,
    String,
    Option<Vec<u8>>,
    String,
    Option<TimestampWithTimeZone>,
    i64,
    [Option<Vec<u8>>; 4],
    Vec<u8>,
    (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>, Option<i16>),
);

/// Checks the records of `tenant` (one key, or all) in (key, version)
/// order: versions 1, 2, ... without gaps; prev_hash and old_hash chained
/// to the previous record; new_hash the hash of the envelope; record_hash
/// recomputed; the tenant's signature valid under the version its kid
/// names (retired and destroyed versions verify too); a sealed value's
/// client signature valid under the signer key stored with it. Call as owner.
fn check_records(tenant: &str, only_key: Option<&str>) -> PqResult<Vec<Checked>> {
    let verifying: std::collections::HashMap<Vec<u8>, VerifyingKey> = catalog::connect(|client| {
        let mut out = std::collections::HashMap::new();
        for row in
            client.select("SELECT signing_kid, verifying_key FROM pq.tenant_key_versions WHERE tenant = $1", None, &[tenant.into()])?
        {
            let (Some(kid), Some(vk)) = (row.get::<Vec<u8>>(1)?, row.get::<Vec<u8>>(2)?) else { continue };
            out.insert(kid, VerifyingKey::from_slice(&vk)?);
        }
        Ok::<_, PqError>(out)
    })?;
    let query = format!(
        "SELECT key, version, op, envelope, user_id, ts, {}, old_hash, new_hash, prev_hash, record_hash, signature,
                signer, signer_public_key, client_signature, {}
           FROM pq.config_records WHERE tenant = $1 AND ($2::text IS NULL OR key = $2) ORDER BY key, version",
        crate::platform::clock::micros_sql("ts"),
        // Records written before 0.8.0 (and before ALTER EXTENSION UPDATE) are format 1.
        if catalog::pq_column_exists(c"config_records", c"client_signature_format") {
            "client_signature_format"
        } else {
            "1::smallint"
        }
    );
    let rows: Vec<RecordRow> = catalog::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(&query, None, &[tenant.into(), only_key.into()])? {
            out.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<i64>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?,
                row.get::<String>(5)?.unwrap_or_default(),
                row.get::<TimestampWithTimeZone>(6)?,
                row.get::<i64>(7)?.unwrap_or_default(),
                [row.get::<Vec<u8>>(8)?, row.get::<Vec<u8>>(9)?, row.get::<Vec<u8>>(10)?, row.get::<Vec<u8>>(11)?],
                row.get::<Vec<u8>>(12)?.unwrap_or_default(),
                (row.get::<String>(13)?, row.get::<Vec<u8>>(14)?, row.get::<Vec<u8>>(15)?, row.get::<i16>(16)?),
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    let mut out = Vec::with_capacity(rows.len());
    /// The previous record: key, version, record_hash, new_hash.
    type Previous = (String, i64, Vec<u8>, Option<Vec<u8>>);
    let mut previous: Option<Previous> = None;
    for (key, version, op, envelope, user, ts, ts_micros, hashes, signature, (signer, signer_key, client_sig, format)) in rows {
        let [old_hash, new_hash, prev_hash, record_hash] = hashes;
        let mut problems: Vec<String> = Vec::new();
        let same_key = previous.as_ref().filter(|p| p.0 == key);
        let expected_version = same_key.map_or(1, |p| p.1 + 1);
        if version != expected_version {
            problems.push(format!("version {expected_version} is missing"));
        }
        if prev_hash.as_ref() != same_key.map(|p| &p.2) {
            problems.push("does not chain to the previous record".into());
        }
        if old_hash != same_key.and_then(|p| p.3.clone()) {
            problems.push("old_hash is not the previous value's hash".into());
        }
        if new_hash != envelope.as_deref().map(|e| sha256(e).to_vec()) {
            problems.push("the stored value does not match new_hash".into());
        }
        let parsed_op = ConfigOp::parse(&op);
        let recomputed = match (parsed_op, stored_hash(old_hash.clone()), stored_hash(new_hash.clone()), stored_hash(prev_hash)) {
            (Some(op), Ok(old_hash), Ok(new_hash), Ok(prev_hash)) => Some(ConfigChange {
                op,
                tenant,
                key: &key,
                version: version as u64,
                old_hash,
                new_hash,
                user: &user,
                ts_micros,
                prev_hash,
            }),
            _ => None,
        };
        let mut signature_valid = false;
        match &recomputed {
            None => problems.push("unknown operation or malformed hash".into()),
            Some(change) => {
                if change.record_hash().as_slice() != record_hash.as_deref().unwrap_or_default() {
                    problems.push("record_hash does not match the record".into());
                }
                signature_valid = Envelope::parse(&signature)
                    .ok()
                    .filter(|e| e.kind() == Kind::Signature)
                    .and_then(|e| e.into_signature().ok())
                    .and_then(|e| {
                        let key = verifying.get(e.kid().as_bytes().as_slice())?;
                        key.verify_envelope(&e, &change.encode(), CONFIG_CHANGE_CONTEXT).ok()
                    })
                    .unwrap_or(false);
                if op == "set_sealed" {
                    let signed = envelope.as_deref().and_then(|env| {
                        let format = u8::try_from(format.unwrap_or(1)).ok()?;
                        sealed_value_signed(format, tenant, &key, env, change.prev_hash.as_ref())
                    });
                    let client_ok = match (&signer_key, &client_sig, signed) {
                        (Some(pk), Some(sig), Some((message, context))) => {
                            VerifyingKey::from_slice(pk).and_then(|k| k.verify(&message, context, sig)).unwrap_or(false)
                        }
                        _ => false,
                    };
                    if !client_ok {
                        problems.push("the client's signature does not verify".into());
                    }
                    signature_valid &= client_ok;
                }
                if !signature_valid {
                    problems.push("the signature does not verify".into());
                }
            }
        }
        let chain_valid = problems.iter().all(|p| p.contains("signature"));
        previous = Some((key.clone(), version, record_hash.unwrap_or_default(), new_hash));
        out.push(Checked {
            key,
            version,
            op,
            user,
            ts,
            signer,
            signature_valid,
            chain_valid,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        });
    }
    Ok(out)
}

/// The audit rows of the tenant's config changes and its records name each
/// other, with the same record hash: the first (key, version, problem)
/// that does not (audit order first, then records without an audit row).
fn check_against_audit(tenant: &str) -> PqResult<Option<(String, i64, String)>> {
    catalog::row(
        "SELECT coalesce(a.key, r.key), coalesce(a.version, r.version),
                CASE WHEN r.key IS NULL THEN 'the record named by the audit trail is missing'
                     WHEN a.key IS NULL THEN 'the record is not in the audit trail'
                     ELSE 'the record differs from the audit trail' END
           FROM (SELECT id, details->>'key' AS key, (details->>'version')::bigint AS version,
                        details->>'record_hash' AS hash
                   FROM pq.audit_log
                  WHERE tenant = $1 AND event IN ('config_set', 'config_set_sealed', 'config_deleted')) a
           FULL JOIN (SELECT key, version, encode(record_hash, 'hex') AS hash
                        FROM pq.config_records WHERE tenant = $1) r
             ON r.key = a.key AND r.version = a.version
          WHERE a.key IS NULL OR r.key IS NULL OR a.hash IS DISTINCT FROM r.hash
          ORDER BY a.id NULLS LAST, r.key, r.version
          LIMIT 1",
        &[tenant.into()],
        |row| {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<i64>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
            ))
        },
    )
}

type VerifyRow = (bool, i64, Option<String>, Option<i64>, Option<String>);

fn config_verify(tenant: &str) -> PqResult<VerifyRow> {
    access::require_usable(tenant)?;
    catalog::as_owner(|| {
        let records = check_records(tenant, None)?;
        let checked = records.len() as i64;
        if let Some(bad) = records.iter().find(|r| r.problem.is_some()) {
            return Ok((false, checked, Some(bad.key.clone()), Some(bad.version), bad.problem.clone()));
        }
        if let Some((key, version, problem)) = check_against_audit(tenant)? {
            return Ok((false, checked, Some(key), Some(version), Some(problem)));
        }
        Ok((true, checked, None, None, None))
    })
}

/// The arguments of pq.sign_config_change / pq.verify_config_signature;
/// only the values may be NULL (no previous value, a deletion).
struct Fields<'a> {
    tenant: Option<&'a str>,
    key: Option<&'a str>,
    old: Option<&'a [u8]>,
    new: Option<&'a [u8]>,
    user: Option<&'a str>,
    ts: Option<TimestampWithTimeZone>,
    version: Option<i64>,
    prev_hash: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// The tenant and the change record.
    fn change(&self) -> PqResult<(&'a str, ConfigChange<'a>)> {
        let (Some(tenant), Some(key), Some(user), Some(ts), Some(version)) = (self.tenant, self.key, self.user, self.ts, self.version)
        else {
            return Err(PqError::InvalidParameter(
                "tenant, config_key, user_id, ts and version must not be NULL (old_value and new_value may)".into(),
            ));
        };
        check_key(key)?;
        check_user(user)?;
        if version < 1 {
            return Err(PqError::InvalidParameter("version must be at least 1".into()));
        }
        let prev_hash = self
            .prev_hash
            .map(|h| <Hash>::try_from(h).map_err(|_| PqError::InvalidParameter("prev_hash must be 32 bytes".into())))
            .transpose()?;
        let change = ConfigChange {
            op: if self.new.is_some() { ConfigOp::Set } else { ConfigOp::Delete },
            tenant,
            key,
            version: version as u64,
            old_hash: self.old.map(sha256),
            new_hash: self.new.map(sha256),
            user,
            ts_micros: crate::platform::clock::unix_micros(ts)?,
            prev_hash,
        };
        Ok((tenant, change))
    }
}

fn register_signer(tenant: &str, name: &str, public_key: &[u8]) -> PqResult<bool> {
    crate::platform::roles::require_admin("register config signers")?;
    access::require_visible(tenant)?;
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter("signer names are 1 to 63 bytes without control characters".into()));
    }
    let key = VerifyingKey::from_slice(public_key)?;
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

    /// Every version of `key`, oldest first, with who, when, and whether
    /// its signature and its chain verify. Never a value.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn config_history(
        tenant: &str,
        key: &str,
    ) -> TableIterator<
        'static,
        (
            name!(version, i64),
            name!(op, String),
            name!(user_id, String),
            name!(ts, Option<TimestampWithTimeZone>),
            name!(signer, Option<String>),
            name!(signature_valid, bool),
            name!(chain_valid, bool),
            name!(problem, Option<String>),
        ),
    > {
        let rows = check_key(key)
            .and_then(|_| access::require_usable(tenant))
            .and_then(|_| catalog::as_owner(|| check_records(tenant, Some(key))))
            .or_raise();
        TableIterator::new(
            rows.into_iter().map(|r| (r.version, r.op, r.user, r.ts, r.signer, r.signature_valid, r.chain_valid, r.problem)),
        )
    }

    /// Checks every record and chain of the tenant's configuration, across
    /// key rotations, and their agreement with the audit trail.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn config_verify(
        tenant: &str,
    ) -> TableIterator<
        'static,
        (
            name!(ok, bool),
            name!(records_checked, i64),
            name!(first_bad_key, Option<String>),
            name!(first_bad_version, Option<i64>),
            name!(problem, Option<String>),
        ),
    > {
        TableIterator::once(super::config_verify(tenant).or_raise())
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

    /// A signature envelope by the tenant's active ML-DSA-65 key over the
    /// canonical change record (docs/FORMAT.md §11) of a change an
    /// application keeps in its own tables. NULL old_value: no previous
    /// value; NULL new_value: a deletion.
    #[pg_extern(volatile, parallel_restricted)]
    #[allow(clippy::too_many_arguments)] // the record's fields, one SQL argument each
    pub fn sign_config_change(
        tenant: Option<&str>,
        config_key: Option<&str>,
        old_value: Option<&[u8]>,
        new_value: Option<&[u8]>,
        user_id: Option<&str>,
        ts: Option<TimestampWithTimeZone>,
        version: default!(Option<i64>, 1),
        prev_hash: default!(Option<&[u8]>, "NULL"),
    ) -> Vec<u8> {
        let fields = Fields { tenant, key: config_key, old: old_value, new: new_value, user: user_id, ts, version, prev_hash };
        fields.change().and_then(|(tenant, c)| sign::sign(tenant, &c.encode(), CONFIG_CHANGE_CONTEXT)).or_raise()
    }

    /// True if `signature` (from pq.sign_config_change) is valid for the
    /// change under the tenant's key version it names (retired and
    /// destroyed versions verify too; the verifying key is public).
    #[pg_extern(stable, parallel_restricted)]
    #[allow(clippy::too_many_arguments)] // the record's fields, one SQL argument each
    pub fn verify_config_signature(
        tenant: Option<&str>,
        config_key: Option<&str>,
        old_value: Option<&[u8]>,
        new_value: Option<&[u8]>,
        user_id: Option<&str>,
        ts: Option<TimestampWithTimeZone>,
        signature: Option<&[u8]>,
        version: default!(Option<i64>, 1),
        prev_hash: default!(Option<&[u8]>, "NULL"),
    ) -> bool {
        let fields = Fields { tenant, key: config_key, old: old_value, new: new_value, user: user_id, ts, version, prev_hash };
        fields
            .change()
            .and_then(|(tenant, c)| {
                let signature = signature.ok_or_else(|| PqError::InvalidParameter("signature must not be NULL".into()))?;
                sign::verify(tenant, &c.encode(), signature, CONFIG_CHANGE_CONTEXT)
            })
            .or_raise()
    }
}
