//! The `pkcs11` provider: the KEK is an AES-256 key inside a PKCS#11 token,
//! sensitive and not extractable; the MDK is wrapped and unwrapped inside the
//! token, through the `cryptoki` crate.
//!
//! Mechanism: AES-GCM (`CKM_AES_GCM`, 96-bit IV drawn by us, 128-bit tag, the
//! binding as AAD) when the token offers it, else AES key wrap with padding
//! (`CKM_AES_KEY_WRAP_PAD`, RFC 5649). GCM is preferred: its 128-bit tag
//! authenticates the blob *and* the binding (MDK id, system identifier),
//! while RFC 5649 has a 32-bit integrity check value and no associated data
//! (the MDK id check after unwrapping then carries the binding). The blob
//! starts with a byte naming the mechanism (docs/FORMAT.md §6.2), so a token
//! that offers both unwraps either.
//!
//! Sessions: the module is initialised once per process (`C_Initialize` with
//! OS locking) and one session per provider is opened, logged in and reused.
//! After a `fork()` the child must not use its parent's PKCS#11 state: a
//! context or session made by another process id is forgotten (never
//! finalised or closed, which would act on the parent's state) and the module
//! is initialised again, finalising first if it reports that it already is.
//!
//! A failed open, or a failure of the token on a reused session, is tried
//! again within the call's time: up to five more times, 50 ms to 800 ms
//! apart, each after finalising and initialising the module again (a module
//! lists its tokens at `C_Initialize`: SoftHSM2 does not see a token it
//! failed to read then until it starts over). Sessions opened before such a
//! restart are forgotten, never closed: their handles may name new sessions.
//! A refused PIN, a missing key and a wrong blob are not tried again.
//!
//! Every call runs on a short-lived helper thread that owns the session while
//! it works; the caller waits at most [`CallLimits::timeout`] and polls
//! [`CallLimits::cancelled`]. A call that is abandoned keeps its session (it
//! is closed when the module returns); the next call opens a new one, or
//! fails at once while the abandoned one is still in the module. If the
//! process exits while such a thread is still inside the module, it ends
//! with `_exit` before the module's destructors run under that thread
//! ([`set_exit_status`]).
use crate::{check_id, secure_file::SecretFile, Binding, CallLimits, ErrorKind, KeyProvider, ProviderError, Result};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
    mechanism::{aead::GcmParams, Mechanism, MechanismType},
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::Slot,
    types::AuthPin,
};
use pqcore::Dek;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Which settings configure the provider; all required.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (`apg_pqcrypto.pkcs11_module`).
    pub module: String,
    /// Label of the token (`pkcs11_token_label`).
    pub token_label: String,
    /// File holding the user PIN (`pkcs11_pin_file`), mode 0600.
    pub pin_file: String,
    /// Label of the AES-256 key (`pkcs11_key_label`).
    pub key_label: String,
}

/// The wrapping mechanism of a blob; its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrapMechanism {
    /// `0x01 || iv (12) || AES-256-GCM(mdk) || tag (16)`: 61 bytes.
    AesGcm,
    /// `0x02 || AES-KWP(mdk)`: 41 bytes.
    AesKeyWrapPad,
}

const TAG_GCM: u8 = 0x01;
const TAG_KWP: u8 = 0x02;
const GCM_IV_LEN: usize = 12;
/// Length of a GCM blob: tag byte, IV, 32-byte MDK, 16-byte tag.
pub const GCM_BLOB_LEN: usize = 1 + GCM_IV_LEN + 32 + 16;
/// Length of a KWP blob: tag byte, RFC 5649 output for 32 bytes.
pub const KWP_BLOB_LEN: usize = 1 + 40;
const MAX_PIN_LEN: usize = 256;
const PIN_FILE: SecretFile<'static> = SecretFile { what: "PKCS#11 PIN file", setting: "apg_pqcrypto.pkcs11_pin_file" };

/// An open, logged-in session with the key found.
struct Open {
    /// Closed when dropped only by the process and context that opened it.
    session: ManuallyDrop<Session>,
    key: ObjectHandle,
    mechanism: WrapMechanism,
    pid: u32,
    /// [`EPOCH`] when it was opened.
    epoch: u64,
}

impl Drop for Open {
    /// Closes the session if this process opened it under the current
    /// context. Otherwise (after a fork, or after the module was finalised
    /// to start over) its handle may name another session now: it is
    /// forgotten, never closed.
    fn drop(&mut self) {
        if self.pid == std::process::id() && self.epoch == EPOCH.load(Ordering::SeqCst) {
            // SAFETY: the only place the session is dropped; the field is
            // not used after this.
            #[allow(unsafe_code)]
            unsafe {
                ManuallyDrop::drop(&mut self.session)
            }
        }
    }
}

pub struct Pkcs11Provider {
    config: Pkcs11Config,
    open: Option<Open>,
    /// Use this mechanism for new wraps instead of the token's best (tests).
    force: Option<WrapMechanism>,
    /// The helper thread of the last call abandoned at a timeout or cancel,
    /// with the process id that started it.
    abandoned: Option<(std::thread::JoinHandle<()>, u32)>,
}

impl Pkcs11Provider {
    /// Nothing is loaded or opened until the first call.
    pub fn new(config: Pkcs11Config) -> Self {
        Self { config, open: None, force: None, abandoned: None }
    }

    /// Wraps with `mechanism` even if the token offers a better one (for
    /// tests of both blob kinds).
    pub fn with_mechanism(config: Pkcs11Config, mechanism: WrapMechanism) -> Self {
        Self { config, open: None, force: Some(mechanism), abandoned: None }
    }

    /// The mechanism new wraps use, opening the session if needed.
    pub fn mechanism(&mut self, limits: &CallLimits) -> Result<WrapMechanism> {
        self.call(limits, |open| Ok(open.mechanism))
    }

    /// Runs `op` on a helper thread with an open session (opening one first
    /// if needed), waiting within `limits`.
    fn call<T: Send + 'static>(
        &mut self,
        limits: &CallLimits,
        op: impl Fn(&Open) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pid = std::process::id();
        // While an abandoned call is still blocked in the token, fail at
        // once rather than block another thread behind it: at most one
        // helper thread per provider waits on a token that does not answer.
        match self.abandoned.take() {
            Some((handle, started_by)) if started_by == pid && !handle.is_finished() => {
                self.abandoned = Some((handle, started_by));
                return Err(ProviderError::new(
                    ErrorKind::Unavailable,
                    "the PKCS#11 token has not answered an earlier call yet",
                    Some("check the token; apg_pqcrypto.provider_timeout bounds each call"),
                    "pkcs11: the call abandoned at the last timeout or cancel is still in the module",
                ));
            }
            Some((handle, started_by)) if started_by == pid => {
                let _ = handle.join();
            }
            _ => {} // none, or made before a fork: not ours
        }
        let previous = self.open.take();
        let previous = match previous {
            Some(open) if open.pid != pid || open.epoch != EPOCH.load(Ordering::SeqCst) => {
                // Opened by the parent before a fork, or under a context
                // since finalised: not ours to close (Open's drop forgets it).
                drop(open);
                None
            }
            other => other,
        };
        let config = self.config.clone();
        let force = self.force;
        let (tx, rx) = mpsc::channel();
        let deadline = Instant::now() + limits.timeout;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new().name("apg-pq-pkcs11".into()).spawn(move || {
            // Declared first, dropped last: after every use of the module.
            let _in_flight = InFlight;
            crate::block_signals();
            let _ = tx.send(attempts(&config, force, previous, &op, deadline, &stopped));
        });
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                return Err(ProviderError::new(
                    ErrorKind::Unavailable,
                    "the pkcs11 master key provider cannot be called",
                    None,
                    format!("pkcs11: cannot start a thread: {e}"),
                ));
            }
        };
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(20));
            match rx.recv_timeout(wait) {
                Ok((open, result)) => {
                    // The thread has nothing left to do but end: join it, so
                    // that no finished call counts as in flight at exit.
                    let _ = handle.join();
                    self.open = open;
                    return result;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = handle.join();
                    return Err(ProviderError::new(
                        ErrorKind::Unavailable,
                        "the pkcs11 master key provider failed",
                        None,
                        "pkcs11: the call ended without an answer",
                    ))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if (limits.cancelled)() {
                        stop.store(true, Ordering::SeqCst);
                        self.abandoned = Some((handle, pid));
                        return Err(ProviderError::cancelled("pkcs11"));
                    }
                    if Instant::now() >= deadline {
                        stop.store(true, Ordering::SeqCst);
                        self.abandoned = Some((handle, pid));
                        return Err(ProviderError::timed_out("pkcs11", limits));
                    }
                }
            }
        }
    }
}

impl KeyProvider for Pkcs11Provider {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    /// An RFC 7512 URI of the key: `pkcs11:token=…;object=…;type=secret-key`.
    fn key_ref(&self) -> String {
        format!(
            "pkcs11:token={};object={};type=secret-key",
            uri_escape(&self.config.token_label),
            uri_escape(&self.config.key_label)
        )
    }

    fn wrap(&mut self, mdk: &Dek, binding: &Binding, limits: &CallLimits) -> Result<Vec<u8>> {
        let mdk = Zeroizing::new(mdk.expose().to_vec());
        let aad = binding.aad();
        let mut iv = [0u8; GCM_IV_LEN];
        getrandom::fill(&mut iv)
            .map_err(|_| ProviderError::new(ErrorKind::Unavailable, "no random numbers", None, "getrandom failed"))?;
        self.call(limits, move |open| {
            let mut iv = iv;
            match open.mechanism {
                WrapMechanism::AesGcm => {
                    let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| ck_error("wrap", &e))?;
                    let sealed = open.session.encrypt(&Mechanism::AesGcm(params), open.key, &mdk).map_err(|e| ck_error("wrap", &e))?;
                    let mut blob = Vec::with_capacity(GCM_BLOB_LEN);
                    blob.push(TAG_GCM);
                    blob.extend_from_slice(&iv);
                    blob.extend_from_slice(&sealed);
                    Ok(blob)
                }
                WrapMechanism::AesKeyWrapPad => {
                    let object = open
                        .session
                        .create_object(&secret_template(Some(mdk.to_vec())))
                        .map_err(|e| ck_error("wrap", &e))?;
                    let wrapped = open.session.wrap_key(&Mechanism::AesKeyWrapPad, open.key, object);
                    let _ = open.session.destroy_object(object);
                    let wrapped = wrapped.map_err(|e| ck_error("wrap", &e))?;
                    let mut blob = Vec::with_capacity(KWP_BLOB_LEN);
                    blob.push(TAG_KWP);
                    blob.extend_from_slice(&wrapped);
                    Ok(blob)
                }
            }
        })
    }

    fn unwrap(&mut self, wrapped: &[u8], binding: &Binding, limits: &CallLimits) -> Result<Dek> {
        let mechanism = match (wrapped.first(), wrapped.len()) {
            (Some(&TAG_GCM), GCM_BLOB_LEN) => WrapMechanism::AesGcm,
            (Some(&TAG_KWP), KWP_BLOB_LEN) => WrapMechanism::AesKeyWrapPad,
            _ => {
                return Err(ProviderError::wrong_key(
                    "pkcs11",
                    format!("pkcs11: the wrapped master data key {} is not a pkcs11 blob", binding.mdk_id.to_hex()),
                ))
            }
        };
        let blob = wrapped.to_vec();
        let aad = binding.aad();
        let key = self.call(limits, move |open| {
            let plain = match mechanism {
                WrapMechanism::AesGcm => {
                    let mut iv = [0u8; GCM_IV_LEN];
                    iv.copy_from_slice(&blob[1..1 + GCM_IV_LEN]);
                    let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| ck_error("unwrap", &e))?;
                    Zeroizing::new(
                        open.session
                            .decrypt(&Mechanism::AesGcm(params), open.key, &blob[1 + GCM_IV_LEN..])
                            .map_err(|e| ck_error("unwrap", &e))?,
                    )
                }
                WrapMechanism::AesKeyWrapPad => {
                    let object = open
                        .session
                        .unwrap_key(&Mechanism::AesKeyWrapPad, open.key, &blob[1..], &secret_template(None))
                        .map_err(|e| ck_error("unwrap", &e))?;
                    let value = open.session.get_attributes(object, &[AttributeType::Value]);
                    let _ = open.session.destroy_object(object);
                    match value.map_err(|e| ck_error("unwrap", &e))?.pop() {
                        Some(Attribute::Value(v)) => Zeroizing::new(v),
                        _ => return Err(ck_error("unwrap", &CkError::NotSupported)),
                    }
                }
            };
            Dek::from_slice(&plain).map_err(|_| ProviderError::wrong_key("pkcs11", "pkcs11: the unwrapped key is not 32 bytes"))
        })?;
        check_id("pkcs11", key, binding)
    }
}

/// A session object holding the MDK for RFC 5649 wrapping: not on the
/// token, extractable (so it can be wrapped or read back), destroyed at once.
fn secret_template(value: Option<Vec<u8>>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    if let Some(v) = value {
        t.push(Attribute::Value(v));
    }
    t
}

/// Helper threads that have not returned from the module yet (abandoned
/// at a timeout or cancel, or still working).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// The status to exit with if the module's destructors must be skipped.
static EXIT_STATUS: AtomicI32 = AtomicI32::new(1);

struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Calls that have not returned from the module yet (abandoned ones
/// included).
pub fn calls_in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// The status the process will exit with (the host records it before it
/// calls exit(); PostgreSQL: an on_proc_exit callback).
pub fn set_exit_status(status: i32) {
    EXIT_STATUS.store(status, Ordering::SeqCst);
}

/// An atexit handler, registered after each module is loaded, so it runs
/// before that module's own destructors: if a helper thread is still inside
/// the module (a hung token), running them under it could crash the
/// process, so the process ends here with the status it was exiting with.
extern "C" fn skip_module_destructors_while_in_use() {
    if IN_FLIGHT.load(Ordering::SeqCst) > 0 {
        // SAFETY: _exit ends the process at once; nothing runs after it.
        #[allow(unsafe_code)]
        unsafe {
            libc::_exit(EXIT_STATUS.load(Ordering::SeqCst))
        }
    }
}

/// A module loaded by this process, and whether it is initialised.
struct Context {
    module: String,
    pid: u32,
    ctx: Pkcs11,
    initialised: bool,
}

/// The process's PKCS#11 contexts, one per module.
static CONTEXTS: Mutex<Vec<Context>> = Mutex::new(Vec::new());
/// Bumped each time a context is finalised to start over: a session opened
/// under an earlier epoch is forgotten, never closed.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The initialised context of `module` in this process.
fn context(module: &str) -> Result<Pkcs11> {
    let pid = std::process::id();
    let mut contexts = CONTEXTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = contexts.iter().position(|c| c.module == module && c.pid != pid) {
        // Inherited through fork(): forget it without finalising.
        let inherited = contexts.swap_remove(i);
        std::mem::forget(inherited.ctx);
    }
    let i = match contexts.iter().position(|c| c.module == module) {
        Some(i) => i,
        None => {
            let ctx = Pkcs11::new(module).map_err(|e| {
                ProviderError::new(
                    ErrorKind::Misconfigured,
                    "the PKCS#11 module cannot be loaded",
                    Some("set apg_pqcrypto.pkcs11_module to the path of the token's PKCS#11 library (the server log has the error)"),
                    format!("pkcs11 module \"{module}\": {e}"),
                )
            })?;
            // SAFETY: registers a plain function; atexit has no other precondition.
            #[allow(unsafe_code)]
            unsafe {
                libc::atexit(skip_module_destructors_while_in_use);
            }
            contexts.push(Context { module: module.to_owned(), pid, ctx, initialised: false });
            contexts.len() - 1
        }
    };
    let entry = &mut contexts[i];
    if !entry.initialised {
        let args = || CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK);
        match entry.ctx.initialize(args()) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                // State inherited from a parent process (or initialised by
                // another library in this one): start over, as PKCS#11
                // requires of a child.
                let _ = entry.ctx.clone().finalize();
                entry.ctx.initialize(args()).map_err(|e| ck_error("initialise", &e))?;
            }
            Err(e) => return Err(ck_error("initialise", &e)),
        }
        entry.initialised = true;
    }
    Ok(entry.ctx.clone())
}

/// Finalises this process's context of `module`, so that the next open
/// initialises it again and the module lists its tokens anew. Sessions
/// opened before are left to [`EPOCH`]. Called from a helper thread; not
/// done while another one (an abandoned call) is inside the module.
fn start_over(module: &str) {
    let mut contexts = CONTEXTS.lock().unwrap_or_else(|p| p.into_inner());
    if IN_FLIGHT.load(Ordering::SeqCst) != 1 {
        return;
    }
    let pid = std::process::id();
    if let Some(entry) = contexts.iter_mut().find(|c| c.module == module && c.pid == pid && c.initialised) {
        EPOCH.fetch_add(1, Ordering::SeqCst);
        entry.initialised = false;
        let _ = entry.ctx.clone().finalize();
    }
}

/// Pauses between attempts of one call: five more attempts, 1.55 s in all.
const RETRY_PAUSES_MS: [u64; 5] = [50, 100, 200, 400, 800];

/// Runs `op` on `previous` or on a newly opened session; a failure of the
/// token (not a refused PIN, a missing key or a wrong blob) is tried again
/// on a new context after a pause, while the pause ends before `deadline`
/// and the caller has not given up (`stop`). Returns the session to keep,
/// if any, and the result.
fn attempts<T>(
    config: &Pkcs11Config,
    force: Option<WrapMechanism>,
    mut previous: Option<Open>,
    op: &impl Fn(&Open) -> Result<T>,
    deadline: Instant,
    stop: &AtomicBool,
) -> (Option<Open>, Result<T>) {
    let mut pauses = RETRY_PAUSES_MS.iter();
    loop {
        let (open, result) = match previous.take().map_or_else(|| open_session(config, force), Ok) {
            Ok(open) => {
                let result = op(&open);
                // A session that failed for another reason than a wrong
                // blob is not reused.
                let keep = match &result {
                    Ok(_) => true,
                    Err(e) => e.kind == ErrorKind::WrongKey,
                };
                (keep.then_some(open), result)
            }
            Err(e) => (None, Err(e)),
        };
        let pause = match &result {
            Err(e) if e.kind == ErrorKind::Unavailable => pauses.next().map(|ms| Duration::from_millis(*ms)),
            _ => None,
        };
        match pause {
            Some(pause) if Instant::now() + pause < deadline && !stop.load(Ordering::SeqCst) => {
                drop(open);
                start_over(&config.module);
                let until = Instant::now() + pause;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            _ => return (open, result),
        }
    }
}

fn open_session(config: &Pkcs11Config, force: Option<WrapMechanism>) -> Result<Open> {
    let misconfigured = |message: &str, hint: &str, detail: String| {
        ProviderError::new(ErrorKind::Misconfigured, message, Some(hint), detail)
    };
    let ctx = context(&config.module)?;
    // Unavailable, as a token may be missing for a while (removed, failed
    // over, or its files being rewritten): tried again, then reported.
    let slot = find_slot(&ctx, &config.token_label)?.ok_or_else(|| {
        ProviderError::new(
            ErrorKind::Unavailable,
            "the PKCS#11 token was not found",
            Some("set apg_pqcrypto.pkcs11_token_label to the label of an initialised token of the module"),
            format!("pkcs11: no token labelled \"{}\" in module \"{}\"", config.token_label, config.module),
        )
    })?;
    let pin_bytes = PIN_FILE.read(&config.pin_file, MAX_PIN_LEN)?;
    let pin_text = std::str::from_utf8(&pin_bytes).map_err(|_| {
        misconfigured(
            "the PKCS#11 PIN file does not hold a PIN",
            "the file holds the user PIN as text",
            format!("pkcs11 pin file \"{}\" is not UTF-8", config.pin_file),
        )
    })?;
    let pin = AuthPin::from(pin_text.trim_end_matches(['\n', '\r']).to_owned());
    let session = ctx.open_ro_session(slot).map_err(|e| ck_error("open a session", &e))?;
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(ck_error("log in", &e)),
    }
    drop(pin);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(config.key_label.as_bytes().to_vec()),
    ];
    let keys = session.find_objects(&template).map_err(|e| ck_error("find the key", &e))?;
    let key = match keys.as_slice() {
        [key] => *key,
        [] => {
            return Err(misconfigured(
                "the PKCS#11 key was not found",
                "set apg_pqcrypto.pkcs11_key_label to the label of an AES-256 key in the token (docs/PROVIDERS.md shows how to create one)",
                format!("pkcs11: no AES key labelled \"{}\" in token \"{}\"", config.key_label, config.token_label),
            ))
        }
        _ => {
            return Err(misconfigured(
                "several PKCS#11 keys have the configured label",
                "give the key-encryption key a label of its own",
                format!("pkcs11: {} AES keys labelled \"{}\"", keys.len(), config.key_label),
            ))
        }
    };
    let attrs = session
        .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable, AttributeType::ValueLen])
        .map_err(|e| ck_error("read the key's attributes", &e))?;
    let (mut sensitive, mut extractable, mut len) = (false, true, 0u64);
    for attr in attrs {
        match attr {
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            // CK_ULONG is 32 bits on some platforms.
            #[allow(clippy::unnecessary_cast)]
            Attribute::ValueLen(v) => len = *v as u64,
            _ => {}
        }
    }
    if !sensitive || extractable || len != 32 {
        return Err(misconfigured(
            "the PKCS#11 key must be a sensitive, non-extractable AES-256 key",
            "create the key with CKA_SENSITIVE true, CKA_EXTRACTABLE false and 32 bytes (docs/PROVIDERS.md)",
            format!("pkcs11: key \"{}\": sensitive={sensitive} extractable={extractable} length={len}", config.key_label),
        ));
    }
    let offered = ctx.get_mechanism_list(slot).map_err(|e| ck_error("list mechanisms", &e))?;
    let best = if offered.contains(&MechanismType::AES_GCM) {
        WrapMechanism::AesGcm
    } else if offered.contains(&MechanismType::AES_KEY_WRAP_PAD) {
        WrapMechanism::AesKeyWrapPad
    } else {
        return Err(misconfigured(
            "the PKCS#11 token offers neither AES-GCM nor AES key wrap with padding",
            "use a token that supports CKM_AES_GCM or CKM_AES_KEY_WRAP_PAD",
            format!("pkcs11: token \"{}\" mechanisms: {offered:?}", config.token_label),
        ));
    };
    Ok(Open {
        session: ManuallyDrop::new(session),
        key,
        mechanism: force.unwrap_or(best),
        pid: std::process::id(),
        epoch: EPOCH.load(Ordering::SeqCst),
    })
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>> {
    for slot in ctx.get_slots_with_token().map_err(|e| ck_error("list tokens", &e))? {
        let info = ctx.get_token_info(slot).map_err(|e| ck_error("read token information", &e))?;
        if info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// A cryptoki error as a provider error: its kind from the return value,
/// the value itself in the log detail only.
fn ck_error(doing: &str, e: &CkError) -> ProviderError {
    let detail = format!("pkcs11: cannot {doing}: {e}");
    let (kind, message, hint) = match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange | RvError::PinExpired | RvError::PinLocked => (
                ErrorKind::Misconfigured,
                "the PKCS#11 token refused the PIN",
                Some("put the token's user PIN in the file named by apg_pqcrypto.pkcs11_pin_file"),
            ),
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::WrappedKeyInvalid
            | RvError::WrappedKeyLenRange
            | RvError::GeneralError
                if doing == "unwrap" =>
            {
                return ProviderError::wrong_key("pkcs11", detail)
            }
            RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent | RvError::MechanismInvalid => (
                ErrorKind::Misconfigured,
                "the PKCS#11 key may not be used to wrap the master data key",
                Some("the key needs CKA_ENCRYPT and CKA_DECRYPT (AES-GCM) or CKA_WRAP and CKA_UNWRAP (key wrap); see docs/PROVIDERS.md"),
            ),
            _ => (ErrorKind::Unavailable, "the PKCS#11 token failed", Some("the server log has the token's error")),
        },
        _ => (ErrorKind::Unavailable, "the PKCS#11 token failed", Some("the server log has the token's error")),
    };
    ProviderError::new(kind, message, hint, detail)
}

/// The token and key labels of a key reference made by
/// [`Pkcs11Provider::key_ref`] (`pkcs11:token=…;object=…;type=secret-key`).
pub fn parse_key_ref(key_ref: &str) -> Option<(String, String)> {
    let path = key_ref.strip_prefix("pkcs11:")?;
    let (mut token, mut object) = (None, None);
    for attr in path.split(';') {
        let (name, value) = attr.split_once('=')?;
        match name {
            "token" => token = Some(uri_unescape(value)?),
            "object" => object = Some(uri_unescape(value)?),
            "type" if value == "secret-key" => {}
            _ => return None,
        }
    }
    Some((token?, object?))
}

fn uri_unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes what RFC 7512 does not allow in a path attribute value.
fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_round_trip() {
        for (token, key) in [("apg-pq", "apg-pq-kek"), ("my token;x=1", "kek/2026 é%")] {
            let p = Pkcs11Provider::new(Pkcs11Config {
                module: String::new(),
                token_label: token.into(),
                pin_file: String::new(),
                key_label: key.into(),
            });
            assert_eq!(parse_key_ref(&p.key_ref()), Some((token.to_string(), key.to_string())));
        }
        assert_eq!(parse_key_ref("pkcs11:token=a;object=b;type=secret-key"), Some(("a".into(), "b".into())));
        for bad in ["", "pkcs11:", "pkcs11:token=a", "file:token=a;object=b", "pkcs11:token=a;object=b;pin=1", "pkcs11:token=%zz;object=b"] {
            assert_eq!(parse_key_ref(bad), None, "{bad}");
        }
    }
}
