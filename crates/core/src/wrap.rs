//! Wrapping of secrets (seeds, audit keys) under the master data key (MDK),
//! and of the MDK under a file provider's key-encryption key (KEK).
//! Not part of the public contract, but documented in docs/FORMAT.md §6:
//! a keyed envelope with the wrapping key's id as kid and
//!
//! ```text
//! user_aad = "apg-pq v1 wrap" || 0x00 || u32be(len(tenant)) || tenant
//!            || u32be(version) || u8(len(purpose)) || purpose
//! ```
//! Key ids are `SHA-256(label || key)[0..16]` ("apg-pq v1 mdk" for an MDK,
//! "apg-pq v1 kek" for a KEK), so whoever holds a key can check its id.
use crate::{
    format::{AAD_WRAP, LABEL_KEK_ID, LABEL_MDK_ID},
    keys::Kid,
    rng::{OsRandom, RandomSource},
    secret::Plaintext,
    Dek, Envelope, Error, KeyedCipher,
};
use core::fmt;

/// What a wrapped secret is for; part of the AAD, so a wrapped ML-DSA seed
/// cannot be passed off as an ML-KEM seed or moved to another tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// A tenant version's ML-KEM-768 seed.
    KemSeed,
    /// A tenant version's ML-KEM-1024 seed.
    Kem1024Seed,
    /// A tenant version's X-Wing seed.
    XWingSeed,
    /// A tenant version's ML-DSA-65 seed.
    DsaSeed,
    /// A tenant version's ML-DSA-87 seed.
    Dsa87Seed,
    /// The audit signing key's ML-DSA-65 seed.
    AuditSeed,
    /// The audit signing key's Ed25519 secret key (the classical hedge).
    AuditEd25519Seed,
    /// The audit signing key's ML-DSA-87 seed (suite `ml-dsa-87+ed25519`).
    AuditDsa87Seed,
    /// The audit signing key's SLH-DSA seed, `SK.seed ‖ SK.prf ‖ PK.seed`
    /// (suite `slh-dsa+ml-dsa-65`).
    AuditSlhDsaSeed,
    /// The master data key itself, wrapped by a provider's key (the tenant
    /// field then holds the MDK id in hex).
    MasterDataKey,
    /// A tenant's classical (pgcrypto) key: a pgp_sym passphrase, a
    /// pgp_pub secret key or a raw cipher key; the version field holds the
    /// key's id in pq.classical_keys.
    ClassicalKey,
    /// The passphrase of a pgp_pub secret key.
    ClassicalPassphrase,
    /// The KEM seed of a one-time recovery key (an escrow recovery request
    /// or a restore), wrapped under a provider-wrapped key; the tenant field
    /// holds the key's kid in hex.
    RecoveryKeySeed,
}

impl Purpose {
    /// The purpose of a tenant version's KEM seed of `suite`.
    pub fn kem_seed(suite: crate::Suite) -> Self {
        match suite {
            crate::Suite::MlKem768 => Purpose::KemSeed,
            crate::Suite::MlKem1024 => Purpose::Kem1024Seed,
            crate::Suite::XWing => Purpose::XWingSeed,
        }
    }

    /// The purpose of a tenant version's signature seed of `suite`.
    pub fn dsa_seed(suite: crate::SignatureSuite) -> Self {
        match suite {
            crate::SignatureSuite::MlDsa65 => Purpose::DsaSeed,
            crate::SignatureSuite::MlDsa87 => Purpose::Dsa87Seed,
        }
    }

    /// The bytes that go into the AAD.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::KemSeed => "ml-kem-768 seed",
            Purpose::Kem1024Seed => "ml-kem-1024 seed",
            Purpose::XWingSeed => "x-wing seed",
            Purpose::DsaSeed => "ml-dsa-65 seed",
            Purpose::Dsa87Seed => "ml-dsa-87 seed",
            Purpose::AuditSeed => "audit ml-dsa-65 seed",
            Purpose::AuditEd25519Seed => "audit ed25519 seed",
            Purpose::AuditDsa87Seed => "audit ml-dsa-87 seed",
            Purpose::AuditSlhDsaSeed => "audit slh-dsa seed",
            Purpose::MasterDataKey => "master data key",
            Purpose::ClassicalKey => "classical key",
            Purpose::ClassicalPassphrase => "classical key passphrase",
            Purpose::RecoveryKeySeed => "recovery key seed",
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

impl<'a> WrapContext<'a> {
    /// The place of an MDK wrapped by a KEK: the MDK id in lower-case hex
    /// as tenant, version 0.
    pub fn master_data_key(mdk_id_hex: &'a str) -> Self {
        WrapContext { tenant: mdk_id_hex, version: 0, purpose: Purpose::MasterDataKey }
    }
}

/// `SHA-256("apg-pq v1 mdk" || mdk)[0..16]`.
pub fn mdk_id(mdk: &Dek) -> Kid {
    Kid::of(Plaintext::concat(LABEL_MDK_ID, mdk.expose()).expose())
}

/// `SHA-256("apg-pq v1 kek" || kek)[0..16]`.
pub fn kek_id(kek: &Dek) -> Kid {
    Kid::of(Plaintext::concat(LABEL_KEK_ID, kek.expose()).expose())
}

/// A 32-byte wrapping key with its id: the master data key, or a file
/// provider's key-encryption key.
pub struct MasterDataKey {
    cipher: KeyedCipher,
}

impl MasterDataKey {
    /// The key `key` known by `id`.
    pub fn new(id: Kid, key: &Dek) -> Self {
        Self { cipher: KeyedCipher::new(key, id) }
    }

    /// The master data key `mdk`, known by [`mdk_id`].
    pub fn from_mdk(mdk: &Dek) -> Self {
        Self::new(mdk_id(mdk), mdk)
    }

    /// A key-encryption key, known by [`kek_id`].
    pub fn from_kek(kek: &Dek) -> Self {
        Self::new(kek_id(kek), kek)
    }

    /// Wraps the master data key `mdk` under this key (a KEK).
    pub fn wrap_mdk(&self, mdk: &Dek) -> Result<Vec<u8>, Error> {
        self.wrap_mdk_from(&mut OsRandom, mdk)
    }

    pub(crate) fn wrap_mdk_from(&self, rng: &mut impl RandomSource, mdk: &Dek) -> Result<Vec<u8>, Error> {
        let id = mdk_id(mdk).to_hex();
        self.wrap_from(rng, mdk.expose(), &WrapContext::master_data_key(&id))
    }

    /// Unwraps the master data key known as `id`, and checks that the key
    /// has that id. Anything else is [`Error::DecryptionFailed`].
    pub fn unwrap_mdk(&self, wrapped: &[u8], id: Kid) -> Result<Dek, Error> {
        let hex = id.to_hex();
        let plain = self.unwrap(wrapped, &WrapContext::master_data_key(&hex))?;
        let mdk = Dek::from_slice(plain.expose()).map_err(|_| Error::DecryptionFailed)?;
        if mdk_id(&mdk) != id {
            return Err(Error::DecryptionFailed);
        }
        Ok(mdk)
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
