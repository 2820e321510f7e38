//! The `file` provider: the KEK is 32 bytes (or 64 hex digits) in a file
//! readable by the server's OS user only. For development and tests: the
//! KEK is in process memory while it wraps or unwraps.
//!
//! Blob: a keyed envelope under the KEK (docs/FORMAT.md §6.1); the binding's
//! MDK id is in its AAD, the system identifier is not (file wraps from
//! 0.1.0 and 0.2.0 did not have one).
use crate::{check_id, secure_file::SecretFile, Binding, CallLimits, KeyProvider, ProviderError, Result};
use pqcore::{Dek, MasterDataKey};
use zeroize::Zeroizing;

/// 64 hex digits and some white space; anything longer is not a key file.
const MAX_KEY_FILE_LEN: usize = 128;

const KEY_FILE: SecretFile<'static> =
    SecretFile { what: "master key file", setting: "apg_pqcrypto.master_key_file" };

pub struct FileProvider {
    kek: MasterDataKey,
}

impl FileProvider {
    /// Reads the KEK from `path` (see [`SecretFile::read`] for the checks).
    pub fn open(path: &str) -> Result<Self> {
        let bytes = KEY_FILE.read(path, MAX_KEY_FILE_LEN)?;
        let kek = parse_key(&bytes).ok_or_else(|| {
            ProviderError::new(
                crate::ErrorKind::Misconfigured,
                "the master key file does not hold a 32-byte key",
                Some("the file holds 32 raw bytes, or 64 hexadecimal digits; create one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE"),
                format!("master key file \"{path}\""),
            )
        })?;
        Ok(Self::from_kek(&kek))
    }

    /// A provider for a KEK already in memory (tests, the client).
    pub fn from_kek(kek: &Dek) -> Self {
        Self { kek: MasterDataKey::from_kek(kek) }
    }
}

impl KeyProvider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    /// `SHA-256("apg-pq v1 kek" || kek)[0..16]` in hex.
    fn key_ref(&self) -> String {
        self.kek.id().to_hex()
    }

    fn wrap(&mut self, mdk: &Dek, _binding: &Binding, _limits: &CallLimits) -> Result<Vec<u8>> {
        self.kek.wrap_mdk(mdk).map_err(|_| {
            ProviderError::new(crate::ErrorKind::Unavailable, "the master data key cannot be wrapped", None, "file: wrap failed")
        })
    }

    fn unwrap(&mut self, wrapped: &[u8], binding: &Binding, _limits: &CallLimits) -> Result<Dek> {
        let key = self.kek.unwrap_mdk(wrapped, binding.mdk_id).map_err(|_| {
            ProviderError::wrong_key(
                "file",
                format!("master data key {} does not unwrap under key-encryption key {}", binding.mdk_id.to_hex(), self.key_ref()),
            )
        })?;
        check_id("file", key, binding)
    }
}

/// 32 raw bytes, or 64 hex digits with optional surrounding white space.
pub fn parse_key(bytes: &[u8]) -> Option<Dek> {
    if bytes.len() == 32 {
        return Dek::from_slice(bytes).ok();
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        raw[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Dek::from_slice(&raw[..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_and_hex_keys_only() {
        assert!(parse_key(&[7u8; 32]).is_some());
        let hex = "ab".repeat(32);
        assert_eq!(parse_key(hex.as_bytes()).unwrap().expose(), &[0xab; 32]);
        assert_eq!(parse_key(format!(" {hex}\n").as_bytes()).unwrap().expose(), &[0xab; 32]);
        assert!(parse_key(&[7u8; 31]).is_none());
        assert!(parse_key("zz".repeat(32).as_bytes()).is_none());
        assert!(parse_key("ab".repeat(33).as_bytes()).is_none());
        assert!(parse_key("+1".repeat(32).as_bytes()).is_none());
    }
}
