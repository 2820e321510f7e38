//! Proof of the audit trail: `pq.audit_checkpoint()` signs the chain's
//! head with the system audit key (ML-DSA-65 and Ed25519), its line goes
//! to the server log when the transaction commits, the worker makes one
//! when due, and `pq.verify_audit_chain()` checks every row, hash and
//! checkpoint. The rows themselves are appended by `journal::chain`.
//! Encodings: `pqcore::audit`, docs/FORMAT.md §11; operations:
//! docs/AUDIT.md.
use crate::{
    journal::chain::{hash_of, installed, locked_head},
    keys::secrets,
    platform::{catalog, cluster, clock::{micros_sql, now_unix_micros, timestamptz}, errors::{PqError, PqResult}, roles},
};
use pgrx::prelude::*;
use pqcore::audit::{AuditRow, AuditVerifyingKey, Checkpoint, Hash, HASH_LEN};

/// What `pq.audit_checkpoint()` made.
struct Made {
    head_id: i64,
    head_hash: Hash,
    kid: pqcore::Kid,
}

thread_local! {
    /// Checkpoint lines to write to the server log when this transaction
    /// commits (a checkpoint rolled back never happened).
    static AT_COMMIT: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Signs the current head; on a Citus coordinator, also each worker
/// node's head (`checkpoint_workers`). Returns this node's. Call as owner.
pub fn checkpoint() -> PqResult<(i64, Vec<u8>, Vec<u8>)> {
    if cluster::is_worker_node()? {
        return Err(PqError::Sql {
            code: b"55000",
            message: "on a Citus worker node the coordinator makes the checkpoints of this node's chain".into(),
            hint: Some("run pq.audit_checkpoint() on the coordinator".into()),
        });
    }
    let (kid, key) = secrets::audit_key()?;
    let made = make_checkpoint(kid, &key, None)?;
    checkpoint_workers(kid, &key)?;
    drop(key);
    Ok((made.head_id, made.head_hash.to_vec(), made.kid.as_bytes().to_vec()))
}

/// The head's hash in the server log too, once the checkpoint commits: a
/// copy outside the database that a later rewrite of the chain cannot reach.
fn log_at_commit(made: &Made, node_group: i32) {
    let node = if node_group == 0 { String::new() } else { format!("node_group={node_group} ") };
    let line = format!(
        "apg_pqcrypto: audit checkpoint {node}head_id={} head_hash={} audit_key={}",
        made.head_id,
        hex::encode(made.head_hash),
        made.kid.to_hex()
    );
    AT_COMMIT.with_borrow_mut(|lines| lines.push(line));
}

/// True once checkpoints name the node whose chain they sign (0.11.0).
fn per_node() -> bool {
    catalog::pq_column_exists(c"audit_checkpoints", c"node_group")
}

/// The condition on pq.audit_checkpoints that selects this node's
/// checkpoints (all of them before 0.11.0).
fn this_node() -> PqResult<String> {
    Ok(if per_node() { format!("node_group = {}", cluster::local_group()?) } else { "true".into() })
}

/// True on a Citus coordinator after `pq.citus_setup()`, where the
/// checkpoints also sign the worker nodes' chains.
fn signs_workers() -> PqResult<bool> {
    Ok(per_node() && cluster::local_group()? == 0 && cluster::is_distributed(catalog::pq_relid(c"audit_checkpoints"))?)
}

/// On a Citus coordinator after `pq.citus_setup()`: each worker node's
/// chain head (its newest chained row, read over Citus's connections) is
/// signed with the coordinator's audit key and stored as a checkpoint of
/// that node, in the reference table, so that every node holds it and it
/// outlives the node. A node that does not answer is skipped with a
/// warning; a head already signed is not signed again. Call as owner.
fn checkpoint_workers(kid: pqcore::Kid, key: &pqcore::audit::AuditKey) -> PqResult<()> {
    if !signs_workers()? {
        return Ok(());
    }
    let heads = catalog::rows(
        "SELECT r.nodename || ':' || r.nodeport, r.success, r.result
           FROM pg_catalog.run_command_on_workers(
                  $$SELECT pg_catalog.json_build_object('group', (SELECT groupid FROM pg_catalog.pg_dist_local_group),
                                                        'id', id, 'hash', pg_catalog.encode(row_hash, 'hex'))
                      FROM pq.audit_log ORDER BY id DESC LIMIT 1$$) r",
        &[],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<bool>(2)?.unwrap_or(false), row.get::<String>(3)?)),
    )?;
    for (node, answered, result) in heads {
        let Some(result) = result.filter(|r| !r.is_empty()) else { continue };
        if !answered {
            warning!("apg_pqcrypto: no audit checkpoint of node {node}: {}", result.lines().next().unwrap_or_default());
            continue;
        }
        let head: serde_json::Value = serde_json::from_str(&result)
            .map_err(|e| PqError::internal("a worker node's chain head is unreadable", format!("{node}: {e}")))?;
        let (Some(group), Some(head_id), Some(hash)) = (head["group"].as_i64(), head["id"].as_i64(), head["hash"].as_str()) else {
            continue;
        };
        let signed = catalog::one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pq.audit_checkpoints WHERE node_group = $1 AND head_id >= $2)",
            &[(group as i32).into(), head_id.into()],
        )?
        .unwrap_or(false);
        if signed {
            continue;
        }
        let hash = hex::decode(hash).ok().and_then(|h| hash_of(&h).ok()).ok_or_else(|| {
            PqError::internal("a worker node's chain head is unreadable", format!("{node}: head hash {hash}"))
        })?;
        make_checkpoint(kid, key, Some((group as i32, head_id, hash)))?;
    }
    Ok(())
}

/// End of a transaction: the lines of its checkpoints go to the server log
/// if it committed, nowhere if it aborted.
pub fn end_of_transaction(committed: bool) {
    let lines = AT_COMMIT.with_borrow_mut(std::mem::take);
    if committed {
        for line in lines {
            log!("{line}");
        }
    }
}

/// Signs and stores one checkpoint: of this node's chain (its head locked
/// and read here), or of a worker node's `(group, head id, head hash)`.
fn make_checkpoint(kid: pqcore::Kid, key: &pqcore::audit::AuditKey, worker: Option<(i32, i64, Hash)>) -> PqResult<Made> {
    // The key was made first (by the caller): creating it may create the
    // MDK, whose writers must never wait for a holder of the chain lock
    // (the chain lock is always the last lock a transaction takes).
    let (node_group, head_id, head_hash) = match worker {
        Some(head) => head,
        None => {
            let (head_id, head_hash) = locked_head()?;
            (cluster::local_group()?, head_id, head_hash)
        }
    };
    let ts = now_unix_micros();
    let cp = Checkpoint { head_id: head_id as u64, head_hash, ts_micros: ts };
    let signatures = key.sign(&cp)?;
    // The SLH-DSA column is 0.11.0's; a key with an SLH-DSA hedge exists
    // only after the update (secrets::audit_key refuses one before).
    let mut args = vec![
        head_id.into(),
        head_hash.as_slice().into(),
        timestamptz(ts)?.into(),
        kid.as_bytes().as_slice().into(),
        signatures.ml_dsa.as_slice().into(),
        signatures.ed25519.as_deref().into(),
    ];
    let (columns, values) = if per_node() {
        args.push(signatures.slh_dsa.as_deref().into());
        args.push(node_group.into());
        (", slh_dsa_signature, node_group", ", $7, $8")
    } else if catalog::pq_column_exists(c"audit_checkpoints", c"slh_dsa_signature") {
        args.push(signatures.slh_dsa.as_deref().into());
        (", slh_dsa_signature", ", $7")
    } else {
        ("", "")
    };
    catalog::write_one::<bool>(
        &format!(
            "INSERT INTO pq.audit_checkpoints (head_id, head_hash, ts, key_kid, ml_dsa_signature, ed25519_signature{columns})
             VALUES ($1, $2, $3, $4, $5, $6{values}) RETURNING true"
        ),
        &args,
    )?;
    let made = Made { head_id, head_hash, kid };
    log_at_commit(&made, node_group);
    Ok(made)
}

/// Seconds since the last checkpoint (None: there is none). Call as owner.
pub fn seconds_since_checkpoint() -> PqResult<Option<f64>> {
    catalog::one::<f64>(&format!("SELECT extract(epoch FROM now() - max(ts))::float8 FROM pq.audit_checkpoints WHERE {}", this_node()?), &[])
}

/// The result of a chain check.
pub struct ChainReport {
    pub ok: bool,
    pub first_bad_id: Option<i64>,
    pub rows_checked: i64,
    pub last_checkpoint: Option<pgrx::datum::TimestampWithTimeZone>,
    pub problem: Option<String>,
}

/// Rows read per query while verifying.
const VERIFY_BATCH: i64 = 5000;

/// Walks the whole chain in id order: ids 1, 2, 3, ... without gaps, each
/// row's prev_hash equal to the previous row's hash, each row_hash
/// recomputed from the row; then every checkpoint: signatures valid under
/// its audit key, its head present with the signed hash. Call as owner.
pub fn verify_chain() -> PqResult<ChainReport> {
    let mut expected_id = 1i64;
    let mut prev: Hash = [0u8; HASH_LEN];
    let mut hashes: std::collections::HashMap<i64, Hash> = std::collections::HashMap::new();
    let mut checkpoints_at: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let cp_rows = checkpoints()?;
    for c in &cp_rows {
        checkpoints_at.insert(c.head_id);
    }
    let bad = |id: i64, rows: i64, problem: String| ChainReport {
        ok: false,
        first_bad_id: Some(id),
        rows_checked: rows,
        last_checkpoint: None,
        problem: Some(problem),
    };
    let query = format!(
        "SELECT id, {}, event, tenant, actor, details::text, prev_hash, row_hash FROM pq.audit_log
          WHERE id >= $1 ORDER BY id LIMIT {VERIFY_BATCH}",
        micros_sql("ts")
    );
    let mut checked = 0i64;
    loop {
        type Row = (i64, i64, String, Option<String>, String, String, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = catalog::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(&query, None, &[expected_id.into()])? {
                out.push((
                    row.get::<i64>(1)?.unwrap_or_default(),
                    row.get::<i64>(2)?.unwrap_or_default(),
                    row.get::<String>(3)?.unwrap_or_default(),
                    row.get::<String>(4)?,
                    row.get::<String>(5)?.unwrap_or_default(),
                    row.get::<String>(6)?.unwrap_or_default(),
                    row.get::<Vec<u8>>(7)?.unwrap_or_default(),
                    row.get::<Vec<u8>>(8)?.unwrap_or_default(),
                ));
            }
            Ok::<_, PqError>(out)
        })?;
        let n = rows.len() as i64;
        for (id, ts, event, tenant, actor, details, prev_hash, row_hash) in rows {
            if id != expected_id {
                return Ok(bad(expected_id, checked, format!("row {expected_id} is missing")));
            }
            if prev_hash != prev {
                return Ok(bad(id, checked, format!("row {id} does not chain to row {}", id - 1)));
            }
            let row = AuditRow { id: id as u64, ts_micros: ts, event: &event, tenant: tenant.as_deref(), actor: &actor, details: &details };
            let hash = row.chain_hash(&prev);
            if row_hash != hash {
                return Ok(bad(id, checked, format!("row {id} was changed: its hash does not match its contents")));
            }
            if checkpoints_at.contains(&id) {
                hashes.insert(id, hash);
            }
            prev = hash;
            expected_id += 1;
            checked += 1;
        }
        if n < VERIFY_BATCH {
            break;
        }
    }
    let head_id = expected_id - 1;
    let mut last = None;
    for c in &cp_rows {
        let key = match keys(&c.key_kid)? {
            Some(key) => key,
            None => return Ok(bad(c.head_id.max(1), checked, format!("checkpoint {} names an unknown audit key", c.id))),
        };
        let cp = Checkpoint { head_id: c.head_id as u64, head_hash: hash_of(&c.head_hash)?, ts_micros: c.ts_micros };
        if key.verify(&cp, &c.ml_dsa, c.ed25519.as_deref(), c.slh_dsa.as_deref()) != (true, true) {
            return Ok(bad(c.head_id.max(1), checked, format!("checkpoint {} has an invalid signature", c.id)));
        }
        if c.head_id > head_id {
            return Ok(bad(
                head_id + 1,
                checked,
                format!("rows {} to {} were removed: checkpoint {} covers them", head_id + 1, c.head_id, c.id),
            ));
        }
        let at = if c.head_id == 0 { Some([0u8; HASH_LEN]) } else { hashes.get(&c.head_id).copied() };
        if at != Some(cp.head_hash) {
            return Ok(bad(c.head_id, checked, format!("row {} differs from what checkpoint {} signed", c.head_id, c.id)));
        }
        last = Some(c.ts);
    }
    Ok(ChainReport { ok: true, first_bad_id: None, rows_checked: checked, last_checkpoint: last, problem: None })
}

struct CheckpointRow {
    id: i64,
    head_id: i64,
    head_hash: Vec<u8>,
    ts: pgrx::datum::TimestampWithTimeZone,
    ts_micros: i64,
    key_kid: Vec<u8>,
    ml_dsa: Vec<u8>,
    ed25519: Option<Vec<u8>>,
    slh_dsa: Option<Vec<u8>>,
}

fn checkpoints() -> PqResult<Vec<CheckpointRow>> {
    let slh = if catalog::pq_column_exists(c"audit_checkpoints", c"slh_dsa_signature") { "slh_dsa_signature" } else { "NULL::bytea" };
    let query = format!(
        "SELECT id, head_id, head_hash, ts, {}, key_kid, ml_dsa_signature, ed25519_signature, {slh}
           FROM pq.audit_checkpoints WHERE {} ORDER BY id",
        micros_sql("ts"),
        this_node()?
    );
    catalog::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(&query, None, &[])? {
            let Some(ts) = row.get::<pgrx::datum::TimestampWithTimeZone>(4)? else { continue };
            out.push(CheckpointRow {
                id: row.get::<i64>(1)?.unwrap_or_default(),
                head_id: row.get::<i64>(2)?.unwrap_or_default(),
                head_hash: row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                ts,
                ts_micros: row.get::<i64>(5)?.unwrap_or_default(),
                key_kid: row.get::<Vec<u8>>(6)?.unwrap_or_default(),
                ml_dsa: row.get::<Vec<u8>>(7)?.unwrap_or_default(),
                ed25519: row.get::<Vec<u8>>(8)?,
                slh_dsa: row.get::<Vec<u8>>(9)?,
            });
        }
        Ok::<_, PqError>(out)
    })
}

/// The public keys of audit key `kid`; None if unknown or if they do not
/// match the kid.
fn keys(kid: &[u8]) -> PqResult<Option<AuditVerifyingKey>> {
    let slh = if catalog::pq_column_exists(c"audit_keys", c"slh_dsa_public_key") { "slh_dsa_public_key" } else { "NULL::bytea" };
    let row = catalog::row(
        &format!("SELECT ml_dsa_public_key, ed25519_public_key, {slh} FROM pq.audit_keys WHERE kid = $1"),
        &[kid.into()],
        |row| Ok((row.get::<Vec<u8>>(1)?.unwrap_or_default(), row.get::<Vec<u8>>(2)?, row.get::<Vec<u8>>(3)?)),
    )?;
    let Some((dsa, ed, slh)) = row else { return Ok(None) };
    Ok(AuditVerifyingKey::from_parts(&dsa, ed.as_deref(), slh.as_deref()).ok().filter(|k| k.kid().as_bytes().as_slice() == kid))
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Signs the head of the audit chain with the system audit key
    /// (ML-DSA-65 and Ed25519) and stores the checkpoint.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn audit_checkpoint(
    ) -> TableIterator<'static, (name!(head_id, i64), name!(head_hash, Vec<u8>), name!(audit_key, Vec<u8>))> {
        let made = roles::require_admin("make audit checkpoints")
            .and_then(|_| {
                if !installed() {
                    return Err(PqError::KeyStateHint(
                        "the audit trail needs apg_pqcrypto 0.5.0".into(),
                        "run ALTER EXTENSION apg_pqcrypto UPDATE",
                    ));
                }
                catalog::as_owner(checkpoint)
            })
            .or_raise();
        TableIterator::once(made)
    }

    /// Chains every committed row waiting in pq.audit_pending now (the
    /// worker does it within moments of their commit) and returns how many
    /// it chained. Waits for a transaction that holds the chain lock.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn audit_flush() -> i64 {
        roles::require_admin("chain the pending audit rows")
            .and_then(|_| catalog::as_owner(crate::journal::chain::flush))
            .or_raise()
    }

    /// Checks every row of the audit chain and every checkpoint. Names the
    /// first row that fails; `problem` says how.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn verify_audit_chain() -> TableIterator<
        'static,
        (
            name!(ok, bool),
            name!(first_bad_id, Option<i64>),
            name!(rows_checked, i64),
            name!(last_checkpoint, Option<pgrx::datum::TimestampWithTimeZone>),
            name!(problem, Option<String>),
        ),
    > {
        let r = roles::require_monitor("verify the audit chain").and_then(|_| catalog::as_owner(verify_chain)).or_raise();
        TableIterator::once((r.ok, r.first_bad_id, r.rows_checked, r.last_checkpoint, r.problem))
    }
}

/// The worker's checkpoint: when the last one is older than `interval`
/// (or there is none) and rows were added since. On a Citus coordinator,
/// the worker nodes' heads are signed on the same schedule (at most once
/// per `interval` when nothing changed). Call as owner.
pub fn checkpoint_if_due(interval: std::time::Duration) -> PqResult<bool> {
    thread_local! {
        static WORKERS_SIGNED_AT: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    if !installed() || catalog::in_recovery() {
        return Ok(false);
    }
    let due = match seconds_since_checkpoint()? {
        None => true,
        Some(secs) => secs >= interval.as_secs_f64(),
    };
    let grown = due
        && (crate::journal::chain::pending()?
            || catalog::one::<bool>(
                &format!(
                    "SELECT coalesce((SELECT max(id) FROM pq.audit_log), 0) > coalesce((SELECT max(head_id) FROM pq.audit_checkpoints WHERE {}), 0)",
                    this_node()?
                ),
                &[],
            )?
            .unwrap_or(false));
    let workers = WORKERS_SIGNED_AT.get().is_none_or(|at| at.elapsed() >= interval) && signs_workers()?;
    if !grown && !workers {
        return Ok(false);
    }
    let (kid, key) = secrets::audit_key()?;
    if grown {
        make_checkpoint(kid, &key, None)?;
    }
    if workers {
        checkpoint_workers(kid, &key)?;
        WORKERS_SIGNED_AT.set(Some(std::time::Instant::now()));
    }
    Ok(grown)
}
