//! Sealed envelopes ('S'): anyone with the recipient's ML-KEM-768 public key
//! can make one; only the holder of the secret key opens it.
//!
//! ```text
//! key = HKDF-SHA256(ikm = ML-KEM shared secret, salt = "", info = "apg-pq v1 sealed")
//! aad = envelope[0..1118) || user_aad
//! ```
use crate::{
    aead,
    backend::{ActiveKem, KemBackend},
    format::{INFO_SEALED, KIND_SEALED, SEALED_HEADER_LEN, TAG_LEN, VERSION_1},
    rng::{OsRandom, RandomSource},
    secret::{DerivedKey, Plaintext, SharedSecret},
    Error, KemPublicKey, KemSecretKey, SealedEnvelope,
};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Seals `plaintext` to `recipient`, binding `user_aad`.
pub fn seal(recipient: &KemPublicKey, plaintext: &[u8], user_aad: &[u8]) -> Result<Vec<u8>, Error> {
    seal_from(&mut OsRandom, recipient, plaintext, user_aad)
}

/// Opens a sealed envelope. A different recipient key, a different AAD or
/// any modified byte gives [`Error::DecryptionFailed`] and nothing more.
pub fn open(key: &KemSecretKey, envelope: &SealedEnvelope<'_>, user_aad: &[u8]) -> Result<Plaintext, Error> {
    if envelope.kid() != key.kid() {
        return Err(Error::DecryptionFailed);
    }
    let shared = ActiveKem::decapsulate(key.parsed(), envelope.kem_ciphertext());
    let derived = derive_key(&shared)?;
    aead::open(&derived, envelope.nonce(), envelope.header(), user_aad, envelope.body())
}

pub(crate) fn seal_from(
    rng: &mut impl RandomSource,
    recipient: &KemPublicKey,
    plaintext: &[u8],
    user_aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let m = Zeroizing::new(rng.array::<32>()?);
    let nonce = rng.array()?;
    let (kem_ct, shared) = ActiveKem::encapsulate(recipient.parsed(), &m);
    let derived = derive_key(&shared)?;
    let mut out = Vec::with_capacity(SEALED_HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&[VERSION_1, KIND_SEALED]);
    out.extend_from_slice(recipient.kid().as_bytes());
    out.extend_from_slice(&kem_ct[..]);
    out.extend_from_slice(&nonce);
    aead::seal_after_header(&derived, &nonce, user_aad, plaintext, &mut out)?;
    Ok(out)
}

pub(crate) fn derive_key(shared: &SharedSecret) -> Result<DerivedKey, Error> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&[]), shared.expose())
        .expand(INFO_SEALED, &mut okm[..])
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(DerivedKey::from_array(&okm))
}
