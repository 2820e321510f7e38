//! Recognising what a stored value is without decrypting it: a v1
//! envelope, an OpenPGP message as pgcrypto's `pgp_sym_encrypt` /
//! `pgp_pub_encrypt` write them, or the output of pgcrypto's raw
//! `encrypt(…, 'aes' | 'bf')`. The rules are in docs/FORMAT.md §9.
//!
//! Raw cipher output is indistinguishable from random bytes, so
//! recognition gives every reading a value admits, most specific first:
//! a value that parses as an envelope and is also a whole number of
//! cipher blocks is `[PqKeyed, Raw]`. A migration tries them in order.

use crate::{Envelope, Kind};

/// What a value may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A keyed v1 envelope (`pq_encrypt`).
    PqKeyed,
    /// A sealed v1 envelope (`pq_seal`).
    PqSealed,
    /// A v1 signature envelope (`pq_sign`).
    PqSignature,
    /// An OpenPGP message that starts with a symmetric-key encrypted
    /// session key packet (`pgp_sym_encrypt`).
    PgpSym,
    /// An OpenPGP message that starts with a public-key encrypted session
    /// key packet (`pgp_pub_encrypt`).
    PgpPub,
    /// A whole number of 8-byte blocks: possibly `encrypt(…, 'aes' | 'bf')`.
    Raw,
}

impl Class {
    /// The name `pq.classify` returns.
    pub fn name(self) -> &'static str {
        match self {
            Class::PqKeyed => "pq_keyed",
            Class::PqSealed => "pq_sealed",
            Class::PqSignature => "pq_signature",
            Class::PgpSym => "pgp_sym",
            Class::PgpPub => "pgp_pub",
            Class::Raw => "raw",
        }
    }

    /// True for the classical (pgcrypto) readings.
    pub fn is_classical(self) -> bool {
        matches!(self, Class::PgpSym | Class::PgpPub | Class::Raw)
    }
}

/// Every reading of `value`, most specific first; empty if none.
pub fn classify(value: &[u8]) -> Vec<Class> {
    let mut out = Vec::with_capacity(2);
    if let Ok(envelope) = Envelope::parse(value) {
        out.push(match envelope.kind() {
            Kind::Keyed => Class::PqKeyed,
            Kind::Sealed => Class::PqSealed,
            Kind::Signature => Class::PqSignature,
        });
    }
    if let Some(class) = openpgp(value) {
        out.push(class);
    }
    if !value.is_empty() && value.len().is_multiple_of(8) {
        out.push(Class::Raw);
    }
    out
}

/// The readings a decryption may try, in order: those of [`classify`],
/// except that an envelope whose key id `known_kid` recognises is read as
/// nothing else (it is an envelope, even if no key of this tenant opens
/// it), and a value recognised as OpenPGP is not also tried as raw cipher
/// output. Raw decryption cannot tell a wrong key from a right one (with
/// `padding=none` every value "decrypts"), so it is tried only where
/// nothing more specific recognises the value.
pub fn readings(value: &[u8], known_kid: impl FnOnce(&[u8]) -> bool) -> Vec<Class> {
    let mut classes = classify(value);
    if matches!(classes.first(), Some(Class::PqKeyed | Class::PqSealed | Class::PqSignature))
        && value.get(2..18).is_some_and(known_kid)
    {
        classes.truncate(1);
    }
    if classes.iter().any(|c| matches!(c, Class::PgpSym | Class::PgpPub)) {
        classes.retain(|c| *c != Class::Raw);
    }
    classes
}

/// The first packet of an OpenPGP message (RFC 4880 §4.2): its tag and
/// body, if the header is well formed and leaves bytes after the packet
/// (a session key packet is always followed by the encrypted data).
fn first_packet(value: &[u8]) -> Option<(u8, &[u8])> {
    let (&b0, rest) = value.split_first()?;
    if b0 & 0x80 == 0 {
        return None;
    }
    let (tag, len, header): (u8, usize, usize) = if b0 & 0x40 != 0 {
        let tag = b0 & 0x3f;
        let &b1 = rest.first()?;
        match b1 {
            0..=191 => (tag, b1 as usize, 2),
            192..=223 => (tag, ((b1 as usize - 192) << 8) + *rest.get(1)? as usize + 192, 3),
            255 => (tag, u32::from_be_bytes(rest.get(1..5)?.try_into().ok()?) as usize, 6),
            _ => return None, // partial lengths never start a session key packet
        }
    } else {
        let tag = (b0 >> 2) & 0x0f;
        match b0 & 3 {
            0 => (tag, *rest.first()? as usize, 2),
            1 => (tag, u16::from_be_bytes(rest.get(0..2)?.try_into().ok()?) as usize, 3),
            2 => (tag, u32::from_be_bytes(rest.get(0..4)?.try_into().ok()?) as usize, 5),
            _ => return None,
        }
    };
    let end = header.checked_add(len)?;
    if end >= value.len() {
        return None;
    }
    Some((tag, &value[header..end]))
}

/// The key id a public-key encrypted message names as its recipient, if it
/// names one (not the all-zero "anonymous recipient").
pub fn pgp_recipient(value: &[u8]) -> Option<[u8; 8]> {
    match first_packet(value)? {
        (1, [3, id @ ..]) => {
            let id: [u8; 8] = id.get(..8)?.try_into().ok()?;
            (id != [0; 8]).then_some(id)
        }
        _ => None,
    }
}

fn openpgp(value: &[u8]) -> Option<Class> {
    let (tag, body) = first_packet(value)?;
    match (tag, body) {
        // Symmetric-key encrypted session key, version 4: cipher 1..=13,
        // S2K simple (0), salted (1) or iterated and salted (3).
        (3, [4, cipher, s2k, ..]) if (1..=13).contains(cipher) && matches!(s2k, 0 | 1 | 3) => Some(Class::PgpSym),
        // Public-key encrypted session key, version 3: 8-byte key id, then
        // RSA (1, 2) or Elgamal (16).
        (1, [3, _, _, _, _, _, _, _, _, 1 | 2 | 16, ..]) => Some(Class::PgpPub),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The first bytes of what pgcrypto 1.3 (PostgreSQL 15) wrote here:
    // pgp_sym_encrypt('hello', 'pw') and pgp_pub_encrypt('hello', <RSA key>).
    const SYM: &[u8] = &[0xc3, 0x0d, 0x04, 0x07, 0x03, 0x02, 0xb6, 0x6e, 0, 0, 0, 0, 0, 0, 0, 0xd2, 0x3c, 0x01];
    const PUB_HEAD: &[u8] = &[0xc1, 0xc0, 0x4c, 0x03, 0x9a, 0x4a, 0xab, 0x7a, 0xde, 0x95, 0x37, 0xb9, 0x01];

    #[test]
    fn pgcrypto_symmetric_messages() {
        assert_eq!(classify(SYM), vec![Class::PgpSym]);
    }

    #[test]
    fn pgcrypto_public_key_messages() {
        let mut value = PUB_HEAD.to_vec();
        value.resize(3 + 268 + 40, 0x55); // a 268-byte packet body, then data
        assert_eq!(classify(&value), vec![Class::PgpPub]);
        value.truncate(3 + 268); // nothing after the session key packet
        assert!(!classify(&value).contains(&Class::PgpPub));
    }

    #[test]
    fn public_key_recipients() {
        let mut value = PUB_HEAD.to_vec();
        value.resize(3 + 268 + 40, 0x55);
        assert_eq!(pgp_recipient(&value), Some([0x9a, 0x4a, 0xab, 0x7a, 0xde, 0x95, 0x37, 0xb9]));
        value[4..12].fill(0);
        assert_eq!(pgp_recipient(&value), None);
        assert_eq!(pgp_recipient(SYM), None);
    }

    #[test]
    fn old_format_headers() {
        // Old-format tag 3, one-octet length 4.
        let value = [0x8c, 0x04, 0x04, 0x09, 0x00, 0x02, 0xd2, 0x00, 0x00];
        assert_eq!(classify(&value), vec![Class::PgpSym]);
    }

    #[test]
    fn raw_is_only_whole_blocks() {
        assert_eq!(classify(&[0x42; 16]), vec![Class::Raw]);
        assert_eq!(classify(&[0x42; 24]), vec![Class::Raw]);
        assert!(classify(&[0x42; 15]).is_empty());
        assert!(classify(&[]).is_empty());
    }

    #[test]
    fn envelopes_come_first() {
        let mut keyed = vec![1u8, crate::format::KIND_KEYED];
        keyed.resize(crate::format::KEYED_OVERHEAD + 2, 0);
        let classes = classify(&keyed);
        assert_eq!(classes[0], Class::PqKeyed);
        assert_eq!(classes.len(), if keyed.len() % 8 == 0 { 2 } else { 1 });
    }

    #[test]
    fn readings_never_guess_raw_for_recognised_values() {
        let mut keyed = vec![1u8, crate::format::KIND_KEYED];
        keyed.resize(crate::format::KEYED_OVERHEAD + 2, 0); // 64 bytes: also whole blocks
        assert_eq!(readings(&keyed, |_| false), vec![Class::PqKeyed, Class::Raw]);
        assert_eq!(readings(&keyed, |_| true), vec![Class::PqKeyed]);
        let mut sym = SYM.to_vec();
        sym.resize(24, 0); // an OpenPGP message of whole blocks
        assert_eq!(classify(&sym), vec![Class::PgpSym, Class::Raw]);
        assert_eq!(readings(&sym, |_| false), vec![Class::PgpSym]);
        assert_eq!(readings(&[0x42; 16], |_| true), vec![Class::Raw]);
    }

    #[test]
    fn wrong_versions_are_not_pgp() {
        let mut value = SYM.to_vec();
        value[2] = 5; // SKESK version 5 is not what pgcrypto writes
        assert!(!classify(&value).contains(&Class::PgpSym));
        let mut value = SYM.to_vec();
        value[1] = 0x40; // a packet longer than the value
        assert!(!classify(&value).contains(&Class::PgpSym));
    }
}
