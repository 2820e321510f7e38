//! Files that hold secrets (a key-encryption key, a PKCS#11 PIN): opened once
//! without following a symbolic link, checked on the open descriptor
//! (regular file, owned by the process's user, no group or other access) and
//! read up to a bound into zeroizing memory.
use crate::{ErrorKind, ProviderError, Result};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use zeroize::Zeroizing;

/// Which secret file, for messages: its name in prose and its setting.
#[derive(Clone, Copy)]
pub struct SecretFile<'a> {
    /// "master key file", "PKCS#11 PIN file".
    pub what: &'a str,
    /// "apg_pqcrypto.master_key_file".
    pub setting: &'a str,
}

impl SecretFile<'_> {
    fn error(&self, problem: &str, hint: String, path: &str, cause: Option<&std::io::Error>) -> ProviderError {
        let detail = match cause {
            Some(e) => format!("{} \"{path}\": {e}", self.what),
            None => format!("{} \"{path}\"", self.what),
        };
        ProviderError { kind: ErrorKind::Misconfigured, message: format!("the {} {problem}", self.what), hint: Some(hint), detail }
    }

    /// Reads at most `max_len` bytes; a longer file is refused.
    pub fn read(&self, path: &str, max_len: usize) -> Result<Zeroizing<Vec<u8>>> {
        let setting = self.setting;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                let (problem, hint) = match (e.kind(), e.raw_os_error()) {
                    (IoKind::NotFound, _) => ("does not exist", format!("set {setting} to the file's path")),
                    (_, Some(libc::ELOOP)) => ("is a symbolic link", format!("point {setting} at the file itself")),
                    (IoKind::PermissionDenied, _) => {
                        ("cannot be read by the server", "the file must be readable by the server's operating-system user".into())
                    }
                    _ => ("cannot be opened", format!("check {setting}")),
                };
                self.error(problem, hint, path, Some(&e))
            })?;
        let meta = file.metadata().map_err(|e| self.error("cannot be examined", format!("check {setting}"), path, Some(&e)))?;
        if !meta.file_type().is_file() {
            return Err(self.error("is not a regular file", format!("point {setting} at a regular file"), path, None));
        }
        // SAFETY: geteuid has no preconditions and never fails.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(self.error(
                "is not owned by the server's operating-system user",
                "chown the file to the user the server runs as".into(),
                path,
                None,
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(self.error(
                "is accessible by group or others",
                format!("run chmod 600 on the file named by {setting} (the server log has its path)"),
                path,
                None,
            ));
        }
        let mut buf = Zeroizing::new(vec![0u8; max_len + 1]);
        let mut len = 0;
        let mut reader = file.take((max_len + 1) as u64);
        loop {
            match reader.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(self.error("cannot be read", format!("check {setting}"), path, Some(&e))),
            }
            if len == buf.len() {
                break;
            }
        }
        if len > max_len {
            return Err(self.error("is too long", format!("{setting} names a file of at most {max_len} bytes"), path, None));
        }
        buf.truncate(len);
        Ok(buf)
    }
}

/// Creates a 32-byte development key file atomically: a complete, synced
/// temporary file is linked into place, so a crash never leaves an empty or
/// partial key. Returns false if the file already existed (another process
/// linked its key first).
pub fn create_key_file(path: &str) -> Result<bool> {
    let fail = |e: &std::io::Error| {
        ProviderError::new(
            ErrorKind::Misconfigured,
            "the master key file cannot be created",
            Some("check the data directory's permissions"),
            format!("master key file \"{path}\": {e}"),
        )
    };
    let key = pqcore::Dek::generate()
        .map_err(|_| ProviderError::new(ErrorKind::Unavailable, "no random numbers", None, "getrandom failed"))?;
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
            Ok(true)
        }
        Err(e) if e.kind() == IoKind::AlreadyExists => Ok(false),
        Err(e) => Err(fail(&e)),
    }
}
