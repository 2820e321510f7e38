//! Wrapping of secrets (seeds, audit keys) under the master data key (MDK).
//! Not part of the public contract, but documented in docs/FORMAT.md §6:
//! a keyed envelope with the MDK id as kid and
//!
//! ```text
//! user_aad = "apg-pq v1 wrap" || 0x00 || u32be(len(tenant)) || tenant
//!            || u32be(version) || u8(len(purpose)) || purpose
//! ```
use crate::{
    rng::{OsRandom, RandomSource},
    format::AAD_WRAP, keys::Kid, secret::Plaintext, Dek, Envelope, Error, KeyedCipher,
};
use core::fmt;

/// What a wrapped secret is for; part of the AAD, so a wrapped ML-DSA seed
/// cannot be passed off as an ML-KEM seed or moved to another tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// A tenant version's ML-KEM-768 seed.
    KemSeed,
    /// A tenant version's ML-DSA-65 seed.
    DsaSeed,
    /// The audit signing key's ML-DSA-65 seed.
    AuditSeed,
    /// The master data key itself, wrapped by a provider's key (the tenant
    /// field then holds the MDK id in hex).
    MasterDataKey,
}

impl Purpose {
    /// The bytes that go into the AAD.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::KemSeed => "ml-kem-768 seed",
            Purpose::DsaSeed => "ml-dsa-65 seed",
            Purpose::AuditSeed => "audit ml-dsa-65 seed",
            Purpose::MasterDataKey => "master data key",
        }
    }
}

/// Names the place of a wrapped secret.
#[derive(Clone, Copy, Debug)]
pub struct WrapContext<'a> {
    /// Tenant name (empty for system keys).
    pub tenant: &'a str,
    /// Key version.
    pub version: u32,
    /// What the secret is.
    pub purpose: Purpose,
}

impl WrapContext<'_> {
    pub(crate) fn aad(&self) -> Vec<u8> {
        let purpose = self.purpose.label().as_bytes();
        let mut aad = Vec::with_capacity(AAD_WRAP.len() + 10 + self.tenant.len() + purpose.len());
        aad.extend_from_slice(AAD_WRAP);
        aad.push(0);
        aad.extend_from_slice(&(self.tenant.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.tenant.as_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad.push(purpose.len() as u8);
        aad.extend_from_slice(purpose);
        aad
    }
}

/// The 32-byte master data key with its id.
pub struct MasterDataKey {
    cipher: KeyedCipher,
}

impl MasterDataKey {
    /// The MDK `key` known by `id` (a random 16-byte id stored beside it).
    pub fn new(id: Kid, key: &Dek) -> Self {
        Self { cipher: KeyedCipher::new(key, id) }
    }

    /// The MDK id.
    pub fn id(&self) -> Kid {
        self.cipher.kid()
    }

    /// Wraps `secret` for the place `context` names.
    pub fn wrap(&self, secret: &[u8], context: &WrapContext<'_>) -> Result<Vec<u8>, Error> {
        self.wrap_from(&mut OsRandom, secret, context)
    }

    pub(crate) fn wrap_from(
        &self,
        rng: &mut impl RandomSource,
        secret: &[u8],
        context: &WrapContext<'_>,
    ) -> Result<Vec<u8>, Error> {
        self.cipher.encrypt_from(rng, secret, &context.aad())
    }

    /// Unwraps a secret; fails with [`Error::DecryptionFailed`] under another
    /// MDK or for another place.
    pub fn unwrap(&self, wrapped: &[u8], context: &WrapContext<'_>) -> Result<Plaintext, Error> {
        let envelope = Envelope::parse(wrapped)?.into_keyed()?;
        self.cipher.decrypt(&envelope, &context.aad())
    }
}

impl fmt::Debug for MasterDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterDataKey({}, <redacted>)", self.id().to_hex())
    }
}
