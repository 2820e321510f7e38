//! The blind index column of a tracked column (docs/SEARCH.md): its
//! definition, the row triggers of tracked tables (the one that keeps the
//! blind index column and the enforcement one, created and dropped with the
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
    /// Set while the extension itself creates or drops a row trigger, so
    /// that the DDL audit's event triggers leave that DDL alone.
    static OWN_DDL: Cell<bool> = const { Cell::new(false) };
}

/// True while the extension runs its own trigger DDL (see `OWN_DDL`).
pub fn own_ddl() -> bool {
    OWN_DDL.get()
}

fn as_own_ddl<R>(f: impl FnOnce() -> PqResult<R>) -> PqResult<R> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            OWN_DDL.set(self.0);
        }
    }
    let _reset = Reset(OWN_DDL.replace(true));
    f()
}

/// A column was tracked or untracked: cached trigger configurations are stale.
pub fn changed() {
    GENERATION.set(GENERATION.get().wrapping_add(1));
}

/// See [`changed`].
pub fn generation() -> u64 {
    GENERATION.get()
}

/// The row triggers `pq.track_column` puts on a tracked table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RowTrigger {
    /// `pq.blind_index_trigger`: keeps the blind index column (only with one).
    BlindIndex,
    /// `pq.enforcement_trigger`: refuses values that are not envelopes of
    /// the column's tenant while `apg_pqcrypto.enforce_encryption` says so
    /// (every tracked column, 0.10.0).
    Enforcement,
}

impl RowTrigger {
    /// The trigger's name on the table: it sorts after the names users give,
    /// so it sees the value that other BEFORE triggers (the dual-mode
    /// migration trigger) leave; the enforcement trigger sorts last.
    pub fn name(self, id: i32) -> String {
        match self {
            RowTrigger::BlindIndex => format!("zz_pq_blind_index_{id}"),
            RowTrigger::Enforcement => format!("zz_pq_enforcement_{id}"),
        }
    }

    fn function(self) -> &'static str {
        match self {
            RowTrigger::BlindIndex => "pq.blind_index_trigger",
            RowTrigger::Enforcement => "pq.enforcement_trigger",
        }
    }
}

/// Creates tracked column `id`'s `kind` trigger on `table` (schema-qualified
/// and quoted), for its value column `column`. Call as owner.
pub fn create_trigger(kind: RowTrigger, id: i32, table: &str, column: &str) -> PqResult<()> {
    as_own_ddl(|| {
        catalog::run(
            &format!(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {}({})",
                quote_identifier(kind.name(id)),
                kind.function(),
                quote_literal(column)
            ),
            &[],
        )
    })
}

/// Drops tracked column `id`'s `kind` trigger on `relid` (`table`), if there is one. Call as owner.
pub fn drop_trigger(kind: RowTrigger, relid: pg_sys::Oid, id: i32, table: &str) -> PqResult<()> {
    let name = kind.name(id);
    let exists = catalog::one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = $2 AND NOT tgisinternal)",
        &[relid.into(), name.as_str().into()],
    )?
    .unwrap_or(false);
    if exists {
        as_own_ddl(|| catalog::run(&format!("DROP TRIGGER {} ON {table}", quote_identifier(&name)), &[]))?;
    }
    Ok(())
}
