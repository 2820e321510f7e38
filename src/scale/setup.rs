//! `pq.citus_setup()`: run once on a Citus coordinator, by a superuser,
//! after `CREATE EXTENSION apg_pqcrypto` (which Citus replays on every
//! node). It is a function rather than automatic at CREATE EXTENSION
//! because it needs what an extension script cannot count on: the
//! coordinator in Citus's metadata, the workers added, and statements that
//! Citus runs on the workers outside the script's transaction.
//!
//! What it does, in one transaction on the coordinator (the worker-side
//! foreign-key drops excepted, see below):
//!
//! 1. The foreign keys among [`REFERENCE_TABLES`], and those from the
//!    extension's other tables to them (`tracked_columns` to `tenants`),
//!    are dropped, here and on every worker (`run_command_on_workers`;
//!    idempotent, so a failed setup can be run again), because Citus would
//!    otherwise turn the tables that reference a new reference table into
//!    "Citus local tables", which means dropping the extension's views.
//! 2. Each table becomes a reference table (`create_reference_table`),
//!    with its triggers (`citus.enable_unsafe_triggers`, for this
//!    function only): the key-cache invalidation triggers then fire on
//!    every node's placement, so revocations and rotations reach every
//!    node's backends.
//! 3. The foreign keys among the reference tables are added back; Citus
//!    creates them between the placements on every node. The grants'
//!    role OIDs are rewritten from their names, on every node.
//! 4. The coordinator's own copies of the rows (left behind by
//!    `create_reference_table`) are truncated.
//!
//! The other tables stay on each node: the audit chain, the event log,
//! the counters, and the coordinator's tracked columns and jobs,
//! configuration store, escrow and backups. The answer lists every table
//! and where it lives.
use crate::platform::{
    catalog, cluster,
    errors::{PqError, PqResult},
};
use pgrx::prelude::*;

/// The tables every node holds, referenced ones before those that
/// reference them: the keys, grants and policies that every shard task
/// reads, and the tables linked to them by foreign keys (Citus makes a
/// reference table only of a table whose foreign keys point at reference
/// tables). Not `tracked_columns` and the job tables: a tracking names its
/// table by `regclass`, which exists on the coordinator only; their foreign
/// key to `tenants` is dropped instead (see [`setup`]). The shards of jobs on
/// distributed tables are (`job_shards`, `job_shard_failures`): the node
/// holding a shard runs its batches (`lifecycle::shard_jobs`).
pub const REFERENCE_TABLES: [&std::ffi::CStr; 12] = [
    c"master_keys",
    c"tenants",
    c"tenant_key_versions",
    c"tenant_grants",
    c"tenant_policies",
    c"classical_keys",
    c"tenant_migrations",
    c"config_signers",
    c"audit_keys",
    c"audit_checkpoints",
    c"job_shards",
    c"job_shard_failures",
];

/// [`REFERENCE_TABLES`] as SQL arguments.
fn reference_table_names() -> Vec<&'static str> {
    REFERENCE_TABLES.iter().filter_map(|t| t.to_str().ok()).collect()
}

fn state_error(message: &str, hint: Option<&str>) -> PqError {
    PqError::Sql { code: b"55000", message: message.into(), hint: hint.map(Into::into) }
}

/// Refuses unless Citus can take the tables: a superuser, Citus created in
/// this database, this node its coordinator, and the coordinator in the
/// metadata (so that it holds a placement of every reference table).
fn check_ready() -> PqResult<()> {
    if !catalog::is_superuser(catalog::caller()) {
        return Err(PqError::PermissionDenied("pq.citus_setup() must be run by a superuser".into()));
    }
    if !cluster::created() {
        return Err(state_error(
            "Citus is not installed in this database",
            Some("preload citus before apg_pqcrypto in shared_preload_libraries, then CREATE EXTENSION citus"),
        ));
    }
    if cluster::is_worker_node()? {
        return Err(state_error("pq.citus_setup() runs on the coordinator, not on a worker node", None));
    }
    let coordinator_known =
        catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid = 0)", &[])?
            .unwrap_or(false);
    if !coordinator_known {
        return Err(state_error(
            "the coordinator is not in Citus's metadata",
            Some("run SELECT citus_set_coordinator_host('<host>', <port>) first"),
        ));
    }
    Ok(())
}

/// A foreign key to one of the reference tables (see [`foreign_keys`]).
struct ForeignKey {
    table: String,
    name: String,
    definition: String,
}

/// The foreign keys among the reference tables (`among` true), or from
/// another table of the extension to one of them (`among` false: Citus
/// would turn that table into a "Citus local table").
fn foreign_keys(among: bool) -> PqResult<Vec<ForeignKey>> {
    catalog::rows(
        // Names qualified by hand: the pinned search_path holds pq, and
        // the workers' sessions do not.
        "SELECT 'pq.' || pg_catalog.quote_ident(r.relname), c.conname::text,
                pg_catalog.replace(pg_catalog.pg_get_constraintdef(c.oid),
                                   'REFERENCES ' || pg_catalog.quote_ident(f.relname) || '(',
                                   'REFERENCES pq.' || pg_catalog.quote_ident(f.relname) || '(')
           FROM pg_catalog.pg_constraint c
           JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
           JOIN pg_catalog.pg_class f ON f.oid = c.confrelid
          WHERE c.contype = 'f' AND c.connamespace = 'pq'::pg_catalog.regnamespace
            AND (r.relname = ANY ($1)) = $2 AND f.relname = ANY ($1)
          ORDER BY 1, 2",
        &[reference_table_names().into(), among.into()],
        |row| {
            Ok(ForeignKey {
                table: row.get::<String>(1)?.unwrap_or_default(),
                name: row.get::<String>(2)?.unwrap_or_default(),
                definition: row.get::<String>(3)?.unwrap_or_default(),
            })
        },
    )
}

fn setup() -> PqResult<Vec<(String, String)>> {
    check_ready()?;
    // The tables Citus does not have yet (an earlier run made the others).
    let mut pending = Vec::new();
    for table in REFERENCE_TABLES {
        // (A table of a later version than the schema is skipped until
        // ALTER EXTENSION UPDATE; then run this again.)
        if catalog::pq_table_exists(table) && !cluster::is_distributed(catalog::pq_relid(table))? {
            pending.extend(table.to_str().ok());
        }
    }
    if !pending.is_empty() {
        let keys = foreign_keys(true)?;
        let detached = foreign_keys(false)?;
        for fk in keys.iter().chain(&detached) {
            let drop = format!("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", fk.table, quote(&fk.name));
            catalog::run(&drop, &[])?;
            // The workers' copies of the tables (made by CREATE EXTENSION
            // there) carry the same keys; Citus adds them back below.
            let failed = catalog::one::<String>(
                "SELECT pg_catalog.string_agg(nodename || ':' || nodeport || ': ' || result, '; ')
                   FROM pg_catalog.run_command_on_workers($1) WHERE NOT success",
                &[drop.as_str().into()],
            )?;
            if let Some(failed) = failed {
                return Err(state_error(&format!("a worker refused to drop {}: {failed}", fk.name), None));
            }
        }
        catalog::with_settings(&[(c"citus.enable_unsafe_triggers", c"on")], || -> PqResult<()> {
            for table in &pending {
                catalog::run(
                    "SELECT pg_catalog.create_reference_table(('pq.' || pg_catalog.quote_ident($1))::pg_catalog.regclass)",
                    &[(*table).into()],
                )?;
            }
            for fk in &keys {
                catalog::run(&format!("ALTER TABLE {} ADD CONSTRAINT {} {}", fk.table, quote(&fk.name), fk.definition), &[])?;
            }
            Ok(())
        })?;
        // A grant names its role by `regrole`: rows written from now on
        // reach every node as the role's name, and each node stores its own
        // OID of it; the rows copied above carry the coordinator's OIDs.
        // Rewritten one by one with the name as a constant (Citus refuses a
        // STABLE cast of a column in an UPDATE), found by the copied OID;
        // a dropped role's stay inert.
        let grants = catalog::rows(
            "SELECT tenant, role_name::text, role::oid FROM pq.tenant_grants
              WHERE pg_catalog.to_regrole(role_name::text) IS NOT NULL",
            &[],
            |row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::Oid::INVALID),
                ))
            },
        )?;
        for (tenant, role_name, copied) in grants {
            catalog::run(
                "UPDATE pq.tenant_grants SET role = $2::text::pg_catalog.regrole
                  WHERE tenant = $1 AND role_name = $2 AND role::oid = $3",
                &[tenant.as_str().into(), role_name.as_str().into(), copied.into()],
            )?;
        }
        // The coordinator's own copies of the rows: children first, with
        // the append-only triggers (ENABLE ORIGIN) not firing.
        catalog::with_settings(&[(c"session_replication_role", c"replica"), (c"client_min_messages", c"warning")], || -> PqResult<()> {
            for table in pending.iter().rev() {
                catalog::run(
                    "SELECT pg_catalog.truncate_local_data_after_distributing_table(('pq.' || pg_catalog.quote_ident($1))::pg_catalog.regclass)",
                    &[(*table).into()],
                )?;
            }
            Ok(())
        })?;
        let detached: Vec<String> = detached.iter().map(|fk| format!("{} {}", fk.table, fk.name)).collect();
        crate::journal::events::record(
            "citus_setup",
            None,
            None,
            &crate::journal::events::session_user(),
            None,
            serde_json::json!({ "reference_tables": pending, "dropped_foreign_keys": detached }),
        )?;
    }
    placements()
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Every table of the extension and where it lives: `reference` (every
/// node, kept equal by Citus) or `per node`.
fn placements() -> PqResult<Vec<(String, String)>> {
    catalog::rows(
        "SELECT c.relname::text,
                CASE WHEN p.logicalrelid IS NOT NULL THEN 'reference' ELSE 'per node' END
           FROM pg_catalog.pg_class c
           LEFT JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = c.oid AND p.partmethod = 'n'
          WHERE c.relnamespace = 'pq'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p')
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s
                             WHERE c.relname = s.logicalrelid::pg_catalog.regclass::text || '_' || s.shardid
                                OR c.relname = 'pq.' || s.logicalrelid::pg_catalog.regclass::text || '_' || s.shardid)
          ORDER BY 2, 1",
        &[],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default())),
    )
}

#[pg_schema]
mod pq {
    use crate::platform::errors::OrRaise;
    use pgrx::prelude::*;

    /// Makes the key-bearing and lifecycle tables Citus reference tables
    /// (once, on the coordinator, as a superuser) and lists where every
    /// table of the extension lives. Running it again changes nothing.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn citus_setup() -> TableIterator<'static, (name!(table_name, String), name!(placement, String))> {
        TableIterator::new(super::setup().or_raise())
    }
}
