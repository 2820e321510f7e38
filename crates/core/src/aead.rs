//! ChaCha20-Poly1305 (RFC 8439) over `header || ciphertext || tag`, with
//! `aad = header || user_aad`, shared by the sealed and keyed envelopes.
//!
//! Both directions work in place on a buffer the caller provides, so that a
//! caller (the extension) can encrypt or decrypt straight into memory it
//! returns, and no intermediate copy of a plaintext is left behind.
use crate::{
    format::{NONCE_LEN, TAG_LEN},
    secret::DerivedKey,
    Error,
};
use chacha20poly1305::{aead::AeadInOut, ChaCha20Poly1305, KeyInit};
use zeroize::Zeroize;

fn cipher(key: &DerivedKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(key.expose().into())
}

/// Calls `f` with `header || user_aad`, on the stack when it is short (the
/// keyed envelope of a config value), so the per-value path does not
/// allocate. A long AAD is allocated fallibly: its size is the caller's.
fn with_full_aad<R>(header: &[u8], user_aad: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<R, Error> {
    const STACK: usize = 192;
    let len = header.len().checked_add(user_aad.len()).ok_or(Error::OutOfMemory)?;
    if len <= STACK {
        let mut buf = [0u8; STACK];
        buf[..header.len()].copy_from_slice(header);
        buf[header.len()..len].copy_from_slice(user_aad);
        return Ok(f(&buf[..len]));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| Error::OutOfMemory)?;
    buf.extend_from_slice(header);
    buf.extend_from_slice(user_aad);
    Ok(f(&buf))
}

/// Encrypts `body` (the plaintext) in place and returns the tag.
pub(crate) fn seal_in_place(
    key: &DerivedKey,
    nonce: &[u8; NONCE_LEN],
    header: &[u8],
    user_aad: &[u8],
    body: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    let tag = with_full_aad(header, user_aad, |aad| {
        cipher(key).encrypt_inout_detached(nonce.into(), aad, body.into())
    })?
    // Only fails past 256 GiB per message, far beyond a bytea.
    .map_err(|_| Error::OutOfMemory)?;
    Ok(tag.into())
}

/// Decrypts `body` (the ciphertext) in place after checking `tag`. On any
/// failure `body` is wiped, so it never holds unauthenticated plaintext.
pub(crate) fn open_in_place(
    key: &DerivedKey,
    nonce: &[u8; NONCE_LEN],
    header: &[u8],
    user_aad: &[u8],
    body: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), Error> {
    let result = with_full_aad(header, user_aad, |aad| {
        cipher(key).decrypt_inout_detached(nonce.into(), aad, (&mut *body).into(), tag.into())
    });
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => {
            body.zeroize();
            Err(Error::DecryptionFailed)
        }
        Err(e) => {
            body.zeroize();
            Err(e)
        }
    }
}
