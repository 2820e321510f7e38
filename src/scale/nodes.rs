//! What the cluster-wide functions share: the check that this is a Citus
//! coordinator, and one statement run on every node (the coordinator
//! included) with each node's group and address.
use crate::platform::{
    cluster,
    errors::{PqError, PqResult},
};

/// Ok on a Citus coordinator; 55000 elsewhere, with `single` (what to run
/// on a single server) as the hint where Citus is missing.
pub fn require_coordinator(function: &str, single: &str) -> PqResult<()> {
    if !cluster::created() {
        return Err(PqError::Sql {
            code: b"55000",
            message: "Citus is not installed in this database".into(),
            hint: Some(format!("on a single server, {single}")),
        });
    }
    if cluster::is_worker_node()? {
        return Err(PqError::Sql { code: b"55000", message: format!("{function} runs on the coordinator"), hint: None });
    }
    Ok(())
}

/// A CTE named `r (groupid, node, success, result)`: `command` (one
/// statement returning one value, without `$$`) run on every node by
/// Citus as the current user; `node` is `host:port`.
pub fn on_all_nodes(command: &str) -> String {
    debug_assert!(!command.contains("$$"));
    format!(
        "r AS (SELECT n.groupid, n.nodename || ':' || n.nodeport AS node, x.success, x.result
                 FROM pg_catalog.run_command_on_all_nodes($${command}$$) x
                 JOIN pg_catalog.pg_dist_node n ON n.nodeid = x.nodeid)"
    )
}
