//! Citus's catalogs, read through SPI: this node's group (0 on the
//! coordinator and on a single server), whether it is a worker node,
//! whether a relation is a Citus table, a distributed table's shards and
//! where they are placed, and the shard lock a job's batch holds. Without
//! Citus (not loaded, or not created in this database) every answer is
//! "no" and no query runs.
use crate::platform::{
    catalog, citus,
    errors::{PqError, PqResult},
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

/// The distribution column of `relid` if it is a hash-distributed Citus
/// table (the kind whose jobs run shard by shard); None for any other
/// relation, a reference or Citus-managed local table included. Runs a
/// query when Citus is loaded.
pub fn distribution_column(relid: pg_sys::Oid) -> PqResult<Option<String>> {
    if relid == pg_sys::Oid::INVALID || !created() {
        return Ok(None);
    }
    catalog::one::<String>(
        "SELECT pg_catalog.column_to_column_name(logicalrelid, partkey) FROM pg_catalog.pg_dist_partition
          WHERE logicalrelid = $1 AND partmethod = 'h'",
        &[relid.into()],
    )
}

/// The refusal of a table whose shards have several placements.
fn replicated_shards() -> PqError {
    PqError::Sql {
        code: b"0A000",
        message: "the shards of this Citus table have several placements (citus.shard_replication_factor above 1)".into(),
        hint: Some("jobs write each shard on the one node that holds it; re-encrypt it with the UPDATE rule of docs/SCALE-OUT.md".into()),
    }
}

/// Refuses (0A000) a distributed table `relid` with a shard of several
/// placements.
pub fn require_single_placements(relid: pg_sys::Oid) -> PqResult<()> {
    let replicated = catalog::one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid
                         WHERE s.logicalrelid = $1 GROUP BY s.shardid HAVING count(*) > 1)",
        &[relid.into()],
    )?
    .unwrap_or(false);
    if replicated {
        return Err(replicated_shards());
    }
    Ok(())
}

/// The shards of the distributed table `relid`, in shard id order.
pub fn shards(relid: pg_sys::Oid) -> PqResult<Vec<i64>> {
    catalog::rows(
        "SELECT shardid FROM pg_catalog.pg_dist_shard WHERE logicalrelid = $1 ORDER BY shardid",
        &[relid.into()],
        |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
    )
}

/// The shard of the distributed table `relid` that holds the rows whose
/// distribution column is `value`.
pub fn shard_of_value(relid: pg_sys::Oid, value: &str) -> PqResult<Option<i64>> {
    catalog::one::<i64>("SELECT pg_catalog.get_shard_id_for_distribution_column($1, $2)", &[relid.into(), value.into()])
}

/// The shards with a placement on this node.
pub fn local_shards() -> PqResult<Vec<i64>> {
    catalog::rows(
        "SELECT shardid FROM pg_catalog.pg_dist_placement
          WHERE groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group) ORDER BY shardid",
        &[],
        |r| Ok(r.get::<i64>(1)?.unwrap_or_default()),
    )
}

/// Holds shard `shardid` on this node for the rest of the transaction, and
/// returns its relation here; None if its placement is not (or no longer)
/// on this node. It takes the shard's metadata lock in share mode, as
/// Citus's own writers do: a shard move or split takes it in exclusive
/// mode on every node before it stops writes and switches the placement,
/// so it waits for this transaction, and this transaction's writes reach
/// the new placement; once the move has committed, the placement check
/// (a statement after the lock, with a newer snapshot) sees it gone. As a
/// superuser: Citus allows the lock to a shard's owner.
///
/// Refuses (0A000) a shard with several placements (a table created with
/// `citus.shard_replication_factor` above 1): a write to one placement
/// would leave the others behind.
pub fn hold_local_shard(shardid: i64) -> PqResult<Option<pg_sys::Oid>> {
    catalog::run("SELECT pg_catalog.lock_shard_metadata(5, ARRAY[$1]::bigint[])", &[shardid.into()])?;
    let placements =
        catalog::one::<i64>("SELECT count(*) FROM pg_catalog.pg_dist_placement WHERE shardid = $1", &[shardid.into()])?.unwrap_or(0);
    if placements > 1 {
        return Err(replicated_shards());
    }
    // shard_name leaves the schema out for `public`, which the pinned
    // search_path does not hold.
    catalog::one::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass(CASE WHEN n.nspname = 'public' THEN 'public.' ELSE '' END
                                       || pg_catalog.shard_name(s.logicalrelid, s.shardid))::oid
           FROM pg_catalog.pg_dist_shard s
           JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid
           JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE s.shardid = $1 AND p.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group)",
        &[shardid.into()],
    )
}
