//! The one parser: bytes become a typed envelope here, with every length
//! checked before any key is touched. Nothing downstream re-checks.
use crate::{
    format::*,
    kem::Suite,
    keys::{Kid, SignatureSuite},
    Error, Malformed,
};

/// Envelope kinds of format v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Made with a public key: 'S' (ML-KEM-768), 'L' (ML-KEM-1024), 'X'
    /// (X-Wing), and the items of a batch, 'B', 'M' and 'W'.
    /// [`SealedEnvelope`] tells which.
    Sealed,
    /// 'K': made by the server with a tenant DEK.
    Keyed,
    /// 'G' (ML-DSA-65) or 'H' (ML-DSA-87): a signature.
    Signature,
}

impl Kind {
    /// The name used in reports (`pq_inspect`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sealed => "sealed",
            Kind::Keyed => "keyed",
            Kind::Signature => "signature",
        }
    }
}

/// A well-formed v1 envelope.
#[derive(Clone, Copy, Debug)]
pub enum Envelope<'a> {
    /// Sealed to an ML-KEM-768 or X-Wing key, alone or as a batch item.
    Sealed(SealedEnvelope<'a>),
    /// Encrypted under a DEK.
    Keyed(KeyedEnvelope<'a>),
    /// A signature.
    Signature(SignatureEnvelope<'a>),
}

/// A sealed envelope: header then ciphertext and tag. The header is
/// version, kind, kid, (for a batch item: index and count,) KEM ciphertext
/// and nonce; its length depends on the kind byte.
#[derive(Clone, Copy, Debug)]
pub struct SealedEnvelope<'a> {
    bytes: &'a [u8],
    layout: SealedLayout,
}

/// Where the fields of a sealed envelope are, from its kind byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SealedLayout {
    pub(crate) kind: u8,
    pub(crate) suite: Suite,
    pub(crate) batch: bool,
}

impl SealedLayout {
    pub(crate) fn of(kind: u8) -> Option<Self> {
        let (suite, batch) = match kind {
            KIND_SEALED => (Suite::MlKem768, false),
            KIND_SEALED_1024 => (Suite::MlKem1024, false),
            KIND_SEALED_XWING => (Suite::XWing, false),
            KIND_BATCH => (Suite::MlKem768, true),
            KIND_BATCH_1024 => (Suite::MlKem1024, true),
            KIND_BATCH_XWING => (Suite::XWing, true),
            _ => return None,
        };
        Some(Self { kind, suite, batch })
    }

    pub(crate) fn new(suite: Suite, batch: bool) -> Self {
        let kind = match (suite, batch) {
            (Suite::MlKem768, false) => KIND_SEALED,
            (Suite::MlKem1024, false) => KIND_SEALED_1024,
            (Suite::XWing, false) => KIND_SEALED_XWING,
            (Suite::MlKem768, true) => KIND_BATCH,
            (Suite::MlKem1024, true) => KIND_BATCH_1024,
            (Suite::XWing, true) => KIND_BATCH_XWING,
        };
        Self { kind, suite, batch }
    }

    pub(crate) fn kem_ct_offset(self) -> usize {
        if self.batch { BATCH_KEM_CT_OFFSET } else { SEALED_KEM_CT_OFFSET }
    }

    pub(crate) fn nonce_offset(self) -> usize {
        self.kem_ct_offset() + self.suite.ciphertext_len()
    }

    pub(crate) fn header_len(self) -> usize {
        self.nonce_offset() + NONCE_LEN
    }

    /// Header and tag: 1134 ('S'), 1614 ('L'), 1166 ('X'), 1142 ('B'),
    /// 1622 ('M'), 1174 ('W').
    pub(crate) fn overhead(self) -> usize {
        self.header_len() + TAG_LEN
    }
}

/// A keyed envelope: header (46 bytes) then ciphertext and tag.
#[derive(Clone, Copy, Debug)]
pub struct KeyedEnvelope<'a>(&'a [u8]);

/// A signature envelope: exactly 3327 bytes.
#[derive(Clone, Copy, Debug)]
pub struct SignatureEnvelope<'a>(&'a [u8]);

impl<'a> Envelope<'a> {
    /// Checks version, kind and exact lengths. Anything else is [`Error::Malformed`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let (&version, rest) = bytes.split_first().ok_or(Malformed::Truncated)?;
        if version != VERSION_1 {
            return Err(Malformed::UnknownVersion(version).into());
        }
        let &kind = rest.first().ok_or(Malformed::Truncated)?;
        match kind {
            KIND_SEALED | KIND_SEALED_1024 | KIND_SEALED_XWING | KIND_BATCH | KIND_BATCH_1024 | KIND_BATCH_XWING => {
                let layout = SealedLayout::of(kind).ok_or(Malformed::UnknownKind(kind))?;
                if bytes.len() < layout.overhead() {
                    return Err(Malformed::Truncated.into());
                }
                let env = SealedEnvelope { bytes, layout };
                // FORMAT.md §3.3: 0 <= index < count, so count >= 1.
                if env.batch_position().is_some_and(|(index, count)| index >= count) {
                    return Err(Malformed::BatchPosition.into());
                }
                Ok(Envelope::Sealed(env))
            }
            KIND_KEYED if bytes.len() >= KEYED_OVERHEAD => {
                Ok(Envelope::Keyed(KeyedEnvelope(bytes)))
            }
            KIND_SIGNATURE if bytes.len() == SIGNATURE_ENVELOPE_LEN => {
                Ok(Envelope::Signature(SignatureEnvelope(bytes)))
            }
            KIND_SIGNATURE_87 if bytes.len() == SIGNATURE_87_ENVELOPE_LEN => {
                Ok(Envelope::Signature(SignatureEnvelope(bytes)))
            }
            KIND_KEYED => Err(Malformed::Truncated.into()),
            KIND_SIGNATURE | KIND_SIGNATURE_87 => Err(Malformed::WrongLength.into()),
            other => Err(Malformed::UnknownKind(other).into()),
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Envelope::Sealed(_) => Kind::Sealed,
            Envelope::Keyed(_) => Kind::Keyed,
            Envelope::Signature(_) => Kind::Signature,
        }
    }

    /// The key id it names.
    pub fn kid(&self) -> Kid {
        kid_at(self.bytes())
    }

    /// All bytes.
    pub fn bytes(&self) -> &'a [u8] {
        match self {
            Envelope::Sealed(e) => e.bytes,
            Envelope::Keyed(e) => e.0,
            Envelope::Signature(e) => e.0,
        }
    }

    /// Length of the plaintext it carries (0 for a signature).
    pub fn plaintext_len(&self) -> usize {
        match self {
            Envelope::Sealed(e) => e.plaintext_len(),
            Envelope::Keyed(e) => e.plaintext_len(),
            Envelope::Signature(_) => 0,
        }
    }

    /// A sealed envelope, or [`Malformed::WrongKind`].
    pub fn into_sealed(self) -> Result<SealedEnvelope<'a>, Error> {
        match self {
            Envelope::Sealed(e) => Ok(e),
            _ => Err(Malformed::WrongKind.into()),
        }
    }

    /// A keyed envelope, or [`Malformed::WrongKind`].
    pub fn into_keyed(self) -> Result<KeyedEnvelope<'a>, Error> {
        match self {
            Envelope::Keyed(e) => Ok(e),
            _ => Err(Malformed::WrongKind.into()),
        }
    }

    /// A signature envelope, or [`Malformed::WrongKind`].
    pub fn into_signature(self) -> Result<SignatureEnvelope<'a>, Error> {
        match self {
            Envelope::Signature(e) => Ok(e),
            _ => Err(Malformed::WrongKind.into()),
        }
    }
}

fn kid_at(bytes: &[u8]) -> Kid {
    let mut kid = [0u8; KID_LEN];
    kid.copy_from_slice(&bytes[KID_OFFSET..KID_OFFSET + KID_LEN]);
    Kid(kid)
}

fn array_at<const N: usize>(bytes: &[u8], offset: usize) -> &[u8; N] {
    // Lengths were checked by `Envelope::parse`; a failure here is a bug in
    // this module's offsets, which the tests would catch.
    bytes[offset..offset + N].try_into().expect("offsets checked at parse")
}

impl<'a> SealedEnvelope<'a> {
    /// Recipient key id.
    pub fn kid(&self) -> Kid {
        kid_at(self.bytes)
    }
    /// The key encapsulation suite (from the kind byte).
    pub fn suite(&self) -> Suite {
        self.layout.suite
    }
    /// For a batch item: its index and the batch's item count.
    pub fn batch_position(&self) -> Option<(u32, u32)> {
        self.layout.batch.then(|| {
            (
                u32::from_be_bytes(*array_at(self.bytes, BATCH_INDEX_OFFSET)),
                u32::from_be_bytes(*array_at(self.bytes, BATCH_COUNT_OFFSET)),
            )
        })
    }
    /// The kind byte: 'S', 'L', 'X', 'B', 'M' or 'W'.
    pub fn kind_byte(&self) -> u8 {
        self.layout.kind
    }
    pub(crate) fn is_batch(&self) -> bool {
        self.layout.batch
    }
    pub(crate) fn kem_ciphertext(&self) -> &'a [u8] {
        &self.bytes[self.layout.kem_ct_offset()..self.layout.nonce_offset()]
    }
    pub(crate) fn nonce(&self) -> &'a [u8; NONCE_LEN] {
        array_at(self.bytes, self.layout.nonce_offset())
    }
    /// Length of the plaintext it carries.
    pub fn plaintext_len(&self) -> usize {
        self.bytes.len() - self.layout.overhead()
    }
    /// What the AEAD authenticates before the user's AAD: the whole header
    /// of a single envelope; for a batch item, the header without the KEM
    /// ciphertext (bytes 0..26, then the nonce), which the batch key is
    /// derived from anyway (FORMAT.md §3.3).
    pub(crate) fn aad_header(&self) -> AadHeader<'a> {
        if self.layout.batch {
            AadHeader::batch(&self.bytes[..BATCH_KEM_CT_OFFSET], self.nonce())
        } else {
            AadHeader::Whole(&self.bytes[..self.layout.header_len()])
        }
    }
    pub(crate) fn ciphertext(&self) -> &'a [u8] {
        &self.bytes[self.layout.header_len()..self.bytes.len() - TAG_LEN]
    }
    pub(crate) fn tag(&self) -> &'a [u8; TAG_LEN] {
        array_at(self.bytes, self.bytes.len() - TAG_LEN)
    }
}

/// The header bytes a sealed envelope authenticates (see [`SealedEnvelope::aad_header`]).
pub(crate) enum AadHeader<'a> {
    Whole(&'a [u8]),
    Batch([u8; BATCH_KEM_CT_OFFSET + NONCE_LEN]),
}

impl AadHeader<'_> {
    /// `prefix` (version, kind, kid, index, count) then `nonce`.
    pub(crate) fn batch(prefix: &[u8], nonce: &[u8; NONCE_LEN]) -> Self {
        let mut out = [0u8; BATCH_KEM_CT_OFFSET + NONCE_LEN];
        out[..BATCH_KEM_CT_OFFSET].copy_from_slice(&prefix[..BATCH_KEM_CT_OFFSET]);
        out[BATCH_KEM_CT_OFFSET..].copy_from_slice(nonce);
        AadHeader::Batch(out)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            AadHeader::Whole(h) => h,
            AadHeader::Batch(h) => h,
        }
    }
}

impl<'a> KeyedEnvelope<'a> {
    /// Key id of the tenant key version whose DEK made it.
    pub fn kid(&self) -> Kid {
        kid_at(self.0)
    }
    pub(crate) fn salt(&self) -> &'a [u8; SALT_LEN] {
        array_at(self.0, KEYED_SALT_OFFSET)
    }
    pub(crate) fn nonce(&self) -> &'a [u8; NONCE_LEN] {
        array_at(self.0, KEYED_NONCE_OFFSET)
    }
    /// Length of the plaintext it carries.
    pub fn plaintext_len(&self) -> usize {
        self.0.len() - KEYED_OVERHEAD
    }
    pub(crate) fn header(&self) -> &'a [u8] {
        &self.0[..KEYED_HEADER_LEN]
    }
    pub(crate) fn ciphertext(&self) -> &'a [u8] {
        &self.0[KEYED_HEADER_LEN..self.0.len() - TAG_LEN]
    }
    pub(crate) fn tag(&self) -> &'a [u8; TAG_LEN] {
        array_at(self.0, self.0.len() - TAG_LEN)
    }
}

impl<'a> SignatureEnvelope<'a> {
    /// `kid(pk)` of the signing key.
    pub fn kid(&self) -> Kid {
        kid_at(self.0)
    }
    /// The signature's parameter set (from the kind byte: 'G' or 'H').
    pub fn suite(&self) -> SignatureSuite {
        if self.0[1] == KIND_SIGNATURE_87 { SignatureSuite::MlDsa87 } else { SignatureSuite::MlDsa65 }
    }
    /// The raw FIPS 204 signature.
    pub fn signature(&self) -> &'a [u8] {
        &self.0[SIGNATURE_OFFSET..]
    }
}
