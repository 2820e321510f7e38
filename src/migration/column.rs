//! Migration off classical crypto: `pq.migrate_column` (a job for the
//! worker), `pq.migrate_column_now` (the same batches in the caller's
//! transaction), `pq.migration_status`, `pq.classical_counts`, the
//! dual-mode trigger `pq.migration_trigger`, and the per-row work of a
//! migration batch (`lifecycle::batch` claims and writes the rows; where a
//! tenant's migration stands is `migration::state`). Rows already under one
//! of the tenant's versions are never claimed, so a resumed or repeated job
//! touches each classical value once.
//!
//! Over 500 lines on purpose: one column's migration, from the request
//! through its sample, batches and status to the trigger that keeps new
//! writes post-quantum meanwhile.
use crate::{
    journal::events,
    keys::{access, versions},
    lifecycle::{batch, jobs::{self, Work}, tracking::{self, quote_ident}},
    migration::{classical::{ClassicalKind, failed, Pgcrypto, TenantKeys}, state},
    platform::{catalog, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::classical::{classify, readings, Class};
use std::collections::HashMap;

/// The per-row work of a migration batch: pgcrypto found once, each
/// tenant's classical keys loaded once.
pub struct Batch {
    pgcrypto: Pgcrypto,
    from_kind: Option<ClassicalKind>,
    keys: HashMap<String, TenantKeys>,
    /// Every tenant version's kid: a value carrying one is an envelope.
    kids: std::collections::HashSet<Vec<u8>>,
}

impl Batch {
    pub fn new(from_kind: Option<&str>) -> PqResult<Self> {
        Ok(Batch {
            pgcrypto: Pgcrypto::find()?,
            from_kind: from_kind.map(ClassicalKind::parse).transpose()?,
            keys: HashMap::new(),
            kids: versions::known_kids(None)?.into_iter().collect(),
        })
    }

    /// Every row of a batch as [`Batch::migrate`] would do it, faster when
    /// nothing fails: first one subtransaction decrypts each row with its
    /// first candidate key (one subtransaction per batch instead of one per
    /// row); if pgcrypto refuses any row, that is rolled back and every
    /// row takes the one-by-one path. Call as owner.
    pub fn migrate_all(&mut self, rows: &[(&[u8], &[u8], &str)]) -> PqResult<Vec<Result<Vec<u8>, String>>> {
        for (_, _, tenant) in rows {
            if !tenant.is_empty() && !self.keys.contains_key(*tenant) {
                self.keys.insert((*tenant).to_owned(), TenantKeys::load(tenant, &self.pgcrypto)?);
            }
        }
        let plan: Vec<Option<&crate::migration::classical::ClassicalKey>> = rows
            .iter()
            .map(|(value, _, tenant)| {
                let kind = readings(value, |kid| self.kids.contains(kid)).into_iter().find_map(ClassicalKind::of)?;
                if self.from_kind.is_some_and(|k| k != kind) {
                    return None;
                }
                self.keys.get(*tenant)?.candidates(kind, value).next()
            })
            .collect();
        let pgcrypto = &self.pgcrypto;
        let optimistic = catalog::attempt(|| {
            rows.iter()
                .zip(&plan)
                .map(|((value, _, _), key)| key.map(|k| pgcrypto.decrypt_raising(k, value)).transpose())
                .collect::<PqResult<Vec<_>>>()
        });
        let plaintexts = match optimistic {
            Ok(Ok(plaintexts)) => plaintexts,
            Ok(Err(e)) => return Err(e),
            Err(_) => vec![None; rows.len()],
        };
        let mut out = Vec::with_capacity(rows.len());
        for ((value, aad, tenant), plaintext) in rows.iter().zip(plaintexts) {
            out.push(match plaintext {
                Some(p) => crate::migration::classical::encrypt_pq(tenant, &p, aad)
                    .map_err(|_| "the tenant has no active version that may encrypt".to_owned()),
                None => self.migrate(value, aad, tenant)?,
            });
        }
        Ok(out)
    }

    /// `value` (a classical value of `tenant`) as a keyed envelope under the
    /// tenant's active version, or why not (never with the value). Call as
    /// owner.
    pub fn migrate(&mut self, value: &[u8], aad: &[u8], tenant: &str) -> PqResult<Result<Vec<u8>, String>> {
        if tenant.is_empty() {
            return Ok(Err("the row names no tenant".into()));
        }
        let classes = readings(value, |kid| self.kids.contains(kid));
        let mut reason: Option<String> = None;
        for class in &classes {
            let Some(kind) = ClassicalKind::of(*class) else {
                reason.get_or_insert_with(|| "a post-quantum envelope under a key of another tenant, or an unknown key".into());
                continue;
            };
            if self.from_kind.is_some_and(|k| k != kind) {
                continue;
            }
            if !self.keys.contains_key(tenant) {
                self.keys.insert(tenant.to_owned(), TenantKeys::load(tenant, &self.pgcrypto)?);
            }
            let Some(keys) = self.keys.get(tenant) else { continue };
            match keys.decrypt(&self.pgcrypto, kind, value)? {
                Ok(plaintext) => {
                    return Ok(crate::migration::classical::encrypt_pq(tenant, &plaintext, aad)
                        .map_err(|_| "the tenant has no active version that may encrypt".to_owned()));
                }
                Err(r) => {
                    reason.get_or_insert_with(|| r.to_owned());
                }
            }
        }
        Ok(Err(reason.unwrap_or_else(|| match (classes.is_empty(), self.from_kind) {
            (true, _) => "neither an envelope, an OpenPGP message nor raw cipher output".into(),
            (false, Some(k)) => format!("not a {} value", k.name()),
            (false, None) => "not a classical value".into(),
        })))
    }
}

impl batch::MigrateValue for Batch {
    /// With the value's first candidate key only: a refusal (pgcrypto
    /// raises) or anything else unusual ends the in-place UPDATE, and the
    /// careful way ([`Batch::migrate_all`]) does the range.
    fn migrate(&mut self, value: &[u8], aad: &[u8], tenant: &str) -> PqResult<Vec<u8>> {
        let not_here = |why: &str| PqError::Sql { code: b"55000", message: format!("not migrated in place: {why}"), hint: None };
        if tenant.is_empty() {
            return Err(not_here("the row names no tenant"));
        }
        if !self.keys.contains_key(tenant) {
            self.keys.insert(tenant.to_owned(), TenantKeys::load(tenant, &self.pgcrypto)?);
        }
        let kind = readings(value, |kid| self.kids.contains(kid))
            .into_iter()
            .find_map(ClassicalKind::of)
            .ok_or_else(|| not_here("not a classical value"))?;
        if self.from_kind.is_some_and(|k| k != kind) {
            return Err(not_here("another classical kind"));
        }
        let key = self.keys.get(tenant).and_then(|k| k.candidates(kind, value).next()).ok_or_else(|| not_here("no key"))?;
        let plaintext = self.pgcrypto.decrypt_raising(key, value)?;
        crate::migration::classical::encrypt_pq(tenant, &plaintext, aad)
    }
}

/// What migration jobs do, for `lifecycle::batch` (registered from `_PG_init`).
pub static MIGRATOR: batch::Migrator = batch::Migrator {
    migrate: |from_kind, rows| Batch::new(from_kind)?.migrate_all(rows),
    finished: state::job_finished,
    one_by_one: |from_kind| Ok(Box::new(Batch::new(from_kind)?)),
};

/// The arguments of pq.migrate_column and pq.migrate_column_now.
struct Request<'a> {
    relid: pg_sys::Oid,
    column: &'a str,
    tenant: Option<&'a str>,
    tenant_column: Option<&'a str>,
    from_kind: Option<&'a str>,
    aad_column: Option<&'a str>,
    batch_size: i32,
}

/// How many classical values a sample takes before a job is queued.
const SAMPLE: i64 = 20;

/// Checks a request, tracks the column, samples it and queues the job;
/// returns the job id. Nothing is queued if any check fails.
fn prepare(r: &Request<'_>, actor: &str) -> PqResult<i64> {
    crate::platform::roles::require_admin("migrate columns")?;
    if r.tenant.is_some() == r.tenant_column.is_some() {
        return Err(PqError::InvalidParameter("give exactly one of tenant and tenant_column".into()));
    }
    if let Some(t) = r.tenant {
        access::require_visible(t)?;
    }
    jobs::check_batch(r.batch_size)?;
    let from_kind = r.from_kind.filter(|k| *k != "any").map(ClassicalKind::parse).transpose()?;
    if !catalog::pq_table_exists(c"tenant_migrations") {
        return Err(PqError::Sql {
            code: b"55000",
            message: "migrations need apg_pqcrypto 0.4.0".into(),
            hint: Some("run ALTER EXTENSION apg_pqcrypto UPDATE".into()),
        });
    }
    Pgcrypto::find()?;
    // An already tracked column keeps its tenant and AAD: re-encryption
    // jobs and decryption depend on them, so a request that differs is an
    // error, not a silent change.
    let tracked = catalog::as_owner(|| {
        catalog::row(
            "SELECT tenant, tenant_column::text, aad_column::text FROM pq.tracked_columns WHERE relid = $1 AND column_name = $2",
            &[r.relid.into(), r.column.into()],
            |row| Ok((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<String>(3)?)),
        )
    })?;
    if let Some(stored) = tracked {
        let asked = (r.tenant.map(str::to_owned), r.tenant_column.map(str::to_owned), r.aad_column.map(str::to_owned));
        if asked != stored {
            let arg = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!("{name} => '{}'", echo(v)));
            let (tenant, tenant_column, aad_column) = &stored;
            let with = [arg("tenant", tenant), arg("tenant_column", tenant_column), arg("aad_column", aad_column)];
            return Err(PqError::InvalidParameter(format!(
                "column \"{}\" is tracked with {}: migrate it with the same",
                echo(r.column),
                with.into_iter().flatten().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let caller = catalog::caller();
    let tracked_id = tracking::track(r.relid, r.column, r.tenant, r.tenant_column, r.aad_column, None)?;
    catalog::as_owner(|| {
        let t = tracking::load(tracked_id)?;
        sample(&t, from_kind.map(ClassicalKind::name))?;
        let started: Vec<String> = match r.tenant {
            Some(t) => vec![t.to_owned()],
            None => catalog::rows("SELECT DISTINCT tenant FROM pq.classical_keys ORDER BY 1", &[], |r| {
                Ok(r.get::<String>(1)?.unwrap_or_default())
            })?,
        };
        for tenant in &started {
            state::mark_started(tenant, actor)?;
        }
        let work = Work::Migrate { from_kind: from_kind.map(|k| k.name().to_owned()) };
        jobs::queue(tracked_id, None, r.batch_size, actor, Some(caller), &work)
    })
}

/// Decrypts (never writes) up to SAMPLE values of the column that still
/// need migrating: if there are some and none decrypts, the keys or
/// from_kind are wrong, and nothing is queued (PQ001).
fn sample(t: &tracking::Tracked, from_kind: Option<&str>) -> PqResult<()> {
    let tenant_expr = match &t.tenant_column {
        Some(tc) => format!("t.{}::text", quote_ident(tc)),
        None => "$1::text".to_owned(),
    };
    let query = format!(
        "SELECT t.{col}, {aad}, {tenant_expr} FROM {table} AS t
          WHERE t.{col} IS NOT NULL AND NOT (substr(t.{col}, 3, 16) = ANY($2::bytea[]))
          LIMIT {SAMPLE}",
        col = quote_ident(&t.column),
        aad = t.aad_expr,
        table = t.table,
    );
    let kids = versions::known_kids(t.tenant.as_deref())?;
    let rows: Vec<(Vec<u8>, Vec<u8>, String)> = catalog::connect(|client| {
        let mut out = Vec::new();
        for row in client.select(&query, None, &[t.tenant.as_deref().into(), kids.into()])? {
            out.push((
                row.get::<Vec<u8>>(1)?.unwrap_or_default(),
                row.get::<Vec<u8>>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new(from_kind)?;
    let mut first_reason = None;
    for (value, aad, tenant) in &rows {
        match batch.migrate(value, aad, tenant)? {
            Ok(_) => return Ok(()),
            Err(reason) => {
                first_reason.get_or_insert(reason);
            }
        }
    }
    Err(PqError::Sql {
        code: b"PQ001",
        message: format!(
            "none of the {} sampled values of {}.{} decrypts with the registered classical keys ({})",
            rows.len(),
            echo(&t.table),
            echo(&t.column),
            first_reason.unwrap_or_default()
        ),
        hint: Some("register the tenant's pgcrypto key with pq.register_classical_key, or check from_kind".into()),
    })
}

/// Queues the migration job.
fn migrate_column(r: &Request<'_>) -> PqResult<i64> {
    jobs::require_worker("migration jobs")?;
    let actor = events::session_user();
    prepare(r, &actor)
}

/// What pq.migrate_column_now did.
type NowResult = (i64, i64, i64, i64, String);

/// Runs the migration in the caller's transaction, batch by batch, with a
/// NOTICE after each.
fn migrate_column_now(r: &Request<'_>) -> PqResult<NowResult> {
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly("migration"));
    }
    let actor = events::session_user();
    let id = prepare(r, &actor)?;
    let mut idle_passes = 0;
    loop {
        pgrx::check_for_interrupts!();
        let batch = catalog::as_owner(|| crate::lifecycle::local_jobs::run_batch(id, &actor))?;
        let (done, failed, total, state) = catalog::as_owner(|| {
            catalog::row(
                "SELECT rows_done, rows_failed, coalesce(rows_total, 0), state FROM pq.job_queue WHERE id = $1",
                &[id.into()],
                |row| {
                    Ok((
                        row.get::<i64>(1)?.unwrap_or(0),
                        row.get::<i64>(2)?.unwrap_or(0),
                        row.get::<i64>(3)?.unwrap_or(0),
                        row.get::<String>(4)?.unwrap_or_default(),
                    ))
                },
            )
        })?
        .unwrap_or_default();
        crate::migration::progress::report(id, r.relid, done, failed, total);
        match batch {
            batch::Batch::Worked(0) => {
                // A pass ended with rows other sessions hold: try once more,
                // then leave them to the worker.
                idle_passes += 1;
                if idle_passes >= 2 {
                    pgrx::notice!("job {id}: rows held by other sessions are left to the background worker");
                    crate::migration::progress::finish();
                    return Ok((id, done, failed, (total - done - failed).max(0), state));
                }
            }
            batch::Batch::Worked(_) => {
                idle_passes = 0;
                pgrx::notice!("job {id}: {done} of {total} rows migrated, {failed} failed");
            }
            batch::Batch::Completed | batch::Batch::Idle => {
                pgrx::notice!("job {id}: {state}, {done} rows migrated, {failed} failed");
                crate::migration::progress::finish();
                return Ok((id, done, failed, 0, state));
            }
        }
    }
}

/// status, tracked columns, classical values, migrated, failed, pending jobs, started, completed.
type StatusRow = (
    String,
    i32,
    i64,
    i64,
    i64,
    i64,
    Option<pgrx::datum::TimestampWithTimeZone>,
    Option<pgrx::datum::TimestampWithTimeZone>,
);

fn status(tenant: &str) -> PqResult<StatusRow> {
    crate::platform::roles::require_admin("read migration status")?;
    access::require_visible(tenant)?;
    catalog::as_owner(|| {
        let (stored, started_at, completed_at) = catalog::row(
            "SELECT status, started_at, completed_at FROM pq.tenant_migrations WHERE tenant = $1",
            &[tenant.into()],
            |row| {
                Ok((
                    row.get::<String>(1)?,
                    row.get::<pgrx::datum::TimestampWithTimeZone>(2)?,
                    row.get::<pgrx::datum::TimestampWithTimeZone>(3)?,
                ))
            },
        )?
        .unwrap_or((None, None, None));
        let columns = tracking::ids_for_tenant(tenant)?.len() as i32;
        let (remaining, pending) = state::still_classical(tenant)?;
        let (migrated, failed) = catalog::row(
            "SELECT coalesce(sum(j.rows_done), 0)::bigint,
                    (SELECT count(*) FROM pq.job_failures f WHERE f.job_id = ANY(array_agg(j.id)))
               FROM pq.job_queue j JOIN pq.tracked_columns t ON t.id = j.tracked_id
              WHERE j.kind = 'migrate' AND (coalesce(j.tenant, t.tenant) = $1 OR coalesce(j.tenant, t.tenant) IS NULL)",
            &[tenant.into()],
            |row| Ok((row.get::<i64>(1)?.unwrap_or(0), row.get::<i64>(2)?.unwrap_or(0))),
        )?
        .unwrap_or_default();
        let status = stored.unwrap_or_else(|| "not_started".into());
        Ok((status, columns, remaining, migrated, failed, pending, started_at, completed_at))
    })
}

pub fn counts(tenant: Option<&str>) -> PqResult<Vec<(String, String, String, i64)>> {
    crate::platform::roles::require_admin("read migration counts")?;
    if let Some(t) = tenant {
        access::require_visible(t)?;
    }
    catalog::as_owner(|| state::classical_rows(tenant))
}

/// The dual-mode trigger's decision for one written value: None to keep
/// it, Some(envelope) to store instead.
fn convert_for_write(tenant: &str, value: &[u8], aad: &[u8]) -> PqResult<Option<Vec<u8>>> {
    if tenant.is_empty() || !state::started(tenant)? {
        return Ok(None);
    }
    let classes = classify(value);
    if matches!(classes.first(), Some(Class::PqKeyed | Class::PqSealed)) {
        let kid = value.get(2..18).unwrap_or_default().to_vec();
        let ours = catalog::as_owner(|| versions::known_kids(Some(tenant)))?.contains(&kid);
        if ours {
            return Ok(None);
        }
    }
    access::require_usable(tenant)?;
    let result = catalog::as_owner(|| Batch::new(None)?.migrate(value, aad, tenant))?;
    match result {
        Ok(envelope) => Ok(Some(envelope)),
        Err(reason) => Err(failed(&format!(
            "a value written during the migration of tenant \"{}\" is neither its envelope nor a classical value its keys decrypt: {reason}",
            echo(tenant)
        ))),
    }
}

/// The tracked column's tenant, tenant column and AAD column, as the
/// trigger of `relid` finds it (`tracking::for_trigger`). Call as owner.
fn tracked_config(relid: pg_sys::Oid, column: &str) -> PqResult<(Option<String>, Option<String>, Option<String>)> {
    tracking::for_trigger(relid, column, false)?.map(|(_, tenant, tc, ac)| (tenant, tc, ac)).ok_or_else(|| PqError::Sql {
        code: b"55000",
        message: format!("column \"{}\" is not tracked", echo(column)),
        hint: Some("pq.migrate_column or pq.track_column records its tenant first".into()),
    })
}

fn trigger_row<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> PqResult<Option<PgHeapTuple<'a, pgrx::AllocatedByRust>>> {
    let bad = |m: &str| PqError::InvalidParameter(m.into());
    let column = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.into_iter().next())
        .ok_or_else(|| bad("pq.migration_trigger takes the column's name as its argument"))?;
    let relid = trigger.relid().map_err(|_| bad("pq.migration_trigger is a row trigger"))?;
    let Some(new) = trigger.new() else {
        return Err(bad("pq.migration_trigger is a BEFORE INSERT OR UPDATE row trigger"));
    };
    let mut tuple = new.into_owned();
    let value: Option<Vec<u8>> = tuple
        .get_by_name::<&[u8]>(&column)
        .map_err(|_| bad("pq.migration_trigger's column is a bytea column of the table"))?
        .map(<[u8]>::to_vec);
    let Some(value) = value else { return Ok(Some(tuple)) };
    let (tenant, tenant_column, aad_column) = catalog::as_owner(|| tracked_config(relid, &column))?;
    let tenant = match (tenant, tenant_column) {
        (Some(t), _) => t,
        (None, Some(tc)) => tuple.get_by_name::<String>(&tc).ok().flatten().unwrap_or_default(),
        (None, None) => String::new(),
    };
    let aad = match aad_column {
        None => Vec::new(),
        Some(ac) => match tuple.get_by_name::<&[u8]>(&ac) {
            Ok(v) => v.map(<[u8]>::to_vec).unwrap_or_default(),
            Err(_) => tuple.get_by_name::<String>(&ac).ok().flatten().unwrap_or_default().into_bytes(),
        },
    };
    if let Some(envelope) = convert_for_write(&tenant, &value, &aad)? {
        tuple.set_by_name(&column, envelope).map_err(|_| bad("the migrated value could not be stored"))?;
    }
    Ok(Some(tuple))
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::{args::RegClass, errors::required};
    use crate::platform::errors::OrRaise;

    /// Queues the migration of a column of pgcrypto ciphertexts to keyed
    /// envelopes (the background worker runs it, batch by batch). Returns
    /// the job id.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn migrate_column(
        table: Option<RegClass>,
        column: Option<&str>,
        tenant: default!(Option<&str>, "NULL"),
        from_kind: default!(Option<&str>, "NULL"),
        aad_column: default!(Option<&str>, "NULL"),
        batch_size: default!(Option<i32>, 1000),
        tenant_column: default!(Option<&str>, "NULL"),
    ) -> i64 {
        let (Some(table), Some(column)) = (table, column) else {
            PqError::InvalidParameter("table and column are required".into()).raise()
        };
        let relid = table.existing().or_raise();
        let batch_size = required(batch_size, "batch_size").or_raise();
        let request = Request { relid, column, tenant, tenant_column, from_kind, aad_column, batch_size };
        super::migrate_column(&request).or_raise()
    }

    /// The same migration in the caller's transaction, with a NOTICE per
    /// batch; rows other sessions hold are left to the worker.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn migrate_column_now(
        table: Option<RegClass>,
        column: Option<&str>,
        tenant: default!(Option<&str>, "NULL"),
        from_kind: default!(Option<&str>, "NULL"),
        aad_column: default!(Option<&str>, "NULL"),
        batch_size: default!(Option<i32>, 1000),
        tenant_column: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(job, i64),
            name!(rows_migrated, i64),
            name!(rows_failed, i64),
            name!(rows_left, i64),
            name!(state, String),
        ),
    > {
        let (Some(table), Some(column)) = (table, column) else {
            PqError::InvalidParameter("table and column are required".into()).raise()
        };
        let relid = table.existing().or_raise();
        let batch_size = required(batch_size, "batch_size").or_raise();
        let request = Request { relid, column, tenant, tenant_column, from_kind, aad_column, batch_size };
        TableIterator::once(super::migrate_column_now(&request).or_raise())
    }

    /// A tenant's migration: not_started, in_progress or completed, with
    /// its counts and times.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn migration_status(
        tenant: &str,
    ) -> TableIterator<
        'static,
        (
            name!(status, String),
            name!(tracked_columns, i32),
            name!(classical_values, i64),
            name!(rows_migrated, i64),
            name!(rows_failed, i64),
            name!(jobs_pending, i64),
            name!(started_at, Option<pgrx::datum::TimestampWithTimeZone>),
            name!(completed_at, Option<pgrx::datum::TimestampWithTimeZone>),
        ),
    > {
        TableIterator::once(status(tenant).or_raise())
    }

    /// Values per tenant and tracked column that are not yet envelopes
    /// under the tenant's keys (classical ciphertexts): what a migration
    /// still has to do, and the compliance report's count. Scans every
    /// tracked column of the tenant (all tenants when NULL).
    #[pg_extern(stable, parallel_restricted)]
    pub fn classical_counts(
        tenant: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (name!(tenant, String), name!(table_name, String), name!(column_name, String), name!(classical_values, i64)),
    > {
        TableIterator::new(counts(tenant).or_raise())
    }

    /// Dual-mode writes during a migration: `CREATE TRIGGER … BEFORE INSERT
    /// OR UPDATE OF col ON t FOR EACH ROW EXECUTE FUNCTION
    /// pq.migration_trigger('col')`. Once the tenant's migration has
    /// started, a classical value written to the (tracked) column is
    /// stored as a keyed envelope; a value it cannot read is refused (PQ001).
    #[pg_trigger]
    pub fn migration_trigger<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByRust>>, pgrx::PgTriggerError> {
        Ok(trigger_row(trigger).or_raise())
    }
}
