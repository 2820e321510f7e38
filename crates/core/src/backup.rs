//! Disaster-recovery key backup bundles (FORMAT.md §15): every secret a
//! restore needs, with a JSON description of tenants, versions and
//! (optionally) policies and grants, sealed to a recovery officer's key.
//!
//! ```text
//! bundle  = 0x01 ‖ 'D' ‖ kid(16) ‖ backup_id(16) ‖ u64be(created, Unix seconds)      (42 bytes)
//!           ‖ sealed envelope ('S' or 'X') of the payload to the key named by kid,
//!             user AAD = "apg-pq v1 key backup" ‖ bundle[0..42)
//! payload = 0x01 ‖ u32be(len(doc)) ‖ doc (UTF-8 JSON, no secret) ‖ u32be(n) ‖ n × secret
//! secret  = u8 kind ‖ ref(16) ‖ u16be(len) ‖ bytes
//! ```
//! A recovery officer re-seals a bundle to a cluster's restore key offline
//! ([`reseal`]): the header keeps its backup id and time, the kid changes.
use crate::{
    format::INFO_SEALED,
    kem::{Opener, Recipient},
    keys::Kid,
    rng::{OsRandom, RandomSource},
    sealed, Envelope, Error, Malformed,
};
use core::fmt;
use zeroize::Zeroizing;

/// Version byte of the bundles this code writes and reads.
pub const BUNDLE_VERSION: u8 = 0x01;
/// Kind byte of a key backup bundle ('D').
pub const KIND_KEY_BACKUP: u8 = 0x44;
/// AAD label of a bundle's envelope.
pub const LABEL_BACKUP: &[u8] = b"apg-pq v1 key backup";
/// Length of a bundle's header.
pub const BUNDLE_HEADER_LEN: usize = 42;
/// Version byte of the payload.
pub const PAYLOAD_VERSION: u8 = 0x01;

/// What a secret entry holds; `ref` names its owner in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SecretKind {
    /// The KEM seed of the version whose kid is `ref` (64 bytes ML-KEM-768, 32 X-Wing).
    KemSeed = 1,
    /// The ML-DSA-65 seed of the version whose kid is `ref` (32 bytes).
    DsaSeed = 2,
    /// The key of the classical key whose `ref` is given in the document.
    ClassicalKey = 3,
    /// The passphrase of that classical key.
    ClassicalPassphrase = 4,
}

impl SecretKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => SecretKind::KemSeed,
            2 => SecretKind::DsaSeed,
            3 => SecretKind::ClassicalKey,
            4 => SecretKind::ClassicalPassphrase,
            _ => return None,
        })
    }
}

/// One secret of a payload.
pub struct Secret {
    pub kind: SecretKind,
    pub reference: [u8; 16],
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?}, {}, <redacted>)", self.kind, hex16(&self.reference))
    }
}

fn hex16(b: &[u8; 16]) -> String {
    Kid(*b).to_hex()
}

/// A bundle's plaintext: the document and the secrets.
#[derive(Debug, Default)]
pub struct Payload {
    /// UTF-8 JSON (FORMAT.md §15.2); never holds a secret.
    pub doc: String,
    pub secrets: Vec<Secret>,
}

impl Payload {
    /// The payload's bytes, in memory that is wiped when dropped.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let len = 9 + self.doc.len() + self.secrets.iter().map(|s| 19 + s.bytes.len()).sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.push(PAYLOAD_VERSION);
        out.extend_from_slice(&u32::try_from(self.doc.len()).map_err(|_| Error::InvalidKey)?.to_be_bytes());
        out.extend_from_slice(self.doc.as_bytes());
        out.extend_from_slice(&u32::try_from(self.secrets.len()).map_err(|_| Error::InvalidKey)?.to_be_bytes());
        for s in &self.secrets {
            out.push(s.kind as u8);
            out.extend_from_slice(&s.reference);
            out.extend_from_slice(&u16::try_from(s.bytes.len()).map_err(|_| Error::InvalidKey)?.to_be_bytes());
            out.extend_from_slice(&s.bytes);
        }
        Ok(out)
    }

    /// Parses a payload; every length is checked, nothing may follow.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != PAYLOAD_VERSION {
            return Err(Malformed::UnknownVersion(bytes[0]).into());
        }
        let doc_len = r.u32()? as usize;
        let doc = core::str::from_utf8(r.take(doc_len)?).map_err(|_| Malformed::WrongLength)?.to_owned();
        let n = r.u32()? as usize;
        let mut secrets = Vec::with_capacity(n.min(r.0.len() / 19));
        for _ in 0..n {
            let kind = SecretKind::from_byte(r.take(1)?[0]).ok_or(Malformed::WrongKind)?;
            let reference: [u8; 16] = r.take(16)?.try_into().map_err(|_| Malformed::Truncated)?;
            let len = u16::from_be_bytes(r.take(2)?.try_into().map_err(|_| Malformed::Truncated)?) as usize;
            let bytes = Zeroizing::new(r.take(len)?.to_vec());
            let ok = match kind {
                SecretKind::KemSeed => len == 64 || len == 32,
                SecretKind::DsaSeed => len == 32,
                _ => true,
            };
            if !ok {
                return Err(Malformed::WrongLength.into());
            }
            secrets.push(Secret { kind, reference, bytes });
        }
        if !r.0.is_empty() {
            return Err(Malformed::WrongLength.into());
        }
        Ok(Self { doc, secrets })
    }

    /// The secret of `kind` for `reference`, if the payload has it.
    pub fn secret(&self, kind: SecretKind, reference: &[u8; 16]) -> Option<&[u8]> {
        self.secrets.iter().find(|s| s.kind == kind && &s.reference == reference).map(|s| &s.bytes[..])
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Malformed::Truncated.into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| Malformed::Truncated)?))
    }
}

/// A bundle's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleHeader {
    /// The key the bundle is sealed to.
    pub kid: Kid,
    /// Names one export; kept by a reseal.
    pub backup_id: [u8; 16],
    /// When it was exported, Unix seconds.
    pub created: u64,
}

impl BundleHeader {
    fn encode(&self) -> [u8; BUNDLE_HEADER_LEN] {
        let mut h = [0u8; BUNDLE_HEADER_LEN];
        h[0] = BUNDLE_VERSION;
        h[1] = KIND_KEY_BACKUP;
        h[2..18].copy_from_slice(self.kid.as_bytes());
        h[18..34].copy_from_slice(&self.backup_id);
        h[34..42].copy_from_slice(&self.created.to_be_bytes());
        h
    }

    fn aad(&self) -> Vec<u8> {
        [LABEL_BACKUP, &self.encode()[..]].concat()
    }

    /// The header and the envelope of a bundle (structure only). A version
    /// byte other than 1 is [`Malformed::UnknownVersion`].
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), Error> {
        if let Some(&v) = bytes.first() {
            if v != BUNDLE_VERSION {
                return Err(Malformed::UnknownVersion(v).into());
            }
        }
        if bytes.len() < BUNDLE_HEADER_LEN {
            return Err(Malformed::Truncated.into());
        }
        if bytes[1] != KIND_KEY_BACKUP {
            return Err(Malformed::UnknownKind(bytes[1]).into());
        }
        let field = |a: usize| -> [u8; 16] { bytes[a..a + 16].try_into().unwrap_or([0; 16]) };
        let created = u64::from_be_bytes(bytes[34..42].try_into().unwrap_or([0; 8]));
        let header = Self { kid: Kid(field(2)), backup_id: field(18), created };
        let envelope = &bytes[BUNDLE_HEADER_LEN..];
        let env = Envelope::parse(envelope)?.into_sealed()?;
        if env.kid() != header.kid || env.batch_position().is_some() {
            return Err(Malformed::WrongKind.into());
        }
        Ok((header, envelope))
    }
}

/// Seals `payload` to `to` as a bundle.
pub fn seal(to: Recipient<'_>, backup_id: [u8; 16], created: u64, payload: &Payload) -> Result<Vec<u8>, Error> {
    seal_from(&mut OsRandom, to, backup_id, created, payload)
}

pub(crate) fn seal_from(
    rng: &mut impl RandomSource,
    to: Recipient<'_>,
    backup_id: [u8; 16],
    created: u64,
    payload: &Payload,
) -> Result<Vec<u8>, Error> {
    let header = BundleHeader { kid: to.kid(), backup_id, created };
    seal_bytes(rng, &header, to, &payload.encode()?)
}

fn seal_bytes(rng: &mut impl RandomSource, header: &BundleHeader, to: Recipient<'_>, plain: &[u8]) -> Result<Vec<u8>, Error> {
    let envelope = sealed::seal_from(rng, to, INFO_SEALED, plain, &header.aad())?;
    Ok([&header.encode()[..], &envelope].concat())
}

fn open_bytes<'k>(bytes: &[u8], key: impl Into<Opener<'k>>) -> Result<(BundleHeader, crate::Plaintext), Error> {
    let (header, envelope) = BundleHeader::parse(bytes)?;
    let env = Envelope::parse(envelope)?.into_sealed()?;
    Ok((header, sealed::open(key, &env, &header.aad())?))
}

/// Opens a bundle with the secret key it is sealed to.
pub fn open<'k>(bytes: &[u8], key: impl Into<Opener<'k>>) -> Result<(BundleHeader, Payload), Error> {
    let (header, plain) = open_bytes(bytes, key)?;
    Ok((header, Payload::decode(plain.expose())?))
}

/// What a recovery officer runs offline: opens the bundle with their key and
/// seals the same payload to `to` (a cluster's restore key), keeping the
/// backup id and time. The payload is checked before it is re-sealed.
pub fn reseal<'k>(bytes: &[u8], key: impl Into<Opener<'k>>, to: Recipient<'_>) -> Result<Vec<u8>, Error> {
    let (header, plain) = open_bytes(bytes, key)?;
    Payload::decode(plain.expose())?;
    seal_bytes(&mut OsRandom, &BundleHeader { kid: to.kid(), ..header }, to, plain.expose())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecipientSecret, Suite};

    fn payload() -> Payload {
        Payload {
            doc: r#"{"format":1,"tenants":[]}"#.into(),
            secrets: vec![
                Secret { kind: SecretKind::KemSeed, reference: [1; 16], bytes: Zeroizing::new(vec![7; 64]) },
                Secret { kind: SecretKind::DsaSeed, reference: [1; 16], bytes: Zeroizing::new(vec![8; 32]) },
                Secret { kind: SecretKind::ClassicalKey, reference: [2; 16], bytes: Zeroizing::new(b"pass".to_vec()) },
            ],
        }
    }

    #[test]
    fn seal_open_reseal() {
        let (_, officer) = RecipientSecret::generate(Suite::MlKem768).unwrap();
        let (_, restore) = RecipientSecret::generate(Suite::XWing).unwrap();
        let bundle = seal(officer.public_key(), [5; 16], 1_700_000_000, &payload()).unwrap();
        let (h, p) = open(&bundle, &officer).unwrap();
        assert_eq!((h.kid, h.backup_id, h.created), (officer.kid(), [5; 16], 1_700_000_000));
        assert_eq!(p.doc, payload().doc);
        assert_eq!(p.secret(SecretKind::DsaSeed, &[1; 16]), Some(&[8u8; 32][..]));
        assert_eq!(p.secret(SecretKind::ClassicalKey, &[2; 16]), Some(&b"pass"[..]));
        assert!(p.secret(SecretKind::ClassicalPassphrase, &[2; 16]).is_none());
        // The officer's key is not the restore key, and the other way round.
        assert_eq!(open(&bundle, &restore).unwrap_err(), Error::DecryptionFailed);
        let resealed = reseal(&bundle, &officer, restore.public_key()).unwrap();
        let (h2, p2) = open(&resealed, &restore).unwrap();
        assert_eq!((h2.kid, h2.backup_id, h2.created), (restore.kid(), [5; 16], 1_700_000_000));
        assert_eq!(p2.encode().unwrap(), p.encode().unwrap());
        assert!(reseal(&resealed, &officer, restore.public_key()).is_err());
    }

    #[test]
    fn damaged_bundles_fail() {
        let (_, officer) = RecipientSecret::generate(Suite::MlKem768).unwrap();
        let bundle = seal(officer.public_key(), [5; 16], 9, &payload()).unwrap();
        for len in 0..bundle.len() {
            assert!(open(&bundle[..len], &officer).is_err(), "truncated to {len}");
        }
        // Every header byte is authenticated or checked.
        for i in 0..BUNDLE_HEADER_LEN {
            let mut t = bundle.clone();
            t[i] ^= 0x01;
            assert!(open(&t, &officer).is_err(), "header byte {i}");
        }
        let mut newer = bundle.clone();
        newer[0] = 2;
        assert_eq!(open(&newer, &officer).unwrap_err(), Error::Malformed(Malformed::UnknownVersion(2)));
        let mut t = bundle.clone();
        let last = t.len() - 1;
        t[last] ^= 0x80;
        assert_eq!(open(&t, &officer).unwrap_err(), Error::DecryptionFailed);
    }

    #[test]
    fn payload_lengths_are_checked() {
        let bytes = payload().encode().unwrap();
        for len in 0..bytes.len() {
            assert!(Payload::decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert!(Payload::decode(&extra).is_err());
        let bad = Payload {
            doc: String::new(),
            secrets: vec![Secret { kind: SecretKind::DsaSeed, reference: [0; 16], bytes: Zeroizing::new(vec![0; 31]) }],
        };
        assert!(Payload::decode(&bad.encode().unwrap()).is_err());
    }
}
