//! Operation counts and security counters. Each backend counts in a small
//! local buffer and adds it to shared memory at the end of every
//! transaction, committed *or aborted* (so a failed decryption counts even
//! though its transaction rolls back); the worker (or `pq.flush_counters()`)
//! moves the shared counts into `pq.usage_counts` and `pq.security_counts`
//! and raises the alert of `apg_pqcrypto.alert_failed_decrypts_per_minute`.
//! Never a row per call, never a value or a key: tenant, role, kind, minute.
use crate::platform::{catalog, errors::PqResult, gucs};
use pgrx::lwlock::PgLwLock;
use pgrx::pg_shmem_init;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use std::cell::RefCell;

/// What is counted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Counted {
    Encrypt = 0,
    Decrypt = 1,
    Sign = 2,
    Verify = 3,
    FailedDecrypt = 4,
    FailedVerify = 5,
}

impl Counted {
    const ALL: [Counted; 6] =
        [Counted::Encrypt, Counted::Decrypt, Counted::Sign, Counted::Verify, Counted::FailedDecrypt, Counted::FailedVerify];

    fn name(self) -> &'static str {
        match self {
            Counted::Encrypt => "encrypt",
            Counted::Decrypt => "decrypt",
            Counted::Sign => "sign",
            Counted::Verify => "verify",
            Counted::FailedDecrypt => "failed_decrypt",
            Counted::FailedVerify => "failed_verify",
        }
    }

    fn is_security(self) -> bool {
        matches!(self, Counted::FailedDecrypt | Counted::FailedVerify)
    }
}

/// Longest tenant name kept (longer names are cut; tenant names are at
/// most pqcore::tenant::MAX_NAME_LEN bytes).
const TENANT_BYTES: usize = pqcore::tenant::MAX_NAME_LEN;
/// Distinct (tenant, role, kind, minute) counters between two flushes.
const SLOTS: usize = 1024;

#[derive(Copy, Clone)]
struct Slot {
    count: u64,
    minute: i64,
    role: u32,
    kind: u8,
    tenant_len: u8,
    tenant: [u8; TENANT_BYTES],
}

impl Slot {
    const EMPTY: Slot = Slot { count: 0, minute: 0, role: 0, kind: 0, tenant_len: 0, tenant: [0; TENANT_BYTES] };

    fn tenant(&self) -> &[u8] {
        &self.tenant[..usize::from(self.tenant_len)]
    }

    fn is(&self, tenant: &[u8], role: u32, kind: u8, minute: i64) -> bool {
        self.count > 0 && self.role == role && self.kind == kind && self.minute == minute && self.tenant() == tenant
    }
}

#[derive(Copy, Clone)]
pub struct Slots {
    slots: [Slot; SLOTS],
    /// Counts that found no free slot since the last flush.
    dropped: u64,
}

impl Default for Slots {
    fn default() -> Self {
        Slots { slots: [Slot::EMPTY; SLOTS], dropped: 0 }
    }
}

// SAFETY: plain integers and byte arrays, no pointers.
unsafe impl PGRXSharedMemory for Slots {}

// SAFETY: a named shared-memory lock, initialised once by pg_shmem_init! while preloading.
static COUNTERS: PgLwLock<Slots> = unsafe { PgLwLock::new(c"apg_pqcrypto_counters") };

/// From _PG_init while preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(COUNTERS);
}

struct Local {
    tenant: String,
    role: u32,
    kind: Counted,
    count: u64,
}

thread_local! {
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

fn add_local(tenant: &str, role: u32, kind: Counted) {
    LOCAL.with_borrow_mut(|local| {
        if let Some(e) = local.iter_mut().find(|e| e.kind == kind && e.role == role && e.tenant == tenant) {
            e.count += 1;
        } else {
            local.push(Local { tenant: tenant.to_owned(), role, kind, count: 1 });
        }
    });
}

/// A successful operation on `tenant`'s keys, counted as audit_level says.
pub fn used(tenant: &str, kind: Counted) {
    match gucs::audit_level() {
        gucs::AuditLevel::None => {}
        gucs::AuditLevel::Keys => add_local(tenant, 0, kind),
        gucs::AuditLevel::All => add_local(tenant, catalog::caller().to_u32(), kind),
    }
}

/// A failed decryption or signature check: always counted, with the role.
/// `tenant` is None when the key id is unknown.
pub fn failed(tenant: Option<&str>, kind: Counted) {
    add_local(tenant.unwrap_or(""), catalog::caller().to_u32(), kind);
}

/// Counts a decryption by its result: used, or failed (see [`failed_decryption`]).
pub fn decryption<T>(result: PqResult<T>, tenant: &str) -> PqResult<T> {
    match result {
        Ok(value) => {
            used(tenant, Counted::Decrypt);
            Ok(value)
        }
        Err(e) => Err(failed_decryption(e, Some(tenant))),
    }
}

/// Counts `e` if it is a failed decryption attempt (PQ001: wrong key, AAD
/// or data, or no classical key reads the value; PQ002: unknown key id,
/// tenant None) and returns it. Other errors (malformed input,
/// permissions, key states) are not attempts and are not counted.
pub fn failed_decryption(e: crate::platform::errors::PqError, tenant: Option<&str>) -> crate::platform::errors::PqError {
    use crate::platform::errors::PqError;
    if matches!(
        e,
        PqError::Core(pqcore::Error::DecryptionFailed) | PqError::UnknownKid | PqError::Sql { code: b"PQ001", .. }
    ) {
        failed(tenant, Counted::FailedDecrypt);
    }
    e
}

fn current_minute() -> i64 {
    // SAFETY: a clock read; never raises.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    now.div_euclid(60_000_000) * 60_000_000
}

/// End of a transaction (commit or abort): the local counts go to shared
/// memory. Never raises.
pub fn end_of_transaction() {
    let local = LOCAL.with_borrow_mut(std::mem::take);
    if local.is_empty() || !crate::platform::shmem::preloaded() {
        return;
    }
    let minute = current_minute();
    let mut shared = COUNTERS.exclusive();
    for e in local {
        let tenant = &e.tenant.as_bytes()[..e.tenant.len().min(TENANT_BYTES)];
        let kind = e.kind as u8;
        if let Some(slot) = shared.slots.iter_mut().find(|s| s.is(tenant, e.role, kind, minute)) {
            slot.count += e.count;
        } else if let Some(slot) = shared.slots.iter_mut().find(|s| s.count == 0) {
            let mut fresh = Slot { count: e.count, minute, role: e.role, kind, tenant_len: tenant.len() as u8, ..Slot::EMPTY };
            fresh.tenant[..tenant.len()].copy_from_slice(tenant);
            *slot = fresh;
        } else {
            shared.dropped += e.count;
        }
    }
}

/// A copy of one shared counter.
struct Taken {
    index: usize,
    tenant: String,
    role: u32,
    kind: Counted,
    minute: i64,
    count: u64,
}

/// Writes the shared counts into the tables, then subtracts what was
/// written (a failed flush loses nothing), and raises the failed-decrypt
/// alert. Call as owner, in a transaction. Returns the counts written.
pub fn flush(actor: &str) -> PqResult<u64> {
    if !crate::platform::shmem::preloaded() || !catalog::pq_table_exists(c"security_counts") || catalog::in_recovery() {
        return Ok(0);
    }
    // One flush at a time (the worker's and a pq.flush_counters() call):
    // two that read the same shared counts before either committed would
    // both write them. The lock, a mode that conflicts with itself, is held
    // until this transaction ends, after its commit has subtracted what it
    // wrote from shared memory; no role but the owner may lock the table.
    catalog::run("LOCK TABLE pq.security_counts IN SHARE ROW EXCLUSIVE MODE", &[])?;
    let (taken, dropped) = {
        let shared = COUNTERS.share();
        let taken: Vec<Taken> = shared
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.count > 0)
            .filter_map(|(index, s)| {
                Some(Taken {
                    index,
                    tenant: String::from_utf8_lossy(s.tenant()).into_owned(),
                    role: s.role,
                    kind: *Counted::ALL.get(usize::from(s.kind))?,
                    minute: s.minute,
                    count: s.count,
                })
            })
            .collect();
        (taken, shared.dropped)
    };
    if taken.is_empty() && dropped == 0 {
        return Ok(0); // nothing new: no write, and no new alert possible
    }
    let mut written = 0u64;
    for t in &taken {
        let (table, column) = if t.kind.is_security() { ("security_counts", "kind") } else { ("usage_counts", "operation") };
        catalog::write_one::<bool>(
            &format!(
                "INSERT INTO pq.{table} (tenant, role_name, {column}, minute, count)
                 VALUES ($1, CASE WHEN $2 = 0 THEN '' ELSE coalesce((SELECT rolname::text FROM pg_catalog.pg_roles
                                   WHERE oid = $2::oid), '#' || $2) END, $3, $4, $5)
                 ON CONFLICT (tenant, role_name, {column}, minute) DO UPDATE SET count = {table}.count + EXCLUDED.count
                 RETURNING true"
            ),
            &[
                t.tenant.as_str().into(),
                i64::from(t.role).into(),
                t.kind.name().into(),
                crate::platform::clock::timestamptz(t.minute + crate::platform::clock::PG_EPOCH_UNIX_MICROS)?.into(),
                (t.count as i64).into(),
            ],
        )?;
        written += t.count;
    }
    alert(actor)?;
    unusual_access(actor)?;
    if dropped > 0 {
        warning!("apg_pqcrypto: {dropped} operation counts were lost: more distinct counters than shared memory holds between two flushes");
    }
    // Subtracted from shared memory only when this transaction commits.
    PENDING.with_borrow_mut(|p| *p = Some((taken, dropped)));
    Ok(written)
}

thread_local! {
    /// Counts written by this transaction's flush, subtracted from shared
    /// memory when (and only if) it commits.
    static PENDING: RefCell<Option<(Vec<Taken>, u64)>> = const { RefCell::new(None) };
}

/// At commit of a transaction that flushed: forget what it wrote; at abort
/// the counts stay in shared memory for the next flush. Never raises.
pub fn flush_committed(committed: bool) {
    let Some((taken, dropped)) = PENDING.with_borrow_mut(Option::take) else { return };
    if !committed {
        return;
    }
    let mut shared = COUNTERS.exclusive();
    shared.dropped = shared.dropped.saturating_sub(dropped);
    for t in taken {
        if let Some(slot) = shared.slots.get_mut(t.index) {
            if slot.is(t.tenant.as_bytes(), t.role, t.kind as u8, t.minute) {
                slot.count -= t.count.min(slot.count);
            }
        }
    }
}

/// Minutes of the last hour whose failed decryptions of one tenant passed
/// the threshold: a `failed_decrypt_alert` event (tenant, minute, count: no
/// secrets), a WARNING in the server log, and a NOTIFY pq_security_event
/// whose payload is only the event's id, once per tenant and minute.
fn alert(actor: &str) -> PqResult<()> {
    let threshold = gucs::alert_failed_decrypts_per_minute();
    if threshold <= 0 {
        return Ok(());
    }
    let bursts = catalog::write_rows(
        "WITH burst AS (
             SELECT tenant, minute, sum(count) AS n FROM pq.security_counts
              WHERE kind = 'failed_decrypt' AND minute >= now() - interval '1 hour' GROUP BY tenant, minute
             HAVING sum(count) > $1 AND NOT bool_or(alerted)),
         marked AS (
             UPDATE pq.security_counts s SET alerted = true FROM burst b
              WHERE s.tenant = b.tenant AND s.minute = b.minute AND s.kind = 'failed_decrypt'
             RETURNING s.tenant)
         SELECT tenant, minute::text, n::bigint FROM burst",
        &[i64::from(threshold).into()],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default(), row.get::<i64>(3)?.unwrap_or_default())),
    )?;
    for (tenant, minute, n) in bursts {
        let details = serde_json::json!({ "minute": minute, "failed_decrypts": n, "threshold": threshold });
        let named = (!tenant.is_empty()).then_some(tenant.as_str());
        let id = crate::journal::events::record_id("failed_decrypt_alert", named, None, actor, None, details)?;
        // The payload names no tenant (LISTEN checks no privilege).
        crate::journal::events::notify("pq_security_event", id)?;
        let tenant = if tenant.is_empty() { "(unknown key id)".to_owned() } else { format!("\"{tenant}\"") };
        warning!(
            "apg_pqcrypto: {n} failed decryptions for tenant {tenant} in the minute from {minute} (alert threshold {threshold})"
        );
    }
    Ok(())
}

/// Minutes of the last hour in which a role decrypted a tenant's values
/// more than `apg_pqcrypto.alert_rate_factor` times its baseline (the 99th
/// percentile of its busy minutes over the 7 days before that hour, in
/// pq.usage_counts: so only with `audit_level = all`, and only for a role
/// that has such history), and at least `alert_rate_min_decrypts` times: a
/// `unusual_access` row in pq.security_counts (so in pq.security_events),
/// an `unusual_access_alert` event, a WARNING and a NOTIFY
/// pq_security_event carrying only the event's id; once per tenant, role
/// and minute.
fn unusual_access(actor: &str) -> PqResult<()> {
    let (factor, floor) = gucs::alert_rate();
    if factor <= 0.0 || !catalog::has_0_10_objects() {
        return Ok(());
    }
    let bursts = catalog::write_rows(
        "WITH recent AS (
             SELECT tenant, role_name, minute, sum(count) AS n FROM pq.usage_counts
              WHERE operation = 'decrypt' AND role_name <> '' AND minute >= now() - interval '1 hour'
              GROUP BY tenant, role_name, minute HAVING sum(count) >= $2),
         baseline AS (
             SELECT u.tenant, u.role_name,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY u.count::float8) AS p99, count(*) AS minutes
               FROM pq.usage_counts u
              WHERE u.operation = 'decrypt' AND u.minute >= now() - interval '7 days' AND u.minute < now() - interval '1 hour'
                AND (u.tenant, u.role_name) IN (SELECT tenant, role_name FROM recent)
              GROUP BY u.tenant, u.role_name),
         burst AS (
             SELECT r.tenant, r.role_name, r.minute, r.n, b.p99, b.minutes FROM recent r JOIN baseline b USING (tenant, role_name)
              WHERE r.n > $1 * b.p99),
         marked AS (
             INSERT INTO pq.security_counts (tenant, role_name, kind, minute, count, alerted)
             SELECT tenant, role_name, 'unusual_access', minute, n, true FROM burst
             ON CONFLICT (tenant, role_name, kind, minute) DO NOTHING
             RETURNING tenant, role_name, minute, count)
         SELECT m.tenant, m.role_name, m.minute::text, m.count, b.p99, b.minutes
           FROM marked m JOIN burst b USING (tenant, role_name, minute)",
        &[factor.into(), i64::from(floor).into()],
        |row| {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<i64>(4)?.unwrap_or_default(),
                row.get::<f64>(5)?.unwrap_or_default(),
                row.get::<i64>(6)?.unwrap_or_default(),
            ))
        },
    )?;
    for (tenant, role, minute, n, p99, minutes) in bursts {
        let details = serde_json::json!({
            "role": role, "minute": minute, "decrypts": n, "baseline_p99": p99, "baseline_minutes": minutes, "factor": factor
        });
        let id = crate::journal::events::record_id("unusual_access_alert", Some(&tenant), None, actor, None, details)?;
        crate::journal::events::notify("pq_security_event", id)?;
        warning!(
            "apg_pqcrypto: role \"{role}\" decrypted {n} values of tenant \"{tenant}\" in the minute from {minute}, \
             above {factor} times its 7-day baseline of {p99:.1} per minute"
        );
    }
    Ok(())
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Moves the shared-memory counters into pq.usage_counts and
    /// pq.security_counts now (the worker does it every round).
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn flush_counters() -> i64 {
        let actor = crate::journal::events::session_user();
        crate::platform::roles::require_admin("flush counters").and_then(|_| catalog::as_owner(|| flush(&actor))).or_raise() as i64
    }
}
