//! A tenant key version: ML-KEM-768 seed, ML-DSA-65 seed, and a DEK sealed
//! to the version's own encapsulation key under the HKDF label
//! "apg-pq v1 dek" (empty user AAD), which no data-plane function uses.
use crate::{
    format::INFO_DEK,
    rng::{OsRandom, RandomSource},
    sealed, Dek, DsaSeed, Envelope, Error, KemPublicKey, KemSecretKey, KemSeed, KeyedCipher,
    SigningKey,
};
use core::fmt;

/// Fresh key material for one tenant key version.
pub struct TenantKeys {
    /// Store wrapped under the MDK.
    pub kem_seed: KemSeed,
    /// Store wrapped under the MDK.
    pub dsa_seed: DsaSeed,
    /// The ML-KEM key (its kid is the version's kid).
    pub kem: KemSecretKey,
    /// The signing key.
    pub signing: SigningKey,
    /// The DEK in the clear, for immediate use.
    pub dek: Dek,
    /// The DEK sealed to `kem`'s public key; store as is.
    pub sealed_dek: Vec<u8>,
}

impl TenantKeys {
    /// Generates a new version's keys.
    pub fn generate() -> Result<Self, Error> {
        Self::generate_from(&mut OsRandom)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource) -> Result<Self, Error> {
        let (kem_seed, kem) = KemSecretKey::generate_from(rng)?;
        let (dsa_seed, signing) = SigningKey::generate_from(rng)?;
        let dek = Dek::generate_from(rng)?;
        let sealed_dek = sealed::seal_from(rng, kem.public_key(), INFO_DEK, dek.expose(), b"")?;
        Ok(Self { kem_seed, dsa_seed, kem, signing, dek, sealed_dek })
    }

    /// The keyed cipher of this version's DEK.
    pub fn keyed_cipher(&self) -> KeyedCipher {
        KeyedCipher::new(&self.dek, self.kem.kid())
    }
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantKeys({}, <redacted>)", self.kem.kid().to_hex())
    }
}

/// Seals a DEK to its version's own public key.
pub fn seal_dek(public: &KemPublicKey, dek: &Dek) -> Result<Vec<u8>, Error> {
    sealed::seal_from(&mut OsRandom, public, INFO_DEK, dek.expose(), b"")
}

/// Opens a stored sealed DEK with its version's secret key.
pub fn open_dek(key: &KemSecretKey, sealed_dek: &[u8]) -> Result<Dek, Error> {
    let envelope = Envelope::parse(sealed_dek)?.into_sealed()?;
    let plaintext = sealed::open_labeled(key, &envelope, INFO_DEK, b"")?;
    Dek::from_slice(plaintext.expose()).map_err(|_| Error::DecryptionFailed)
}
