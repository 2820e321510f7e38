//! Tracked columns: where a tenant's ciphertexts live. `pq.track_column`,
//! `pq.untrack_column`, and the counts behind the `pq.key_usage` view.
//! Jobs (`lifecycle::batch`) and the usage checks of disable and destroy
//! (`lifecycle::rotation`) read them.
use crate::{
    data::blind,
    journal::events,
    keys::access,
    lifecycle::blind_column::{self, BlindColumn, RowTrigger},
    platform::{catalog, clock, cluster, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use serde_json::json;

/// Refuses (55000) to track a Citus distributed table until
/// `pq.citus_setup()` has made `pq.job_shards` a reference table: the
/// nodes that run its jobs read their shards' work there.
fn require_shard_jobs() -> PqResult<()> {
    if cluster::is_worker_node()? {
        return Err(PqError::Sql {
            code: b"55000",
            message: "track a Citus table on the coordinator, whose worker runs its jobs".into(),
            hint: None,
        });
    }
    let relid = catalog::pq_relid(c"job_shards");
    if relid != pg_sys::Oid::INVALID && cluster::is_distributed(relid)? {
        return Ok(());
    }
    Err(PqError::Sql {
        code: b"55000",
        message: "the jobs of a Citus table need pq.job_shards on every node".into(),
        hint: Some("run SELECT pq.citus_setup() (again, after ALTER EXTENSION UPDATE)".into()),
    })
}

/// A tracked column, resolved against the catalog as it is now.
pub struct Tracked {
    pub relid: pg_sys::Oid,
    /// The table's owner: re-encryption touches the table with its rights.
    pub owner: pg_sys::Oid,
    /// The table as SQL text, schema-qualified and quoted.
    pub table: String,
    pub column: String,
    pub tenant: Option<String>,
    pub tenant_column: Option<String>,
    pub aad_column: Option<String>,
    /// SQL expression giving the AAD bytes of a row (`''` without an AAD column).
    pub aad_expr: String,
    /// The key rows are claimed by, in index order: (column, its type
    /// schema-qualified, for casting a cursor given as text). One column,
    /// or on a Citus distributed table (and its shards) the columns of a
    /// unique key that includes the distribution column.
    pub keys: Vec<(String, String)>,
    /// The distribution column, on a Citus distributed table or a shard of
    /// one: its jobs run shard by shard (`lifecycle::shard_jobs`).
    pub distribution_column: Option<String>,
    /// The column that keeps each row's blind index term, if any.
    pub blind: Option<BlindColumn>,
}

/// `ident` quoted as a SQL identifier.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}


/// The base type (through domains) of a column of `relid`, if it exists.
fn column_type(relid: pg_sys::Oid, column: &str) -> PqResult<Option<pg_sys::Oid>> {
    let typid = catalog::one::<pg_sys::Oid>(
        "SELECT a.atttypid FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        &[relid.into(), column.into()],
    )?;
    // SAFETY: a syscache walk of an existing type's domain chain.
    Ok(typid.map(|t| unsafe { pg_sys::getBaseType(t) }))
}

fn undefined_column(column: &str) -> PqError {
    PqError::Sql { code: b"42703", message: format!("column \"{}\" does not exist", echo(column)), hint: None }
}

fn wrong_type(column: &str, want: &str) -> PqError {
    PqError::Sql { code: b"42804", message: format!("column \"{}\" is not {want}", echo(column)), hint: None }
}

/// The key re-encryption claims rows by: the primary key, or a unique,
/// non-partial index, on one NOT NULL column; or, with `including` (the
/// distribution column of a Citus table, where every unique key includes
/// it), on NOT NULL columns one of which is `including`, the fewest first.
/// Each column with its type; in index order.
fn key_columns(relid: pg_sys::Oid, including: Option<&str>) -> PqResult<Vec<(String, String)>> {
    let found = catalog::row(
        "SELECT x.names, x.types FROM pg_catalog.pg_index i
           CROSS JOIN LATERAL (
             SELECT array_agg(a.attname::text ORDER BY k.n) AS names,
                    array_agg(pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(ty.typname) ORDER BY k.n) AS types,
                    bool_and(a.attnotnull) AS not_null, bool_or(a.attname = $2) AS includes
               FROM unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
               JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace
              WHERE k.n <= i.indnkeyatts) x
          WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
            AND x.not_null AND CASE WHEN $2 IS NULL THEN i.indnkeyatts = 1 ELSE x.includes END
          ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid
          LIMIT 1",
        &[relid.into(), including.into()],
        |row| Ok((row.get::<Vec<String>>(1)?.unwrap_or_default(), row.get::<Vec<String>>(2)?.unwrap_or_default())),
    )?;
    match (found, including) {
        (Some((names, types)), _) if !names.is_empty() => Ok(names.into_iter().zip(types).collect()),
        (_, None) => Err(PqError::Sql {
            code: b"42P16",
            message: "the table has no single-column primary key or unique NOT NULL column to claim rows by".into(),
            hint: Some("add a primary key, or a unique index on one NOT NULL column".into()),
        }),
        (_, Some(column)) => Err(PqError::Sql {
            code: b"42P16",
            message: format!(
                "the table has no primary key or unique index on NOT NULL columns that includes its distribution column \"{}\"",
                echo(column)
            ),
            hint: Some("add a primary key that includes the distribution column".into()),
        }),
    }
}

/// Where a tracked column's table is.
#[derive(Clone, Copy)]
enum Placement<'a> {
    /// A table of this server: a plain or partitioned table, or a Citus
    /// distributed table on the coordinator.
    Here,
    /// A shard of a Citus distributed table on the node that holds it,
    /// distributed by this column.
    Shard(&'a str),
}

/// Resolves and checks a tracked column's definition. Call as owner.
fn resolve(
    relid: pg_sys::Oid,
    column: &str,
    tenant: Option<String>,
    tenant_column: Option<String>,
    aad_column: Option<String>,
    blind: Option<BlindColumn>,
    placement: Placement<'_>,
) -> PqResult<Tracked> {
    let (table, kind, owner) = catalog::row(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), c.relkind::text, c.relowner
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[relid.into()],
        |row| {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::Oid::INVALID),
            ))
        },
    )?
    .ok_or_else(|| PqError::Sql { code: b"42P01", message: "the tracked table no longer exists".into(), hint: None })?;
    if kind != "r" && kind != "p" {
        return Err(PqError::Sql { code: b"42809", message: format!("\"{}\" is not a table", echo(&table)), hint: None });
    }
    let base = column_type(relid, column)?.ok_or_else(|| undefined_column(column))?;
    if base != pg_sys::BYTEAOID {
        return Err(wrong_type(column, "bytea or pq_envelope"));
    }
    if let Some(tc) = &tenant_column {
        let base = column_type(relid, tc)?.ok_or_else(|| undefined_column(tc))?;
        if ![pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::NAMEOID, pg_sys::BPCHAROID].contains(&base) {
            return Err(wrong_type(tc, "text"));
        }
    }
    let aad_expr = match &aad_column {
        None => "''::bytea".to_owned(),
        Some(ac) => {
            let base = column_type(relid, ac)?.ok_or_else(|| undefined_column(ac))?;
            if base == pg_sys::BYTEAOID {
                format!("coalesce({}, ''::bytea)", quote_ident(ac))
            } else if [pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::NAMEOID, pg_sys::BPCHAROID].contains(&base) {
                format!("convert_to(coalesce({}::text, ''), 'UTF8')", quote_ident(ac))
            } else {
                return Err(wrong_type(ac, "text or bytea"));
            }
        }
    };
    if let Some(b) = &blind {
        b.check()?;
        let base = column_type(relid, &b.column)?.ok_or_else(|| undefined_column(&b.column))?;
        if base != pg_sys::BYTEAOID {
            return Err(wrong_type(&b.column, "bytea"));
        }
        if [Some(column), tenant_column.as_deref(), aad_column.as_deref()].contains(&Some(b.column.as_str())) {
            return Err(PqError::InvalidParameter(
                "the blind index column must be a column of its own, not the value, tenant or AAD column".into(),
            ));
        }
    }
    // A Citus distributed table's jobs run shard by shard on the nodes
    // (`shard_jobs`): claims and write-backs go to each shard's own
    // relation. Citus refuses them on its other tables (a reference table's
    // copies have row addresses of their own).
    let distribution_column = match placement {
        Placement::Shard(d) => Some(d.to_owned()),
        Placement::Here => match cluster::distribution_column(relid)? {
            Some(d) => Some(d),
            None if cluster::is_distributed(relid)? => {
                return Err(PqError::Sql {
                    code: b"0A000",
                    message: "only hash-distributed Citus tables can be tracked, not reference or Citus-managed local tables".into(),
                    hint: Some("re-encrypt it with the UPDATE rule of docs/SCALE-OUT.md".into()),
                })
            }
            None => None,
        },
    };
    if let (Some(_), Placement::Here) = (&distribution_column, placement) {
        cluster::require_single_placements(relid)?;
    }
    if distribution_column.is_some() && blind.is_some() {
        return Err(PqError::Sql {
            code: b"0A000",
            message: "a blind index column is not supported on a Citus table".into(),
            hint: Some("compute the terms with pq_blind_index in the INSERT (docs/SEARCH.md)".into()),
        });
    }
    let keys = key_columns(relid, distribution_column.as_deref())?;
    Ok(Tracked {
        relid,
        owner,
        table,
        column: column.to_owned(),
        tenant,
        tenant_column,
        aad_column,
        aad_expr,
        keys,
        distribution_column,
        blind,
    })
}

impl Tracked {
    /// The key's first column (`pq.tracked_columns.key_column`).
    pub fn key_column(&self) -> &str {
        self.keys.first().map(|k| k.0.as_str()).unwrap_or_default()
    }

    /// The key's columns when there are several (`pq.tracked_columns.key_columns`).
    pub fn key_columns(&self) -> Option<Vec<String>> {
        (self.keys.len() > 1).then(|| self.keys.iter().map(|k| k.0.clone()).collect())
    }
}

/// The tracked column of a job shard: `column` of the shard relation
/// `relid` on this node, distributed by `distribution_column`. Call as owner.
pub fn for_shard(
    relid: pg_sys::Oid,
    column: &str,
    tenant: Option<String>,
    tenant_column: Option<String>,
    aad_column: Option<String>,
    distribution_column: &str,
) -> PqResult<Tracked> {
    resolve(relid, column, tenant, tenant_column, aad_column, None, Placement::Shard(distribution_column))
}

/// Refuses (42501) unless `role` may read every column a job reads (key,
/// value, tenant and AAD columns) and update the tracked one: a job
/// rewrites the table, so tracking a column and queueing its
/// re-encryption take the rights an UPDATE of it would.
pub fn require_rights(t: &Tracked, role: pg_sys::Oid) -> PqResult<()> {
    let mut reads: Vec<String> = t.keys.iter().map(|k| k.0.clone()).collect();
    reads.push(t.column.clone());
    reads.extend(t.tenant_column.clone());
    reads.extend(t.aad_column.clone());
    let mut writes = vec![t.column.clone()];
    writes.extend(t.blind.as_ref().map(|b| b.column.clone()));
    let allowed = catalog::one::<bool>(
        "SELECT (SELECT bool_and(pg_catalog.has_column_privilege($1, $2, c, 'SELECT')) FROM pg_catalog.unnest($3::text[]) AS c)
                AND (SELECT bool_and(pg_catalog.has_column_privilege($1, $2, c, 'UPDATE')) FROM pg_catalog.unnest($4::text[]) AS c)",
        &[role.into(), t.relid.into(), reads.into(), writes.into()],
    )?
    .unwrap_or(false);
    if allowed {
        return Ok(());
    }
    Err(PqError::PermissionDenied(format!(
        "re-encrypting {}.{} needs SELECT on its key, value, tenant and AAD columns and UPDATE on the value column{}",
        echo(&t.table),
        echo(&t.column),
        if t.blind.is_some() { " and on its blind index column" } else { "" }
    )))
}

/// The tracked column with this id, resolved. Call as owner.
pub fn load(id: i32) -> PqResult<Tracked> {
    let blind_columns = if blind_column::has_blind_indexes() {
        "blind_index_column::text, blind_index_context, blind_index_bits, blind_index_normalization"
    } else {
        "NULL::text, NULL::text, NULL::integer, NULL::text"
    };
    let row = catalog::row(
        &format!(
            "SELECT relid::oid, column_name::text, tenant, tenant_column::text, aad_column::text, {blind_columns}
               FROM pq.tracked_columns WHERE id = $1"
        ),
        &[id.into()],
        |row| {
            let blind = match row.get::<String>(6)? {
                Some(column) => Some(BlindColumn {
                    column,
                    context: row.get::<String>(7)?.unwrap_or_default(),
                    bits: row.get::<i32>(8)?.unwrap_or_default(),
                    normalization: row.get::<String>(9)?.unwrap_or_default(),
                }),
                None => None,
            };
            Ok((
                row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?,
                row.get::<String>(4)?,
                row.get::<String>(5)?,
                blind,
            ))
        },
    )?
    .ok_or_else(|| PqError::InvalidParameter("no such tracked column".into()))?;
    let (relid, column, tenant, tenant_column, aad_column, blind) = row;
    resolve(relid, &column, tenant, tenant_column, aad_column, blind, Placement::Here)
}

/// A tracked column as a row trigger finds it: id, tenant, tenant column
/// and AAD column.
pub type ForTrigger = (i32, Option<String>, Option<String>, Option<String>);

/// The tracked column `column` of `relid`, or, for a partition (whose row
/// trigger is a clone of its parent's), of the nearest partitioned table
/// above it that tracks the column; with `blind_only`, only one with a
/// blind index column. Call as owner.
pub fn for_trigger(relid: pg_sys::Oid, column: &str, blind_only: bool) -> PqResult<Option<ForTrigger>> {
    let blind = if blind_only { " AND c.blind_index_column IS NOT NULL" } else { "" };
    catalog::row(
        &format!(
            "SELECT c.id, c.tenant, c.tenant_column::text, c.aad_column::text FROM pq.tracked_columns c
               LEFT JOIN pg_catalog.pg_partition_ancestors($1::pg_catalog.regclass) WITH ORDINALITY AS a(relid, depth)
                      ON a.relid OPERATOR(pg_catalog.=) c.relid
              WHERE c.column_name = $2 AND (c.relid = $1 OR a.relid IS NOT NULL){blind}
              ORDER BY coalesce(a.depth, 0) LIMIT 1"
        ),
        &[relid.into(), column.into()],
        |row| Ok((row.get::<i32>(1)?.unwrap_or_default(), row.get::<String>(2)?, row.get::<String>(3)?, row.get::<String>(4)?)),
    )
}

/// The ids of the tracked columns of `relid` / `column`, or of a tenant.
pub fn ids_for_column(relid: pg_sys::Oid, column: &str) -> PqResult<Option<i32>> {
    catalog::one::<i32>(
        "SELECT id FROM pq.tracked_columns WHERE relid = $1 AND column_name = $2",
        &[relid.into(), column.into()],
    )
}

/// Tracked columns whose table still exists (a dropped table holds no
/// ciphertexts; its row stays until pq.untrack_column).
const TABLE_EXISTS: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = relid)";

/// Every tracked column that may hold `tenant`'s ciphertexts: those fixed
/// to it and those with a tenant column, in tables that still exist. Call
/// as owner.
pub fn ids_for_tenant(tenant: &str) -> PqResult<Vec<i32>> {
    catalog::connect(|client| {
        let rows = client.select(
            &format!("SELECT id FROM pq.tracked_columns WHERE (tenant = $1 OR tenant_column IS NOT NULL) AND {TABLE_EXISTS} ORDER BY id"),
            None,
            &[tenant.into()],
        )?;
        let mut ids = Vec::new();
        for row in rows {
            if let Some(id) = row.get::<i32>(1)? {
                ids.push(id);
            }
        }
        Ok(ids)
    })
}

/// Every tracked column whose table still exists. Call as owner.
pub fn ids_existing() -> PqResult<Vec<i32>> {
    catalog::connect(|client| {
        let rows = client.select(&format!("SELECT id FROM pq.tracked_columns WHERE {TABLE_EXISTS} ORDER BY id"), None, &[])?;
        rows.map(|r| r.get::<i32>(1).map(Option::unwrap_or_default)).collect::<Result<Vec<_>, _>>().map_err(PqError::from)
    })
}

/// Ciphertexts of the key version `kid` in every tracked column: (count,
/// columns holding any). Call as owner.
pub fn usage(tenant: &str, kid: &[u8]) -> PqResult<(i64, i64)> {
    usage_of(tenant, &[kid.to_vec()])
}

/// Ciphertexts of any of the key versions `kids` in the tenant's tracked
/// columns: (count, columns holding any). Call as owner.
pub fn usage_of(tenant: &str, kids: &[Vec<u8>]) -> PqResult<(i64, i64)> {
    let mut total = 0;
    let mut columns = 0;
    for id in ids_for_tenant(tenant)? {
        let t = load(id)?;
        let n = catalog::one::<i64>(
            &format!(
                "SELECT count(*) FROM {} WHERE substr({col}, 3, 16) = ANY ($1::bytea[])",
                t.table,
                col = quote_ident(&t.column)
            ),
            &[kids.to_vec().into()],
        )?
        .unwrap_or(0);
        if n > 0 {
            total += n;
            columns += 1;
        }
    }
    Ok((total, columns))
}

pub fn track(
    relid: pg_sys::Oid,
    column: &str,
    tenant: Option<&str>,
    tenant_column: Option<&str>,
    aad_column: Option<&str>,
    blind: Option<BlindColumn>,
) -> PqResult<i32> {
    crate::platform::roles::require_admin("track columns")?;
    if tenant.is_some() == tenant_column.is_some() {
        return Err(PqError::InvalidParameter("give exactly one of tenant and tenant_column".into()));
    }
    if let Some(t) = tenant {
        access::require_visible(t)?;
    }
    let caller = catalog::caller();
    catalog::as_owner(|| {
        let t = resolve(
            relid,
            column,
            tenant.map(str::to_owned),
            tenant_column.map(str::to_owned),
            aad_column.map(str::to_owned),
            blind.clone(),
            Placement::Here,
        )?;
        require_rights(&t, caller)?;
        if t.distribution_column.is_some() {
            require_shard_jobs()?;
        }
        if blind.is_some() {
            if !blind_column::has_blind_indexes() {
                return Err(PqError::Sql {
                    code: b"55000",
                    message: "blind index columns need the extension's 0.9.0 tables".into(),
                    hint: Some("ALTER EXTENSION apg_pqcrypto UPDATE".into()),
                });
            }
            let may_trigger = catalog::one::<bool>(
                "SELECT pg_catalog.has_table_privilege($1, $2, 'TRIGGER')",
                &[caller.into(), relid.into()],
            )?
            .unwrap_or(false);
            if !may_trigger {
                return Err(PqError::PermissionDenied(format!(
                    "keeping a blind index column of {} needs the TRIGGER privilege on it",
                    echo(&t.table)
                )));
            }
        }
        let id = catalog::write_one::<i32>(
            // Time and actor as arguments: Citus takes only immutable
            // expressions in DO UPDATE on a reference table.
            "INSERT INTO pq.tracked_columns (relid, column_name, tenant, tenant_column, aad_column, key_column,
                                            tracked_at, tracked_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (relid, column_name) DO UPDATE
                SET tenant = EXCLUDED.tenant, tenant_column = EXCLUDED.tenant_column,
                    aad_column = EXCLUDED.aad_column, key_column = EXCLUDED.key_column,
                    tracked_at = EXCLUDED.tracked_at, tracked_by = EXCLUDED.tracked_by
             RETURNING id",
            &[
                relid.into(),
                column.into(),
                tenant.into(),
                tenant_column.into(),
                aad_column.into(),
                t.key_column().into(),
                clock::transaction_start()?.into(),
                events::session_user().as_str().into(),
            ],
        )?
        .ok_or_else(|| PqError::internal("tracking a column returned nothing", String::new()))?;
        blind_column::changed();
        if catalog::pq_column_exists(c"tracked_columns", c"key_columns") {
            catalog::write_one::<bool>(
                "UPDATE pq.tracked_columns SET key_columns = $2 WHERE id = $1 RETURNING true",
                &[id.into(), t.key_columns().into()],
            )?;
        }
        if let Some(b) = &blind {
            catalog::write_one::<bool>(
                "UPDATE pq.tracked_columns SET blind_index_column = $2, blind_index_context = $3, blind_index_bits = $4,
                        blind_index_normalization = $5
                  WHERE id = $1 RETURNING true",
                &[id.into(), b.column.as_str().into(), b.context.as_str().into(), b.bits.into(), b.normalization.as_str().into()],
            )?;
            blind_column::drop_trigger(RowTrigger::BlindIndex, relid, id, &t.table)?;
            blind_column::create_trigger(RowTrigger::BlindIndex, id, &t.table, column)?;
        }
        // No row trigger on a Citus table: Citus refuses them, and on a
        // worker's shard the trigger would not find the coordinator's
        // tracking (docs/SCALE-OUT.md, Limits).
        if catalog::has_0_10_objects() && t.distribution_column.is_none() {
            blind_column::drop_trigger(RowTrigger::Enforcement, relid, id, &t.table)?;
            blind_column::create_trigger(RowTrigger::Enforcement, id, &t.table, column)?;
        }
        let mut details = json!({ "table": t.table, "column": column, "tenant_column": tenant_column, "aad_column": aad_column,
                                  "key_column": t.key_column(), "blind_index_column": blind.as_ref().map(|b| &b.column) });
        if let Some(keys) = t.key_columns() {
            details["key_columns"] = json!(keys);
        }
        events::record("column_tracked", tenant, None, &events::session_user(), None, details)?;
        Ok(id)
    })
}

/// A tracked table's name as SQL text (schema-qualified, quoted). Call as owner.
pub fn table_text(relid: pg_sys::Oid) -> PqResult<String> {
    Ok(catalog::one::<String>("SELECT $1::pg_catalog.regclass::text", &[relid.into()])?.unwrap_or_default())
}

/// Removes tracked column `id` whose table or a column it names was
/// dropped (the audit area's sql_drop event trigger); with the table still
/// there, its row triggers go too. Call as owner.
pub fn forget(id: i32, relid: pg_sys::Oid, table_exists: bool) -> PqResult<()> {
    catalog::write_one::<bool>("DELETE FROM pq.tracked_columns WHERE id = $1 RETURNING true", &[id.into()])?;
    blind_column::changed();
    if table_exists {
        let table = table_text(relid)?;
        blind_column::drop_trigger(RowTrigger::BlindIndex, relid, id, &table)?;
        blind_column::drop_trigger(RowTrigger::Enforcement, relid, id, &table)?;
    }
    Ok(())
}

fn untrack(relid: pg_sys::Oid, column: &str) -> PqResult<bool> {
    crate::platform::roles::require_admin("untrack columns")?;
    catalog::as_owner(|| {
        let table = table_text(relid)?;
        let id = ids_for_column(relid, column)?;
        let removed = catalog::write_one::<bool>(
            "WITH d AS (DELETE FROM pq.tracked_columns WHERE relid = $1 AND column_name = $2 RETURNING true)
             SELECT EXISTS (SELECT 1 FROM d)",
            &[relid.into(), column.into()],
        )?
        .unwrap_or(false);
        blind_column::changed();
        if let Some(id) = id.filter(|_| removed) {
            blind_column::drop_trigger(RowTrigger::BlindIndex, relid, id, &table)?;
            blind_column::drop_trigger(RowTrigger::Enforcement, relid, id, &table)?;
        }
        if removed {
            events::record("column_untracked", None, None, &events::session_user(), None, json!({ "table": table, "column": column }))?;
        }
        Ok(removed)
    })
}

/// tenant, version, state, table, column, ciphertexts.
type UsageRow = (Option<String>, Option<i32>, Option<String>, String, String, i64);

fn usage_rows() -> PqResult<Vec<UsageRow>> {
    crate::platform::roles::require_admin("read key usage")?;
    catalog::as_owner(|| {
        let ids = ids_existing()?;
        let mut out = Vec::new();
        for id in ids {
            let t = load(id)?;
            let query = format!(
                "SELECT v.tenant, v.version, v.state, x.n
                   FROM (SELECT substr({col}, 3, 16) AS kid, count(*) AS n FROM {table}
                          WHERE {col} IS NOT NULL GROUP BY 1) x
                   LEFT JOIN pq.tenant_key_versions v ON v.kid = x.kid
                  ORDER BY 1, 2",
                col = quote_ident(&t.column),
                table = t.table
            );
            catalog::connect(|client| -> PqResult<()> {
                for row in client.select(&query, None, &[])? {
                    out.push((
                        row.get::<String>(1)?,
                        row.get::<i32>(2)?,
                        row.get::<String>(3)?,
                        t.table.clone(),
                        t.column.clone(),
                        row.get::<i64>(4)?.unwrap_or(0),
                    ));
                }
                Ok(())
            })?;
        }
        Ok(out)
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::{args::RegClass, errors::required};
    use crate::platform::errors::OrRaise;

    /// Records that `column` of `table` holds ciphertexts of `tenant` (or of
    /// the tenant named in each row's `tenant_column`), with the AAD in
    /// `aad_column`. Returns the tracked column's id.
    ///
    /// With `blind_index_column`, a trigger keeps that bytea column at the
    /// blind index term of each row's value (docs/SEARCH.md) under
    /// `context` (default: the value column's name), `bits` long, after
    /// `normalization`; re-encryption and migration jobs move the terms
    /// with the values.
    #[allow(clippy::too_many_arguments)]
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn track_column(
        table: Option<RegClass>,
        column: Option<&str>,
        tenant: default!(Option<&str>, "NULL"),
        tenant_column: default!(Option<&str>, "NULL"),
        aad_column: default!(Option<&str>, "NULL"),
        blind_index_column: default!(Option<&str>, "NULL"),
        context: default!(Option<&str>, "NULL"),
        bits: default!(Option<i32>, 256),
        normalization: default!(Option<&str>, "'exact'"),
    ) -> i32 {
        let (Some(table), Some(column)) = (table, column) else {
            PqError::InvalidParameter("table and column are required".into()).raise()
        };
        let relid = table.existing().or_raise();
        let bits = required(bits, "bits").or_raise();
        let normalization = required(normalization, "normalization").or_raise();
        let blind = blind_index_column.map(|b| BlindColumn {
            column: b.to_owned(),
            context: context.unwrap_or(column).to_owned(),
            bits,
            normalization: blind::parse_normalization(normalization).map(|n| n.name().to_owned()).unwrap_or_else(|e| e.raise()),
        });
        track(relid, column, tenant, tenant_column, aad_column, blind).or_raise()
    }

    /// Stops tracking a column. True if it was tracked.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn untrack_column(table: RegClass, column: &str) -> bool {
        untrack(table.existing().or_raise(), column).or_raise()
    }

    /// Ciphertexts per tenant, key version and tracked column (the rows of
    /// the `pq.key_usage` view). Scans every tracked column.
    #[pg_extern(stable, parallel_restricted)]
    pub fn key_usage_counts() -> TableIterator<
        'static,
        (
            name!(tenant, Option<String>),
            name!(version, Option<i32>),
            name!(state, Option<String>),
            name!(table_name, String),
            name!(column_name, String),
            name!(ciphertexts, i64),
        ),
    > {
        TableIterator::new(usage_rows().or_raise())
    }
}
