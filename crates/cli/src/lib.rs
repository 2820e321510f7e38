//! The commands of `apg-pq`, on the same core as the extension
//! (`pqcore`): key generation, client-side sealing to a tenant's public
//! key (ML-KEM-768 or X-Wing; one value, a batch of values, or a stream of
//! any size), opening, signatures, envelope inspection, and fetching a
//! tenant's public key from a database. `main.rs` only parses arguments.
//!
//! Secrets never come from the command line: secret keys are files
//! (created 0600, never overwritten), the database password comes from
//! `PGPASSWORD` or a file. Outputs are written to a temporary file in the
//! destination's directory and renamed into place only when complete, so a
//! failed `open` never leaves a partial plaintext behind.
use pqcore::{
    blind,
    format::{KIND_STREAM, STREAM_PREFIX_LEN},
    sealed,
    stream::{self, ChunkCipher, StreamError, StreamHeader},
    Envelope, Kind, RecipientKey, RecipientSecret, SignatureSuite, SigningKey, Suite, VerifyingKey,
};
pub mod db;
pub mod escrow;

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest input `seal`, `open`, `sign` and `verify` read into memory
/// (an envelope is one AEAD message); `seal --stream` has no limit, and
/// `open` of a stream to stdout holds at most this much plaintext.
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
    /// 8: `escrow reseal`: the request statement does not show the pinned
    /// approvals, the wait, or this share's escrow and request key.
    NotApproved(String),
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
            CliError::NotApproved(_) => 8,
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
            CliError::NotApproved(m) => write!(f, "not re-sealed: {m}"),
        }
    }
}

impl From<StreamError> for CliError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Crypto(e) => e.into(),
            StreamError::Io(e) => CliError::Io(e.to_string()),
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
    write_file(path, secret, false, |w| w.write_all(bytes).map_err(|e| io("cannot write", path.unwrap_or(Path::new("-")), e)))
}

/// As [`write_output`], for a key file: flushed to disk (fsync) before it
/// is renamed into place, so a key handed out survives a crash. Other
/// outputs are not synced (as age and cp do not): the rename still makes
/// them appear whole or not at all.
pub fn write_key(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    write_file(Some(path), secret, true, |w| w.write_all(bytes).map_err(|e| io("cannot write", path, e)))
}

/// As [`write_output`], with the content written by `fill`; if `fill`
/// fails, the temporary file is removed and the destination untouched.
pub fn write_output_with(path: Option<&Path>, secret: bool, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    write_file(path, secret, false, fill)
}

fn write_file(
    path: Option<&Path>,
    secret: bool,
    durable: bool,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let Some(path) = path.filter(|p| *p != Path::new("-")) else {
        let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        fill(&mut stdout)?;
        return stdout.flush().map_err(|e| io("cannot write", Path::new("-"), e));
    };
    if secret && path.exists() {
        return Err(CliError::Io(format!("{} exists: a secret key is never overwritten", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp: PathBuf = dir.join(format!(".{name}.apg-pq-{}", std::process::id()));
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&temp)
        .map_err(|e| io("cannot create", &temp, e))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 16, file);
    if let Err(e) = fill(&mut writer) {
        drop(writer);
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    let written = (|| {
        let f = writer.into_inner().map_err(|e| e.into_error())?;
        if durable {
            f.sync_all()?;
        }
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
    MlKem1024,
    XWing,
    MlDsa65,
    MlDsa87,
    SlhDsa,
}

/// A new key pair: the secret key (seed) to `secret` (0600, never
/// overwritten), the public key to `public`; returns the kid in hex.
pub fn keygen(algorithm: Algorithm, secret: &Path, public: &Path) -> Result<String> {
    if secret.exists() {
        return Err(CliError::Io(format!("{} exists: a secret key is never overwritten", secret.display())));
    }
    let (seed, public_key, kid): (Zeroizing<Vec<u8>>, Vec<u8>, String) = match algorithm {
        Algorithm::MlKem768 | Algorithm::MlKem1024 | Algorithm::XWing => {
            let suite = match algorithm {
                Algorithm::XWing => Suite::XWing,
                Algorithm::MlKem1024 => Suite::MlKem1024,
                _ => Suite::MlKem768,
            };
            let (seed, key) = RecipientSecret::generate(suite)?;
            (Zeroizing::new(seed.expose().to_vec()), key.public_key().as_bytes().to_vec(), key.kid().to_hex())
        }
        Algorithm::SlhDsa => {
            let (seed, key) = pqcore::slh::SlhSigningKey::generate()?;
            let public = key.public_key();
            (Zeroizing::new(seed.to_vec()), public.to_vec(), pqcore::Kid::of(&public).to_hex())
        }
        Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
            let suite = if algorithm == Algorithm::MlDsa87 { SignatureSuite::MlDsa87 } else { SignatureSuite::MlDsa65 };
            let (seed, key) = SigningKey::generate_for(suite)?;
            (Zeroizing::new(seed.expose().to_vec()), key.verifying_key().as_bytes().to_vec(), key.kid().to_hex())
        }
    };
    write_key(secret, &seed, true)?;
    write_key(public, &public_key, false)?;
    Ok(kid)
}

pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = read_input(Some(path))?;
    if bytes.len() > 8192 {
        return Err(CliError::Input(format!("{} is not a key file: {} bytes", path.display(), bytes.len())));
    }
    Ok(bytes)
}

pub(crate) fn wrong_key(path: &Path, want: &str) -> CliError {
    CliError::Input(format!("{} is not {want}", path.display()))
}

const PUBLIC_KEM_KEY: &str = "an ML-KEM-768 (1184 bytes), ML-KEM-1024 (1568 bytes) or X-Wing (1216 bytes) public key";
const SECRET_KEM_KEY: &str =
    "an ML-KEM-768 (64-byte seed or 2400 bytes), ML-KEM-1024 (64-byte seed or 3168 bytes) or X-Wing (32-byte seed) secret key";

pub(crate) fn recipient(public_key: &Path) -> Result<RecipientKey> {
    RecipientKey::from_slice(&read_key_file(public_key)?).map_err(|_| wrong_key(public_key, PUBLIC_KEM_KEY))
}

pub(crate) fn secret_kem_key(secret_key: &Path) -> Result<RecipientSecret> {
    RecipientSecret::from_slice(&read_key_file(secret_key)?).map_err(|_| wrong_key(secret_key, SECRET_KEM_KEY))
}

/// The secret key for an envelope of `suite` (a 64-byte seed is either
/// ML-KEM set's: the envelope's kind decides).
pub(crate) fn secret_kem_key_for(secret_key: &Path, suite: Suite) -> Result<RecipientSecret> {
    RecipientSecret::from_slice_for(suite, &read_key_file(secret_key)?)
        .map_err(|_| wrong_key(secret_key, &format!("a {} secret key", suite.name())))
}

pub(crate) fn not_this_key(kid: pqcore::Kid, key: &RecipientSecret, path: &Path) -> CliError {
    CliError::Input(format!("the input was sealed to key {}, not to {} ({})", kid.to_hex(), key.kid().to_hex(), path.display()))
}

/// Seals `input` to the public key in `public_key` (ML-KEM-768 or X-Wing):
/// one sealed envelope ('S' or 'X'), which pq_unseal opens.
pub fn seal(public_key: &Path, aad: &[u8], input: Option<&Path>, output: Option<&Path>) -> Result<()> {
    let key = recipient(public_key)?;
    let plaintext = read_input(input)?;
    let envelope = sealed::seal(&key, &plaintext, aad)?;
    write_output(output, &envelope, false)
}

/// A progress bar on standard error for `total` bytes (a spinner when the
/// size is unknown); indicatif draws nothing when stderr is not a terminal.
fn progress_bar(total: Option<u64>, quiet: bool) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} {eta}"
    } else {
        "{spinner} {bytes} {binary_bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn open_input(path: Option<&Path>) -> Result<(Box<dyn Read>, Option<u64>)> {
    match path.filter(|p| *p != Path::new("-")) {
        None => Ok((Box::new(std::io::stdin().lock()), None)),
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| io("cannot read", p, e))?;
            let len = f.metadata().ok().map(|m| m.len());
            Ok((Box::new(std::io::BufReader::with_capacity(1 << 16, f)), len))
        }
    }
}

/// Seals `input` of any size as a stream ('T', 64 KiB chunks) to the public
/// key in `public_key`; `open` reads it back. Not for pq_unseal.
pub fn seal_stream(public_key: &Path, aad: &[u8], input: Option<&Path>, output: Option<&Path>, quiet: bool) -> Result<u64> {
    let key = recipient(public_key)?;
    let (mut reader, total) = open_input(input)?;
    let bar = progress_bar(total, quiet);
    let mut done = 0;
    write_output_with(output, false, |w| {
        done = stream::seal_stream_with::<RingChunks>(&key, aad, &mut reader, &mut WriteRef(w), &mut |n| bar.set_position(n))?;
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(done)
}

/// The chunks of streams: ChaCha20-Poly1305 (RFC 8439) from ring, whose
/// assembly moves bulk data several times faster than the portable
/// RustCrypto backends this workspace builds for the extension's short
/// values (docs/PERFORMANCE.md). Same function, same bytes: the tests open
/// streams sealed by either with the other. ring does not wipe its copy
/// of the stream key; it lives for one stream in this process.
pub struct RingChunks(ring::aead::LessSafeKey);

impl ChunkCipher for RingChunks {
    fn new(key: &[u8; 32]) -> std::result::Result<Self, pqcore::Error> {
        let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key).map_err(|_| pqcore::Error::InvalidKey)?;
        Ok(Self(ring::aead::LessSafeKey::new(unbound)))
    }

    fn seal(&self, nonce: &[u8; 12], chunk: &mut [u8]) -> std::result::Result<[u8; 16], pqcore::Error> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce);
        let tag = self.0.seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), chunk).map_err(|_| pqcore::Error::OutOfMemory)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open(&self, nonce: &[u8; 12], chunk: &mut [u8], tag: &[u8; 16]) -> std::result::Result<(), pqcore::Error> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce);
        let tag = ring::aead::Tag::from(*tag);
        if self.0.open_in_place_separate_tag(nonce, ring::aead::Aad::empty(), tag, chunk, 0..).is_err() {
            zeroize::Zeroize::zeroize(chunk);
            return Err(pqcore::Error::DecryptionFailed);
        }
        Ok(())
    }
}

/// `&mut dyn Write` as a sized `Write`.
struct WriteRef<'a>(&'a mut dyn Write);

impl Write for WriteRef<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Seals each line of `input` (without its newline) as one item of a batch
/// to `public_key`: one key encapsulation for all. With `tsv`, a line is
/// `aad<TAB>value`; otherwise every item binds `aad`. Writes one item per
/// line as `\x` and lower-case hex, as PostgreSQL reads bytea (COPY … CSV).
pub fn seal_batch(public_key: &Path, aad: &[u8], tsv: bool, input: Option<&Path>, output: Option<&Path>) -> Result<usize> {
    let key = recipient(public_key)?;
    let text = read_input(input)?;
    let mut values: Vec<&[u8]> = Vec::new();
    let mut aads: Vec<&[u8]> = Vec::new();
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let lines = if text.is_empty() { None } else { Some(body.split(|b| *b == b'\n')) };
    for (n, line) in lines.into_iter().flatten().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if tsv {
            let tab = line.iter().position(|b| *b == b'\t').ok_or_else(|| {
                CliError::Input(format!("line {} has no tab: with --tsv each line is aad<TAB>value", n + 1))
            })?;
            aads.push(&line[..tab]);
            values.push(&line[tab + 1..]);
        } else {
            aads.push(aad);
            values.push(line);
        }
    }
    let items = sealed::seal_batch(&key, &values, &aads)?;
    write_output_with(output, false, |w| {
        for item in &items {
            let mut line = String::with_capacity(3 + 2 * item.len());
            line.push_str("\\x");
            line.push_str(&hex::encode(item));
            line.push('\n');
            w.write_all(line.as_bytes()).map_err(|e| CliError::Io(e.to_string()))?;
        }
        Ok(())
    })?;
    Ok(items.len())
}

/// Reads the first bytes of `input`: a stream's prefix, or the start of an envelope.
fn read_head(reader: &mut dyn Read) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(STREAM_PREFIX_LEN);
    reader.take(STREAM_PREFIX_LEN as u64).read_to_end(&mut head).map_err(|e| CliError::Io(format!("cannot read: {e}")))?;
    Ok(head)
}

fn is_stream(head: &[u8]) -> bool {
    head.len() == STREAM_PREFIX_LEN && head[0] == pqcore::format::VERSION_1 && head[1] == KIND_STREAM
}

/// What an input holds: a stream, its header read and the reader at the
/// first chunk, or an envelope, read whole (at most [`MAX_INPUT`] bytes).
enum Input {
    Stream { header: StreamHeader, reader: Box<dyn Read>, total: Option<u64> },
    Envelope(Zeroizing<Vec<u8>>),
}

fn read_envelope_or_stream(path: Option<&Path>) -> Result<Input> {
    let (mut reader, total) = open_input(path)?;
    let head = read_head(&mut reader)?;
    if is_stream(&head) {
        let prefix: [u8; STREAM_PREFIX_LEN] = head.as_slice().try_into().map_err(|_| CliError::Input("truncated".into()))?;
        let header = StreamHeader::from_prefix(prefix, &mut reader)?;
        return Ok(Input::Stream { header, reader, total });
    }
    let mut bytes = Zeroizing::new(head);
    let limit = MAX_INPUT + 1 - bytes.len() as u64;
    reader.take(limit).read_to_end(&mut bytes).map_err(|e| CliError::Io(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(CliError::Input(format!("the input is larger than {} MiB and not a stream", MAX_INPUT >> 20)));
    }
    Ok(Input::Envelope(bytes))
}

/// Opens what `seal` made (a sealed envelope or batch item, 'S', 'X', 'B'
/// or 'W', or a stream 'T') with the secret key in `secret_key`. The
/// plaintext file is created 0600, and only once everything is authenticated.
pub fn open(secret_key: &Path, aad: &[u8], input: Option<&Path>, output: Option<&Path>, quiet: bool) -> Result<()> {
    let bytes = match read_envelope_or_stream(input)? {
        Input::Envelope(bytes) => bytes,
        Input::Stream { header, reader, total } => {
            let key = secret_kem_key_for(secret_key, header.suite())?;
            return open_stream(&key, secret_key, &header, aad, reader, total, output, quiet);
        }
    };
    let parsed = Envelope::parse(&bytes)?;
    if parsed.kind() != Kind::Sealed {
        return Err(CliError::Input(format!("the input is a {} envelope, not a sealed one", parsed.kind().name())));
    }
    let envelope = parsed.into_sealed()?;
    let key = secret_kem_key_for(secret_key, envelope.suite())?;
    if envelope.kid() != key.kid() {
        return Err(not_this_key(envelope.kid(), &key, secret_key));
    }
    let plaintext = sealed::open(&key, &envelope, aad)?;
    write_output(output, plaintext.expose(), true)
}

/// The stream half of [`open`]: chunks to a temporary file renamed into
/// place at the end, or (to stdout) into memory written only at the end.
#[allow(clippy::too_many_arguments)]
fn open_stream(
    key: &RecipientSecret,
    key_path: &Path,
    header: &StreamHeader,
    aad: &[u8],
    mut reader: Box<dyn Read>,
    total: Option<u64>,
    output: Option<&Path>,
    quiet: bool,
) -> Result<()> {
    if header.kid() != key.kid() {
        return Err(not_this_key(header.kid(), key, key_path));
    }
    let bar = progress_bar(total, quiet);
    if output.is_none_or(|p| p == Path::new("-")) {
        // Nothing reaches stdout before the whole stream is authenticated.
        // Reserved up front when the size is known, so that growing the
        // buffer does not leave unwiped copies of plaintext behind.
        let mut plain = Zeroizing::new(Vec::new());
        let expect = total.unwrap_or(0).min(MAX_INPUT) as usize;
        plain.try_reserve_exact(expect).map_err(|_| CliError::Input("not enough memory for the stream's plaintext".into()))?;
        let mut limited = LimitedWriter { inner: &mut plain, left: MAX_INPUT };
        header.open_with::<RingChunks>(key, aad, &mut reader, &mut limited, &mut |n| bar.set_position(n)).map_err(|e| match e {
            StreamError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => CliError::Input(format!(
                "the stream's plaintext is larger than {} MiB, the most apg-pq holds in memory: open it with --output FILE",
                MAX_INPUT >> 20
            )),
            other => other.into(),
        })?;
        bar.finish_and_clear();
        return write_output(None, &plain, true);
    }
    write_output_with(output, true, |w| {
        header.open_with::<RingChunks>(key, aad, &mut reader, &mut WriteRef(w), &mut |n| bar.set_position(n))?;
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(())
}

/// A writer that refuses more than `left` bytes (StorageFull).
struct LimitedWriter<'a> {
    inner: &'a mut Vec<u8>,
    left: u64,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        self.left -= buf.len() as u64;
        self.inner.try_reserve(buf.len()).map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        self.inner.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `sign` signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignAlgorithm {
    /// ML-DSA-65 ('G' envelopes) or ML-DSA-87 ('H').
    MlDsa(SignatureSuite),
    /// SLH-DSA-SHA2-128s (FIPS 205): raw signatures only.
    SlhDsa,
}

/// A signature envelope (or, with `raw`, a raw signature) by the seed in
/// `secret_key` over `input`: ML-DSA-65 'G', ML-DSA-87 'H', or a raw
/// SLH-DSA-SHA2-128s signature (it has no envelope kind).
pub fn sign(
    secret_key: &Path,
    algorithm: SignAlgorithm,
    context: &[u8],
    raw: bool,
    input: Option<&Path>,
    output: Option<&Path>,
) -> Result<()> {
    let suite = match algorithm {
        SignAlgorithm::MlDsa(suite) => suite,
        SignAlgorithm::SlhDsa => {
            if !raw {
                return Err(CliError::Input("SLH-DSA signatures have no envelope: add --raw".into()));
            }
            let key = pqcore::slh::SlhSigningKey::from_seed(&read_key_file(secret_key)?)
                .map_err(|_| wrong_key(secret_key, "an SLH-DSA-SHA2-128s secret key (48-byte seed)"))?;
            let message = read_input(input)?;
            return write_output(output, &key.sign_hedged(&message, context)?, false);
        }
    };
    let key = SigningKey::from_slice_for(suite, &read_key_file(secret_key)?)
        .map_err(|_| wrong_key(secret_key, &format!("an {} secret key (32-byte seed)", suite.name())))?;
    let message = read_input(input)?;
    let signature = if raw { key.sign(&message, context)? } else { key.sign_envelope(&message, context)? };
    write_output(output, &signature, false)
}

/// Checks a signature envelope (as `pq_sign` and `sign` make) or a raw
/// signature over `input` with the public key in `public_key`: ML-DSA-65
/// (1952 bytes, 3309-byte signatures), ML-DSA-87 (2592, 4627) or
/// SLH-DSA-SHA2-128s (32, 7856; raw only).
pub fn verify(public_key: &Path, signature: &Path, context: &[u8], input: Option<&Path>) -> Result<()> {
    let public = read_key_file(public_key)?;
    let sig = read_input(Some(signature))?;
    let message = read_input(input)?;
    if public.len() == pqcore::slh::PUBLIC_KEY_LEN {
        if context.len() > pqcore::format::DSA_MAX_CONTEXT_LEN {
            return Err(CliError::Input("the context is at most 255 bytes".into()));
        }
        return if pqcore::slh::verify(&public, &message, context, &sig) { Ok(()) } else { Err(CliError::Invalid) };
    }
    let key = VerifyingKey::from_slice(&public).map_err(|_| {
        wrong_key(public_key, "an ML-DSA-65 (1952 bytes), ML-DSA-87 (2592 bytes) or SLH-DSA-SHA2-128s (32 bytes) public key")
    })?;
    let valid = match Envelope::parse(&sig) {
        Ok(parsed) if parsed.kind() == Kind::Signature => key.verify_envelope(&parsed.into_signature()?, &message, context)?,
        _ if sig.len() == key.suite().signature_len() => key.verify(&message, context, &sig)?,
        _ => return Err(CliError::Input(format!("{} is neither a signature envelope nor a raw signature", signature.display()))),
    };
    if valid {
        Ok(())
    } else {
        Err(CliError::Invalid)
    }
}

/// What an envelope or stream is, as JSON: version, kind, kid, suite,
/// lengths. Never its content. Reads only a stream's header.
pub fn inspect(input: Option<&Path>) -> Result<String> {
    let bytes = match read_envelope_or_stream(input)? {
        Input::Envelope(bytes) => bytes,
        Input::Stream { header, total, .. } => {
            let mut out = serde_json::json!({
                "version": 1,
                "kind": "stream",
                "kid": header.kid().to_hex(),
                "kem": header.suite().name(),
                "chunk_size": header.chunk_size(),
                "header_length": header.len(),
            });
            if let Some(total) = total {
                out["stream_length"] = serde_json::json!(total);
            }
            return Ok(out.to_string());
        }
    };
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
    if let Envelope::Signature(signature) = parsed {
        out["signature"] = serde_json::json!(signature.suite().name());
    }
    if let Envelope::Sealed(sealed) = parsed {
        out["kem"] = serde_json::json!(sealed.suite().name());
        if let Some((index, count)) = sealed.batch_position() {
            out["batch_index"] = serde_json::json!(index);
            out["batch_count"] = serde_json::json!(count);
        }
    }
    Ok(out.to_string())
}

/// `index-key`: opens a blind index key exported by `pq.export_index_key`
/// (FORMAT.md §16.5) with the client's secret key, checking that it is the
/// key of the version `kid` and `context`, and writes its 32 bytes to a new
/// 0600 file.
pub fn index_key(secret_key: &Path, kid_hex: &str, context: &str, input: Option<&Path>, output: &Path) -> Result<()> {
    let key = secret_kem_key(secret_key)?;
    let kid = hex::decode(kid_hex.trim().trim_start_matches("\\x"))
        .ok()
        .and_then(|b| pqcore::Kid::from_slice(&b).ok())
        .ok_or_else(|| CliError::Input("--kid is the key version's kid: 32 hex digits (the kid column of pq.export_index_key)".into()))?;
    blind::check_context(context.as_bytes()).map_err(|e| CliError::Input(e.to_string()))?;
    let bytes = read_input(input)?;
    let parsed = Envelope::parse(&bytes)?;
    if parsed.kind() != Kind::Sealed {
        return Err(CliError::Input(format!("the input is a {} envelope, not a sealed index key", parsed.kind().name())));
    }
    let envelope = parsed.into_sealed()?;
    if envelope.kid() != key.kid() {
        return Err(not_this_key(envelope.kid(), &key, secret_key));
    }
    let opened = sealed::open(&key, &envelope, &blind::export_aad(&kid, context.as_bytes()))?;
    if opened.expose().len() != blind::INDEX_KEY_LEN {
        return Err(CliError::Input("the envelope does not hold a 32-byte index key".into()));
    }
    write_key(output, opened.expose(), true)
}

/// `index-term`: the blind index term (lower-case hex) of the value read
/// from `input` under an index key file, as `pq_blind_index` makes it.
pub fn index_term(index_key: &Path, bits: i64, normalization: &str, input: Option<&Path>) -> Result<String> {
    let bad = |e: blind::BlindError| CliError::Input(e.to_string());
    let key = blind::IndexKey::from_slice(&read_key_file(index_key)?).map_err(bad)?;
    let len = blind::term_len(bits).map_err(bad)?;
    let n = blind::Normalization::parse(normalization).map_err(bad)?;
    let value = read_input(input)?;
    let term = if n == blind::Normalization::default() {
        key.term(&value, len)
    } else {
        let text = std::str::from_utf8(&value).map_err(|_| CliError::Input("the value is not UTF-8 text, which --normalization needs".into()))?;
        key.text_term(text, n, len)
    };
    Ok(hex::encode(term))
}

fn database_error(e: postgres::Error) -> CliError {
    CliError::Database(e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned()))
}

/// What `backup` asks the server for.
pub struct BackupRequest<'a> {
    pub db: db::Database<'a>,
    /// None: every tenant.
    pub tenant: Option<&'a str>,
    /// The recovery officer's public key file.
    pub recipient_key: &'a Path,
    pub include_metadata: bool,
}

/// Asks the server for a key backup bundle sealed to the officer's key
/// (`pq.export_key_backup`), checks that it is one, sealed to that key, and
/// saves it (0600, fsync'd). Returns a description.
pub fn backup(request: &BackupRequest<'_>, output: &Path) -> Result<String> {
    let to = recipient(request.recipient_key)?;
    let (mut client, mode) = db::connect(&request.db)?;
    let row = client
        .query_one(
            "SELECT pq.export_key_backup(tenant => $1, recipient_public_key => $2, include_metadata => $3)",
            &[&request.tenant, &to.recipient().as_bytes(), &request.include_metadata],
        )
        .map_err(database_error)?;
    let bundle: Vec<u8> = row.get(0);
    let (header, _) = pqcore::backup::BundleHeader::parse(&bundle)?;
    if header.kid != to.kid() {
        return Err(CliError::Input("the server's bundle is not sealed to the recipient key".into()));
    }
    write_key(output, &bundle, true)?;
    Ok(format!("{} (sslmode {})", describe_bundle(&header, bundle.len()), mode.name()))
}

fn describe_bundle(h: &pqcore::backup::BundleHeader, len: usize) -> String {
    format!("key backup {} made at {} (Unix time), {len} bytes, sealed to {}", hex::encode(h.backup_id), h.created, h.kid.to_hex())
}

/// What a recovery officer runs offline: opens the bundle with their key
/// and re-seals it to a cluster's restore key (from `pq.restore_begin()`).
pub fn backup_reseal(secret_key: &Path, bundle: &Path, restore_key: &Path, output: &Path) -> Result<String> {
    let key = secret_kem_key(secret_key)?;
    let to = recipient(restore_key)?;
    let bytes = read_input(Some(bundle))?;
    let (header, _) = pqcore::backup::BundleHeader::parse(&bytes)?;
    if header.kid != key.kid() {
        return Err(not_this_key(header.kid, &key, secret_key));
    }
    let resealed = pqcore::backup::reseal(&bytes, &key, to.recipient())?;
    write_key(output, &resealed, true)?;
    let (header, _) = pqcore::backup::BundleHeader::parse(&resealed)?;
    Ok(describe_bundle(&header, resealed.len()))
}

/// Which public key `fetch-key` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKind {
    /// ML-KEM-768 or X-Wing (`pq.tenant_public_key`), to seal to.
    Kem,
    /// ML-DSA-65 (`pq.tenant_verifying_key`), to verify `pq_sign`'s signatures.
    Dsa,
}

/// Reads a tenant's active public key from the database `db` (see
/// [`db::connect`]: verified TLS to a remote host), checks its kid against
/// `expect_kid` when given, writes it to `output`; returns the kid.
pub fn fetch_key(
    db: &db::Database<'_>,
    tenant: &str,
    kind: PublicKind,
    expect_kid: Option<&str>,
    output: &Path,
) -> Result<String> {
    let (mut client, _) = db::connect(db)?;
    let function = match kind {
        PublicKind::Kem => "pq.tenant_public_key",
        PublicKind::Dsa => "pq.tenant_verifying_key",
    };
    let row = client
        .query_one(&format!("SELECT {function}($1)"), &[&tenant])
        .map_err(database_error)?;
    let key: Vec<u8> = row.get(0);
    let kid = match kind {
        PublicKind::Kem => RecipientKey::from_slice(&key)?.kid(),
        PublicKind::Dsa => VerifyingKey::from_slice(&key)?.kid(),
    }
    .to_hex();
    if let Some(expected) = expect_kid {
        if !expected.eq_ignore_ascii_case(&kid) {
            return Err(CliError::KidMismatch { expected: expected.to_owned(), got: kid });
        }
    }
    write_key(output, &key, false)?;
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
        open(&p("kem.sk"), b"aad", Some(&p("msg.sealed")), Some(&p("msg.opened")), true).unwrap();
        assert_eq!(std::fs::read(p("msg.opened")).unwrap(), b"database_url=postgres://x");
        // A wrong AAD: exit code 4 and no output file at all.
        let e = open(&p("kem.sk"), b"other", Some(&p("msg.sealed")), Some(&p("bad.opened")), true).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(!p("bad.opened").exists());
        // Wrong key types are input errors.
        assert_eq!(seal(&p("dsa.pk"), b"", Some(&p("msg")), None).unwrap_err().exit_code(), 3);
        assert_eq!(open(&p("dsa.sk"), b"", Some(&p("msg.sealed")), None, true).unwrap_err().exit_code(), 3);
        sign(&p("dsa.sk"), SignAlgorithm::MlDsa(SignatureSuite::MlDsa65), b"ctx", false, Some(&p("msg")), Some(&p("msg.sig"))).unwrap();
        sign(&p("dsa.sk"), SignAlgorithm::MlDsa(SignatureSuite::MlDsa65), b"ctx", true, Some(&p("msg")), Some(&p("msg.rawsig"))).unwrap();
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
            let code = open(&p("k.sk"), b"", Some(&p("cut")), Some(&p("out")), true).unwrap_err().exit_code();
            assert!(code == 3 || code == 4, "cut {cut}: {code}");
            assert!(!p("out").exists());
        }
    }

    /// The CNSA 2.0 suites: ML-KEM-1024 keys seal 'L' envelopes and streams
    /// that open with their seed (never with an ML-KEM-768 reading of it);
    /// ML-DSA-87 seeds sign 'H' envelopes and raw 4627-byte signatures.
    #[test]
    fn cnsa2_suites() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(Algorithm::MlKem1024, &p("l.sk"), &p("l.pk")).unwrap();
        assert_eq!((std::fs::read(p("l.sk")).unwrap().len(), std::fs::read(p("l.pk")).unwrap().len()), (64, 1568));
        std::fs::write(p("msg"), b"hello cnsa").unwrap();
        seal(&p("l.pk"), b"a", Some(&p("msg")), Some(&p("msg.l"))).unwrap();
        assert_eq!(std::fs::read(p("msg.l")).unwrap()[1], b'L');
        assert!(inspect(Some(&p("msg.l"))).unwrap().contains("\"kem\":\"ml-kem-1024\""));
        open(&p("l.sk"), b"a", Some(&p("msg.l")), Some(&p("msg.l.out")), true).unwrap();
        assert_eq!(std::fs::read(p("msg.l.out")).unwrap(), b"hello cnsa");
        assert!(open(&p("l.sk"), b"b", Some(&p("msg.l")), Some(&p("no")), true).is_err());
        assert!(!p("no").exists());
        let big = vec![0x5au8; 150_000];
        std::fs::write(p("big"), &big).unwrap();
        seal_stream(&p("l.pk"), b"", Some(&p("big")), Some(&p("big.t")), true).unwrap();
        open(&p("l.sk"), b"", Some(&p("big.t")), Some(&p("big.out")), true).unwrap();
        assert_eq!(std::fs::read(p("big.out")).unwrap(), big);
        keygen(Algorithm::MlDsa87, &p("h.sk"), &p("h.pk")).unwrap();
        assert_eq!(std::fs::read(p("h.pk")).unwrap().len(), 2592);
        sign(&p("h.sk"), SignAlgorithm::MlDsa(SignatureSuite::MlDsa87), b"ctx", false, Some(&p("msg")), Some(&p("msg.sig"))).unwrap();
        sign(&p("h.sk"), SignAlgorithm::MlDsa(SignatureSuite::MlDsa87), b"ctx", true, Some(&p("msg")), Some(&p("msg.raw"))).unwrap();
        assert_eq!(std::fs::read(p("msg.sig")).unwrap()[1], b'H');
        assert_eq!(std::fs::read(p("msg.raw")).unwrap().len(), 4627);
        assert!(inspect(Some(&p("msg.sig"))).unwrap().contains("\"signature\":\"ml-dsa-87\""));
        verify(&p("h.pk"), &p("msg.sig"), b"ctx", Some(&p("msg"))).unwrap();
        verify(&p("h.pk"), &p("msg.raw"), b"ctx", Some(&p("msg"))).unwrap();
        assert!(verify(&p("h.pk"), &p("msg.sig"), b"other", Some(&p("msg"))).is_err());
        // The same seed read as ML-DSA-65 is another key: its signature does not verify.
        sign(&p("h.sk"), SignAlgorithm::MlDsa(SignatureSuite::MlDsa65), b"ctx", false, Some(&p("msg")), Some(&p("msg.g"))).unwrap();
        assert!(verify(&p("h.pk"), &p("msg.g"), b"ctx", Some(&p("msg"))).is_err());
        // SLH-DSA-SHA2-128s: raw signatures only, verified by the 32-byte key's length.
        keygen(Algorithm::SlhDsa, &p("s.sk"), &p("s.pk")).unwrap();
        assert_eq!((std::fs::read(p("s.sk")).unwrap().len(), std::fs::read(p("s.pk")).unwrap().len()), (48, 32));
        assert!(sign(&p("s.sk"), SignAlgorithm::SlhDsa, b"ctx", false, Some(&p("msg")), Some(&p("no"))).is_err());
        sign(&p("s.sk"), SignAlgorithm::SlhDsa, b"ctx", true, Some(&p("msg")), Some(&p("msg.slh"))).unwrap();
        assert_eq!(std::fs::read(p("msg.slh")).unwrap().len(), 7856);
        verify(&p("s.pk"), &p("msg.slh"), b"ctx", Some(&p("msg"))).unwrap();
        assert!(verify(&p("s.pk"), &p("msg.slh"), b"other", Some(&p("msg"))).is_err());
        assert!(verify(&p("s.pk"), &p("msg.raw"), b"ctx", Some(&p("msg"))).is_err());
    }

    #[test]
    fn x_wing_batch_and_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(Algorithm::XWing, &p("x.sk"), &p("x.pk")).unwrap();
        keygen(Algorithm::MlKem768, &p("m.sk"), &p("m.pk")).unwrap();
        assert_eq!(std::fs::read(p("x.sk")).unwrap().len(), 32);
        assert_eq!(std::fs::read(p("x.pk")).unwrap().len(), 1216);
        std::fs::write(p("msg"), b"hello x-wing").unwrap();
        seal(&p("x.pk"), b"a", Some(&p("msg")), Some(&p("msg.x"))).unwrap();
        assert_eq!(std::fs::read(p("msg.x")).unwrap()[1], b'X');
        assert!(inspect(Some(&p("msg.x"))).unwrap().contains("\"kem\":\"x-wing\""));
        open(&p("x.sk"), b"a", Some(&p("msg.x")), Some(&p("msg.x.out")), true).unwrap();
        assert_eq!(std::fs::read(p("msg.x.out")).unwrap(), b"hello x-wing");
        // Sealed to another key: exit 3 before any decryption, no output.
        assert_eq!(open(&p("m.sk"), b"a", Some(&p("msg.x")), Some(&p("no")), true).unwrap_err().exit_code(), 3);
        assert!(!p("no").exists());

        // A batch: one item per line, \x-hex out, each opens by itself.
        std::fs::write(p("lines"), b"row-1\tone\nrow-2\t\nrow-3\tthree\n").unwrap();
        assert_eq!(seal_batch(&p("x.pk"), b"", true, Some(&p("lines")), Some(&p("items"))).unwrap(), 3);
        let items = std::fs::read_to_string(p("items")).unwrap();
        let items: Vec<Vec<u8>> = items.lines().map(|l| hex::decode(l.strip_prefix("\\x").unwrap()).unwrap()).collect();
        assert_eq!(items.len(), 3);
        for (i, (item, want)) in items.iter().zip([&b"one"[..], b"", b"three"]).enumerate() {
            assert_eq!(item[1], b'W');
            std::fs::write(p("item"), item).unwrap();
            let out = p(&format!("item{i}.out"));
            open(&p("x.sk"), format!("row-{}", i + 1).as_bytes(), Some(&p("item")), Some(&out), true).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), want);
        }
        assert_eq!(seal_batch(&p("x.pk"), b"", true, Some(&p("msg")), None).unwrap_err().exit_code(), 3);

        // A stream of 3 chunks and a bit, to a file; tampering leaves nothing.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(p("big"), &big).unwrap();
        for (sk, pk) in [("x.sk", "x.pk"), ("m.sk", "m.pk")] {
            assert_eq!(seal_stream(&p(pk), b"f", Some(&p("big")), Some(&p("big.t")), true).unwrap(), 200_000);
            assert!(inspect(Some(&p("big.t"))).unwrap().contains("\"kind\":\"stream\""));
            let _ = std::fs::remove_file(p("big.out"));
            open(&p(sk), b"f", Some(&p("big.t")), Some(&p("big.out")), true).unwrap();
            assert_eq!(std::fs::read(p("big.out")).unwrap(), big);
            let mut stream = std::fs::read(p("big.t")).unwrap();
            let n = stream.len();
            for (what, bytes) in [("truncated", stream[..n - 100].to_vec()), ("cut at a chunk", stream[..n - (200_000 - 3 * 65536) - 16].to_vec())] {
                std::fs::write(p("bad.t"), bytes).unwrap();
                let e = open(&p(sk), b"f", Some(&p("bad.t")), Some(&p("bad.out")), true).unwrap_err();
                assert_eq!(e.exit_code(), 4, "{what}");
                assert!(!p("bad.out").exists(), "{what}: nothing written");
            }
            stream[n / 2] ^= 1;
            std::fs::write(p("bad.t"), &stream).unwrap();
            assert_eq!(open(&p(sk), b"f", Some(&p("bad.t")), Some(&p("bad.out")), true).unwrap_err().exit_code(), 4);
            assert!(!p("bad.out").exists());
            assert_eq!(open(&p(sk), b"g", Some(&p("big.t")), Some(&p("bad.out")), true).unwrap_err().exit_code(), 4);
            std::fs::write(p("bad.t"), &stream[..10]).unwrap();
            assert_eq!(open(&p(sk), b"f", Some(&p("bad.t")), Some(&p("bad.out")), true).unwrap_err().exit_code(), 3);
        }
    }

    /// ring's chunks and RustCrypto's are the same function: a stream sealed
    /// by either opens with the other, and tampering fails with both.
    #[test]
    fn ring_and_rustcrypto_chunks_agree() {
        use pqcore::stream::RustCryptoChunks;
        let (_, key) = RecipientSecret::generate(Suite::XWing).unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 249) as u8).collect();
        let mut by_ring = Vec::new();
        stream::seal_stream_with::<RingChunks>(key.public_key(), b"a", &mut &plain[..], &mut by_ring, &mut |_| {}).unwrap();
        let mut by_rc = Vec::new();
        stream::seal_stream_with::<RustCryptoChunks>(key.public_key(), b"a", &mut &plain[..], &mut by_rc, &mut |_| {}).unwrap();
        fn open<C: ChunkCipher>(key: &RecipientSecret, s: &[u8]) -> std::result::Result<Vec<u8>, StreamError> {
            let mut input = s;
            let header = StreamHeader::read(&mut input)?;
            let mut out = Vec::new();
            header.open_with::<C>(key, b"a", &mut input, &mut out, &mut |_| {})?;
            Ok(out)
        }
        assert_eq!(open::<RustCryptoChunks>(&key, &by_ring).unwrap(), plain);
        assert_eq!(open::<RingChunks>(&key, &by_rc).unwrap(), plain);
        assert_eq!(open::<RingChunks>(&key, &by_ring).unwrap(), plain);
        let mut bad = by_ring.clone();
        let n = bad.len();
        bad[n - 20] ^= 4;
        assert!(open::<RingChunks>(&key, &bad).is_err());
        assert!(open::<RustCryptoChunks>(&key, &bad).is_err());
    }

    #[test]
    fn backup_reseal_round_trip() {
        use pqcore::backup::{Payload, Secret, SecretKind};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(Algorithm::MlKem768, &p("officer.sk"), &p("officer.pk")).unwrap();
        keygen(Algorithm::XWing, &p("restore.sk"), &p("restore.pk")).unwrap();
        let officer = RecipientKey::from_slice(&std::fs::read(p("officer.pk")).unwrap()).unwrap();
        let payload = Payload {
            doc: r#"{"format":1,"tenants":[]}"#.into(),
            secrets: vec![Secret { kind: SecretKind::DsaSeed, reference: [4; 16], bytes: vec![9; 32].into() }],
        };
        std::fs::write(p("bundle"), pqcore::backup::seal(officer.recipient(), [7; 16], 42, &payload).unwrap()).unwrap();
        let said = backup_reseal(&p("officer.sk"), &p("bundle"), &p("restore.pk"), &p("resealed")).unwrap();
        assert!(said.contains(&hex::encode([7u8; 16])), "{said}");
        assert_eq!(std::fs::metadata(p("resealed")).unwrap().permissions().mode() & 0o777, 0o600);
        let restore = RecipientSecret::from_slice(&std::fs::read(p("restore.sk")).unwrap()).unwrap();
        let (header, opened) = pqcore::backup::open(&std::fs::read(p("resealed")).unwrap(), &restore).unwrap();
        assert_eq!((header.backup_id, header.created, opened.doc.as_str()), ([7; 16], 42, payload.doc.as_str()));
        assert_eq!(opened.secret(SecretKind::DsaSeed, &[4; 16]), Some(&[9u8; 32][..]));
        // The restore key is not the officer's: exit 3, nothing written.
        let e = backup_reseal(&p("restore.sk"), &p("bundle"), &p("officer.pk"), &p("no")).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(!p("no").exists());
        // An existing output is never overwritten.
        assert!(backup_reseal(&p("officer.sk"), &p("bundle"), &p("restore.pk"), &p("resealed")).is_err());
    }
}
