//! `pq.verify_keys`: every stored tenant key version checked end to end,
//! without the cache and without using any key for data, through the
//! unwrapping the key loader uses (`versions::open_stored`,
//! `versions::open_signing`): its seeds unwrap under their master data
//! key, the KEM seed gives the stored kid and public key, the sealed DEK
//! opens with it, and the ML-DSA seed gives the stored verifying key and
//! signing kid; a destroyed version holds no secret any more. The worker
//! runs it every `apg_pqcrypto.verify_keys_interval` and logs what fails.
//! Problems are described without any key material.
use crate::{
    keys::{
        access,
        master::{mdk, stored_kid, unwrapping},
        versions::{open_signing, open_stored},
    },
    platform::{
        catalog, roles,
        errors::{OrRaise, PqResult},
    },
};
use pgrx::prelude::*;
use pqcore::Kid;

/// One version's result.
pub struct VersionCheck {
    pub tenant: String,
    pub version: i32,
    pub state: String,
    /// None when every check passed.
    pub problem: Option<String>,
}

/// A stored version as `pq.tenant_key_versions` holds it.
struct Stored {
    tenant: String,
    version: i32,
    state: String,
    kid: Vec<u8>,
    signing_kid: Vec<u8>,
    mdk_id: Vec<u8>,
    wrapped_kem_seed: Option<Vec<u8>>,
    wrapped_dsa_seed: Option<Vec<u8>>,
    sealed_dek: Option<Vec<u8>>,
    public_key: Vec<u8>,
    verifying_key: Vec<u8>,
}

/// What is wrong with `v`, if anything. Call as owner.
fn check(v: &Stored) -> Option<String> {
    if v.state == "destroyed" {
        let left = v.wrapped_kem_seed.is_some() || v.wrapped_dsa_seed.is_some() || v.sealed_dek.is_some();
        return left.then(|| "a destroyed version still holds wrapped secrets".to_owned());
    }
    let (Some(kem_seed), Some(dsa_seed), Some(sealed_dek)) = (&v.wrapped_kem_seed, &v.wrapped_dsa_seed, &v.sealed_dek) else {
        return Some("a secret of the version is missing".to_owned());
    };
    let mdk_id = match stored_kid(&v.mdk_id) {
        Ok(id) => id,
        Err(_) => return Some("its master data key id is malformed".to_owned()),
    };
    let mdk = match mdk(mdk_id) {
        Ok(m) => m,
        Err(_) => return Some("its master data key could not be unwrapped (see the server log)".to_owned()),
    };
    let Ok(kid) = Kid::from_slice(&v.kid) else { return Some("its kid is malformed".to_owned()) };
    let result = unwrapping(|| {
        let fail = |m: &str| Ok(Some(m.to_owned()));
        let (kem, _dek) = match open_stored(&mdk, &v.tenant, v.version, kid, kem_seed, sealed_dek) {
            Ok(opened) => opened,
            Err(what) => return fail(what),
        };
        if kem.public_key().as_bytes() != &v.public_key[..] {
            return fail("the KEM seed does not give the stored public key");
        }
        let Some(suite) = pqcore::SignatureSuite::of_public_key_len(v.verifying_key.len()) else {
            return fail("the stored verifying key has no ML-DSA length");
        };
        let signing = match open_signing(&mdk, &v.tenant, v.version, dsa_seed, suite) {
            Ok(key) => key,
            Err(what) => return fail(what),
        };
        let vk = signing.verifying_key().as_bytes();
        if vk[..] != v.verifying_key[..] {
            return fail("the ML-DSA seed does not give the stored verifying key");
        }
        if Kid::of(&vk[..]).as_bytes()[..] != v.signing_kid[..] {
            return fail("the stored signing kid is not the verifying key's");
        }
        Ok(None)
    });
    result.unwrap_or_else(|_| Some("the version could not be checked".to_owned()))
}

/// Checks every stored version (of `tenant`, when given), in tenant and
/// version order. Call as owner.
pub fn verify_stored(tenant: Option<&str>) -> PqResult<Vec<VersionCheck>> {
    let stored = catalog::rows(
        "SELECT tenant, version, state, kid, signing_kid, mdk_id, wrapped_kem_seed, wrapped_dsa_seed, sealed_dek,
                public_key, verifying_key
           FROM pq.tenant_key_versions WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, version",
        &[tenant.into()],
        |r| {
            Ok(Stored {
                tenant: r.get::<String>(1)?.unwrap_or_default(),
                version: r.get::<i32>(2)?.unwrap_or_default(),
                state: r.get::<String>(3)?.unwrap_or_default(),
                kid: r.get::<Vec<u8>>(4)?.unwrap_or_default(),
                signing_kid: r.get::<Vec<u8>>(5)?.unwrap_or_default(),
                mdk_id: r.get::<Vec<u8>>(6)?.unwrap_or_default(),
                wrapped_kem_seed: r.get::<Vec<u8>>(7)?,
                wrapped_dsa_seed: r.get::<Vec<u8>>(8)?,
                sealed_dek: r.get::<Vec<u8>>(9)?,
                public_key: r.get::<Vec<u8>>(10)?.unwrap_or_default(),
                verifying_key: r.get::<Vec<u8>>(11)?.unwrap_or_default(),
            })
        },
    )?;
    Ok(stored
        .iter()
        .map(|v| VersionCheck { tenant: v.tenant.clone(), version: v.version, state: v.state.clone(), problem: check(v) })
        .collect())
}

/// A row of `pq.verify_keys`: tenant, version, state, ok, problem.
type Row = (String, i32, String, bool, Option<String>);

fn verify_keys(tenant: Option<&str>) -> PqResult<Vec<Row>> {
    roles::require_admin("verify keys")?;
    if let Some(t) = tenant {
        access::require_visible(t)?;
    }
    let checks = catalog::as_owner(|| verify_stored(tenant))?;
    Ok(checks.into_iter().map(|c| (c.tenant, c.version, c.state, c.problem.is_none(), c.problem)).collect())
}

#[pg_schema]
pub mod pq {
    use super::*;

    /// Every stored key version (of `tenant`, when given) checked end to
    /// end: its seeds unwrap, they give the stored kids and public keys,
    /// and its DEK opens. One row per version; `problem` says what failed,
    /// never with key material. pq_admin.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn verify_keys(
        tenant: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(tenant, String),
            name!(version, i32),
            name!(state, String),
            name!(ok, bool),
            name!(problem, Option<String>),
        ),
    > {
        TableIterator::new(super::verify_keys(tenant).or_raise())
    }
}
