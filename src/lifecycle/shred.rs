//! Crypto-shredding: `pq.shred_tenant` destroys every key a tenant has, so
//! that none of its ciphertexts can be read again by anyone holding this
//! database, and writes down what it destroyed and what it could not reach.
//!
//! In one transaction, with the tenant locked: every version's wrapped
//! seeds and sealed DEK are erased (state `destroyed`, its blind index keys
//! with them: they derive from the seeds), the tenant's pgcrypto keys are
//! deleted, its policy is dropped and its pending jobs cancelled, the tenant
//! is marked shredded (no rotation or restore makes it new keys again), its
//! forward-secure sessions are wiped, and a `tenant_shredded` event — in the
//! audit chain — lists the versions destroyed, the tracked ciphertexts and
//! configuration values now unreadable, and the escrow splits and backup
//! bundles that still hold keys able to read them: a shred cannot reach
//! copies outside the live tables (bundles, base backups, WAL archives,
//! dumps taken before). docs/OPERATIONS.md has the runbook.
use crate::{
    data::sessions,
    journal::events,
    keys::tenants,
    lifecycle::{rotation, tracking},
    platform::{catalog, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use serde_json::{json, Value};

/// A version the shred destroys.
struct Destroyed {
    version: i32,
    state: String,
    kid: Vec<u8>,
}

fn shred(tenant: &str, confirm: &str) -> PqResult<Value> {
    rotation::require_key_admin(tenant, "shred tenants")?;
    if confirm != tenant {
        return Err(PqError::InvalidParameter(format!("to shred a tenant, confirm => '{}' (its name)", echo(tenant))));
    }
    let actor = events::session_user();
    catalog::as_owner(|| {
        rotation::lock_tenant(tenant)?;
        if let Some(at) = tenants::shredded_at(tenant)? {
            return Err(PqError::KeyState(format!("tenant \"{}\" was shredded at {at}", echo(tenant))));
        }
        let destroyed = catalog::write_rows(
            "WITH gone AS (
                 SELECT version, state, kid FROM pq.tenant_key_versions WHERE tenant = $1 AND state <> 'destroyed' FOR UPDATE)
             UPDATE pq.tenant_key_versions v
                SET state = 'destroyed', destroyed_at = now(), retired_at = coalesce(v.retired_at, now()),
                    wrapped_kem_seed = NULL, wrapped_dsa_seed = NULL, sealed_dek = NULL
               FROM gone WHERE v.tenant = $1 AND v.version = gone.version
             RETURNING gone.version, gone.state, gone.kid",
            &[tenant.into()],
            |r| {
                Ok(Destroyed {
                    version: r.get::<i32>(1)?.unwrap_or_default(),
                    state: r.get::<String>(2)?.unwrap_or_default(),
                    kid: r.get::<Vec<u8>>(3)?.unwrap_or_default(),
                })
            },
        )?;
        let all_kids = catalog::rows(
            "SELECT kid FROM pq.tenant_key_versions WHERE tenant = $1",
            &[tenant.into()],
            |r| Ok(r.get::<Vec<u8>>(1)?.unwrap_or_default()),
        )?;
        let (unreadable, columns) = tracking::usage_of(tenant, &all_kids)?;
        let classical = catalog::write_rows(
            "DELETE FROM pq.classical_keys WHERE tenant = $1 RETURNING kind",
            &[tenant.into()],
            |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
        )?;
        catalog::write_rows("DELETE FROM pq.tenant_policies WHERE tenant = $1 RETURNING true", &[tenant.into()], |_| Ok(()))?;
        let cancelled = catalog::write_rows(
            "UPDATE pq.job_queue SET state = 'cancelled', finished_at = now(), updated_at = now(),
                    last_error = 'the tenant was shredded'
              WHERE state IN ('queued', 'running', 'paused')
                AND (tenant = $1 OR tracked_id IN (SELECT id FROM pq.tracked_columns WHERE tenant = $1))
             RETURNING id",
            &[tenant.into()],
            |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
        )?;
        let config_values = catalog::one::<i64>(
            "SELECT count(*) FROM pq.config_records WHERE tenant = $1 AND envelope IS NOT NULL",
            &[tenant.into()],
        )?
        .unwrap_or(0);
        let escrow = outside_copies(
            "SELECT coalesce(jsonb_agg(jsonb_build_object('escrow_id', encode(escrow_id, 'hex'), 'created_at', created_at,
                                                           'custodians', custodians) ORDER BY created_at), '[]')
               FROM (SELECT escrow_id, min(created_at) AS created_at, array_agg(custodian ORDER BY share_index) AS custodians
                       FROM pq.escrow_shares
                      WHERE mdk_id IN (SELECT mdk_id FROM pq.tenant_key_versions WHERE tenant = $1
                                       UNION SELECT mdk_id FROM pq.classical_keys WHERE tenant = $1)
                      GROUP BY escrow_id) s",
            tenant,
        )?;
        let backups = outside_copies(
            "SELECT coalesce(jsonb_agg(jsonb_build_object('backup_id', encode(backup_id, 'hex'), 'exported_at', at,
                                                           'exported_by', actor, 'sealed_to', encode(sealed_to, 'hex'))
                                       ORDER BY at), '[]')
               FROM pq.backups WHERE operation = 'export' AND $1 = ANY (tenants)",
            tenant,
        )?;
        catalog::write_one::<bool>("UPDATE pq.tenants SET shredded_at = now() WHERE name = $1 RETURNING true", &[tenant.into()])?;
        let sessions_ended = sessions::end_tenant(tenant);
        let versions: Vec<Value> = destroyed
            .iter()
            .map(|d| json!({ "version": d.version, "state": d.state, "kid": hex::encode(&d.kid) }))
            .collect();
        let mut details = json!({
            "versions_destroyed": versions,
            "classical_keys_deleted": classical.len(),
            "sessions_ended": sessions_ended,
            "jobs_cancelled": cancelled,
            "tracked_ciphertexts_unreadable": unreadable,
            "tracked_columns_affected": columns,
            "config_values_unreadable": config_values,
            "escrow_splits_holding_master_key": escrow,
            "backup_bundles_holding_keys": backups,
            "not_reached": "backup bundles and escrow splits listed here, base backups, WAL (archived, or in pg_wal until recycled), \
                            standbys' WAL not yet replayed, and dumps taken before the shred",
        });
        let id = events::record_id("tenant_shredded", Some(tenant), None, &actor, None, details.clone())?;
        details["event_id"] = json!(id);
        Ok(details)
    })
}

/// A jsonb list of copies of the tenant's keys that the shred cannot reach.
fn outside_copies(sql: &str, tenant: &str) -> PqResult<Value> {
    Ok(catalog::one::<pgrx::JsonB>(sql, &[tenant.into()])?.map_or(json!([]), |j| j.0))
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Destroys every key of `tenant` (confirm => the tenant's name) and
    /// returns the shred record that the `tenant_shredded` event holds.
    /// pq_admin, on the primary.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn shred_tenant(tenant: &str, confirm: &str) -> pgrx::JsonB {
        pgrx::JsonB(shred(tenant, confirm).or_raise())
    }
}
