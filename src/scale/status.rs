//! `pq.cluster_master_key_status()`: `pq.master_key_status()` asked of
//! every node of a Citus cluster. Every node unwraps the master data keys
//! with its own provider settings (docs/SCALE-OUT.md, Master keys), so each
//! answers for itself; a node that does not answer gets one row saying so.
use crate::{
    platform::{catalog, errors::PqResult, roles},
    scale::nodes,
};
use pgrx::prelude::*;

type NodeKeyStatus = (
    i32,
    String,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<pgrx::datum::TimestampWithTimeZone>,
    Option<String>,
);

fn status() -> PqResult<Vec<NodeKeyStatus>> {
    roles::require_monitor("read the master key status")?;
    nodes::require_coordinator("pq.cluster_master_key_status()", "SELECT * FROM pq.master_key_status()")?;
    let query = format!(
        "WITH {}
         SELECT r.groupid, r.node, pg_catalog.decode(pg_catalog.substr(s.mdk_id, 3), 'hex'), s.state, s.provider, s.key_ref,
                s.answered, s.last_success,
                CASE WHEN r.success THEN s.message ELSE 'the node could not answer: ' || r.result END
           FROM r LEFT JOIN LATERAL pg_catalog.json_to_recordset(CASE WHEN r.success THEN r.result::json END)
                AS s(mdk_id text, state text, provider text, key_ref text, answered bool, last_success timestamptz, message text)
             ON true
          ORDER BY 1, 2, s.last_success NULLS LAST, 3",
        nodes::on_all_nodes("SELECT coalesce(pg_catalog.json_agg(s), '[]') FROM pq.master_key_status() s")
    );
    // As the owner, like pq.master_key_status(): Citus connects to each
    // node as the current user.
    catalog::as_owner(|| {
        catalog::rows(&query, &[], |row| {
            Ok((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<Vec<u8>>(3)?,
                row.get::<String>(4)?,
                row.get::<String>(5)?,
                row.get::<String>(6)?,
                row.get::<bool>(7)?,
                row.get::<pgrx::datum::TimestampWithTimeZone>(8)?,
                row.get::<String>(9)?,
            ))
        })
    })
}

#[pg_schema]
mod pq {
    use crate::platform::errors::OrRaise;
    use pgrx::prelude::*;

    /// On a Citus coordinator: `pq.master_key_status()` of every node, one
    /// row per node and master data key; a node that does not answer has
    /// one row with `answered` NULL and the reason in `message`.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn cluster_master_key_status() -> TableIterator<
        'static,
        (
            name!(node_group, i32),
            name!(node, String),
            name!(mdk_id, Option<Vec<u8>>),
            name!(state, Option<String>),
            name!(provider, Option<String>),
            name!(key_ref, Option<String>),
            name!(answered, Option<bool>),
            name!(last_success, Option<pgrx::datum::TimestampWithTimeZone>),
            name!(message, Option<String>),
        ),
    > {
        TableIterator::new(super::status().or_raise())
    }
}
