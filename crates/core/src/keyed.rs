//! Keyed envelopes ('K'): compact server-side encryption under a DEK.
//!
//! ```text
//! key = HKDF-Expand-SHA256(PRK = DEK, info = "apg-pq v1 keyed" || salt, L = 32)
//! aad = envelope[0..46) || user_aad
//! ```
//! The DEK is uniformly random, so HKDF-Extract is skipped (RFC 5869 §3.3)
//! and the HMAC state keyed by the DEK is built once per [`KeyedCipher`].
use crate::{
    aead,
    format::{INFO_KEYED, KEYED_HEADER_LEN, KIND_KEYED, SALT_LEN, TAG_LEN, VERSION_1},
    keys::Kid,
    rng::{OsRandom, RandomSource},
    secret::{DerivedKey, Plaintext},
    Dek, Error, KeyedEnvelope,
};
use core::fmt;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// A DEK ready for use, with the kid of the key version it belongs to.
pub struct KeyedCipher {
    prk: Hkdf<Sha256>,
    kid: Kid,
}

impl KeyedCipher {
    /// Keys the HMAC state with `dek` once; cache the result.
    pub fn new(dek: &Dek, kid: Kid) -> Self {
        // A 32-byte PRK is never shorter than the hash output, so this holds.
        let prk = Hkdf::<Sha256>::from_prk(dek.expose()).unwrap_or_else(|_| Hkdf::new(None, dek.expose()));
        Self { prk, kid }
    }

    /// The kid written into every envelope.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    /// A keyed envelope of `plaintext` bound to `user_aad`, with a fresh salt and nonce.
    pub fn encrypt(&self, plaintext: &[u8], user_aad: &[u8]) -> Result<Vec<u8>, Error> {
        self.encrypt_from(&mut OsRandom, plaintext, user_aad)
    }

    /// Opens a keyed envelope made with this DEK. A different DEK or AAD, or
    /// any modified byte, gives [`Error::DecryptionFailed`].
    pub fn decrypt(&self, envelope: &KeyedEnvelope<'_>, user_aad: &[u8]) -> Result<Plaintext, Error> {
        if envelope.kid() != self.kid {
            return Err(Error::DecryptionFailed);
        }
        let derived = self.derive_key(envelope.salt())?;
        aead::open(&derived, envelope.nonce(), envelope.header(), user_aad, envelope.body())
    }

    pub(crate) fn encrypt_from(
        &self,
        rng: &mut impl RandomSource,
        plaintext: &[u8],
        user_aad: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let salt = rng.array::<SALT_LEN>()?;
        let nonce = rng.array()?;
        let derived = self.derive_key(&salt)?;
        let mut out = Vec::with_capacity(KEYED_HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&[VERSION_1, KIND_KEYED]);
        out.extend_from_slice(self.kid.as_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        aead::seal_after_header(&derived, &nonce, user_aad, plaintext, &mut out)?;
        Ok(out)
    }

    pub(crate) fn derive_key(&self, salt: &[u8; SALT_LEN]) -> Result<DerivedKey, Error> {
        let mut okm = Zeroizing::new([0u8; 32]);
        self.prk
            .expand_multi_info(&[INFO_KEYED, salt], &mut okm[..])
            .map_err(|_| Error::DecryptionFailed)?;
        Ok(DerivedKey::from_array(&okm))
    }
}

impl fmt::Debug for KeyedCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyedCipher({}, <redacted>)", self.kid.to_hex())
    }
}
