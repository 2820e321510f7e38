//! Master key providers: they hold the key-encryption key (KEK) and wrap and
//! unwrap the master data key (MDK). This version has the `file` provider.
use crate::{
    errors::{PqError, PqResult},
    gucs,
};
use pqcore::{Dek, Kid, MasterDataKey, Purpose, WrapContext};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use zeroize::Zeroizing;

/// What every provider does.
pub trait KeyProvider {
    /// `file`, `pkcs11`, `aws_kms`.
    fn name(&self) -> &'static str;
    /// Identifies the KEK (never the key itself), stored beside each wrapped MDK.
    fn key_id(&self) -> String;
    /// Wraps the MDK known as `mdk_id`.
    fn wrap(&self, mdk_id: Kid, mdk: &Dek) -> PqResult<Vec<u8>>;
    /// Unwraps it again.
    fn unwrap(&self, mdk_id: Kid, wrapped: &[u8]) -> PqResult<Dek>;
}

/// The configured provider. `for_write` allows creating the development key
/// file; a read path never creates key material.
pub fn current(for_write: bool) -> PqResult<Box<dyn KeyProvider>> {
    match gucs::master_key_provider().as_str() {
        "file" => Ok(Box::new(FileProvider::open(for_write)?)),
        other @ ("pkcs11" | "aws_kms") => Err(PqError::Provider {
            message: format!("master key provider \"{other}\" is not available in this version"),
            hint: Some("set apg_pqcrypto.master_key_provider = 'file'".into()),
        }),
        other => Err(PqError::Provider {
            message: format!("unknown master key provider \"{other}\""),
            hint: Some("apg_pqcrypto.master_key_provider is one of: file, pkcs11, aws_kms".into()),
        }),
    }
}

fn mdk_context(id: &str) -> WrapContext<'_> {
    WrapContext { tenant: id, version: 0, purpose: Purpose::MasterDataKey }
}

/// The KEK is 32 bytes in a file readable by the server's OS user only.
pub struct FileProvider {
    kek: MasterDataKey,
}

const DEV_KEY_NAME: &str = "apg_pqcrypto_dev_master.key";

impl FileProvider {
    fn open(for_write: bool) -> PqResult<Self> {
        let (path, configured) = match gucs::master_key_file() {
            Some(path) => (path, true),
            None => (format!("{}/{DEV_KEY_NAME}", data_dir()?), false),
        };
        if !configured && for_write && !std::path::Path::new(&path).exists() {
            create_dev_key(&path)?;
        }
        let kek = read_key_file(&path)?;
        let id = Kid::of(&[b"apg-pq v1 kek".as_slice(), kek.expose()].concat());
        Ok(Self { kek: MasterDataKey::new(id, &kek) })
    }
}

impl KeyProvider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    fn key_id(&self) -> String {
        self.kek.id().to_hex()
    }

    fn wrap(&self, mdk_id: Kid, mdk: &Dek) -> PqResult<Vec<u8>> {
        Ok(self.kek.wrap(mdk.expose(), &mdk_context(&mdk_id.to_hex()))?)
    }

    fn unwrap(&self, mdk_id: Kid, wrapped: &[u8]) -> PqResult<Dek> {
        let plain = self.kek.unwrap(wrapped, &mdk_context(&mdk_id.to_hex())).map_err(|_| PqError::Provider {
            message: "the master key file does not unwrap the master data key".into(),
            hint: Some("apg_pqcrypto.master_key_file must name the key file the master data key was created with".into()),
        })?;
        Dek::from_slice(plain.expose()).map_err(|_| PqError::Internal("wrapped master data key has the wrong length".into()))
    }
}

fn data_dir() -> PqResult<String> {
    // SAFETY: DataDir is set before any backend runs SQL and never freed.
    let dir = unsafe { pgrx::pg_sys::DataDir };
    if dir.is_null() {
        return Err(PqError::Internal("data directory unknown".into()));
    }
    // SAFETY: a NUL-terminated C string owned by the backend.
    Ok(unsafe { std::ffi::CStr::from_ptr(dir) }.to_string_lossy().into_owned())
}

fn provider_error(message: String, hint: &str) -> PqError {
    PqError::Provider { message, hint: Some(hint.into()) }
}

fn create_dev_key(path: &str) -> PqResult<()> {
    let key = Dek::generate()?;
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match file {
        Ok(mut f) => {
            f.write_all(key.expose())
                .and_then(|_| f.sync_all())
                .map_err(|e| provider_error(format!("cannot write master key file \"{path}\": {e}"), "check the data directory's permissions"))?;
            pgrx::warning!(
                "apg_pqcrypto created a development master key file at \"{path}\"; set apg_pqcrypto.master_key_file (or another provider) for production"
            );
            Ok(())
        }
        // Another backend created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(provider_error(format!("cannot create master key file \"{path}\": {e}"), "check the data directory's permissions")),
    }
}

fn read_key_file(path: &str) -> PqResult<Dek> {
    let meta = std::fs::metadata(path).map_err(|e| {
        provider_error(format!("cannot read master key file \"{path}\": {e}"), "set apg_pqcrypto.master_key_file to a readable 32-byte key file")
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(provider_error(
            format!("master key file \"{path}\" is accessible by group or others"),
            &format!("run: chmod 600 {path}"),
        ));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        provider_error(format!("cannot read master key file \"{path}\": {e}"), "the file must be readable by the server's user")
    })?);
    parse_key(&bytes).ok_or_else(|| {
        provider_error(
            format!("master key file \"{path}\" does not hold a 32-byte key"),
            "the file holds 32 raw bytes, or 64 hexadecimal digits; create one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE",
        )
    })
}

/// 32 raw bytes, or 64 hex digits with optional surrounding white space.
pub fn parse_key(bytes: &[u8]) -> Option<Dek> {
    if bytes.len() == 32 {
        return Dek::from_slice(bytes).ok();
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() != 64 {
        return None;
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        raw[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Dek::from_slice(&raw[..]).ok()
}
