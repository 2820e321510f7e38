//! Citus's catalogs, read through SPI: this node's group (0 on the
//! coordinator and on a single server), whether it is a worker node, and
//! whether a relation is a Citus table. Without Citus (not loaded, or not
//! created in this database) every answer is "no" and no query runs.
use crate::platform::{
    catalog, citus,
    errors::PqResult,
};
use pgrx::pg_sys;

/// True if Citus is loaded and created in this database (its catalogs,
/// such as pg_dist_partition, exist). Syscache lookups only.
pub fn created() -> bool {
    citus::loaded() && catalog::relid(c"pg_catalog", c"pg_dist_partition") != pg_sys::Oid::INVALID
}

/// This node's Citus group: 0 on the coordinator, and without Citus (a
/// single server is its own coordinator). Runs a query when Citus is loaded.
pub fn local_group() -> PqResult<i32> {
    if !created() {
        return Ok(0);
    }
    Ok(catalog::one::<i32>("SELECT groupid FROM pg_catalog.pg_dist_local_group", &[])?.unwrap_or(0))
}

/// True on a Citus node that is not the coordinator (its group is not 0):
/// a worker, whose background worker leaves schedules, checkpoints and
/// jobs to the coordinator's. Runs a query.
pub fn is_worker_node() -> PqResult<bool> {
    Ok(local_group()? != 0)
}

/// True if relation `relid` is a Citus table (distributed, reference or
/// Citus-managed local). Runs a query when Citus is loaded.
pub fn is_distributed(relid: pg_sys::Oid) -> PqResult<bool> {
    if relid == pg_sys::Oid::INVALID || !created() {
        return Ok(false);
    }
    Ok(catalog::one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)", &[relid.into()])?
        .unwrap_or(false))
}
