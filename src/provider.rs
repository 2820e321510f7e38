//! Master key providers: they hold the key-encryption key (KEK) and wrap and
//! unwrap the master data key (MDK). This version has the `file` provider.
//!
//! PQ004 messages say what failed without paths or key ids; those go to the
//! server log only (`errdetail_log`).
use crate::{
    errors::{PqError, PqResult},
    gucs,
};
use pqcore::{Dek, Kid, MasterDataKey};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use zeroize::Zeroizing;

/// What every provider does.
pub trait KeyProvider {
    /// `file`, `pkcs11`, `aws_kms`.
    fn name(&self) -> &'static str;
    /// Identifies the KEK (never the key itself), stored beside each wrapped MDK.
    fn key_id(&self) -> String;
    /// Wraps the MDK.
    fn wrap(&self, mdk: &Dek) -> PqResult<Vec<u8>>;
    /// Unwraps the MDK known as `mdk_id` and checks that it has that id.
    fn unwrap(&self, mdk_id: Kid, wrapped: &[u8]) -> PqResult<Dek>;
}

/// The configured provider. `for_write` allows creating the development key
/// file; a read path never creates key material.
pub fn current(for_write: bool) -> PqResult<Box<dyn KeyProvider>> {
    match gucs::master_key_provider().as_str() {
        "file" => Ok(Box::new(FileProvider::open(for_write)?)),
        other @ ("pkcs11" | "aws_kms") => Err(provider_error(
            format!("master key provider \"{other}\" is not available in this version"),
            "set apg_pqcrypto.master_key_provider = 'file'",
            None,
        )),
        other => Err(provider_error(
            format!("unknown master key provider \"{}\"", crate::errors::echo(other)),
            "apg_pqcrypto.master_key_provider is one of: file, pkcs11, aws_kms",
            None,
        )),
    }
}

fn provider_error(message: String, hint: &str, detail_log: Option<String>) -> PqError {
    PqError::Provider { message, hint: Some(hint.into()), detail_log }
}

/// The KEK is 32 bytes in a file readable by the server's OS user only.
pub struct FileProvider {
    kek: MasterDataKey,
}

const DEV_KEY_NAME: &str = "apg_pqcrypto_dev_master.key";
/// 64 hex digits and some white space; anything longer is not a key file.
const MAX_KEY_FILE_LEN: usize = 128;

impl FileProvider {
    fn open(for_write: bool) -> PqResult<Self> {
        let (path, configured) = match gucs::master_key_file() {
            Some(path) => (path, true),
            None => (format!("{}/{DEV_KEY_NAME}", data_dir()?), false),
        };
        if !configured && for_write && std::fs::symlink_metadata(&path).is_err() {
            create_dev_key(&path)?;
        }
        let kek = read_key_file(&path)?;
        Ok(Self { kek: MasterDataKey::from_kek(&kek) })
    }
}

impl KeyProvider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    fn key_id(&self) -> String {
        self.kek.id().to_hex()
    }

    fn wrap(&self, mdk: &Dek) -> PqResult<Vec<u8>> {
        Ok(self.kek.wrap_mdk(mdk)?)
    }

    fn unwrap(&self, mdk_id: Kid, wrapped: &[u8]) -> PqResult<Dek> {
        self.kek.unwrap_mdk(wrapped, mdk_id).map_err(|_| {
            provider_error(
                "the master key file does not unwrap the master data key".into(),
                "apg_pqcrypto.master_key_file must name the key file the master data key was created with",
                Some(format!("master data key {} under key-encryption key {}", mdk_id.to_hex(), self.key_id())),
            )
        })
    }
}

fn data_dir() -> PqResult<String> {
    // SAFETY: DataDir is set before any backend runs SQL and never freed.
    let dir = unsafe { pgrx::pg_sys::DataDir };
    if dir.is_null() {
        return Err(PqError::internal("data directory unknown", String::new()));
    }
    // SAFETY: a NUL-terminated C string owned by the backend.
    Ok(unsafe { std::ffi::CStr::from_ptr(dir) }.to_string_lossy().into_owned())
}

/// A PQ004 about the key file: `what` for the client, the path and the OS
/// error for the server log.
fn key_file_error(what: &str, hint: &str, path: &str, cause: Option<&std::io::Error>) -> PqError {
    let detail = match cause {
        Some(e) => format!("master key file \"{path}\": {e}"),
        None => format!("master key file \"{path}\""),
    };
    provider_error(format!("the master key file {what}"), hint, Some(detail))
}

/// Creates the development key atomically: a complete, synced temporary
/// file is linked into place, so a crash never leaves an empty or partial
/// key. If another backend linked its key first, that one is used.
fn create_dev_key(path: &str) -> PqResult<()> {
    let fail = |e: &std::io::Error| {
        key_file_error("cannot be created", "check the data directory's permissions", path, Some(e))
    };
    let key = Dek::generate()?;
    let tmp = format!("{path}.tmp.{}", std::process::id());
    let _ = std::fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(key.expose()).and_then(|_| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = std::path::Path::new(path).parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail(&e))?;
            }
            pgrx::warning!(
                "apg_pqcrypto created a development master key file in the data directory; set apg_pqcrypto.master_key_file (or another provider) for production"
            );
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(&e)),
    }
}

/// Opens the key file once, without following a symbolic link, checks the
/// open descriptor (regular file, owned by the server's user, no group or
/// other access) and reads at most a few bytes.
fn read_key_file(path: &str) -> PqResult<Dek> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            let (what, hint) = match (e.kind(), e.raw_os_error()) {
                (ErrorKind::NotFound, _) => ("does not exist", "set apg_pqcrypto.master_key_file to the key file's path"),
                (_, Some(libc::ELOOP)) => ("is a symbolic link", "point apg_pqcrypto.master_key_file at the file itself"),
                (ErrorKind::PermissionDenied, _) => {
                    ("cannot be read by the server", "the file must be readable by the server's operating-system user")
                }
                _ => ("cannot be opened", "check apg_pqcrypto.master_key_file"),
            };
            key_file_error(what, hint, path, Some(&e))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| key_file_error("cannot be examined", "check apg_pqcrypto.master_key_file", path, Some(&e)))?;
    if !meta.file_type().is_file() {
        return Err(key_file_error("is not a regular file", "point apg_pqcrypto.master_key_file at a regular file", path, None));
    }
    // SAFETY: geteuid never fails.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(key_file_error(
            "is not owned by the server's operating-system user",
            "chown the key file to the user the server runs as",
            path,
            None,
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(key_file_error(
            "is accessible by group or others",
            "run chmod 600 on the file named by apg_pqcrypto.master_key_file (the server log has its path)",
            path,
            None,
        ));
    }
    let mut buf = Zeroizing::new([0u8; MAX_KEY_FILE_LEN + 1]);
    let mut len = 0;
    let mut reader = file.take((MAX_KEY_FILE_LEN + 1) as u64);
    loop {
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(key_file_error("cannot be read", "check the key file", path, Some(&e))),
        }
        if len == buf.len() {
            break;
        }
    }
    let malformed = || {
        key_file_error(
            "does not hold a 32-byte key",
            "the file holds 32 raw bytes, or 64 hexadecimal digits; create one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE",
            path,
            None,
        )
    };
    if len > MAX_KEY_FILE_LEN {
        return Err(malformed());
    }
    parse_key(&buf[..len]).ok_or_else(malformed)
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
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        raw[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Dek::from_slice(&raw[..]).ok()
}
