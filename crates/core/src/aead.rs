//! ChaCha20-Poly1305 (RFC 8439) over `header || ciphertext || tag`, with
//! `aad = header || user_aad`, shared by the sealed and keyed envelopes.
use crate::{
    format::{NONCE_LEN, TAG_LEN},
    secret::{DerivedKey, Plaintext},
    Error,
};
use chacha20poly1305::{aead::AeadInOut, ChaCha20Poly1305, KeyInit};

fn cipher(key: &DerivedKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(key.expose().into())
}

fn full_aad(header: &[u8], user_aad: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + user_aad.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(user_aad);
    aad
}

/// `out` holds the header; appends the ciphertext and tag of `plaintext`.
pub(crate) fn seal_after_header(
    key: &DerivedKey,
    nonce: &[u8; NONCE_LEN],
    user_aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let header_len = out.len();
    let aad = full_aad(out, user_aad);
    out.reserve_exact(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_inout_detached(nonce.into(), &aad, (&mut out[header_len..]).into())
        // Only fails past 256 GiB per message, far beyond a bytea.
        .map_err(|_| Error::DecryptionFailed)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Opens `body = ciphertext || tag` (at least TAG_LEN bytes, checked at parse).
pub(crate) fn open(
    key: &DerivedKey,
    nonce: &[u8; NONCE_LEN],
    header: &[u8],
    user_aad: &[u8],
    body: &[u8],
) -> Result<Plaintext, Error> {
    let split = body.len().checked_sub(TAG_LEN).ok_or(Error::DecryptionFailed)?;
    let (ciphertext, tag) = body.split_at(split);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptionFailed)?;
    let aad = full_aad(header, user_aad);
    let mut buffer = Plaintext::new(ciphertext.to_vec());
    cipher(key)
        .decrypt_inout_detached(nonce.into(), &aad, buffer.expose_mut().into(), tag.into())
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(buffer)
}
