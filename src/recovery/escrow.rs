//! Key escrow (docs/RECOVERY.md): custodians' public keys, the escrow
//! configuration, `pq.escrow_split` (the master data key in Shamir shares
//! sealed to custodians, FORMAT.md §14.1), and recovery when the KEK is
//! lost: a request with a one-time key wrapped by the new provider,
//! approvals by other roles, each signed with an approver's own ML-DSA-65
//! key, a minimum wait, the approved request statement custodians check
//! before they re-seal (FORMAT.md §14.2), and `pq.escrow_recover`, which
//! recombines re-sealed shares and wraps the MDK under the new KEK.
//!
//! No share, MDK or secret key crosses SQL in plaintext: share records go
//! out sealed to custodians and come back sealed to the request's key,
//! whose secret half only the provider can unwrap.
use crate::{
    journal::events,
    keys::{master, provider},
    platform::{catalog, errors::{echo, PqError, PqResult}},
};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use pqcore::{
    escrow::{self, Approval, ApprovedRequest, RecoverError, RequestStatement, APPROVAL_CONTEXT},
    Error as CoreError, Kid, RecipientKey, VerifyingKey,
};
use serde_json::{json, Map, Value};

fn not_ready(message: String, hint: &str) -> PqError {
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
    let key = RecipientKey::from_slice(public_key).map_err(|_| {
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
    let key = VerifyingKey::from_slice(public_key)
        .map_err(|_| invalid("an approver's public key is an ML-DSA-65 key (1952 bytes) from apg-pq keygen --algorithm ml-dsa-65"))?;
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

/// The latest split of the active MDK: (escrow id, mdk id).
fn current_escrow() -> PqResult<Option<(Vec<u8>, Vec<u8>)>> {
    catalog::write_row(
        "SELECT s.escrow_id, s.mdk_id FROM pq.escrow_shares s
           JOIN pq.master_keys m ON m.id = s.mdk_id AND m.state = 'active'
          ORDER BY s.created_at DESC, s.escrow_id LIMIT 1",
        &[],
        |row| Ok((row.get::<Vec<u8>>(1)?.unwrap_or_default(), row.get::<Vec<u8>>(2)?.unwrap_or_default())),
    )
}

fn request_recovery(reason: &str) -> PqResult<(Uuid, Vec<u8>, Vec<u8>)> {
    crate::platform::roles::require_admin_on_primary("request a key escrow recovery")?;
    if reason.trim().is_empty() {
        return Err(invalid("a recovery request needs a reason"));
    }
    let actor = events::session_user();
    catalog::as_owner(|| {
        let Some((escrow_id, mdk_id)) = current_escrow()? else {
            return Err(not_ready(
                "there is no escrow of the active master key to recover from".into(),
                "pq.escrow_split splits the active master key; pq.escrow_status shows what exists",
            ));
        };
        let (kid, public_key) = master::create_recovery_key("escrow recovery")?;
        let id = catalog::write_one::<Uuid>(
            "INSERT INTO pq.escrow_requests (escrow_id, mdk_id, request_kid, reason, ready_at, approvers_required)
             SELECT $1, $2, $3, $4, now() + c.min_approval_time, c.approvers_required FROM pq.escrow_config c RETURNING id",
            &[escrow_id.as_slice().into(), mdk_id.as_slice().into(), kid.as_bytes().as_slice().into(), reason.into()],
        )?
        .ok_or_else(|| PqError::internal("no request id", String::new()))?;
        events::record(
            "escrow_recovery_requested",
            None,
            None,
            &actor,
            Some(reason),
            json!({
                "request_id": id.to_string(),
                "escrow_id": hex::encode(escrow_id),
                "mdk_id": hex::encode(&mdk_id),
                "request_kid": kid.to_hex(),
                "provider": provider::configured()?,
            }),
        )?;
        let statement = statement_of(&id)?.encode().to_vec();
        Ok((id, public_key, statement))
    })
}

/// The statement of request `id` (FORMAT.md §14.2), what its approvers
/// sign. Call as owner.
fn statement_of(id: &Uuid) -> PqResult<RequestStatement> {
    let query = format!(
        "SELECT escrow_id, request_kid, mdk_id, {}, {}, approvers_required FROM pq.escrow_requests WHERE id = $1",
        crate::platform::clock::micros_sql("requested_at"),
        crate::platform::clock::micros_sql("ready_at")
    );
    let row = catalog::write_row(&query, &[(*id).into()], |row| {
        Ok((
            row.get::<Vec<u8>>(1)?.unwrap_or_default(),
            row.get::<Vec<u8>>(2)?.unwrap_or_default(),
            row.get::<Vec<u8>>(3)?.unwrap_or_default(),
            row.get::<i64>(4)?.unwrap_or_default(),
            row.get::<i64>(5)?.unwrap_or_default(),
            row.get::<i32>(6)?.unwrap_or_default(),
        ))
    })?;
    let Some((escrow_id, request_kid, mdk_id, requested_at, ready_at, required)) = row else {
        return Err(PqError::Sql { code: b"42704", message: format!("no escrow recovery request {id}"), hint: None });
    };
    let damaged = || PqError::internal("a stored escrow request is damaged", format!("request {id}"));
    Ok(RequestStatement {
        request_id: *id.as_bytes(),
        request_kid: Kid::from_slice(&request_kid).map_err(|_| damaged())?,
        escrow_id: escrow_id.as_slice().try_into().map_err(|_| damaged())?,
        mdk_id: Kid::from_slice(&mdk_id).map_err(|_| damaged())?,
        requested_at,
        ready_at,
        approvers_required: u8::try_from(required).map_err(|_| damaged())?,
    })
}

/// A pending request: (requested_by, ready_at passed, approvals, needed, ready_at, escrow_id, mdk_id, request_kid).
type Pending = (String, bool, i64, i32, TimestampWithTimeZone, Vec<u8>, Vec<u8>, Vec<u8>);

fn pending(id: &Uuid) -> PqResult<Pending> {
    let row = catalog::write_row(
        "SELECT r.requested_by, r.state, now() >= r.ready_at,
                (SELECT count(*) FROM pq.escrow_approvals a WHERE a.request_id = r.id AND a.signature IS NOT NULL),
                r.approvers_required,
                r.ready_at, r.escrow_id, r.mdk_id, r.request_kid
           FROM pq.escrow_requests r WHERE r.id = $1 FOR UPDATE",
        &[(*id).into()],
        |row| {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<bool>(3)?.unwrap_or(false),
                row.get::<i64>(4)?.unwrap_or(0),
                row.get::<i32>(5)?.unwrap_or(i32::MAX),
                row.get::<TimestampWithTimeZone>(6)?,
                row.get::<Vec<u8>>(7)?.unwrap_or_default(),
                row.get::<Vec<u8>>(8)?.unwrap_or_default(),
                row.get::<Vec<u8>>(9)?.unwrap_or_default(),
            ))
        },
    )?;
    let Some((by, state, ready, approvals, needed, ready_at, escrow_id, mdk_id, kid)) = row else {
        return Err(PqError::Sql { code: b"42704", message: format!("no escrow recovery request {id}"), hint: None });
    };
    if state != "pending" {
        return Err(not_ready(format!("recovery request {id} is {state}"), "start a new request with pq.escrow_request_recovery"));
    }
    let ready_at = ready_at.ok_or_else(|| PqError::internal("a recovery request has no time", String::new()))?;
    Ok((by, ready, approvals, needed, ready_at, escrow_id, mdk_id, kid))
}

/// The registered approver whose key verifies `signature` over the
/// statement: (name, kid). Call as owner.
fn approver_of(statement: &RequestStatement, signature: &[u8]) -> PqResult<(String, Kid)> {
    let approvers = catalog::rows("SELECT name, public_key FROM pq.escrow_approvers ORDER BY name", &[], |row| {
        Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<Vec<u8>>(2)?.unwrap_or_default()))
    })?;
    let message = statement.encode();
    for (name, public_key) in approvers {
        let key = VerifyingKey::from_slice(&public_key)?;
        if key.verify(&message, APPROVAL_CONTEXT, signature)? {
            return Ok((name, key.kid()));
        }
    }
    Err(PqError::Sql {
        code: b"PQ001",
        message: "the approval's signature does not verify under any registered escrow approver's key".into(),
        hint: Some(
            "sign the request's statement (from pq.escrow_request_recovery) with: apg-pq escrow approve --secret-key approver.sk --statement FILE"
                .into(),
        ),
    })
}

fn approve(id: &Uuid, signature: &[u8]) -> PqResult<i64> {
    crate::platform::roles::require_admin_on_primary("approve a key escrow recovery")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        let (requested_by, ..) = pending(id)?;
        if requested_by == actor {
            return Err(PqError::PermissionDenied(
                "the role that requested a recovery cannot approve it: approvals come from other roles".into(),
            ));
        }
        let (approver, kid) = approver_of(&statement_of(id)?, signature)?;
        let taken = catalog::write_one::<String>(
            "SELECT approver FROM pq.escrow_approvals WHERE request_id = $1 AND approver_kid = $2",
            &[(*id).into(), kid.as_bytes().as_slice().into()],
        )?;
        if let Some(by) = taken.filter(|by| *by != actor) {
            return Err(PqError::Sql {
                code: b"42710",
                message: format!("approver \"{}\"'s key approved this request already, as role \"{}\"", echo(&approver), echo(&by)),
                hint: Some("each approver key counts once".into()),
            });
        }
        catalog::write_one::<bool>(
            "INSERT INTO pq.escrow_approvals (request_id, approver, approver_kid, signature) VALUES ($1, $2, $3, $4)
             ON CONFLICT (request_id, approver) DO UPDATE SET approver_kid = EXCLUDED.approver_kid,
                 signature = EXCLUDED.signature, approved_at = now()
             RETURNING true",
            &[(*id).into(), actor.as_str().into(), kid.as_bytes().as_slice().into(), signature.into()],
        )?;
        let approvals = catalog::write_one::<i64>(
            "SELECT count(*) FROM pq.escrow_approvals WHERE request_id = $1 AND signature IS NOT NULL",
            &[(*id).into()],
        )?
        .unwrap_or(0);
        events::record(
            "escrow_recovery_approved",
            None,
            None,
            &actor,
            None,
            json!({ "request_id": id.to_string(), "approvals": approvals, "approver": approver, "approver_kid": kid.to_hex() }),
        )?;
        Ok(approvals)
    })
}

/// The approved statement of a request (FORMAT.md §14.2), once it has its
/// approvals and its wait is over: what custodians check before they
/// re-seal their shares to the request's key.
fn statement(id: &Uuid) -> PqResult<Vec<u8>> {
    crate::platform::roles::require_admin_on_primary("issue an escrow request statement")?;
    catalog::as_owner(|| {
        let (_, ready, approvals, needed, ready_at, ..) = pending(id)?;
        if approvals < i64::from(needed) {
            return Err(not_ready(
                format!("recovery request {id} has {approvals} of the {needed} signed approvals it needs"),
                "approvers sign its statement (apg-pq escrow approve) and pass the signature to pq.escrow_approve",
            ));
        }
        if !ready {
            return Err(not_ready(
                format!("recovery request {id} is approved but may not proceed before {ready_at} (the escrow's min_approval_time)"),
                "wait, then ask for the statement again",
            ));
        }
        let approvals = catalog::rows(
            "SELECT approver_kid, signature FROM pq.escrow_approvals WHERE request_id = $1 AND signature IS NOT NULL
              ORDER BY approved_at, approver",
            &[(*id).into()],
            |row| {
                let kid = row.get::<Vec<u8>>(1)?.unwrap_or_default();
                Ok(Approval {
                    approver_kid: Kid::from_slice(&kid).map_err(|_| PqError::internal("a stored approval is damaged", String::new()))?,
                    signature: row.get::<Vec<u8>>(2)?.unwrap_or_default(),
                })
            },
        )?;
        Ok(ApprovedRequest { statement: statement_of(id)?, approvals }.encode()?)
    })
}

fn recover_error(e: RecoverError) -> PqError {
    match e {
        RecoverError::Share { position, index: 0, .. } => {
            invalid(format!("element {position} of resealed_shares is not a re-sealed share record (FORMAT.md §14.1)"))
        }
        RecoverError::Share { position, index, error: CoreError::DecryptionFailed } => PqError::Sql {
            code: b"PQ001",
            message: format!("share {index} (element {position}) does not open: it was changed, or not re-sealed to this request's key"),
            hint: Some("the custodian re-seals with: apg-pq escrow reseal --request-key <this request's public key>".into()),
        },
        RecoverError::Share { position, index, .. } => invalid(format!(
            "share {index} (element {position}) is not a re-sealed share of this request's escrow and master key"
        )),
        RecoverError::Duplicate { index } => invalid(format!("share {index} is given twice")),
        RecoverError::TooFew { have, threshold } => {
            invalid(format!("{have} distinct shares given; the escrow needs {threshold}"))
        }
        RecoverError::WrongKey => PqError::Sql {
            code: b"PQ001",
            message: "the shares do not recombine to the escrowed master key".into(),
            hint: None,
        },
    }
}

/// What `pq.escrow_recover` returns.
type Recovered = (Vec<u8>, String, String);

fn recover(id: &Uuid, shares: &[Option<&[u8]>]) -> PqResult<Recovered> {
    crate::platform::roles::require_admin_on_primary("recover the master key from escrow")?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        catalog::run("LOCK TABLE pq.master_keys IN EXCLUSIVE MODE", &[])?;
        let (_, ready, approvals, needed, ready_at, escrow_id, mdk_id, kid) = pending(id)?;
        if approvals < i64::from(needed) {
            return Err(not_ready(
                format!("recovery request {id} has {approvals} of the {needed} approvals it needs"),
                "other pq_admin roles approve it with pq.escrow_approve",
            ));
        }
        if !ready {
            return Err(not_ready(
                format!("recovery request {id} may be completed from {ready_at} (the escrow's min_approval_time)"),
                "wait, then call pq.escrow_recover again",
            ));
        }
        let refs: Vec<&[u8]> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| invalid(format!("element {} of resealed_shares is NULL", i + 1))))
            .collect::<PqResult<_>>()?;
        let kid = Kid::from_slice(&kid).map_err(|_| PqError::internal("a stored key id has the wrong length", String::new()))?;
        let mdk_kid = Kid::from_slice(&mdk_id).map_err(|_| PqError::internal("a stored key id has the wrong length", String::new()))?;
        let escrow_id: [u8; 16] =
            escrow_id.as_slice().try_into().map_err(|_| PqError::internal("a stored escrow id has the wrong length", String::new()))?;
        let provider_name = provider::configured()?;
        let (key_ref, indexes) = crate::platform::secure_mem::scope(|| {
            let secret = master::recovery_secret(kid, "escrow recovery")?;
            let mdk = escrow::recover(&refs, &secret, mdk_kid, escrow_id).map_err(recover_error)?;
            let key_ref = master::rewrap_mdk(&mdk, provider_name)?;
            let indexes: Vec<u8> =
                refs.iter().filter_map(|r| escrow::ShareRecord::parse(r).ok().map(|p| p.header.index)).collect();
            Ok::<_, PqError>((key_ref, indexes))
        })?;
        master::consume_recovery_key(kid)?;
        catalog::write_one::<bool>(
            "UPDATE pq.escrow_requests SET state = 'recovered', recovered_at = now(), recovered_by = $2 WHERE id = $1 RETURNING true",
            &[(*id).into(), actor.as_str().into()],
        )?;
        events::record(
            "escrow_recovered",
            None,
            None,
            &actor,
            None,
            json!({
                "request_id": id.to_string(),
                "mdk_id": hex::encode(&mdk_id),
                "provider": provider_name,
                "key_ref": key_ref,
                "share_indexes": indexes,
            }),
        )?;
        Ok((mdk_id, provider_name.to_owned(), key_ref))
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
    pub fn configure_key_escrow(config: JsonB) -> JsonB {
        JsonB(super::configure(&config.0).or_raise())
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

    /// Starts a recovery of the escrowed master key: a one-time key whose
    /// secret the configured (new) provider wraps, and the statement
    /// (FORMAT.md §14.2) its approvers sign; custodians re-seal their shares
    /// to the key once the approved statement is issued.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn escrow_request_recovery(
        reason: &str,
    ) -> TableIterator<'static, (name!(request_id, Uuid), name!(request_public_key, Vec<u8>), name!(statement, Vec<u8>))> {
        TableIterator::once(super::request_recovery(reason).or_raise())
    }

    /// Approves a pending recovery request with an approver's signature
    /// over its statement (not by the role that made it); returns the
    /// number of signed approvals.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn escrow_approve(request_id: Uuid, signature: &[u8]) -> i64 {
        super::approve(&request_id, signature).or_raise()
    }

    /// The approved statement of a request ('A' record, FORMAT.md §14.2),
    /// once it has its signed approvals and its wait is over.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn escrow_statement(request_id: Uuid) -> Vec<u8> {
        super::statement(&request_id).or_raise()
    }

    /// Recombines re-sealed shares ('R' records) once the request has its
    /// approvals and min_approval_time has passed, checks the key against
    /// its MDK id and wraps it with the configured provider.
    #[pg_extern(strict, volatile, parallel_unsafe)]
    pub fn escrow_recover(
        request_id: Uuid,
        resealed_shares: Array<&[u8]>,
    ) -> TableIterator<'static, (name!(mdk_id, Vec<u8>), name!(provider, String), name!(key_ref, String))> {
        let shares: Vec<Option<&[u8]>> = resealed_shares.iter().collect();
        TableIterator::once(super::recover(&request_id, &shares).or_raise())
    }

    /// Configuration, custodians, the latest split, staleness, requests and
    /// approvals; never a share or a key.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn escrow_status() -> JsonB {
        JsonB(super::status().or_raise())
    }
}
