//! `pq.verify_cluster_audit()`: the audit trail of a whole Citus cluster.
//! Each node keeps its own hash chain; the coordinator's checkpoints sign
//! every node's head (`audit::checkpoint`) into a reference table, so that
//! every node holds them and they outlive a lost node. This function asks
//! every node to verify its chain against its checkpoints
//! (`pq.verify_audit_chain()` there, over Citus's connections, as the
//! extension's owner) and adds a line for each node that has checkpoints but is no
//! longer in the cluster.
use crate::{
    platform::{catalog, errors::PqResult, roles},
    scale::nodes,
};
use pgrx::prelude::*;

type NodeReport = (
    i32,
    String,
    Option<bool>,
    Option<i64>,
    Option<i64>,
    Option<pgrx::datum::TimestampWithTimeZone>,
    Option<String>,
);

fn verify() -> PqResult<Vec<NodeReport>> {
    roles::require_monitor("verify the audit chain")?;
    nodes::require_coordinator("pq.verify_cluster_audit()", "SELECT * FROM pq.verify_audit_chain()")?;
    // As the owner: it reads every node's checkpoints, and Citus connects
    // to each node as the current user.
    let query = format!(
        "WITH {},
         v AS (SELECT groupid, node, success, CASE WHEN success THEN result::json END AS j, result FROM r)
         SELECT groupid, node, (j->>'ok')::bool, (j->>'first_bad_id')::bigint, (j->>'rows_checked')::bigint,
                (j->>'last_checkpoint')::timestamptz,
                CASE WHEN success THEN j->>'problem' ELSE 'the node could not answer: ' || result END
           FROM v
         UNION ALL
         SELECT c.node_group, '(not in the cluster)', NULL, NULL, NULL, max(c.ts),
                pg_catalog.format('no node of group %s; its %s checkpoints are kept, the last up to row %s',
                                  c.node_group, count(*), max(c.head_id))
           FROM pq.audit_checkpoints c
          WHERE c.node_group NOT IN (SELECT groupid FROM pg_catalog.pg_dist_node)
          GROUP BY c.node_group
          ORDER BY 1, 2",
        nodes::on_all_nodes("SELECT pg_catalog.row_to_json(v) FROM pq.verify_audit_chain() v")
    );
    catalog::as_owner(|| catalog::rows(
        &query,
        &[],
        |row| {
            Ok((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<bool>(3)?,
                row.get::<i64>(4)?,
                row.get::<i64>(5)?,
                row.get::<pgrx::datum::TimestampWithTimeZone>(6)?,
                row.get::<String>(7)?,
            ))
        },
    ))
}

#[pg_schema]
mod pq {
    use crate::platform::errors::OrRaise;
    use pgrx::prelude::*;

    /// On a Citus coordinator: every node's audit chain verified by that
    /// node against the checkpoints the coordinator signed for it, one row
    /// per node; a node that does not answer, or that left the cluster
    /// with checkpoints, has `ok` NULL and says so in `problem`.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn verify_cluster_audit() -> TableIterator<
        'static,
        (
            name!(node_group, i32),
            name!(node, String),
            name!(ok, Option<bool>),
            name!(first_bad_id, Option<i64>),
            name!(rows_checked, Option<i64>),
            name!(last_checkpoint, Option<pgrx::datum::TimestampWithTimeZone>),
            name!(problem, Option<String>),
        ),
    > {
        TableIterator::new(super::verify().or_raise())
    }
}
