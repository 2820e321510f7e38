//! Recovery of a lost KEK from the escrow (docs/RECOVERY.md): a request
//! with a one-time key wrapped by the new provider, approvals by other
//! roles, each signed with an approver's own ML-DSA-65 key, a minimum wait,
//! the approved request statement custodians check before they re-seal
//! (FORMAT.md §14.2), and `pq.escrow_recover`, which recombines re-sealed
//! shares and wraps the MDK under the new KEK. The escrow itself
//! (custodians, approvers, configuration, splits) is `recovery::escrow`.
use crate::{
    journal::events,
    keys::{master, provider},
    platform::{catalog, errors::{echo, PqError, PqResult}},
    recovery::escrow::{invalid, not_ready},
};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::Uuid;
use pqcore::{
    escrow::{self, Approval, ApprovedRequest, RecoverError, RequestStatement, APPROVAL_CONTEXT},
    Error as CoreError, Kid, VerifyingKey,
};
use serde_json::json;

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

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

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
}
