//! The commands of `apg-pq`, on the same core as the extension
//! (`pqcore`): key generation, client-side sealing to a tenant's public
//! key, opening, signatures, envelope inspection, and fetching a tenant's
//! public key from a database. `main.rs` only parses arguments.
//!
//! Secrets never come from the command line: secret keys are files
//! (created 0600, never overwritten), the database password comes from
//! `PGPASSWORD` or a file. Outputs are written to a temporary file in the
//! destination's directory and renamed into place only when complete, so a
//! failed `open` never leaves a partial plaintext behind.
use pqcore::{sealed, Envelope, KemPublicKey, KemSecretKey, Kind, SigningKey, VerifyingKey};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest input `seal`, `open`, `sign` and `verify` read (values are held
/// in memory; envelopes are one AEAD message).
pub const MAX_INPUT: u64 = 256 * 1024 * 1024;

/// What went wrong, with the process exit code it maps to (README, `--help`).
#[derive(Debug)]
pub enum CliError {
    /// 1: `verify`: the signature is not valid.
    Invalid,
    /// 3: bad input: a malformed key file or envelope, a key of the wrong type, an oversized input.
    Input(String),
    /// 4: `open`: authentication failed (wrong key, wrong AAD, modified data).
    Authentication,
    /// 5: a file could not be read or written.
    Io(String),
    /// 6: `fetch-key`: the database refused or could not be reached.
    Database(String),
    /// 7: `fetch-key`: the key's id is not the expected one.
    KidMismatch { expected: String, got: String },
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Invalid => 1,
            CliError::Input(_) => 3,
            CliError::Authentication => 4,
            CliError::Io(_) => 5,
            CliError::Database(_) => 6,
            CliError::KidMismatch { .. } => 7,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Invalid => f.write_str("the signature is not valid"),
            CliError::Input(m) => f.write_str(m),
            CliError::Authentication => f.write_str("decryption failed: wrong key, wrong AAD or modified data"),
            CliError::Io(m) => f.write_str(m),
            CliError::Database(m) => write!(f, "database: {m}"),
            CliError::KidMismatch { expected, got } => {
                write!(f, "the fetched key has kid {got}, not the expected {expected}: not written")
            }
        }
    }
}

impl From<pqcore::Error> for CliError {
    fn from(e: pqcore::Error) -> Self {
        match e {
            pqcore::Error::DecryptionFailed => CliError::Authentication,
            other => CliError::Input(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

fn io(what: &str, path: &Path, e: std::io::Error) -> CliError {
    CliError::Io(format!("{what} {}: {e}", path.display()))
}

/// Reads at most [`MAX_INPUT`] bytes from `path` ("-" or None: stdin).
pub fn read_input(path: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    let limit = MAX_INPUT + 1;
    let result = match path {
        None => std::io::stdin().lock().take(limit).read_to_end(&mut out),
        Some(p) if p == Path::new("-") => std::io::stdin().lock().take(limit).read_to_end(&mut out),
        Some(p) => std::fs::File::open(p).and_then(|f| f.take(limit).read_to_end(&mut out)),
    };
    let name = path.unwrap_or(Path::new("-"));
    result.map_err(|e| io("cannot read", name, e))?;
    if out.len() as u64 > MAX_INPUT {
        return Err(CliError::Input(format!(
            "{} is larger than {} MiB, the most apg-pq holds in memory",
            name.display(),
            MAX_INPUT >> 20
        )));
    }
    Ok(out)
}

/// Writes `bytes` to `path` (None or "-": stdout) through a temporary file
/// renamed into place; `secret` files are created 0600 and never replace
/// an existing file.
pub fn write_output(path: Option<&Path>, bytes: &[u8], secret: bool) -> Result<()> {
    let Some(path) = path.filter(|p| *p != Path::new("-")) else {
        let mut stdout = std::io::stdout().lock();
        return stdout.write_all(bytes).and_then(|_| stdout.flush()).map_err(|e| io("cannot write", Path::new("-"), e));
    };
    if secret && path.exists() {
        return Err(CliError::Io(format!("{} exists: a secret key is never overwritten", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp: PathBuf = dir.join(format!(".{name}.apg-pq-{}", std::process::id()));
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(if secret { 0o600 } else { 0o644 }).open(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if secret {
            // link() fails if the target exists: a key never replaces another.
            std::fs::hard_link(&temp, path)?;
            std::fs::remove_file(&temp)
        } else {
            std::fs::rename(&temp, path)
        }
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io("cannot write", path, e));
    }
    Ok(())
}

/// Key algorithms of `keygen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    MlKem768,
    MlDsa65,
}

/// A new key pair: the secret key (seed) to `secret` (0600, never
/// overwritten), the public key to `public`; returns the kid in hex.
pub fn keygen(algorithm: Algorithm, secret: &Path, public: &Path) -> Result<String> {
    if secret.exists() {
        return Err(CliError::Io(format!("{} exists: a secret key is never overwritten", secret.display())));
    }
    let (seed, public_key, kid): (Zeroizing<Vec<u8>>, Vec<u8>, String) = match algorithm {
        Algorithm::MlKem768 => {
            let (seed, key) = KemSecretKey::generate()?;
            (Zeroizing::new(seed.expose().to_vec()), key.public_key().as_bytes().to_vec(), key.kid().to_hex())
        }
        Algorithm::MlDsa65 => {
            let (seed, key) = SigningKey::generate()?;
            (Zeroizing::new(seed.expose().to_vec()), key.verifying_key().as_bytes().to_vec(), key.kid().to_hex())
        }
    };
    write_output(Some(secret), &seed, true)?;
    write_output(Some(public), &public_key, false)?;
    Ok(kid)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = read_input(Some(path))?;
    if bytes.len() > 8192 {
        return Err(CliError::Input(format!("{} is not a key file: {} bytes", path.display(), bytes.len())));
    }
    Ok(bytes)
}

fn wrong_key(path: &Path, want: &str) -> CliError {
    CliError::Input(format!("{} is not {want}", path.display()))
}

/// Seals `input` to the ML-KEM-768 public key in `public_key` (1184 bytes).
pub fn seal(public_key: &Path, aad: &[u8], input: Option<&Path>, output: Option<&Path>) -> Result<()> {
    let key = KemPublicKey::from_slice(&read_key_file(public_key)?)
        .map_err(|_| wrong_key(public_key, "an ML-KEM-768 public key (1184 bytes)"))?;
    let plaintext = read_input(input)?;
    let envelope = sealed::seal(&key, &plaintext, aad)?;
    write_output(output, &envelope, false)
}

/// Opens a sealed envelope with the ML-KEM-768 secret key in `secret_key`
/// (64-byte seed or 2400-byte expanded key).
pub fn open(secret_key: &Path, aad: &[u8], input: Option<&Path>, output: Option<&Path>) -> Result<()> {
    let key = KemSecretKey::from_slice(&read_key_file(secret_key)?)
        .map_err(|_| wrong_key(secret_key, "an ML-KEM-768 secret key (64-byte seed or 2400 bytes)"))?;
    let bytes = read_input(input)?;
    let parsed = Envelope::parse(&bytes)?;
    if parsed.kind() != Kind::Sealed {
        return Err(CliError::Input(format!("the input is a {} envelope, not a sealed one", parsed.kind().name())));
    }
    let envelope = parsed.into_sealed()?;
    if envelope.kid() != key.kid() {
        return Err(CliError::Input(format!(
            "the envelope was sealed to key {}, not to {} ({})",
            envelope.kid().to_hex(),
            key.kid().to_hex(),
            secret_key.display()
        )));
    }
    let plaintext = sealed::open(&key, &envelope, aad)?;
    write_output(output, plaintext.expose(), true)
}

/// A signature envelope (or, with `raw`, a raw FIPS 204 signature) by the
/// ML-DSA-65 seed in `secret_key` over `input`.
pub fn sign(secret_key: &Path, context: &[u8], raw: bool, input: Option<&Path>, output: Option<&Path>) -> Result<()> {
    let key = SigningKey::from_slice(&read_key_file(secret_key)?)
        .map_err(|_| wrong_key(secret_key, "an ML-DSA-65 secret key (32-byte seed)"))?;
    let message = read_input(input)?;
    let signature = if raw { key.sign(&message, context)? } else { key.sign_envelope(&message, context)? };
    write_output(output, &signature, false)
}

/// Checks a signature envelope (as `pq_sign` and `sign` make) or a raw
/// 3309-byte signature over `input` with the ML-DSA-65 public key in
/// `public_key` (1952 bytes).
pub fn verify(public_key: &Path, signature: &Path, context: &[u8], input: Option<&Path>) -> Result<()> {
    let key = VerifyingKey::from_slice(&read_key_file(public_key)?)
        .map_err(|_| wrong_key(public_key, "an ML-DSA-65 public key (1952 bytes)"))?;
    let sig = read_input(Some(signature))?;
    let message = read_input(input)?;
    let valid = match Envelope::parse(&sig) {
        Ok(parsed) if parsed.kind() == Kind::Signature => key.verify_envelope(&parsed.into_signature()?, &message, context)?,
        _ if sig.len() == pqcore::format::DSA_SIGNATURE_LEN => key.verify(&message, context, &sig)?,
        _ => return Err(CliError::Input(format!("{} is neither a signature envelope nor a raw signature", signature.display()))),
    };
    if valid {
        Ok(())
    } else {
        Err(CliError::Invalid)
    }
}

/// What an envelope is, as JSON: version, kind, kid, lengths. Never its content.
pub fn inspect(input: Option<&Path>) -> Result<String> {
    let bytes = read_input(input)?;
    let parsed = Envelope::parse(&bytes)?;
    let mut out = serde_json::json!({
        "version": 1,
        "kind": parsed.kind().name(),
        "kid": parsed.kid().to_hex(),
        "envelope_length": bytes.len(),
    });
    if parsed.kind() != Kind::Signature {
        out["plaintext_length"] = serde_json::json!(parsed.plaintext_len());
    }
    Ok(out.to_string())
}

/// Which public key `fetch-key` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKind {
    /// ML-KEM-768 (`pq.tenant_public_key`), to seal to.
    Kem,
    /// ML-DSA-65 (`pq.tenant_verifying_key`), to verify `pq_sign`'s signatures.
    Dsa,
}

/// Reads a tenant's active public key from the database at `url` (no
/// password in it: `PGPASSWORD` or `password_file`), checks its kid
/// against `expect_kid` when given, writes it to `output`; returns the kid.
pub fn fetch_key(
    url: &str,
    password_file: Option<&Path>,
    tenant: &str,
    kind: PublicKind,
    expect_kid: Option<&str>,
    output: &Path,
) -> Result<String> {
    let mut config: postgres::Config = url.parse().map_err(|e| CliError::Input(format!("not a database URL: {e}")))?;
    if config.get_password().is_some() {
        return Err(CliError::Input(
            "the URL holds a password: give it in PGPASSWORD or --password-file, never on the command line".into(),
        ));
    }
    if let Some(file) = password_file {
        let password = read_key_file(file)?;
        let trimmed = password.strip_suffix(b"\n").unwrap_or(&password);
        config.password(trimmed);
    } else if let Ok(password) = std::env::var("PGPASSWORD") {
        config.password(password.as_bytes());
    }
    let mut client = config.connect(postgres::NoTls).map_err(|e| CliError::Database(e.to_string()))?;
    let function = match kind {
        PublicKind::Kem => "pq.tenant_public_key",
        PublicKind::Dsa => "pq.tenant_verifying_key",
    };
    let row = client
        .query_one(&format!("SELECT {function}($1)"), &[&tenant])
        .map_err(|e| CliError::Database(e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())))?;
    let key: Vec<u8> = row.get(0);
    let kid = match kind {
        PublicKind::Kem => KemPublicKey::from_slice(&key)?.kid(),
        PublicKind::Dsa => VerifyingKey::from_slice(&key)?.kid(),
    }
    .to_hex();
    if let Some(expected) = expect_kid {
        if !expected.eq_ignore_ascii_case(&kid) {
            return Err(CliError::KidMismatch { expected: expected.to_owned(), got: kid });
        }
    }
    write_output(Some(output), &key, false)?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_sign_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(Algorithm::MlKem768, &p("kem.sk"), &p("kem.pk")).unwrap();
        keygen(Algorithm::MlDsa65, &p("dsa.sk"), &p("dsa.pk")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(p("kem.sk")).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(keygen(Algorithm::MlKem768, &p("kem.sk"), &p("other.pk")), Err(CliError::Io(_))));
        std::fs::write(p("msg"), b"database_url=postgres://x").unwrap();
        seal(&p("kem.pk"), b"aad", Some(&p("msg")), Some(&p("msg.sealed"))).unwrap();
        open(&p("kem.sk"), b"aad", Some(&p("msg.sealed")), Some(&p("msg.opened"))).unwrap();
        assert_eq!(std::fs::read(p("msg.opened")).unwrap(), b"database_url=postgres://x");
        // A wrong AAD: exit code 4 and no output file at all.
        let e = open(&p("kem.sk"), b"other", Some(&p("msg.sealed")), Some(&p("bad.opened"))).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(!p("bad.opened").exists());
        // Wrong key types are input errors.
        assert_eq!(seal(&p("dsa.pk"), b"", Some(&p("msg")), None).unwrap_err().exit_code(), 3);
        assert_eq!(open(&p("dsa.sk"), b"", Some(&p("msg.sealed")), None).unwrap_err().exit_code(), 3);
        sign(&p("dsa.sk"), b"ctx", false, Some(&p("msg")), Some(&p("msg.sig"))).unwrap();
        sign(&p("dsa.sk"), b"ctx", true, Some(&p("msg")), Some(&p("msg.rawsig"))).unwrap();
        verify(&p("dsa.pk"), &p("msg.sig"), b"ctx", Some(&p("msg"))).unwrap();
        verify(&p("dsa.pk"), &p("msg.rawsig"), b"ctx", Some(&p("msg"))).unwrap();
        assert_eq!(verify(&p("dsa.pk"), &p("msg.sig"), b"other", Some(&p("msg"))).unwrap_err().exit_code(), 1);
        assert!(inspect(Some(&p("msg.sealed"))).unwrap().contains("\"kind\":\"sealed\""));
        assert_eq!(inspect(Some(&p("msg"))).unwrap_err().exit_code(), 3);
    }

    #[test]
    fn truncated_envelopes_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(Algorithm::MlKem768, &p("k.sk"), &p("k.pk")).unwrap();
        std::fs::write(p("m"), b"x").unwrap();
        seal(&p("k.pk"), b"", Some(&p("m")), Some(&p("m.sealed"))).unwrap();
        let sealed = std::fs::read(p("m.sealed")).unwrap();
        for cut in [0, 1, 2, 100, sealed.len() - 1] {
            std::fs::write(p("cut"), &sealed[..cut]).unwrap();
            let code = open(&p("k.sk"), b"", Some(&p("cut")), Some(&p("out"))).unwrap_err().exit_code();
            assert!(code == 3 || code == 4, "cut {cut}: {code}");
            assert!(!p("out").exists());
        }
    }
}
