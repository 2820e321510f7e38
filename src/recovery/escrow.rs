//! Key escrow (docs/RECOVERY.md): custodians' and approvers' public keys,
//! the escrow configuration, `pq.escrow_split` (the master data key in
//! Shamir shares sealed to custodians, FORMAT.md §14.1) and
//! `pq.escrow_status`. Recovering the key from the shares is
//! `recovery::request`.
//!
//! No share, MDK or secret key crosses SQL in plaintext: share records go
//! out sealed to custodians and come back sealed to the request's key,
//! whose secret half only the provider can unwrap.
use crate::{
    journal::events,
    keys::master,
    platform::{catalog, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use pgrx::JsonB;
use pqcore::{
    escrow::{self}, RecipientKey, VerifyingKey,
};
use serde_json::{json, Map, Value};

pub(crate) fn not_ready(message: String, hint: &str) -> PqError {
    PqError::Sql { code: b"55000", message, hint: Some(hint.into()) }
}

pub(crate) fn invalid(message: impl Into<String>) -> PqError {
    PqError::InvalidParameter(message.into())
}

fn add_custodian(name: &str, public_key: &[u8]) -> PqResult<Vec<u8>> {
    crate::platform::roles::require_admin_on_primary("register escrow custodians")?;
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
        return Err(invalid("custodian names are 1 to 63 bytes without control characters"));
    }
    // Share records (FORMAT.md §14.1) are 'S' or 'X' envelopes: ML-KEM-1024 keys are not custodians' yet.
    let key = RecipientKey::from_slice(public_key).ok().filter(|k| k.suite() != pqcore::Suite::MlKem1024).ok_or_else(|| {
        invalid("a custodian's public key is an ML-KEM-768 (1184 bytes) or X-Wing (1216 bytes) key from apg-pq keygen")
    })?;
    let kid = key.kid();
    let actor = events::session_user();
    catalog::as_owner(|| {
        let taken = catalog::write_one::<String>("SELECT name FROM pq.escrow_custodians WHERE kid = $1", &[kid.as_bytes().as_slice().into()])?;
        if let Some(other) = taken {
            return Err(PqError::Sql {
                code: b"42710",
                message: format!("this key is registered already, as custodian \"{}\"", echo(&other)),
                hint: None,
            });
        }
        let inserted = catalog::write_one::<bool>(
            "INSERT INTO pq.escrow_custodians (name, public_key, kid) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING true",
            &[name.into(), public_key.into(), kid.as_bytes().as_slice().into()],
        )?;
        if inserted.is_none() {
            return Err(PqError::Sql {
                code: b"42710",
                message: format!("custodian \"{}\" already exists", echo(name)),
                hint: Some("a custodian's key never changes: register the new key under a new name and reconfigure the escrow".into()),
            });
        }
        events::record(
            "escrow_custodian_added",
            None,
            None,
            &actor,
            None,
            json!({ "custodian": name, "kid": kid.to_hex(), "kem": key.suite().name() }),
        )
    })?;
    Ok(kid.as_bytes().to_vec())
}

fn add_approver(name: &str, public_key: &[u8]) -> PqResult<Vec<u8>> {
    crate::platform::roles::require_admin_on_primary("register escrow approvers")?;
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
        return Err(invalid("approver names are 1 to 63 bytes without control characters"));
    }
    // Approvals (FORMAT.md §14.2) are ML-DSA-65 signatures.
    let key = VerifyingKey::from_slice(public_key)
        .ok()
        .filter(|k| k.suite() == pqcore::SignatureSuite::MlDsa65)
        .ok_or_else(|| invalid("an approver's public key is an ML-DSA-65 key (1952 bytes) from apg-pq keygen --algorithm ml-dsa-65"))?;
    let kid = key.kid();
    let actor = events::session_user();
    catalog::as_owner(|| {
        let taken = catalog::write_one::<String>("SELECT name FROM pq.escrow_approvers WHERE kid = $1", &[kid.as_bytes().as_slice().into()])?;
        if let Some(other) = taken {
            return Err(PqError::Sql {
                code: b"42710",
                message: format!("this key is registered already, as approver \"{}\"", echo(&other)),
                hint: None,
            });
        }
        let inserted = catalog::write_one::<bool>(
            "INSERT INTO pq.escrow_approvers (name, public_key, kid) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING true",
            &[name.into(), public_key.into(), kid.as_bytes().as_slice().into()],
        )?;
        if inserted.is_none() {
            return Err(PqError::Sql { code: b"42710", message: format!("approver \"{}\" already exists", echo(name)), hint: None });
        }
        events::record("escrow_approver_added", None, None, &actor, None, json!({ "approver": name, "kid": kid.to_hex() }))
    })?;
    Ok(kid.as_bytes().to_vec())
}

/// The escrow configuration as `pq.configure_key_escrow` takes it.
struct Config {
    enabled: bool,
    threshold: i32,
    total_shares: i32,
    trustees: Vec<String>,
    min_approval_time: String,
    approvers_required: i32,
    audit_log: bool,
}

fn parse_config(v: &Value) -> PqResult<Config> {
    let obj = v.as_object().ok_or_else(|| invalid("the escrow configuration is a JSON object"))?;
    const KEYS: [&str; 5] = ["enabled", "threshold", "total_shares", "trustees", "recovery_policy"];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown escrow setting \"{}\" (known: {})", echo(k), KEYS.join(", "))));
    }
    let int = |o: &Map<String, Value>, k: &str, default: Option<i64>| -> PqResult<i32> {
        match o.get(k) {
            None => default.map(|d| d as i32).ok_or_else(|| invalid(format!("the escrow configuration needs \"{k}\""))),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| invalid(format!("\"{k}\" is a whole number"))),
        }
    };
    let boolean = |o: &Map<String, Value>, k: &str| -> PqResult<bool> {
        o.get(k).map_or(Ok(true), |v| v.as_bool().ok_or_else(|| invalid(format!("\"{k}\" is true or false"))))
    };
    let trustees: Vec<String> = obj
        .get("trustees")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("\"trustees\" is an array of custodian names"))?
        .iter()
        .map(|t| t.as_str().map(str::to_owned).ok_or_else(|| invalid("\"trustees\" is an array of custodian names")))
        .collect::<PqResult<_>>()?;
    let threshold = int(obj, "threshold", None)?;
    let total_shares = int(obj, "total_shares", Some(trustees.len() as i64))?;
    let empty = Map::new();
    let policy = match obj.get("recovery_policy") {
        None => &empty,
        Some(p) => p.as_object().ok_or_else(|| invalid("\"recovery_policy\" is a JSON object"))?,
    };
    const POLICY_KEYS: [&str; 3] = ["min_approval_time", "approvers_required", "audit_log"];
    if let Some(k) = policy.keys().find(|k| !POLICY_KEYS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown recovery_policy setting \"{}\" (known: {})", echo(k), POLICY_KEYS.join(", "))));
    }
    let min_approval_time = match policy.get("min_approval_time") {
        None => "24 hours".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|s| s >= 0.0) => format!("{n} seconds"),
        Some(_) => return Err(invalid("\"min_approval_time\" is an interval ('24 hours') or a number of seconds")),
    };
    let config = Config {
        enabled: boolean(obj, "enabled")?,
        threshold,
        total_shares,
        trustees,
        min_approval_time,
        approvers_required: int(policy, "approvers_required", Some(2))?,
        audit_log: boolean(policy, "audit_log")?,
    };
    if !(2..=255).contains(&config.threshold) || config.threshold > config.total_shares || config.total_shares > 255 {
        return Err(invalid("the escrow needs 2 <= threshold <= total_shares <= 255"));
    }
    if config.trustees.len() != config.total_shares as usize {
        return Err(invalid(format!(
            "total_shares is {} but {} trustees are named: one share per trustee",
            config.total_shares,
            config.trustees.len()
        )));
    }
    if let Some((i, t)) = config.trustees.iter().enumerate().find(|(i, t)| config.trustees[..*i].contains(t)) {
        return Err(invalid(format!("trustee \"{}\" is named twice (position {})", echo(t), i + 1)));
    }
    if !(1..=255).contains(&config.approvers_required) {
        return Err(invalid("approvers_required is 1 to 255"));
    }
    if !config.audit_log {
        return Err(PqError::Sql {
            code: b"22023",
            message: "escrow steps are always audited: audit_log cannot be false".into(),
            hint: Some("every escrow step is written to pq.key_events and the audit trail".into()),
        });
    }
    Ok(config)
}

fn configure(config: &Value) -> PqResult<Value> {
    crate::platform::roles::require_admin_on_primary("configure the key escrow")?;
    let c = parse_config(config)?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        for t in &c.trustees {
            if catalog::write_one::<bool>("SELECT true FROM pq.escrow_custodians WHERE name = $1", &[t.as_str().into()])?.is_none() {
                return Err(PqError::Sql {
                    code: b"42704",
                    message: format!("no escrow custodian is named \"{}\"", echo(t)),
                    hint: Some("register it first with pq.escrow_add_custodian".into()),
                });
            }
        }
        let stored = catalog::write_one::<JsonB>(
            "INSERT INTO pq.escrow_config (enabled, threshold, total_shares, trustees, min_approval_time, approvers_required, audit_log)
             VALUES ($1, $2, $3, $4, $5::interval, $6, $7)
             ON CONFLICT (singleton) DO UPDATE SET enabled = EXCLUDED.enabled, threshold = EXCLUDED.threshold,
                 total_shares = EXCLUDED.total_shares, trustees = EXCLUDED.trustees,
                 min_approval_time = EXCLUDED.min_approval_time, approvers_required = EXCLUDED.approvers_required,
                 audit_log = EXCLUDED.audit_log, updated_at = now(), updated_by = session_user
             RETURNING jsonb_build_object('enabled', enabled, 'threshold', threshold, 'total_shares', total_shares,
                 'trustees', to_jsonb(trustees), 'recovery_policy', jsonb_build_object(
                     'min_approval_time', min_approval_time::text, 'approvers_required', approvers_required,
                     'audit_log', audit_log))",
            &[
                c.enabled.into(),
                c.threshold.into(),
                c.total_shares.into(),
                c.trustees.clone().into(),
                c.min_approval_time.as_str().into(),
                c.approvers_required.into(),
                c.audit_log.into(),
            ],
        )?
        .map(|j| j.0)
        .unwrap_or(Value::Null);
        events::record("escrow_configured", None, None, &actor, None, stored.clone())?;
        Ok(stored)
    })
}

/// What `pq.escrow_split` returns per share.
type SplitRow = (Vec<u8>, i32, String, Vec<u8>, Vec<u8>);

fn split() -> PqResult<Vec<SplitRow>> {
    crate::platform::roles::require_admin_on_primary("split the master key into escrow shares")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        catalog::run("LOCK TABLE pq.master_keys IN SHARE MODE", &[])?;
        let config = catalog::write_row(
            "SELECT enabled, threshold, trustees FROM pq.escrow_config",
            &[],
            |row| Ok((row.get::<bool>(1)?.unwrap_or(false), row.get::<i32>(2)?.unwrap_or(0), row.get::<Vec<String>>(3)?.unwrap_or_default())),
        )?;
        let Some((true, threshold, trustees)) = config else {
            return Err(not_ready("key escrow is not configured or not enabled".into(), "call pq.configure_key_escrow first"));
        };
        let mut keys = Vec::with_capacity(trustees.len());
        for t in &trustees {
            let key = catalog::write_one::<Vec<u8>>("SELECT public_key FROM pq.escrow_custodians WHERE name = $1", &[t.as_str().into()])?
                .ok_or_else(|| invalid(format!("trustee \"{}\" is no longer a custodian", echo(t))))?;
            keys.push(RecipientKey::from_slice(&key)?);
        }
        let recipients: Vec<_> = keys.iter().map(RecipientKey::recipient).collect();
        let threshold = u8::try_from(threshold).map_err(|_| invalid("threshold is at most 255"))?;
        let escrow_id = pqcore::rng::random_id()?;
        let (mdk_id, records) = crate::platform::secure_mem::scope(|| {
            let (mdk_id, mdk) = master::active_mdk_key()?;
            Ok::<_, PqError>((mdk_id, escrow::split_mdk(&mdk, escrow_id, threshold, &recipients)?))
        })?;
        let mut out = Vec::with_capacity(records.len());
        for (i, (record, trustee)) in records.into_iter().zip(&trustees).enumerate() {
            let index = i as i32 + 1;
            let kid = keys[i].kid();
            catalog::write_one::<bool>(
                "INSERT INTO pq.escrow_shares (escrow_id, share_index, custodian, custodian_kid, mdk_id, threshold, total_shares, record)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING true",
                &[
                    escrow_id.as_slice().into(),
                    index.into(),
                    trustee.as_str().into(),
                    kid.as_bytes().as_slice().into(),
                    mdk_id.as_bytes().as_slice().into(),
                    i32::from(threshold).into(),
                    (trustees.len() as i32).into(),
                    record.as_slice().into(),
                ],
            )?;
            out.push((escrow_id.to_vec(), index, trustee.clone(), kid.as_bytes().to_vec(), record));
        }
        events::record(
            "escrow_split",
            None,
            None,
            &actor,
            None,
            json!({
                "escrow_id": hex::encode(escrow_id),
                "mdk_id": mdk_id.to_hex(),
                "threshold": threshold,
                "total_shares": trustees.len(),
                "trustees": trustees,
            }),
        )?;
        Ok(out)
    })
}

fn status() -> PqResult<Value> {
    crate::platform::roles::require_admin("read the key escrow status")?;
    catalog::as_owner(|| {
        let stale = crate::keys::master_keys::escrow_stale()?;
        Ok(catalog::one::<JsonB>(
            "SELECT jsonb_build_object(
                'configured', c.singleton IS NOT NULL,
                'enabled', coalesce(c.enabled, false),
                'threshold', c.threshold,
                'total_shares', c.total_shares,
                'trustees', to_jsonb(c.trustees),
                'recovery_policy', CASE WHEN c.singleton THEN jsonb_build_object(
                    'min_approval_time', c.min_approval_time::text, 'approvers_required', c.approvers_required,
                    'audit_log', c.audit_log) END,
                'approvers', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'kid', encode(kid, 'hex')) ORDER BY name), '[]')
                                FROM pq.escrow_approvers),
                'custodians', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'kid', encode(kid, 'hex'),
                                   'kem', CASE length(public_key) WHEN 1184 THEN 'ml-kem-768' ELSE 'x-wing' END)
                                   ORDER BY name), '[]') FROM pq.escrow_custodians),
                'active_mdk_id', (SELECT encode(id, 'hex') FROM pq.master_keys WHERE state = 'active'),
                'latest_escrow', (SELECT jsonb_build_object('escrow_id', encode(s.escrow_id, 'hex'),
                                   'mdk_id', encode(s.mdk_id, 'hex'), 'threshold', s.threshold,
                                   'total_shares', s.total_shares, 'split_at', s.created_at, 'split_by', s.created_by)
                                   FROM pq.escrow_shares s ORDER BY s.created_at DESC, s.escrow_id LIMIT 1),
                'requests', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                   'request_id', r.id, 'state', r.state, 'reason', r.reason,
                                   'requested_by', r.requested_by, 'requested_at', r.requested_at,
                                   'ready_at', r.ready_at, 'approvers_required', r.approvers_required,
                                   'approvals', (SELECT coalesce(jsonb_agg(jsonb_build_object('approver', a.approver,
                                                   'approver_kid', encode(a.approver_kid, 'hex'), 'signed', a.signature IS NOT NULL,
                                                   'approved_at', a.approved_at) ORDER BY a.approved_at), '[]')
                                                 FROM pq.escrow_approvals a WHERE a.request_id = r.id),
                                   'request_kid', encode(r.request_kid, 'hex'),
                                   'recovered_at', r.recovered_at, 'recovered_by', r.recovered_by)
                                   ORDER BY r.requested_at), '[]') FROM pq.escrow_requests r))
               FROM (SELECT 1) one LEFT JOIN pq.escrow_config c ON true",
            &[],
        )?
        .map(|j| j.0)
        .map(|mut status| {
            if let Value::Object(m) = &mut status {
                m.insert("stale".into(), stale.into());
            }
            status
        })
        .unwrap_or(Value::Null))
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::args::Json;
    use crate::platform::errors::OrRaise;

    /// Registers a custodian's ML-KEM-768 or X-Wing public key (from
    /// `apg-pq keygen`); returns its kid.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn escrow_add_custodian(name: &str, public_key: &[u8]) -> Vec<u8> {
        super::add_custodian(name, public_key).or_raise()
    }

    /// Sets the escrow: enabled, threshold, total_shares, trustees and
    /// recovery_policy {min_approval_time, approvers_required, audit_log}.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn configure_key_escrow(config: Json) -> JsonB {
        let config = config.parse("the escrow configuration").or_raise();
        JsonB(super::configure(&config).or_raise())
    }

    /// Splits the active master data key into one share per trustee, each
    /// sealed to its custodian, stored in pq.escrow_shares and returned.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn escrow_split() -> TableIterator<
        'static,
        (
            name!(escrow_id, Vec<u8>),
            name!(share_index, i32),
            name!(custodian, String),
            name!(custodian_kid, Vec<u8>),
            name!(record, Vec<u8>),
        ),
    > {
        TableIterator::new(super::split().or_raise())
    }

    /// Registers an approver's ML-DSA-65 public key (from `apg-pq keygen
    /// --algorithm ml-dsa-65`); returns its kid. Custodians pin the same
    /// keys at the ceremony.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn escrow_add_approver(name: &str, public_key: &[u8]) -> Vec<u8> {
        super::add_approver(name, public_key).or_raise()
    }

    /// Configuration, custodians, the latest split, staleness, requests and
    /// approvals; never a share or a key.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn escrow_status() -> JsonB {
        JsonB(super::status().or_raise())
    }
}
