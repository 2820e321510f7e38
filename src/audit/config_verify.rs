//! Checking the signed configuration store: `pq.config_history` and
//! `pq.config_verify` (every record's hashes, chain and signatures, the
//! client's for sealed values, and their agreement with the audit trail),
//! and `pq.sign_config_change` / `pq.verify_config_signature`, the same
//! signed change record for applications that keep their own tables
//! (docs/FORMAT.md §11).
use crate::{
    audit::config::{check_key, check_user, stored_hash},
    data::sign,
    keys::access,
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pqcore::audit::{sealed_value_signed, sha256, ConfigChange, ConfigOp, Hash, CONFIG_CHANGE_CONTEXT};
use pqcore::{Envelope, Kind, VerifyingKey};

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
    // Rows still waiting to be chained (0.11.0) count as in the trail.
    let pending = if catalog::pq_table_exists(c"audit_pending") {
        "UNION ALL
                 SELECT NULL, details->>'key', (details->>'version')::bigint, details->>'record_hash'
                   FROM pq.audit_pending
                  WHERE tenant = $1 AND event IN ('config_set', 'config_set_sealed', 'config_deleted')"
    } else {
        ""
    };
    catalog::row(
        &format!("SELECT coalesce(a.key, r.key), coalesce(a.version, r.version),
                CASE WHEN r.key IS NULL THEN 'the record named by the audit trail is missing'
                     WHEN a.key IS NULL THEN 'the record is not in the audit trail'
                     ELSE 'the record differs from the audit trail' END
           FROM (SELECT id, details->>'key' AS key, (details->>'version')::bigint AS version,
                        details->>'record_hash' AS hash
                   FROM pq.audit_log
                  WHERE tenant = $1 AND event IN ('config_set', 'config_set_sealed', 'config_deleted')
                 {pending}) a
           FULL JOIN (SELECT key, version, encode(record_hash, 'hex') AS hash
                        FROM pq.config_records WHERE tenant = $1) r
             ON r.key = a.key AND r.version = a.version
          WHERE a.key IS NULL OR r.key IS NULL OR a.hash IS DISTINCT FROM r.hash
          ORDER BY a.id NULLS LAST, r.key, r.version
          LIMIT 1"),
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

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

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
