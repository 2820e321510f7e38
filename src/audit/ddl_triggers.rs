//! The DDL audit's event triggers (`pq_audit_sql_drop`, `pq_audit_ddl_end`,
//! made by the extension script): what they record and do is described in
//! `ddl`, whose hook tells `ended` what an ALTER TABLE changed.
use crate::{
    audit::ddl,
    journal::events,
    lifecycle::{blind_column, tracking},
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::prelude::*;
use serde_json::json;

/// The sql_drop event trigger's work: trackings whose table, value, tenant,
/// AAD, key or blind index column was dropped are removed and recorded;
/// a drop of one of the extension's row triggers is recorded.
fn dropped() -> PqResult<()> {
    if !ddl::recording_here() || blind_column::own_ddl() {
        return Ok(());
    }
    let actor = events::session_user();
    catalog::as_owner(|| {
        // The event's rows first, on their own: under Citus, a query that
        // also reads pq.tracked_columns (a reference table) may run in
        // another backend, outside this event trigger.
        let objects = catalog::rows(
            "SELECT d.objid, d.object_identity, d.object_type, d.address_names[3], d.objsubid = 0
               FROM pg_catalog.pg_event_trigger_dropped_objects() d
              WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass",
            &[],
            |r| {
                Ok((
                    r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<bool>(5)?.unwrap_or(false),
                ))
            },
        )?;
        let oids: Vec<pg_sys::Oid> = objects.iter().map(|o| o.0).collect();
        let identities: Vec<&str> = objects.iter().map(|o| o.1.as_str()).collect();
        let types: Vec<&str> = objects.iter().map(|o| o.2.as_str()).collect();
        let columns: Vec<&str> = objects.iter().map(|o| o.3.as_str()).collect();
        let whole: Vec<bool> = objects.iter().map(|o| o.4).collect();
        // unnest of several arrays is grammar (ROWS FROM): it cannot be
        // schema-qualified, and the pinned path resolves it to pg_catalog.
        let gone = if objects.is_empty() { Vec::new() } else { catalog::rows(
            &format!(
                "SELECT t.id, t.relid::oid, d.object_identity, d.object_type, CASE WHEN NOT d.whole THEN d.col END,
                        t.column_name::text
                   FROM unnest($1::pg_catalog.oid[], $2::text[], $3::text[], $4::text[], $5::bool[])
                        AS d(objid, object_identity, object_type, col, whole)
                   JOIN pq.tracked_columns t ON t.relid::oid = d.objid
                  WHERE d.whole OR d.col IN (t.column_name, t.tenant_column, t.aad_column, t.key_column, t.blind_index_column)
                     OR d.col::name = ANY ({})",
                key_columns_sql()
            ),
            &[oids.into(), identities.into(), types.into(), columns.into(), whole.into()],
            |r| {
                Ok((
                    r.get::<i32>(1)?.unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::Oid::INVALID),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<String>(5)?,
                    r.get::<String>(6)?.unwrap_or_default(),
                ))
            },
        )? };
        for (id, relid, identity, object_type, dropped_column, column) in gone {
            let table_dropped = dropped_column.is_none();
            let table = if table_dropped { identity.clone() } else { tracking::table_text(relid)? };
            tracking::forget(id, relid, !table_dropped)?;
            let details = json!({
                "table": table,
                "column": column,
                "dropped": if table_dropped { object_type } else { format!("column {}", dropped_column.unwrap_or_default()) },
                "untracked": true,
            });
            events::record("tracked_column_dropped", None, None, &actor, None, details)?;
        }
        let triggers = catalog::rows(
            "SELECT d.object_identity FROM pg_catalog.pg_event_trigger_dropped_objects() d
              WHERE d.object_type = 'trigger' AND d.original
                AND (d.object_identity LIKE 'zz\\_pq\\_enforcement\\_% on %' OR d.object_identity LIKE 'zz\\_pq\\_blind\\_index\\_% on %')",
            &[],
            |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
        )?;
        for trigger in triggers {
            events::record("tracked_trigger_dropped", None, None, &actor, None, json!({ "trigger": trigger }))?;
        }
        Ok(())
    })
}

/// SQL for the tracked columns' claim keys of several columns (table alias
/// `t`): none before 0.11.0's `key_columns`.
fn key_columns_sql() -> &'static str {
    if catalog::pq_column_exists(c"tracked_columns", c"key_columns") {
        "coalesce(t.key_columns, '{}'::name[])"
    } else {
        "'{}'::name[]"
    }
}

/// The ddl_command_end event trigger's work: ALTER TABLE of a tracked table
/// is recorded, and refused if a column a tracking names is gone (renamed);
/// ALTER EXTENSION apg_pqcrypto is recorded with the version it leaves.
fn ended() -> PqResult<()> {
    if !ddl::recording_here() || blind_column::own_ddl() {
        return Ok(());
    }
    let actor = events::session_user();
    catalog::as_owner(|| {
        let commands = catalog::rows(
            // pq.tracked_columns is read apart (see `dropped`).
            "SELECT DISTINCT c.command_tag, c.objid, c.object_identity,
                    (c.command_tag = 'ALTER EXTENSION' AND c.objid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'apg_pqcrypto'))
               FROM pg_catalog.pg_event_trigger_ddl_commands() c",
            &[],
            |r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::Oid::INVALID),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<bool>(4)?.unwrap_or(false),
                ))
            },
        )?;
        for (tag, objid, identity, ours) in commands {
            let tracked = !ours
                && tag == "ALTER TABLE"
                && catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pq.tracked_columns t WHERE t.relid::oid = $1)", &[objid.into()])?
                    .unwrap_or(false);
            if ours {
                let version = catalog::one::<String>("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'apg_pqcrypto'", &[])?;
                events::record("extension_altered", None, None, &actor, None, json!({ "command": tag, "version": version }))?;
            } else if tracked && tag == "ALTER TABLE" {
                if let Some(missing) = catalog::one::<String>(
                    &format!("SELECT string_agg(DISTINCT n, ', ') FROM pq.tracked_columns t,
                            LATERAL unnest(ARRAY[t.column_name, t.tenant_column, t.aad_column, t.key_column, t.blind_index_column]
                                           || {}) n
                      WHERE t.relid::oid = $1 AND n IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                         WHERE a.attrelid = $1 AND a.attname = n AND NOT a.attisdropped)",
                        key_columns_sql()
                    ),
                    &[objid.into()],
                )? {
                    let table = tracking::table_text(objid)?;
                    return Err(PqError::Sql {
                        code: b"55000",
                        message: format!("{table} no longer has column(s) {missing}, which an apg_pqcrypto tracked column names"),
                        hint: Some("keep their names, or pq.untrack_column the column first and track it again after".into()),
                    });
                }
                // Through the hook, only what matters to the keys is recorded
                // (not, say, a pg_restore's ADD CONSTRAINT); without it, all.
                let parts = ddl::running_alter_table();
                if ddl::hooked() && parts.as_ref().is_some_and(Vec::is_empty) {
                    continue;
                }
                let table = tracking::table_text(objid)?;
                events::record(
                    "tracked_table_altered",
                    None,
                    None,
                    &actor,
                    None,
                    json!({ "command": tag, "table": table, "object": identity, "changes": parts }),
                )?;
            }
        }
        Ok(())
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// The work of the `pq_audit_sql_drop` event trigger (it reads
    /// pg_event_trigger_dropped_objects(), so it fails anywhere else).
    /// Executable by no role; the event trigger's function runs as owner.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn ddl_dropped() {
        dropped().or_raise()
    }

    /// The work of the `pq_audit_ddl_end` event trigger (it reads
    /// pg_event_trigger_ddl_commands(), so it fails anywhere else).
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn ddl_ended() {
        ended().or_raise()
    }
}
