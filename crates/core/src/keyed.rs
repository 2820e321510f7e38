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
    format::{
        INFO_KEYED, KEYED_HEADER_LEN, KEYED_NONCE_OFFSET, KEYED_OVERHEAD, KEYED_SALT_OFFSET, KID_OFFSET,
        KIND_KEYED, SALT_LEN, VERSION_1,
    },
    keys::Kid,
    rng::{OsRandom, RandomSource},
    secret::{zeroed_vec, DerivedKey, Plaintext},
    Dek, Error, KeyedEnvelope,
};

/// Length of the keyed envelope of an `n`-byte plaintext (`n + 62`), or
/// [`Error::OutOfMemory`] if that overflows.
pub fn keyed_len(n: usize) -> Result<usize, Error> {
    n.checked_add(KEYED_OVERHEAD).ok_or(Error::OutOfMemory)
}
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

    /// Writes the keyed envelope of `plaintext` into `out`, which must be
    /// exactly [`keyed_len`]`(plaintext.len())` bytes long.
    pub fn encrypt_to(&self, plaintext: &[u8], user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.encrypt_to_from(&mut OsRandom, plaintext, user_aad, out)
    }

    /// Opens a keyed envelope made with this DEK. A different DEK or AAD, or
    /// any modified byte, gives [`Error::DecryptionFailed`].
    pub fn decrypt(&self, envelope: &KeyedEnvelope<'_>, user_aad: &[u8]) -> Result<Plaintext, Error> {
        let mut out = Plaintext::zeroed(envelope.plaintext_len())?;
        self.decrypt_to(envelope, user_aad, out.expose_mut())?;
        Ok(out)
    }

    /// Opens a keyed envelope into `out`, which must be exactly
    /// `envelope.plaintext_len()` bytes long; on failure `out` is wiped.
    pub fn decrypt_to(&self, envelope: &KeyedEnvelope<'_>, user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if out.len() != envelope.plaintext_len() {
            return Err(Error::OutputLength);
        }
        if envelope.kid() != self.kid {
            return Err(Error::DecryptionFailed);
        }
        let derived = self.derive_key(envelope.salt())?;
        out.copy_from_slice(envelope.ciphertext());
        aead::open_in_place(&derived, envelope.nonce(), envelope.header(), user_aad, out, envelope.tag())
    }

    pub(crate) fn encrypt_from(
        &self,
        rng: &mut impl RandomSource,
        plaintext: &[u8],
        user_aad: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut out = zeroed_vec(keyed_len(plaintext.len())?)?;
        self.encrypt_to_from(rng, plaintext, user_aad, &mut out)?;
        Ok(out)
    }

    pub(crate) fn encrypt_to_from(
        &self,
        rng: &mut impl RandomSource,
        plaintext: &[u8],
        user_aad: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        if Some(out.len()) != plaintext.len().checked_add(KEYED_OVERHEAD) {
            return Err(Error::OutputLength);
        }
        let salt = rng.array::<SALT_LEN>()?;
        let nonce = rng.array()?;
        let derived = self.derive_key(&salt)?;
        let (header, rest) = out.split_at_mut(KEYED_HEADER_LEN);
        header[..2].copy_from_slice(&[VERSION_1, KIND_KEYED]);
        header[KID_OFFSET..KEYED_SALT_OFFSET].copy_from_slice(self.kid.as_bytes());
        header[KEYED_SALT_OFFSET..KEYED_NONCE_OFFSET].copy_from_slice(&salt);
        header[KEYED_NONCE_OFFSET..].copy_from_slice(&nonce);
        let (body, tag) = rest.split_at_mut(plaintext.len());
        body.copy_from_slice(plaintext);
        tag.copy_from_slice(&aead::seal_in_place(&derived, &nonce, header, user_aad, body)?);
        Ok(())
    }

    /// HKDF-Expand under the DEK with `info` given in parts (another
    /// label's key, such as a blind index key; `out` at most 8160 bytes).
    pub(crate) fn expand(&self, info: &[&[u8]], out: &mut [u8]) {
        // Fails only for outputs longer than 255 hash lengths; callers ask for 32.
        if self.prk.expand_multi_info(info, out).is_err() {
            out.fill(0);
        }
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
