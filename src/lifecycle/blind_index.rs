//! Blind index columns of tracked columns (docs/SEARCH.md): the trigger
//! that keeps each row's term right on INSERT and UPDATE
//! (`pq.blind_index_trigger`, created by `pq.track_column`), the terms a
//! batch writes back with the values it re-encrypts or migrates, and the
//! retirement of old index keys once a job has moved every term.
use crate::{
    data::blind::{self, TermSpec},
    journal::events,
    lifecycle::{
        blind_column::BlindColumn,
        row_trigger, tracking,
    },
    platform::{catalog, errors::{PqError, PqResult}},
};
use pgrx::prelude::*;
use serde_json::json;

/// A new value and its term, or why not.
pub type WithTerm = Result<(Vec<u8>, Vec<u8>), String>;

/// Each value a batch made (an envelope under the active version) with its
/// term, or why not (never with the plaintext); `aads` pairs with `values`.
/// One switch to the extension's owner for the whole batch, like the
/// batch's other crypto: the job was allowed when it was queued.
pub fn with_terms<'a>(
    b: &BlindColumn,
    values: Vec<Result<Vec<u8>, String>>,
    aads: impl Iterator<Item = &'a [u8]>,
) -> PqResult<Vec<WithTerm>> {
    let n = blind::parse_normalization(&b.normalization)?;
    let spec = TermSpec::new(&b.context, b.bits)?;
    catalog::as_owner(|| {
        Ok(values
            .into_iter()
            .zip(aads)
            .map(|(value, aad)| {
                let value = value?;
                match blind::term_of_envelope(&value, aad, n, spec) {
                    Ok((_, term)) => Ok((value, term)),
                    Err(PqError::NotText) => Err("its value is not UTF-8 text, which the blind index normalisation needs".to_owned()),
                    Err(_) => Err("its blind index term could not be made".to_owned()),
                }
            })
            .collect())
    })
}

fn trigger_row<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> PqResult<Option<PgHeapTuple<'a, pgrx::AllocatedByRust>>> {
    let bad = |m: &str| PqError::InvalidParameter(m.into());
    let column = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.into_iter().next())
        .ok_or_else(|| bad("pq.blind_index_trigger takes the value column's name as its argument"))?;
    let relid = trigger.relid().map_err(|_| bad("pq.blind_index_trigger is a row trigger"))?;
    let Some(new) = trigger.new() else {
        return Err(bad("pq.blind_index_trigger is a BEFORE INSERT OR UPDATE row trigger"));
    };
    let mut tuple = new.into_owned();
    let (id, t) = row_trigger::cached_for_trigger(relid, &column, true)?.ok_or_else(|| PqError::Sql {
        code: b"55000",
        message: format!("column \"{}\" is not tracked with a blind index column", crate::platform::errors::echo(&column)),
        hint: Some("pq.track_column(table, column, ..., blind_index_column => ...)".into()),
    })?;
    let Some(b) = t.blind.as_ref() else { return Ok(Some(tuple)) };
    if row_trigger::writing_back_now(id) {
        return Ok(Some(tuple));
    }
    let value = row_trigger::bytes_of(&tuple, &t.column);
    let aad = match &t.aad_column {
        Some(ac) => row_trigger::bytes_of(&tuple, ac).unwrap_or_default(),
        None => Vec::new(),
    };
    let stored_term = row_trigger::bytes_of(&tuple, &b.column);
    // An UPDATE that changes neither the value, nor its AAD, nor the term
    // keeps the term: roles without the tenant's grant may update other columns.
    if let Some(old) = trigger.old() {
        let old_aad = match &t.aad_column {
            Some(ac) => row_trigger::bytes_of(&old, ac).unwrap_or_default(),
            None => Vec::new(),
        };
        if row_trigger::bytes_of(&old, &t.column) == value && old_aad == aad && row_trigger::bytes_of(&old, &b.column) == stored_term {
            return Ok(Some(tuple));
        }
    }
    let term = match value {
        None => None,
        Some(value) => {
            let n = blind::parse_normalization(&b.normalization)?;
            let (tenant, term) = blind::term_of_envelope(&value, &aad, n, TermSpec::new(&b.context, b.bits)?)?;
            let expected = row_trigger::row_tenant(&t, &tuple);
            if expected.is_some_and(|e| e != tenant) {
                return Err(bad("the value is an envelope of another tenant than the row's"));
            }
            Some(term)
        }
    };
    tuple.set_by_name(&b.column, term).map_err(|_| bad("the blind index term could not be stored"))?;
    Ok(Some(tuple))
}

/// After a re-encryption job of a column with a blind index completed:
/// retires the index keys of `tenants`' retired versions that no tracked
/// column holds ciphertexts of any more (their terms are gone with them).
/// Returns how many. Call as owner.
pub fn retire_unused(tenants: &[String], actor: &str) -> PqResult<usize> {
    let mut retired = 0;
    for tenant in tenants {
        let versions = catalog::rows(
            "SELECT version, kid FROM pq.tenant_key_versions
              WHERE tenant = $1 AND state = 'retired' AND blind_index_retired_at IS NULL ORDER BY version",
            &[tenant.as_str().into()],
            |r| Ok((r.get::<i32>(1)?.unwrap_or_default(), r.get::<Vec<u8>>(2)?.unwrap_or_default())),
        )?;
        for (version, kid) in versions {
            if tracking::usage(tenant, &kid)?.0 > 0 {
                continue;
            }
            catalog::write_one::<bool>(
                "UPDATE pq.tenant_key_versions SET blind_index_retired_at = now()
                  WHERE tenant = $1 AND version = $2 AND blind_index_retired_at IS NULL RETURNING true",
                &[tenant.as_str().into(), version.into()],
            )?;
            events::record("blind_index_key_retired", Some(tenant), Some(version), actor, Some("re-encryption job completed"), json!({ "forced": false }))?;
            retired += 1;
        }
    }
    Ok(retired)
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Keeps a tracked column's blind index column: `CREATE TRIGGER … BEFORE
    /// INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION
    /// pq.blind_index_trigger('col')`, made by `pq.track_column(…,
    /// blind_index_column => …)`. Sets the term of the row's value (the
    /// envelope's own version, the row's AAD), NULL for a NULL value.
    #[pg_trigger]
    pub fn blind_index_trigger<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByRust>>, pgrx::PgTriggerError> {
        Ok(trigger_row(trigger).or_raise())
    }
}
