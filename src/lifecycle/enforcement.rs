//! Enforced encryption: with `apg_pqcrypto.enforce_encryption = tracked`,
//! `pq.enforcement_trigger` (put on every tracked column by
//! `pq.track_column`) refuses with 22023 an INSERT or UPDATE that leaves a
//! tracked column holding anything but a keyed or sealed envelope of the
//! row's tenant; NULL passes, and so does an UPDATE that leaves the value
//! as it was (other columns of a row not yet encrypted stay writable).
//! The extension's own jobs write back envelopes they made and are not
//! checked. `pq.enforcement_report()` counts what the tracked columns hold.
//!
//! The check is structural: a value passes when it parses as an envelope
//! (FORMAT.md) whose key id is one of the tenant's versions. It does not
//! open the value (the writer need not be granted the tenant, and a check
//! per write must stay cheap): a forged envelope with a real key id passes
//! and then fails to decrypt (PQ001). It keeps plaintext out by mistake,
//! not by a writer set on storing garbage.
use crate::{
    lifecycle::{row_trigger, tracking},
    platform::{catalog, errors::{PqError, PqResult}, gucs},
};
use pgrx::prelude::*;
use pqcore::{Envelope, Kind};
use std::cell::RefCell;
use std::collections::HashMap;

/// Why a value is refused, or None when it passes.
fn refusal(value: &[u8], tenant: Option<&str>) -> PqResult<Option<&'static str>> {
    let Ok(envelope) = Envelope::parse(value) else { return Ok(Some("it is not an envelope")) };
    if !matches!(envelope.kind(), Kind::Keyed | Kind::Sealed) {
        return Ok(Some("it is a signature envelope, not an encrypted value"));
    }
    let Some(tenant) = tenant else { return Ok(Some("the row names no tenant")) };
    // Another tenant's key and a key id no tenant has read the same: the
    // message tells a writer nothing about other tenants' key ids.
    match kid_tenant(envelope.kid().as_bytes())? {
        Some(t) if t == tenant => Ok(None),
        _ => Ok(Some("it is not an envelope of the row's tenant")),
    }
}

/// (local transaction id, kid → tenant) read in this transaction.
type KidCache = (u32, HashMap<Vec<u8>, Option<String>>);

thread_local! {
    static KIDS: RefCell<KidCache> = RefCell::new((0, HashMap::new()));
}

/// The tenant whose version has `kid`, read as owner once per transaction.
fn kid_tenant(kid: &[u8]) -> PqResult<Option<String>> {
    // SAFETY: MyProc is this backend's own PGPROC; lxid its local transaction id.
    let lxid = unsafe { (*pg_sys::MyProc).lxid };
    let hit = KIDS.with_borrow_mut(|c| {
        if c.0 != lxid {
            *c = (lxid, HashMap::new());
        }
        c.1.get(kid).cloned()
    });
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let tenant = catalog::as_owner(|| {
        catalog::one::<String>("SELECT tenant FROM pq.tenant_key_versions WHERE kid = $1", &[kid.into()])
    })?;
    KIDS.with_borrow_mut(|c| c.1.insert(kid.to_vec(), tenant.clone()));
    Ok(tenant)
}

/// The row unchanged (the trigger only refuses): Postgres' own tuple, not
/// a copy, so that a write with enforcement off costs little more than the
/// trigger call.
fn trigger_row<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> PqResult<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>> {
    let bad = |m: &str| PqError::InvalidParameter(m.into());
    let Some(new) = trigger.new() else {
        return Err(bad("pq.enforcement_trigger is a BEFORE INSERT OR UPDATE row trigger"));
    };
    if !gucs::enforce_tracked() {
        return Ok(Some(new));
    }
    let column = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.into_iter().next())
        .ok_or_else(|| bad("pq.enforcement_trigger takes the tracked column's name as its argument"))?;
    let relid = trigger.relid().map_err(|_| bad("pq.enforcement_trigger is a row trigger"))?;
    // Not tracked (any more): nothing to enforce.
    let Some((id, t)) = row_trigger::cached_for_trigger(relid, &column, false)? else { return Ok(Some(new)) };
    if row_trigger::writing_back_now(id) {
        return Ok(Some(new));
    }
    let Some(value) = row_trigger::bytes_of(&new, &t.column) else { return Ok(Some(new)) };
    if let Some(old) = trigger.old() {
        if row_trigger::bytes_of(&old, &t.column).as_deref() == Some(value.as_slice())
            && row_trigger::row_tenant(&t, &old) == row_trigger::row_tenant(&t, &new)
        {
            return Ok(Some(new));
        }
    }
    if let Some(why) = refusal(&value, row_trigger::row_tenant(&t, &new).as_deref())? {
        return Err(PqError::Sql {
            code: b"22023",
            message: format!(
                "apg_pqcrypto.enforce_encryption refuses this value of tracked column {}.{}: {why}",
                t.table,
                tracking::quote_ident(&t.column)
            ),
            hint: Some("write pq_encrypt(tenant, value, aad) (or a sealed envelope of the row's tenant)".into()),
        });
    }
    Ok(Some(new))
}

/// One line of `pq.enforcement_report()`.
type ReportRow = (String, String, i64, i64, i64, i64, i64);

/// Per tracked column: rows, NULLs, envelopes of the row's tenant, values
/// that are not envelopes of any tenant (plaintext, classical ciphertext,
/// a signature, or an envelope no key version has), and envelopes of
/// another tenant than the row's. Reads every tracked table.
fn report() -> PqResult<Vec<ReportRow>> {
    crate::platform::roles::require_admin("read the enforcement report")?;
    catalog::as_owner(|| {
        let mut out = Vec::new();
        for id in tracking::ids_existing()? {
            let t = tracking::load(id)?;
            let tenant_expr = match (&t.tenant, &t.tenant_column) {
                (Some(_), _) => "$1::text".to_owned(),
                (None, Some(tc)) => format!("x.{}::text", tracking::quote_ident(tc)),
                (None, None) => "NULL::text".to_owned(),
            };
            // An envelope as the trigger sees it: what pq.classify (the core's
            // parser) calls keyed or sealed, with the key id of a version.
            let query = format!(
                "SELECT count(*), count(*) FILTER (WHERE x.pq__value IS NULL),
                        count(*) FILTER (WHERE x.pq__envelope AND k.tenant = {tenant_expr}),
                        count(*) FILTER (WHERE x.pq__value IS NOT NULL AND NOT (x.pq__envelope AND k.tenant IS NOT NULL)),
                        count(*) FILTER (WHERE x.pq__envelope AND k.tenant IS DISTINCT FROM {tenant_expr} AND k.tenant IS NOT NULL)
                   FROM (SELECT pq.classify(pq__value) IN ('pq_keyed', 'pq_sealed') AS pq__envelope, *
                           FROM (SELECT {col}::bytea AS pq__value, * FROM {table}) y) x
                   LEFT JOIN pq.tenant_key_versions k ON k.kid = substr(x.pq__value, 3, 16)",
                col = tracking::quote_ident(&t.column),
                table = t.table,
            );
            let counts = catalog::row(&query, &[t.tenant.as_deref().into()], |r| {
                Ok([1, 2, 3, 4, 5].map(|i| r.get::<i64>(i).ok().flatten().unwrap_or(0)))
            })?
            .unwrap_or_default();
            out.push((t.table.clone(), t.column.clone(), counts[0], counts[1], counts[2], counts[3], counts[4]));
        }
        Ok(out)
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// With `apg_pqcrypto.enforce_encryption = tracked`, refuses (22023)
    /// writes that leave a tracked column holding anything but an envelope
    /// of the row's tenant: `CREATE TRIGGER … BEFORE INSERT OR UPDATE ON t
    /// FOR EACH ROW EXECUTE FUNCTION pq.enforcement_trigger('col')`, made
    /// by `pq.track_column`.
    #[pg_trigger]
    pub fn enforcement_trigger<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
        Ok(trigger_row(trigger).or_raise())
    }

    /// What every tracked column holds: rows, NULLs, envelopes of the row's
    /// tenant, values that are not envelopes (plaintext, or classical
    /// ciphertext still to migrate) and envelopes of another tenant or of a
    /// key id no tenant has. Reads every tracked table. pq_admin.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn enforcement_report() -> TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(column_name, String),
            name!(rows, i64),
            name!(nulls, i64),
            name!(envelopes, i64),
            name!(not_envelopes, i64),
            name!(other_tenant, i64),
        ),
    > {
        TableIterator::new(report().or_raise())
    }
}
