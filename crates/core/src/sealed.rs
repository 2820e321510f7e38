//! Sealed envelopes ('S'): anyone with the recipient's ML-KEM-768 public key
//! can make one; only the holder of the secret key opens it.
//!
//! ```text
//! key = HKDF-SHA256(ikm = ML-KEM shared secret, salt = "", info = label)
//! aad = envelope[0..1118) || user_aad
//! ```
//! `label` is "apg-pq v1 sealed" for every envelope a user makes, and
//! "apg-pq v1 dek" for the DEK a key version stores sealed to itself
//! ([`crate::seal_dek`]): the two can never be confused.
use crate::{
    aead,
    backend::{ActiveKem, KemBackend},
    format::{
        INFO_SEALED, KEM_CIPHERTEXT_LEN, KID_OFFSET, KIND_SEALED, SEALED_HEADER_LEN,
        SEALED_KEM_CT_OFFSET, SEALED_NONCE_OFFSET, SEALED_OVERHEAD, VERSION_1,
    },
    rng::{OsRandom, RandomSource},
    secret::{zeroed_vec, DerivedKey, Plaintext, SharedSecret},
    Error, KemPublicKey, KemSecretKey, SealedEnvelope,
};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the sealed envelope of an `n`-byte plaintext (`n + 1134`), or
/// [`Error::OutOfMemory`] if that overflows.
pub fn sealed_len(n: usize) -> Result<usize, Error> {
    n.checked_add(SEALED_OVERHEAD).ok_or(Error::OutOfMemory)
}

/// Seals `plaintext` to `recipient`, binding `user_aad`.
pub fn seal(recipient: &KemPublicKey, plaintext: &[u8], user_aad: &[u8]) -> Result<Vec<u8>, Error> {
    seal_from(&mut OsRandom, recipient, INFO_SEALED, plaintext, user_aad)
}

/// Writes the sealed envelope of `plaintext` into `out`, which must be
/// exactly [`sealed_len`]`(plaintext.len())` bytes long.
pub fn seal_to(recipient: &KemPublicKey, plaintext: &[u8], user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
    seal_to_from(&mut OsRandom, recipient, INFO_SEALED, plaintext, user_aad, out)
}

/// Opens a sealed envelope. A different recipient key, a different AAD or
/// any modified byte gives [`Error::DecryptionFailed`] and nothing more.
pub fn open(key: &KemSecretKey, envelope: &SealedEnvelope<'_>, user_aad: &[u8]) -> Result<Plaintext, Error> {
    open_labeled(key, envelope, INFO_SEALED, user_aad)
}

/// Opens a sealed envelope into `out`, which must be exactly
/// `envelope.plaintext_len()` bytes long; on failure `out` is wiped.
pub fn open_to(key: &KemSecretKey, envelope: &SealedEnvelope<'_>, user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
    open_labeled_to(key, envelope, INFO_SEALED, user_aad, out)
}

pub(crate) fn open_labeled(
    key: &KemSecretKey,
    envelope: &SealedEnvelope<'_>,
    label: &[u8],
    user_aad: &[u8],
) -> Result<Plaintext, Error> {
    let mut out = Plaintext::zeroed(envelope.plaintext_len())?;
    open_labeled_to(key, envelope, label, user_aad, out.expose_mut())?;
    Ok(out)
}

fn open_labeled_to(
    key: &KemSecretKey,
    envelope: &SealedEnvelope<'_>,
    label: &[u8],
    user_aad: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    if out.len() != envelope.plaintext_len() {
        return Err(Error::OutputLength);
    }
    if envelope.kid() != key.kid() {
        return Err(Error::DecryptionFailed);
    }
    let shared = ActiveKem::decapsulate(key.parsed(), envelope.kem_ciphertext());
    let derived = derive_key(&shared, label)?;
    out.copy_from_slice(envelope.ciphertext());
    aead::open_in_place(&derived, envelope.nonce(), envelope.header(), user_aad, out, envelope.tag())
}

pub(crate) fn seal_from(
    rng: &mut impl RandomSource,
    recipient: &KemPublicKey,
    label: &[u8],
    plaintext: &[u8],
    user_aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut out = zeroed_vec(sealed_len(plaintext.len())?)?;
    seal_to_from(rng, recipient, label, plaintext, user_aad, &mut out)?;
    Ok(out)
}

fn seal_to_from(
    rng: &mut impl RandomSource,
    recipient: &KemPublicKey,
    label: &[u8],
    plaintext: &[u8],
    user_aad: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    if Some(out.len()) != plaintext.len().checked_add(SEALED_OVERHEAD) {
        return Err(Error::OutputLength);
    }
    let m = Zeroizing::new(rng.array::<32>()?);
    let nonce = rng.array()?;
    let (kem_ct, shared) = ActiveKem::encapsulate(recipient.parsed(), &m);
    let derived = derive_key(&shared, label)?;
    let (header, rest) = out.split_at_mut(SEALED_HEADER_LEN);
    header[..KID_OFFSET].copy_from_slice(&[VERSION_1, KIND_SEALED]);
    header[KID_OFFSET..SEALED_KEM_CT_OFFSET].copy_from_slice(recipient.kid().as_bytes());
    header[SEALED_KEM_CT_OFFSET..SEALED_NONCE_OFFSET].copy_from_slice(&kem_ct[..KEM_CIPHERTEXT_LEN]);
    header[SEALED_NONCE_OFFSET..].copy_from_slice(&nonce);
    let (body, tag) = rest.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    tag.copy_from_slice(&aead::seal_in_place(&derived, &nonce, header, user_aad, body)?);
    Ok(())
}

pub(crate) fn derive_key(shared: &SharedSecret, label: &[u8]) -> Result<DerivedKey, Error> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&[]), shared.expose())
        .expand(label, &mut okm[..])
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(DerivedKey::from_array(&okm))
}
