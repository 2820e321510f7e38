//! A tenant key version: KEM seed (ML-KEM-768, ML-KEM-1024 or X-Wing),
//! ML-DSA seed (ML-DSA-65 or ML-DSA-87), and a DEK sealed to the version's
//! own encapsulation key under the HKDF label "apg-pq v1 dek" (empty user
//! AAD), which no data-plane function uses. The sealed DEK's kind byte
//! ('S', 'L' or 'X') records the KEM suite; the verifying key's length
//! records the signature suite.
use crate::{
    format::INFO_DEK,
    kem::{Opener, Recipient, RecipientSecret, Suite},
    rng::{OsRandom, RandomSource},
    sealed, Dek, DsaSeed, Envelope, Error, KeyedCipher, Malformed, SignatureSuite, SigningKey, SuiteSeed,
};
use core::fmt;

/// The longest tenant name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// A tenant name: 1 to [`MAX_NAME_LEN`] bytes of UTF-8 without control
/// characters (names appear in messages, logs and the audit trail).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

/// Fresh key material for one tenant key version.
pub struct TenantKeys {
    /// Store wrapped under the MDK (64 bytes for ML-KEM, 32 for X-Wing).
    pub kem_seed: SuiteSeed,
    /// Store wrapped under the MDK.
    pub dsa_seed: DsaSeed,
    /// The KEM key (its kid is the version's kid).
    pub kem: RecipientSecret,
    /// The signing key.
    pub signing: SigningKey,
    /// The DEK in the clear, for immediate use.
    pub dek: Dek,
    /// The DEK sealed to `kem`'s public key; store as is.
    pub sealed_dek: Vec<u8>,
}

impl TenantKeys {
    /// Generates a new version's keys with a KEM key of `suite` and a
    /// signing key of `signature`.
    pub fn generate(suite: Suite, signature: SignatureSuite) -> Result<Self, Error> {
        Self::generate_from(&mut OsRandom, suite, signature)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource, suite: Suite, signature: SignatureSuite) -> Result<Self, Error> {
        let (kem_seed, kem) = RecipientSecret::generate_from(rng, suite)?;
        let (dsa_seed, signing) = SigningKey::generate_from(rng, signature)?;
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
pub fn seal_dek<'k>(public: impl Into<Recipient<'k>>, dek: &Dek) -> Result<Vec<u8>, Error> {
    sealed::seal_from(&mut OsRandom, public.into(), INFO_DEK, dek.expose(), b"")
}

/// The suite of a version from its stored sealed DEK ('S', 'L' or 'X').
pub fn dek_suite(sealed_dek: &[u8]) -> Result<Suite, Error> {
    let envelope = Envelope::parse(sealed_dek)?.into_sealed()?;
    if envelope.batch_position().is_some() {
        return Err(Malformed::WrongKind.into());
    }
    Ok(envelope.suite())
}

/// Opens a stored sealed DEK with its version's secret key.
pub fn open_dek<'k>(key: impl Into<Opener<'k>>, sealed_dek: &[u8]) -> Result<Dek, Error> {
    dek_suite(sealed_dek)?;
    let envelope = Envelope::parse(sealed_dek)?.into_sealed()?;
    let plaintext = sealed::open_labeled(key.into(), &envelope, INFO_DEK, b"")?;
    Dek::from_slice(plaintext.expose()).map_err(|_| Error::DecryptionFailed)
}
