//! The other secrets under the master data key: tenants' classical
//! (pgcrypto) keys and the system audit key (ML-DSA-65 and Ed25519), each
//! wrapped for its purpose (FORMAT.md §6), unwrapped in locked memory, and
//! wrapped again when the master key rotates.
use crate::{
    keys::master::{active_mdk_for_write, mdk, rewrap_secret, stored_kid, unwrapping},
    platform::{
        catalog,
        errors::{PqError, PqResult},
    },
};
use pqcore::{
    audit::{AuditKey, AuditSuite},
    DsaSeed, Kid, MasterDataKey, Purpose, WrapContext,
};

/// A tenant's classical (pgcrypto) key, unwrapped; wiped when dropped.
pub struct ClassicalSecret {
    pub id: i32,
    /// pgp_sym, pgp_pub or raw.
    pub kind: String,
    /// pgcrypto options (pgp kinds) or the raw cipher's settings.
    pub options: String,
    pub key: zeroize::Zeroizing<Vec<u8>>,
    /// The passphrase of a pgp_pub secret key, if it has one.
    pub passphrase: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// The public key matching a pgp_pub secret key, for dual-mode writes.
    pub public_key: Option<Vec<u8>>,
}

/// Stores a classical key of `tenant`, wrapped under the active MDK, and
/// returns its id. Call as owner.
pub fn insert_classical(
    tenant: &str,
    kind: &str,
    options: &str,
    key: &[u8],
    passphrase: Option<&[u8]>,
    public_key: Option<&[u8]>,
) -> PqResult<i32> {
    let mdk = active_mdk_for_write()?;
    let id = catalog::write_one::<i64>("SELECT nextval(pg_catalog.pg_get_serial_sequence('pq.classical_keys', 'id'))", &[])?
        .ok_or_else(|| PqError::internal("no id for a classical key", String::new()))? as i32;
    let context = |purpose| WrapContext { tenant, version: id as u32, purpose };
    let wrapped_key = mdk.wrap(key, &context(Purpose::ClassicalKey))?;
    let wrapped_passphrase = passphrase.map(|p| mdk.wrap(p, &context(Purpose::ClassicalPassphrase))).transpose()?;
    catalog::write_one::<bool>(
        "INSERT INTO pq.classical_keys (id, tenant, kind, options, mdk_id, wrapped_key, wrapped_passphrase, public_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING true",
        &[
            id.into(),
            tenant.into(),
            kind.into(),
            options.into(),
            mdk.id().as_bytes().as_slice().into(),
            wrapped_key.as_slice().into(),
            wrapped_passphrase.as_deref().into(),
            public_key.into(),
        ],
    )?;
    Ok(id)
}

/// The classical keys of `tenant`, newest first, unwrapped. Call as owner.
pub fn classical_keys(tenant: &str) -> PqResult<Vec<ClassicalSecret>> {
    type Row = (i32, String, String, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
    let rows: Vec<Row> = catalog::connect(|client| {
        let rows = client.select(
            "SELECT id, kind, options, mdk_id, wrapped_key, wrapped_passphrase, public_key FROM pq.classical_keys
              WHERE tenant = $1 ORDER BY id DESC",
            None,
            &[tenant.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                row.get::<Vec<u8>>(5)?.unwrap_or_default(),
                row.get::<Vec<u8>>(6)?,
                row.get::<Vec<u8>>(7)?,
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, kind, options, mdk_id, wrapped_key, wrapped_passphrase, public_key) in rows {
        let mdk = mdk(stored_kid(&mdk_id)?)?;
        let damaged = || PqError::internal("a stored classical key is damaged", format!("tenant {tenant} classical key {id}"));
        let unwrap = |wrapped: &[u8], purpose| {
            mdk.unwrap(wrapped, &WrapContext { tenant, version: id as u32, purpose })
                .map(|p| zeroize::Zeroizing::new(p.expose().to_vec()))
                .map_err(|_| damaged())
        };
        // In locked, undumpable memory, like the tenant keys.
        let (key, passphrase) = unwrapping(|| {
            Ok((unwrap(&wrapped_key, Purpose::ClassicalKey)?, wrapped_passphrase.map(|w| unwrap(&w, Purpose::ClassicalPassphrase)).transpose()?))
        })?;
        out.push(ClassicalSecret { id, kind, options, key, passphrase, public_key });
    }
    Ok(out)
}

/// Rewraps every classical key under `new` (master key rotation). Call as owner.
pub fn rewrap_classical(new: &MasterDataKey) -> PqResult<()> {
    if !catalog::pq_table_exists(c"classical_keys") {
        return Ok(());
    }
    /// id, tenant, mdk_id, wrapped key, wrapped passphrase.
    type Row = (i32, String, Vec<u8>, Vec<u8>, Option<Vec<u8>>);
    let rows: Vec<Row> = catalog::connect(|client| {
        let rows = client.select(
            "SELECT id, tenant, mdk_id, wrapped_key, wrapped_passphrase FROM pq.classical_keys ORDER BY id",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((
                row.get::<i32>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                row.get::<Vec<u8>>(5)?,
            ));
        }
        Ok::<_, PqError>(out)
    })?;
    for (id, tenant, old_id, key, passphrase) in rows {
        let from = mdk(stored_kid(&old_id)?)?;
        let (key, passphrase) = unwrapping(|| {
            let rewrap = |wrapped: &[u8], purpose| {
                rewrap_secret(&from, new, wrapped, &WrapContext { tenant: &tenant, version: id as u32, purpose }, || {
                    ("a stored classical key is damaged", format!("tenant {tenant} classical key {id}"))
                })
            };
            Ok((rewrap(&key, Purpose::ClassicalKey)?, passphrase.map(|p| rewrap(&p, Purpose::ClassicalPassphrase)).transpose()?))
        })?;
        catalog::write_one::<bool>(
            "UPDATE pq.classical_keys SET wrapped_key = $2, wrapped_passphrase = $3, mdk_id = $4 WHERE id = $1 RETURNING true",
            &[id.into(), key.as_slice().into(), passphrase.as_deref().into(), new.id().as_bytes().as_slice().into()],
        )?;
    }
    Ok(())
}

/// The columns of an audit key row: kid, mdk_id, algorithm, wrapped ML-DSA
/// seed, wrapped hedge seed (Ed25519 or SLH-DSA). Before ALTER EXTENSION
/// UPDATE to 0.11.0 every key is ML-DSA-65 + Ed25519.
fn audit_key_columns() -> &'static str {
    if catalog::pq_column_exists(c"audit_keys", c"algorithm") {
        "kid, mdk_id, algorithm, wrapped_ml_dsa_seed, coalesce(wrapped_ed25519_seed, wrapped_slh_dsa_seed)"
    } else {
        "kid, mdk_id, 'ml-dsa-65+ed25519', wrapped_ml_dsa_seed, wrapped_ed25519_seed"
    }
}

/// A stored audit key: kid, mdk_id, suite, wrapped ML-DSA seed, wrapped hedge seed.
type AuditKeyRow = (Vec<u8>, Vec<u8>, AuditSuite, Vec<u8>, Vec<u8>);

fn audit_key_row(row: &pgrx::spi::SpiTupleTable<'_>) -> PqResult<AuditKeyRow> {
    let name = row.get::<String>(3)?.unwrap_or_default();
    let suite = AuditSuite::parse(&name)
        .ok_or_else(|| PqError::internal("the stored audit key is damaged", format!("unknown algorithm {name}")))?;
    Ok((
        row.get::<Vec<u8>>(1)?.unwrap_or_default(),
        row.get::<Vec<u8>>(2)?.unwrap_or_default(),
        suite,
        row.get::<Vec<u8>>(4)?.unwrap_or_default(),
        row.get::<Vec<u8>>(5)?.unwrap_or_default(),
    ))
}

/// The wrap purposes of an audit key's two seeds.
fn audit_purposes(suite: AuditSuite) -> (Purpose, Purpose) {
    let dsa = if suite.ml_dsa() == pqcore::SignatureSuite::MlDsa87 { Purpose::AuditDsa87Seed } else { Purpose::AuditSeed };
    (dsa, if suite.slh_dsa() { Purpose::AuditSlhDsaSeed } else { Purpose::AuditEd25519Seed })
}

/// The audit suite `apg_pqcrypto.audit_signature` names, or 22023.
pub fn configured_audit_suite() -> PqResult<AuditSuite> {
    let name = crate::platform::gucs::audit_signature();
    AuditSuite::parse(&name).ok_or_else(|| {
        let names = AuditSuite::ALL.map(|s| format!("'{}'", s.name())).join(", ");
        PqError::InvalidParameter(format!(
            "apg_pqcrypto.audit_signature must be one of {names}, not \"{}\"",
            crate::platform::errors::echo(&name)
        ))
    })
}

/// The active system audit key, created and wrapped under the active MDK
/// on first use, and replaced (the old one retired, still verifying) when
/// `apg_pqcrypto.audit_signature` names other algorithms than it has.
/// Call as owner; writes when it creates.
pub fn audit_key() -> PqResult<(Kid, AuditKey)> {
    let wanted = configured_audit_suite()?;
    if wanted != AuditSuite::MlDsa65Ed25519 && !catalog::pq_column_exists(c"audit_keys", c"algorithm") {
        return Err(PqError::InvalidParameter(format!(
            "apg_pqcrypto.audit_signature = '{}' needs ALTER EXTENSION apg_pqcrypto UPDATE to 0.11.0",
            wanted.name()
        )));
    }
    let active = || {
        catalog::write_row(&format!("SELECT {} FROM pq.audit_keys WHERE state = 'active'", audit_key_columns()), &[], audit_key_row)
    };
    let mut row = active()?;
    if row.as_ref().is_none_or(|r| r.2 != wanted) {
        // Made or replaced by one transaction at a time (the worker's
        // checkpoint and a caller's may both see the setting change).
        catalog::run("LOCK TABLE pq.audit_keys IN SHARE ROW EXCLUSIVE MODE", &[])?;
        row = active()?;
        if row.as_ref().is_some_and(|r| r.2 != wanted) {
            catalog::write_one::<bool>("UPDATE pq.audit_keys SET state = 'retired' WHERE state = 'active' RETURNING true", &[])?;
            row = None;
        }
    }
    let Some((kid, mdk_id, suite, wrapped_dsa, wrapped_hedge)) = row else {
        return create_audit_key(wanted);
    };
    let kid = stored_kid(&kid)?;
    let from = mdk(stored_kid(&mdk_id)?)?;
    let damaged = || PqError::internal("the stored audit key is damaged", format!("audit key {}", kid.to_hex()));
    let (dsa_purpose, hedge_purpose) = audit_purposes(suite);
    let key = unwrapping(|| {
        let dsa = from.unwrap(&wrapped_dsa, &audit_context(dsa_purpose)).map_err(|_| damaged())?;
        let hedge = from.unwrap(&wrapped_hedge, &audit_context(hedge_purpose)).map_err(|_| damaged())?;
        Ok(AuditKey::from_seeds(suite, &DsaSeed::from_slice(dsa.expose())?, hedge.expose())?)
    })?;
    if key.verifying_key()?.kid() != kid {
        return Err(damaged());
    }
    Ok((kid, key))
}

/// Audit keys are system keys: no tenant, version 0.
fn audit_context(purpose: Purpose) -> WrapContext<'static> {
    WrapContext { tenant: "", version: 0, purpose }
}

fn create_audit_key(suite: AuditSuite) -> PqResult<(Kid, AuditKey)> {
    let mdk = active_mdk_for_write()?;
    let (dsa_purpose, hedge_purpose) = audit_purposes(suite);
    let (key, wrapped_dsa, wrapped_hedge) = unwrapping(|| {
        let (dsa_seed, hedge_seed, key) = AuditKey::generate(suite)?;
        let wrapped_dsa = mdk.wrap(dsa_seed.expose(), &audit_context(dsa_purpose))?;
        let wrapped_hedge = mdk.wrap(&hedge_seed[..], &audit_context(hedge_purpose))?;
        Ok((key, wrapped_dsa, wrapped_hedge))
    })?;
    let public = key.verifying_key()?;
    let (ed, slh) = (public.ed25519(), public.slh_dsa());
    let (ed_wrapped, slh_wrapped) = if suite.slh_dsa() { (None, Some(wrapped_hedge)) } else { (Some(wrapped_hedge), None) };
    let mut args = vec![
        public.kid().as_bytes().as_slice().into(),
        public.ml_dsa().as_bytes().into(),
        ed.as_ref().map(|k| &k[..]).into(),
        mdk.id().as_bytes().as_slice().into(),
        wrapped_dsa.as_slice().into(),
        ed_wrapped.as_deref().into(),
    ];
    // 0.11.0's columns; before the update only the default suite is made.
    let (columns, values) = if catalog::pq_column_exists(c"audit_keys", c"algorithm") {
        args.extend([suite.name().into(), slh.as_ref().map(|k| &k[..]).into(), slh_wrapped.as_deref().into()]);
        (", algorithm, slh_dsa_public_key, wrapped_slh_dsa_seed", ", $7, $8, $9")
    } else {
        ("", "")
    };
    catalog::write_one::<bool>(
        &format!(
            "INSERT INTO pq.audit_keys (kid, ml_dsa_public_key, ed25519_public_key, mdk_id, wrapped_ml_dsa_seed, wrapped_ed25519_seed{columns})
             VALUES ($1, $2, $3, $4, $5, $6{values}) RETURNING true"
        ),
        &args,
    )?;
    Ok((public.kid(), key))
}

/// Rewraps the audit keys' seeds under a new MDK (master key rotation).
pub fn rewrap_audit_keys(new: &MasterDataKey) -> PqResult<()> {
    if !catalog::pq_table_exists(c"audit_keys") {
        return Ok(());
    }
    let rows: Vec<AuditKeyRow> = catalog::write_rows(
        &format!("SELECT {} FROM pq.audit_keys ORDER BY created_at", audit_key_columns()),
        &[],
        audit_key_row,
    )?;
    for (kid, old_id, suite, dsa, hedge) in rows {
        let from = mdk(stored_kid(&old_id)?)?;
        let (dsa_purpose, hedge_purpose) = audit_purposes(suite);
        let (dsa, hedge) = unwrapping(|| {
            let rewrap = |wrapped: &[u8], purpose| {
                rewrap_secret(&from, new, wrapped, &audit_context(purpose), || {
                    ("the stored audit key is damaged", format!("audit key {}", hex::encode(&kid)))
                })
            };
            Ok((rewrap(&dsa, dsa_purpose)?, rewrap(&hedge, hedge_purpose)?))
        })?;
        let column = if suite.slh_dsa() { "wrapped_slh_dsa_seed" } else { "wrapped_ed25519_seed" };
        catalog::write_one::<bool>(
            &format!("UPDATE pq.audit_keys SET wrapped_ml_dsa_seed = $2, {column} = $3, mdk_id = $4 WHERE kid = $1 RETURNING true"),
            &[kid.as_slice().into(), dsa.as_slice().into(), hedge.as_slice().into(), new.id().as_bytes().as_slice().into()],
        )?;
    }
    Ok(())
}
