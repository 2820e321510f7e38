//! Sealed envelopes: anyone with the recipient's public key can make one;
//! only the holder of the secret key opens it. The recipient key is
//! ML-KEM-768 (kind 'S') or X-Wing (kind 'X'); see [`crate::kem`].
//!
//! ```text
//! key = HKDF-SHA256(ikm = KEM shared secret, salt = "", info = label)
//! aad = header || user_aad          (header: everything before the ciphertext)
//! ```
//! `label` is "apg-pq v1 sealed" for every envelope a user makes, and
//! "apg-pq v1 dek" for the DEK a key version stores sealed to itself
//! ([`crate::seal_dek`]): the two can never be confused.
//!
//! A batch ([`seal_batch`]) shares one encapsulation among many values:
//! each item (kind 'B' or 'W') carries the same KEM ciphertext, its own
//! index, the batch's count and its own nonce, under the key with label
//! "apg-pq v1 batch"; its AAD is its header without the KEM ciphertext
//! (which the key already depends on) and the user's AAD. Every item is a
//! complete envelope that [`open`] opens by itself.
use crate::{
    aead,
    envelope::{AadHeader, SealedLayout},
    format::{BATCH_COUNT_OFFSET, BATCH_INDEX_OFFSET, INFO_BATCH, INFO_SEALED, KID_OFFSET, VERSION_1},
    kem::{Opener, Recipient, Suite},
    rng::{OsRandom, RandomSource},
    secret::{zeroed_vec, DerivedKey, Plaintext, SharedSecret},
    Error, SealedEnvelope,
};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the sealed envelope of an `n`-byte plaintext to a key of
/// `suite` (`n + 1134` for ML-KEM-768, `n + 1166` for X-Wing), or
/// [`Error::OutOfMemory`] if that overflows.
pub fn sealed_len_for(suite: Suite, n: usize) -> Result<usize, Error> {
    n.checked_add(SealedLayout::new(suite, false).overhead()).ok_or(Error::OutOfMemory)
}

/// [`sealed_len_for`] ML-KEM-768.
pub fn sealed_len(n: usize) -> Result<usize, Error> {
    sealed_len_for(Suite::MlKem768, n)
}

/// Length of a batch item carrying `n` bytes (`n + 1142` or `n + 1174`).
pub fn batch_item_len(suite: Suite, n: usize) -> Result<usize, Error> {
    n.checked_add(SealedLayout::new(suite, true).overhead()).ok_or(Error::OutOfMemory)
}

/// Seals `plaintext` to `recipient`, binding `user_aad`.
pub fn seal<'k>(recipient: impl Into<Recipient<'k>>, plaintext: &[u8], user_aad: &[u8]) -> Result<Vec<u8>, Error> {
    seal_from(&mut OsRandom, recipient.into(), INFO_SEALED, plaintext, user_aad)
}

/// Writes the sealed envelope of `plaintext` into `out`, which must be
/// exactly [`sealed_len_for`]`(suite, plaintext.len())` bytes long.
pub fn seal_to<'k>(
    recipient: impl Into<Recipient<'k>>,
    plaintext: &[u8],
    user_aad: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    seal_to_from(&mut OsRandom, recipient.into(), INFO_SEALED, plaintext, user_aad, out)
}

/// Opens a sealed envelope or batch item. A different recipient key, a
/// different AAD or any modified byte gives [`Error::DecryptionFailed`]
/// and nothing more.
pub fn open<'k>(key: impl Into<Opener<'k>>, envelope: &SealedEnvelope<'_>, user_aad: &[u8]) -> Result<Plaintext, Error> {
    let mut out = Plaintext::zeroed(envelope.plaintext_len())?;
    open_to(key, envelope, user_aad, out.expose_mut())?;
    Ok(out)
}

/// Opens a sealed envelope into `out`, which must be exactly
/// `envelope.plaintext_len()` bytes long; on failure `out` is wiped.
pub fn open_to<'k>(key: impl Into<Opener<'k>>, envelope: &SealedEnvelope<'_>, user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let label = if envelope.is_batch() { INFO_BATCH } else { INFO_SEALED };
    open_labeled_to(key.into(), envelope, label, user_aad, out)
}

/// Seals every value to `recipient` with one key encapsulation: item `i`
/// binds `aads[i]` (empty when `aads` is shorter). At most `u32::MAX` items.
pub fn seal_batch<'k, V: AsRef<[u8]>>(
    recipient: impl Into<Recipient<'k>>,
    values: &[V],
    aads: &[V],
) -> Result<Vec<Vec<u8>>, Error> {
    let mut batch = BatchSealer::new(recipient, values.len())?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| batch.seal(v.as_ref(), aads.get(i).map_or(&[][..], |a| a.as_ref())))
        .collect()
}

/// A batch being sealed: one encapsulation, then [`BatchSealer::seal`] per
/// value, in order. Items are numbered 0..count.
pub struct BatchSealer<'k> {
    recipient: Recipient<'k>,
    kem_ct: Vec<u8>,
    key: DerivedKey,
    next: u32,
    count: u32,
}

impl<'k> BatchSealer<'k> {
    /// A batch of `count` items to `recipient`.
    pub fn new(recipient: impl Into<Recipient<'k>>, count: usize) -> Result<Self, Error> {
        Self::new_from(&mut OsRandom, recipient.into(), count)
    }

    /// The shared KEM ciphertext (for the known-answer vectors).
    #[cfg(test)]
    pub(crate) fn kem_ciphertext(&self) -> &[u8] {
        &self.kem_ct
    }

    pub(crate) fn new_from(rng: &mut impl RandomSource, recipient: Recipient<'k>, count: usize) -> Result<Self, Error> {
        let count = u32::try_from(count).map_err(|_| Error::OutputLength)?;
        let (kem_ct, shared) = recipient.encapsulate(rng)?;
        let key = derive_key(&shared, INFO_BATCH)?;
        Ok(Self { recipient, kem_ct, key, next: 0, count })
    }

    /// The next item. Sealing more than `count` items is [`Error::OutputLength`].
    pub fn seal(&mut self, plaintext: &[u8], user_aad: &[u8]) -> Result<Vec<u8>, Error> {
        self.seal_from(&mut OsRandom, plaintext, user_aad)
    }

    pub(crate) fn seal_from(&mut self, rng: &mut impl RandomSource, plaintext: &[u8], user_aad: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = zeroed_vec(batch_item_len(self.recipient.suite(), plaintext.len())?)?;
        self.seal_to_from(rng, plaintext, user_aad, &mut out)?;
        Ok(out)
    }

    /// The next item into `out` ([`batch_item_len`] bytes).
    pub fn seal_to(&mut self, plaintext: &[u8], user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.seal_to_from(&mut OsRandom, plaintext, user_aad, out)
    }

    fn seal_to_from(&mut self, rng: &mut impl RandomSource, plaintext: &[u8], user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
        self.write_at(rng, self.next as usize, plaintext, user_aad, out)?;
        self.next += 1;
        Ok(())
    }

    /// Item `index` (each index at most once, in any order: a caller that
    /// skips a NULL value keeps the other items' positions) into `out`.
    pub fn seal_at(&mut self, index: usize, plaintext: &[u8], user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
        if index < self.next as usize {
            return Err(Error::OutputLength);
        }
        self.write_at(&mut OsRandom, index, plaintext, user_aad, out)?;
        self.next = index as u32 + 1;
        Ok(())
    }

    fn write_at(&self, rng: &mut impl RandomSource, index: usize, plaintext: &[u8], user_aad: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let index = u32::try_from(index).map_err(|_| Error::OutputLength)?;
        if index >= self.count {
            return Err(Error::OutputLength);
        }
        let layout = SealedLayout::new(self.recipient.suite(), true);
        write_item(rng, layout, self.recipient, &self.kem_ct, &self.key, Some((index, self.count)), plaintext, user_aad, out)
    }
}

pub(crate) fn open_labeled(
    key: Opener<'_>,
    envelope: &SealedEnvelope<'_>,
    label: &[u8],
    user_aad: &[u8],
) -> Result<Plaintext, Error> {
    let mut out = Plaintext::zeroed(envelope.plaintext_len())?;
    open_labeled_to(key, envelope, label, user_aad, out.expose_mut())?;
    Ok(out)
}

fn open_labeled_to(
    key: Opener<'_>,
    envelope: &SealedEnvelope<'_>,
    label: &[u8],
    user_aad: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    if out.len() != envelope.plaintext_len() {
        return Err(Error::OutputLength);
    }
    if envelope.kid() != key.kid() || envelope.suite() != key.suite() {
        return Err(Error::DecryptionFailed);
    }
    let shared = key.decapsulate(envelope.kem_ciphertext())?;
    let derived = derive_key(&shared, label)?;
    out.copy_from_slice(envelope.ciphertext());
    aead::open_in_place(&derived, envelope.nonce(), envelope.aad_header().as_slice(), user_aad, out, envelope.tag())
}

pub(crate) fn seal_from(
    rng: &mut impl RandomSource,
    recipient: Recipient<'_>,
    label: &[u8],
    plaintext: &[u8],
    user_aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut out = zeroed_vec(sealed_len_for(recipient.suite(), plaintext.len())?)?;
    seal_to_from(rng, recipient, label, plaintext, user_aad, &mut out)?;
    Ok(out)
}

/// One encapsulation, the key under `label`, one envelope into `out`.
fn seal_to_from(
    rng: &mut impl RandomSource,
    recipient: Recipient<'_>,
    label: &[u8],
    plaintext: &[u8],
    user_aad: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let (kem_ct, shared) = recipient.encapsulate(rng)?;
    let key = derive_key(&shared, label)?;
    let layout = SealedLayout::new(recipient.suite(), false);
    write_item(rng, layout, recipient, &kem_ct, &key, None, plaintext, user_aad, out)
}

/// Writes one envelope: header (with the batch position for a batch item),
/// ciphertext and tag, under `key` with a fresh nonce.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_item(
    rng: &mut impl RandomSource,
    layout: SealedLayout,
    recipient: Recipient<'_>,
    kem_ct: &[u8],
    key: &DerivedKey,
    position: Option<(u32, u32)>,
    plaintext: &[u8],
    user_aad: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    if Some(out.len()) != plaintext.len().checked_add(layout.overhead()) || kem_ct.len() != layout.suite.ciphertext_len() {
        return Err(Error::OutputLength);
    }
    let nonce = rng.array()?;
    let (header, rest) = out.split_at_mut(layout.header_len());
    header[..KID_OFFSET].copy_from_slice(&[VERSION_1, layout.kind]);
    header[KID_OFFSET..KID_OFFSET + 16].copy_from_slice(recipient.kid().as_bytes());
    if let Some((index, count)) = position {
        header[BATCH_INDEX_OFFSET..BATCH_COUNT_OFFSET].copy_from_slice(&index.to_be_bytes());
        header[BATCH_COUNT_OFFSET..BATCH_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
    }
    header[layout.kem_ct_offset()..layout.nonce_offset()].copy_from_slice(kem_ct);
    header[layout.nonce_offset()..].copy_from_slice(&nonce);
    let aad_header = if position.is_some() { AadHeader::batch(header, &nonce) } else { AadHeader::Whole(header) };
    let (body, tag) = rest.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    tag.copy_from_slice(&aead::seal_in_place(key, &nonce, aad_header.as_slice(), user_aad, body)?);
    Ok(())
}

pub(crate) fn derive_key(shared: &SharedSecret, label: &[u8]) -> Result<DerivedKey, Error> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&[]), shared.expose())
        .expand(label, &mut okm[..])
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(DerivedKey::from_array(&okm))
}
