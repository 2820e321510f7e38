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

/// Calls `f` with `header || user_aad`, on the stack when it is short (the
/// keyed envelope of a config value), so the per-value path does not allocate.
fn with_full_aad<R>(header: &[u8], user_aad: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const STACK: usize = 192;
    let len = header.len() + user_aad.len();
    if len <= STACK {
        let mut buf = [0u8; STACK];
        buf[..header.len()].copy_from_slice(header);
        buf[header.len()..len].copy_from_slice(user_aad);
        f(&buf[..len])
    } else {
        f(&[header, user_aad].concat())
    }
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
    out.reserve_exact(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let (header, body) = out.split_at_mut(header_len);
    let tag = with_full_aad(header, user_aad, |aad| {
        cipher(key).encrypt_inout_detached(nonce.into(), aad, body.into())
    })
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
    let mut buffer = Plaintext::new(ciphertext.to_vec());
    with_full_aad(header, user_aad, |aad| {
        cipher(key).decrypt_inout_detached(nonce.into(), aad, buffer.expose_mut().into(), tag.into())
    })
    .map_err(|_| Error::DecryptionFailed)?;
    Ok(buffer)
}
