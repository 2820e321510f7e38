//! Where a tenant's migration off pgcrypto stands: not_started until a
//! column of it is queued (no row in `pq.tenant_migrations`), then
//! in_progress, and completed when its last migration job finishes with no
//! value left that is not an envelope under one of its versions. Read by
//! the classical functions (dual-mode writes) and the column migrations.
use crate::{journal::events, lifecycle::tracking::{self, quote_ident}, platform::{catalog, errors::PqResult}};
use serde_json::json;

/// True once `tenant`'s migration has started (dual-mode writes are then
/// post-quantum).
pub fn started(tenant: &str) -> PqResult<bool> {
    if !catalog::pq_table_exists(c"tenant_migrations") {
        return Ok(false);
    }
    catalog::as_owner(|| {
        Ok(catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pq.tenant_migrations WHERE tenant = $1)", &[tenant.into()])?
            .unwrap_or(false))
    })
}

/// Values of each tracked column that are not envelopes under their
/// tenant's versions: (tenant, table, column, count), for `tenant` alone
/// when given. Call as owner.
pub fn classical_rows(tenant: Option<&str>) -> PqResult<Vec<(String, String, String, i64)>> {
    // The tracked columns that may hold the tenant's values (every one for
    // None), skipping tables dropped since they were tracked.
    let ids = match tenant {
        Some(t) => tracking::ids_for_tenant(t)?,
        None => tracking::ids_existing()?,
    };
    let mut out = Vec::new();
    for id in ids {
        let t = tracking::load(id)?;
        let tenant_expr = match (&t.tenant, &t.tenant_column) {
            (Some(_), _) => "$2::text".to_owned(),
            (None, Some(tc)) => format!("t.{}::text", quote_ident(tc)),
            (None, None) => continue,
        };
        let query = format!(
            "SELECT {tenant_expr}, count(*) FROM {table} AS t
              WHERE t.{col} IS NOT NULL AND ($1::text IS NULL OR {tenant_expr} = $1)
                AND NOT EXISTS (SELECT 1 FROM pq.tenant_key_versions v
                                 WHERE v.kid = substr(t.{col}, 3, 16) AND v.tenant = {tenant_expr})
              GROUP BY 1 ORDER BY 1",
            table = t.table,
            col = quote_ident(&t.column),
        );
        catalog::connect(|client| -> PqResult<()> {
            for row in client.select(&query, None, &[tenant.into(), t.tenant.as_deref().into()])? {
                out.push((
                    row.get::<String>(1)?.unwrap_or_default(),
                    t.table.clone(),
                    t.column.clone(),
                    row.get::<i64>(2)?.unwrap_or(0),
                ));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// (values of `tenant` not yet post-quantum in its tracked columns, its
/// unfinished migration jobs). Call as owner.
pub fn still_classical(tenant: &str) -> PqResult<(i64, i64)> {
    let remaining = classical_rows(Some(tenant))?.iter().map(|r| r.3).sum();
    let jobs = catalog::one::<i64>(
        "SELECT count(*) FROM pq.job_queue j JOIN pq.tracked_columns t ON t.id = j.tracked_id
          WHERE j.kind = 'migrate' AND j.state IN ('queued', 'running', 'paused')
            AND (coalesce(j.tenant, t.tenant) = $1 OR coalesce(j.tenant, t.tenant) IS NULL)",
        &[tenant.into()],
    )?
    .unwrap_or(0);
    Ok((remaining, jobs))
}

/// Records that `tenant`'s migration is under way (again). Call as owner.
pub fn mark_started(tenant: &str, actor: &str) -> PqResult<()> {
    let new = catalog::write_one::<bool>(
        "INSERT INTO pq.tenant_migrations AS m (tenant) VALUES ($1)
         ON CONFLICT (tenant) DO UPDATE SET status = 'in_progress', completed_at = NULL
          WHERE m.status = 'completed'
         RETURNING xmax = 0",
        &[tenant.into()],
    )?;
    if new == Some(true) {
        events::record("migration_started", Some(tenant), None, actor, None, json!({}))?;
    }
    Ok(())
}

/// After a migration job finished: each tenant it covered (every tenant in
/// progress, for a column with a tenant column) is completed once nothing
/// of it is left classical. Call as owner.
pub fn job_finished(tenant: Option<&str>, actor: &str) -> PqResult<()> {
    let tenants: Vec<String> = match tenant {
        Some(t) => vec![t.to_owned()],
        None => catalog::rows("SELECT tenant FROM pq.tenant_migrations WHERE status = 'in_progress'", &[], |r| {
            Ok(r.get::<String>(1)?.unwrap_or_default())
        })?,
    };
    for tenant in tenants {
        if still_classical(&tenant)? == (0, 0) {
            let done = catalog::write_one::<bool>(
                "UPDATE pq.tenant_migrations SET status = 'completed', completed_at = now()
                  WHERE tenant = $1 AND status = 'in_progress' RETURNING true",
                &[tenant.as_str().into()],
            )?;
            if done == Some(true) {
                events::record("migration_completed", Some(&tenant), None, actor, None, json!({}))?;
            }
        }
    }
    Ok(())
}
