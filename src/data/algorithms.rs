//! `pq_algorithms()`: every KEM and signature suite this build serves, with
//! its standard, security category, CNSA 2.0 status, implementation and sizes.
use pgrx::prelude::*;

/// One row per suite (docs/FORMAT.md §1 has the sizes; README "Suites").
#[pg_extern(immutable, parallel_safe)]
#[allow(clippy::type_complexity)] // the SQL result's columns
pub fn pq_algorithms() -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(kind, String),
        name!(standard, String),
        name!(category, i32),
        name!(cnsa2, bool),
        name!(backend, String),
        name!(public_key_bytes, i32),
        name!(secret_key_bytes, i32),
        name!(output_bytes, i32),
        name!(envelope_bytes, i32),
        name!(envelope_kinds, String),
    ),
> {
    TableIterator::new(pqcore::algorithms::all().into_iter().map(|a| {
        (
            a.name.to_owned(),
            a.kind.to_owned(),
            a.standard.to_owned(),
            a.category,
            a.cnsa2,
            a.backend,
            a.public_key_bytes as i32,
            a.secret_key_bytes as i32,
            a.output_bytes as i32,
            a.envelope_bytes as i32,
            a.envelope_kinds.to_owned(),
        )
    }))
}
