//! Blind index terms (docs/FORMAT.md §16): equality search over encrypted
//! values without decrypting them.
//!
//! ```text
//! index key = HKDF-Expand-SHA256(PRK = DEK, info = "apg-pq v1 blind index" || context, L = 32)
//! term      = HMAC-SHA-256(index key, normalised value)[0 .. bits/8]
//! ```
//! The index key of a key version is separate from its data keys (its own
//! label) and one-way from the DEK, so it can be handed to a client that
//! must compute terms without ever being able to decrypt. A term reveals
//! equality (and so frequency) of values within one tenant version and one
//! context, nothing across tenants, versions or contexts.
use crate::{
    format::{AAD_INDEX_KEY, INFO_BLIND_INDEX},
    KeyedCipher, Kid,
};
use core::fmt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::borrow::Cow;
use zeroize::Zeroizing;

/// Shortest term, in bits.
pub const MIN_BITS: u32 = 16;
/// Longest term (the whole HMAC-SHA-256 output), in bits.
pub const MAX_BITS: u32 = 256;
/// Longest context, in bytes (a context is never empty).
pub const MAX_CONTEXT_LEN: usize = 255;
/// Length of an index key.
pub const INDEX_KEY_LEN: usize = 32;

/// What is wrong with a blind index request (all public facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlindError {
    /// `bits` is not a multiple of 8 between 16 and 256.
    Bits,
    /// The context is empty or longer than 255 bytes.
    Context,
    /// A normalisation other than `exact`, `trim`, `casefold` or both.
    Normalization,
    /// An index key that is not 32 bytes.
    KeyLength,
}

impl fmt::Display for BlindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlindError::Bits => "bits must be a multiple of 8 from 16 to 256",
            BlindError::Context => "a blind index context is 1 to 255 bytes",
            BlindError::Normalization => {
                "normalization is 'exact', 'trim', 'casefold' or 'trim,casefold'"
            }
            BlindError::KeyLength => "a blind index key is 32 bytes",
        })
    }
}

impl std::error::Error for BlindError {}

/// Checks a term length in bits; returns it in bytes.
pub fn term_len(bits: i64) -> Result<usize, BlindError> {
    if bits % 8 != 0 || !(MIN_BITS as i64..=MAX_BITS as i64).contains(&bits) {
        return Err(BlindError::Bits);
    }
    Ok(bits as usize / 8)
}

/// Checks a context.
pub fn check_context(context: &[u8]) -> Result<(), BlindError> {
    if context.is_empty() || context.len() > MAX_CONTEXT_LEN {
        return Err(BlindError::Context);
    }
    Ok(())
}

/// How a text value is normalised before it is hashed. Trimming comes
/// before case folding. No Unicode normalisation (NFC/NFKC) is applied:
/// callers that need it pass normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalization {
    /// Remove White_Space characters (see [`is_white_space`]) at both ends.
    pub trim: bool,
    /// Replace every character by its Unicode lowercase mapping (full
    /// mapping, no language or context rules; see FORMAT.md §16.2).
    pub casefold: bool,
}

impl Normalization {
    /// `exact`, `trim`, `casefold`, or `trim,casefold` (either order,
    /// spaces around the comma allowed, case-insensitive).
    pub fn parse(spec: &str) -> Result<Self, BlindError> {
        let mut out = Normalization::default();
        let spec = spec.trim().to_ascii_lowercase();
        if spec == "exact" {
            return Ok(out);
        }
        for word in spec.split(',').map(str::trim) {
            let flag = match word {
                "trim" => &mut out.trim,
                "casefold" => &mut out.casefold,
                _ => return Err(BlindError::Normalization),
            };
            if *flag {
                return Err(BlindError::Normalization);
            }
            *flag = true;
        }
        Ok(out)
    }

    /// The canonical spelling: `exact`, `trim`, `casefold`, `trim,casefold`.
    pub fn name(&self) -> &'static str {
        match (self.trim, self.casefold) {
            (false, false) => "exact",
            (true, false) => "trim",
            (false, true) => "casefold",
            (true, true) => "trim,casefold",
        }
    }

    /// `value` normalised.
    pub fn apply<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let value = if self.trim { value.trim_matches(is_white_space) } else { value };
        if self.casefold && value.chars().any(|c| !c.is_lowercase() && c.to_lowercase().ne(core::iter::once(c))) {
            Cow::Owned(value.chars().flat_map(char::to_lowercase).collect())
        } else {
            Cow::Borrowed(value)
        }
    }
}

/// The 25 code points of Unicode's White_Space property, pinned here so
/// that trimming never changes with a Unicode or compiler version.
pub fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | '\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// A blind index key, ready to make terms (the HMAC state is keyed once).
#[derive(Clone)]
pub struct IndexKey {
    mac: Hmac<Sha256>,
}

impl IndexKey {
    /// The index key of the key version behind `cipher` for `context`.
    pub fn derive(cipher: &KeyedCipher, context: &[u8]) -> Result<Self, BlindError> {
        Ok(Self::from_bytes(&*derive_bytes(cipher, context)?))
    }

    /// An index key given as its 32 bytes (a client's exported key).
    pub fn from_slice(key: &[u8]) -> Result<Self, BlindError> {
        let key: &[u8; INDEX_KEY_LEN] = key.try_into().map_err(|_| BlindError::KeyLength)?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: &[u8; INDEX_KEY_LEN]) -> Self {
        // HMAC takes a key of any length.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self { mac }
    }

    /// The first `len` bytes (from [`term_len`]) of HMAC-SHA-256 over `value`.
    pub fn term(&self, value: &[u8], len: usize) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(value);
        let full = mac.finalize().into_bytes();
        full[..len.min(full.len())].to_vec()
    }

    /// The term of a text value after `normalization`.
    pub fn text_term(&self, value: &str, normalization: Normalization, len: usize) -> Vec<u8> {
        self.term(normalization.apply(value).as_bytes(), len)
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexKey(<redacted>)")
    }
}

/// The 32 bytes of the index key of `cipher`'s version for `context`: what
/// an export seals to a client. Zeroized on drop.
pub fn derive_bytes(cipher: &KeyedCipher, context: &[u8]) -> Result<Zeroizing<[u8; INDEX_KEY_LEN]>, BlindError> {
    check_context(context)?;
    let mut okm = Zeroizing::new([0u8; INDEX_KEY_LEN]);
    cipher.expand(&[INFO_BLIND_INDEX, context], &mut okm[..]);
    Ok(okm)
}

/// The user AAD of an index key exported in a sealed envelope (§16.5):
/// `"apg-pq v1 index key" || kid of the key version || context`, so the
/// envelope opens only as the key of that version and context.
pub fn export_aad(kid: &Kid, context: &[u8]) -> Vec<u8> {
    [AAD_INDEX_KEY, kid.as_bytes(), context].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dek, Kid};

    fn cipher(byte: u8) -> KeyedCipher {
        KeyedCipher::new(&Dek::from_array(&[byte; 32]), Kid([byte; 16]))
    }

    #[test]
    fn bits_and_contexts() {
        assert_eq!(term_len(16), Ok(2));
        assert_eq!(term_len(256), Ok(32));
        for bad in [0, 8, 12, 17, 264, -8, i64::MAX] {
            assert_eq!(term_len(bad), Err(BlindError::Bits), "{bad}");
        }
        assert_eq!(check_context(b""), Err(BlindError::Context));
        assert_eq!(check_context(&[b'a'; 256]), Err(BlindError::Context));
        assert!(check_context(&[b'a'; 255]).is_ok());
        assert!(IndexKey::derive(&cipher(1), b"").is_err());
    }

    #[test]
    fn normalizations() {
        let n = |s| Normalization::parse(s).unwrap();
        assert_eq!(n("exact"), Normalization::default());
        assert_eq!(n("trim , CASEFOLD"), Normalization { trim: true, casefold: true });
        assert_eq!(n("casefold,trim").name(), "trim,casefold");
        for bad in ["", "trim,trim", "lower", "exact,trim", "trim,", "nfc"] {
            assert_eq!(Normalization::parse(bad), Err(BlindError::Normalization), "{bad}");
        }
        let both = n("trim,casefold");
        assert_eq!(both.apply("\u{3000}\t Alice@Example.COM \u{a0}\n"), "alice@example.com");
        // Full lowercase mappings, no context rules: İ → i̇, final Σ → σ.
        assert_eq!(n("casefold").apply("İSTANBUL ΟΔΟΣ"), "i\u{307}stanbul οδοσ");
        // ß has no lowercase mapping other than itself; zero-width space is not White_Space.
        assert_eq!(both.apply("\u{200b}Straße"), "\u{200b}straße");
        assert_eq!(n("exact").apply(" A "), " A ");
        assert!(matches!(n("casefold").apply("already lower"), Cow::Borrowed(_)));
    }

    #[test]
    fn white_space_is_unicodes() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            assert_eq!(is_white_space(c), c.is_whitespace(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn terms_separate_versions_and_contexts() {
        let a = IndexKey::derive(&cipher(1), b"email").unwrap();
        let b = IndexKey::derive(&cipher(2), b"email").unwrap();
        let c = IndexKey::derive(&cipher(1), b"phone").unwrap();
        let t = |k: &IndexKey| k.term(b"alice@example.com", 32);
        assert_ne!(t(&a), t(&b));
        assert_ne!(t(&a), t(&c));
        assert_eq!(a.term(b"x", 2), a.term(b"x", 32)[..2]);
        // An exported key gives the server's terms.
        let bytes = derive_bytes(&cipher(1), b"email").unwrap();
        assert_eq!(t(&IndexKey::from_slice(&bytes[..]).unwrap()), t(&a));
        assert_eq!(IndexKey::from_slice(&[0; 31]).unwrap_err(), BlindError::KeyLength);
    }
}
