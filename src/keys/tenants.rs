//! Tenants and their grants: `pq.create_tenant`, `pq.grant_tenant`,
//! `pq.revoke_tenant`, `pq.tenant_public_key`, `pq.tenant_verifying_key`,
//! and `pq.tenant_visible` (the filter of the `pq.tenant_keys` view).
use crate::{
    journal::events,
    keys::{access, versions},
    platform::{catalog, clock, errors::{echo, PqError, PqResult}},
};
use pqcore::{SignatureSuite, Suite};
use serde_json::json;
use pgrx::prelude::*;

pub(crate) fn check_tenant_name(tenant: &str) -> PqResult<()> {
    if !pqcore::tenant::valid_name(tenant) {
        return Err(PqError::InvalidParameter(format!(
            "tenant names are 1 to {} bytes without control characters",
            pqcore::tenant::MAX_NAME_LEN
        )));
    }
    Ok(())
}

/// When `tenant` was shredded, if it was. Call as owner.
pub fn shredded_at(tenant: &str) -> PqResult<Option<String>> {
    if !catalog::has_0_10_objects() {
        return Ok(None);
    }
    catalog::one::<String>("SELECT shredded_at::text FROM pq.tenants WHERE name = $1", &[tenant.into()])
}

/// The KEM suite named `kem` ('ml-kem-768', 'ml-kem-1024' or 'x-wing'), or 22023.
pub(crate) fn parse_kem(kem: &str) -> PqResult<Suite> {
    Suite::parse(kem).ok_or_else(|| {
        let names = Suite::ALL.map(|s| format!("'{}'", s.name())).join(", ");
        PqError::InvalidParameter(format!("kem must be one of {names}, not \"{}\"", echo(kem)))
    })
}

/// The signature suite named `signature` ('ml-dsa-65' or 'ml-dsa-87'), or 22023.
pub(crate) fn parse_signature(signature: &str) -> PqResult<SignatureSuite> {
    SignatureSuite::parse(signature).ok_or_else(|| {
        let names = SignatureSuite::ALL.map(|s| format!("'{}'", s.name())).join(", ");
        PqError::InvalidParameter(format!("signature must be one of {names}, not \"{}\"", echo(signature)))
    })
}

/// Refuses suites this database's schema cannot record yet (before ALTER
/// EXTENSION UPDATE to 0.11.0). Call as owner.
pub(crate) fn require_schema_for(suite: Suite, signature: SignatureSuite) -> PqResult<()> {
    let cnsa2 = suite == Suite::MlKem1024 || signature != SignatureSuite::MlDsa65;
    if cnsa2 && !catalog::pq_column_exists(c"tenants", c"signature") {
        return Err(PqError::InvalidParameter(
            "ML-KEM-1024 and ML-DSA-87 keys need ALTER EXTENSION apg_pqcrypto UPDATE to 0.11.0".into(),
        ));
    }
    Ok(())
}

fn create_tenant(tenant: &str, kem: &str, signature: &str) -> PqResult<(String, i32, Vec<u8>)> {
    crate::platform::roles::require_admin("create tenants")?;
    check_tenant_name(tenant)?;
    let suite = parse_kem(kem)?;
    let signature = parse_signature(signature)?;
    catalog::as_owner(|| {
        require_schema_for(suite, signature)?;
        // Before ALTER EXTENSION UPDATE to 0.6.0 there is no kem column (and only ML-KEM-768).
        let inserted = if catalog::pq_column_exists(c"tenants", c"signature") {
            catalog::write_one::<bool>(
                "INSERT INTO pq.tenants (name, created_by, kem, signature) VALUES ($1, session_user, $2, $3)
                 ON CONFLICT (name) DO NOTHING RETURNING true",
                &[tenant.into(), suite.name().into(), signature.name().into()],
            )?
        } else if catalog::pq_column_exists(c"tenants", c"kem") {
            catalog::write_one::<bool>(
                "INSERT INTO pq.tenants (name, created_by, kem) VALUES ($1, session_user, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING true",
                &[tenant.into(), suite.name().into()],
            )?
        } else if suite == Suite::MlKem768 {
            catalog::write_one::<bool>(
                "INSERT INTO pq.tenants (name, created_by) VALUES ($1, session_user)
                 ON CONFLICT (name) DO NOTHING RETURNING true",
                &[tenant.into()],
            )?
        } else {
            return Err(PqError::InvalidParameter("X-Wing tenants need ALTER EXTENSION apg_pqcrypto UPDATE to 0.6.0".into()));
        }
        .unwrap_or(false);
        if !inserted {
            return Err(PqError::DuplicateTenant(echo(tenant)));
        }
        let kid = versions::insert_version(tenant, 1, suite, signature)?;
        let details = json!({ "kid": kid.to_hex(), "kem": suite.name(), "signature": signature.name() });
        events::record("tenant_created", Some(tenant), Some(1), &events::session_user(), None, details)?;
        Ok((tenant.to_owned(), 1, kid.as_bytes().to_vec()))
    })
}

/// The OID of the role named exactly `name`, if there is one.
fn role_oid(name: &str) -> PqResult<Option<pg_sys::Oid>> {
    if name.len() >= pg_sys::NAMEDATALEN as usize {
        return Ok(None);
    }
    let name = std::ffi::CString::new(name)
        .map_err(|_| PqError::InvalidParameter("role names contain no NUL character".into()))?;
    // SAFETY: a syscache lookup; missing_ok returns InvalidOid for no such role.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    Ok((oid != pg_sys::Oid::INVALID).then_some(oid))
}

/// Grants are kept by role OID and the role's name at grant time; see `keys::access`.
fn set_grant(tenant: &str, role: &str, grant: bool) -> PqResult<bool> {
    crate::platform::roles::require_admin("grant tenant keys")?;
    access::require_visible(tenant)?;
    let oid = role_oid(role)?;
    catalog::as_owner(|| {
        let changed = match (grant, oid) {
            (true, None) => return Err(PqError::InvalidParameter(format!("role \"{}\" does not exist", echo(role)))),
            (true, Some(oid)) => catalog::write_one::<bool>(
                // The time is an argument, not now(): Citus takes only
                // immutable expressions in DO UPDATE on a reference table.
                "INSERT INTO pq.tenant_grants (tenant, role, role_name, granted_at) VALUES ($1, $2::pg_catalog.regrole, $3, $4)
                 ON CONFLICT (tenant, role) DO UPDATE SET role_name = EXCLUDED.role_name, granted_at = EXCLUDED.granted_at
                  WHERE tenant_grants.role_name <> EXCLUDED.role_name
                 RETURNING true",
                &[tenant.into(), oid.into(), role.into(), clock::transaction_start()?.into()],
            )?,
            // By OID, and by name for the grants of a role that was dropped.
            (false, oid) => catalog::write_one::<bool>(
                "WITH g AS (DELETE FROM pq.tenant_grants WHERE tenant = $1 AND (role = $2 OR role_name = $3)
                            RETURNING true)
                 SELECT EXISTS (SELECT 1 FROM g)",
                &[tenant.into(), oid.unwrap_or(pg_sys::Oid::INVALID).into(), role.into()],
            )?,
        };
        let changed = changed.unwrap_or(false);
        if changed {
            let event = if grant { "tenant_granted" } else { "tenant_revoked" };
            events::record(event, Some(tenant), None, &events::session_user(), None, json!({ "role": role }))?;
        }
        Ok(changed)
    })
}

fn public_key(tenant: &str, column: &str) -> PqResult<Vec<u8>> {
    access::require_visible(tenant)?;
    catalog::as_owner(|| {
        catalog::one::<Vec<u8>>(
            &format!("SELECT {column} FROM pq.tenant_key_versions WHERE tenant = $1 AND state = 'active'"),
            &[tenant.into()],
        )
    })?
    .ok_or_else(|| PqError::KeyState(format!("tenant \"{}\" has no active key version", echo(tenant))))
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Creates a tenant with key version 1: a KEM key of `kem`
    /// ('ml-kem-768', 'ml-kem-1024' or 'x-wing'), a signing key of
    /// `signature` ('ml-dsa-65' or 'ml-dsa-87'), and a DEK. Later versions
    /// keep the suite until a rotation names another. Its C symbol is new in
    /// 0.11.0 (`create_tenant_suite_wrapper`); a database still on an older
    /// script keeps calling the symbols below until ALTER EXTENSION UPDATE.
    #[pg_extern(volatile, strict, parallel_unsafe, name = "create_tenant")]
    pub fn create_tenant_suite(
        tenant: &str,
        kem: default!(&str, "'ml-kem-768'"),
        signature: default!(&str, "'ml-dsa-65'"),
    ) -> TableIterator<'static, (name!(tenant, String), name!(version, i32), name!(kid, Vec<u8>))> {
        TableIterator::once(super::create_tenant(tenant, kem, signature).or_raise())
    }

    /// `pq.create_tenant(text, text)` of the install scripts 0.6.0 to 0.10.0
    /// (no SQL of its own now).
    #[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
    pub fn create_tenant_kem(
        tenant: &str,
        kem: &str,
    ) -> TableIterator<'static, (name!(tenant, String), name!(version, i32), name!(kid, Vec<u8>))> {
        TableIterator::once(super::create_tenant(tenant, kem, SignatureSuite::MlDsa65.name()).or_raise())
    }

    /// `pq.create_tenant(text)` of the install scripts before 0.6.0 (no SQL
    /// of its own now): an ML-KEM-768 tenant.
    #[pg_extern(volatile, strict, parallel_unsafe, sql = false)]
    pub fn create_tenant(
        tenant: &str,
    ) -> TableIterator<'static, (name!(tenant, String), name!(version, i32), name!(kid, Vec<u8>))> {
        TableIterator::once(super::create_tenant(tenant, Suite::MlKem768.name(), SignatureSuite::MlDsa65.name()).or_raise())
    }

    /// Lets members of `role` use `tenant`'s keys. True if the grant is new.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn grant_tenant(tenant: &str, role: &str) -> bool {
        set_grant(tenant, role, true).or_raise()
    }

    /// Withdraws a grant. True if there was one.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn revoke_tenant(tenant: &str, role: &str) -> bool {
        set_grant(tenant, role, false).or_raise()
    }

    /// The encapsulation key of the tenant's active version: ML-KEM-768
    /// (1184 bytes) or ML-KEM-1024 (1568 bytes, any FIPS 203
    /// implementation), or X-Wing (1216 bytes).
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn tenant_public_key(tenant: &str) -> Vec<u8> {
        public_key(tenant, "public_key").or_raise()
    }

    /// The verifying key of the tenant's active version: ML-DSA-65 (1952
    /// bytes) or ML-DSA-87 (2592 bytes).
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn tenant_verifying_key(tenant: &str) -> Vec<u8> {
        public_key(tenant, "verifying_key").or_raise()
    }

    /// True if the calling role sees `tenant` (it may use it, or it is a
    /// member of pq_admin or a superuser). The row filter of `pq.tenant_keys`.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn tenant_visible(tenant: &str) -> bool {
        access::visible(tenant).or_raise()
    }
}
