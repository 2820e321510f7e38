//! The blind index column of a tracked column (docs/SEARCH.md): its
//! definition, the trigger that keeps it (created and dropped with the
//! tracking), and a counter that tells the trigger's cache (in
//! `blind_index`) that a definition changed in this backend. Below
//! `tracking`, which calls it.
use crate::{
    data::blind,
    platform::{catalog, errors::PqResult},
};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use std::cell::Cell;

/// A blind index column of a tracked column (docs/SEARCH.md): the term of
/// each row's value under `context`, `bits` long, after `normalization`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlindColumn {
    pub column: String,
    pub context: String,
    pub bits: i32,
    pub normalization: String,
}

impl BlindColumn {
    /// Checks the definition (22023 with the rule otherwise).
    pub fn check(&self) -> PqResult<()> {
        blind::TermSpec::new(&self.context, self.bits)?;
        blind::parse_normalization(&self.normalization)?;
        Ok(())
    }
}

/// True once pq.tracked_columns has the blind index columns (0.9.0; before
/// ALTER EXTENSION UPDATE the library runs against the older table).
pub fn has_blind_indexes() -> bool {
    catalog::pq_column_exists(c"tracked_columns", c"blind_index_column")
}

thread_local! {
    /// Goes up when this backend tracks or untracks a column.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// A column was tracked or untracked: cached trigger configurations are stale.
pub fn changed() {
    GENERATION.set(GENERATION.get().wrapping_add(1));
}

/// See [`changed`].
pub fn generation() -> u64 {
    GENERATION.get()
}

/// The name of the trigger that keeps tracked column `id`'s blind index
/// column: it sorts after the names users give, so it sees the value that
/// other BEFORE triggers (the dual-mode migration trigger) leave.
pub fn trigger_name(id: i32) -> String {
    format!("zz_pq_blind_index_{id}")
}

/// Creates tracked column `id`'s trigger on `table` (schema-qualified and
/// quoted), for its value column `column`. Call as owner.
pub fn create_trigger(id: i32, table: &str, column: &str) -> PqResult<()> {
    catalog::run(
        &format!(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION pq.blind_index_trigger({})",
            quote_identifier(trigger_name(id)),
            quote_literal(column)
        ),
        &[],
    )
}

/// Drops tracked column `id`'s trigger on `relid` (`table`), if there is one. Call as owner.
pub fn drop_trigger(relid: pg_sys::Oid, id: i32, table: &str) -> PqResult<()> {
    let name = trigger_name(id);
    let exists = catalog::one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = $2 AND NOT tgisinternal)",
        &[relid.into(), name.as_str().into()],
    )?
    .unwrap_or(false);
    if exists {
        catalog::run(&format!("DROP TRIGGER {} ON {table}", quote_identifier(&name)), &[])?;
    }
    Ok(())
}
