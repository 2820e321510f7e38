//! The one mapping from failures to SQLSTATEs (DESIGN.md §4), and the one
//! place that raises them. Messages never carry secrets or plaintext, echo
//! at most [`ECHO_MAX`] characters of a string the caller passed, and never
//! name a tenant the caller did not name; details that would (paths, key
//! ids) go to the server log only, through `errdetail_log`.
use pqcore::{Error as CoreError, Kind, Malformed};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// Every failure a SQL function can report.
#[derive(Debug)]
pub enum PqError {
    /// From the core crate.
    Core(CoreError),
    /// 22023: a well-formed envelope of a kind this function does not take.
    WrongKind { found: Kind, function: &'static str },
    /// 22023: a bad argument other than an envelope (algorithm name, length…).
    InvalidParameter(String),
    /// 22021: decrypted bytes are not valid text in the database encoding.
    NotText,
    /// PQ002: no key version has this kid.
    UnknownKid,
    /// PQ003: the key state forbids the operation.
    KeyState(String),
    /// PQ003 with a hint saying what to do.
    KeyStateHint(String, &'static str),
    /// PQ004: master key provider unavailable or misconfigured. `detail_log`
    /// (paths, key ids, OS errors) goes to the server log only.
    Provider { message: String, hint: Option<String>, detail_log: Option<String> },
    /// 42501: the role may not use this tenant's keys (or run this admin function).
    PermissionDenied(String),
    /// 42704: unknown tenant (shown only to roles that see every tenant).
    UnknownTenant(String),
    /// 42710: the tenant exists already.
    DuplicateTenant(String),
    /// 25006: an operation that needs the primary, run on a hot standby.
    ReadOnly(&'static str),
    /// 54000: a value larger than a bytea can hold.
    TooLarge,
    /// 53200: memory for a value of the caller's size could not be allocated.
    OutOfMemory,
    /// A PostgreSQL-standard SQLSTATE about the caller's tables and columns
    /// (42703 undefined column, 42804 wrong type, 42P16 no key to claim
    /// rows by, 42809 not a table, 42P01 table gone).
    Sql { code: &'static [u8; 5], message: String, hint: Option<String> },
    /// 55000: needs shared_preload_libraries (the worker or shared memory).
    NeedsPreload(&'static str),
    /// XX000: a bug or a damaged key table; `detail_log` says which, in the log.
    Internal { message: String, detail_log: Option<String> },
}

pub type PqResult<T> = Result<T, PqError>;

/// `value`, or 22023 naming the argument: for the functions that are not
/// STRICT (some of their arguments may be NULL), an argument that may not.
pub fn required<T>(value: Option<T>, name: &str) -> PqResult<T> {
    value.ok_or_else(|| PqError::InvalidParameter(format!("{name} must not be NULL")))
}

/// The most characters of a caller's string that a message repeats.
pub const ECHO_MAX: usize = 64;

/// `s` as a message may repeat it: at most [`ECHO_MAX`] characters, control
/// characters replaced.
pub fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(ECHO_MAX).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().nth(ECHO_MAX).is_some() {
        out.push('…');
    }
    out
}

impl PqError {
    /// XX000 with a public message and the details for the log.
    pub fn internal(message: &str, detail_log: String) -> Self {
        PqError::Internal { message: message.into(), detail_log: Some(detail_log) }
    }
}

impl From<CoreError> for PqError {
    fn from(e: CoreError) -> Self {
        PqError::Core(e)
    }
}

impl From<pgrx::spi::SpiError> for PqError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        PqError::internal("catalog query failed", e.to_string())
    }
}

pub const fn sqlstate_code(code: &[u8; 5]) -> c_int {
    // MAKE_SQLSTATE: six bits per character, first character lowest.
    let mut v = 0;
    let mut i = 0;
    while i < 5 {
        v |= ((code[i] - b'0') as c_int & 0x3F) << (6 * i);
        i += 1;
    }
    v
}

/// The five characters of a packed SQLSTATE ([`sqlstate_code`] undone).
pub fn sqlstate_text(code: c_int) -> String {
    (0..5).map(|i| char::from(((code >> (6 * i)) & 0x3F) as u8 + b'0')).collect()
}

/// What to do instead, for an envelope kind given to the wrong function.
fn kind_hint(found: Kind) -> &'static str {
    match found {
        Kind::Sealed => "envelopes sealed to a tenant's public key are opened with pq_unseal; to a raw key, with pq_open",
        Kind::Keyed => "keyed envelopes are opened with pq_decrypt",
        Kind::Signature => "signature envelopes are checked with pq_verify",
    }
}

struct Parts {
    code: &'static [u8; 5],
    message: String,
    hint: Option<String>,
    detail_log: Option<String>,
}

fn parts(code: &'static [u8; 5], message: impl Into<String>) -> Parts {
    Parts { code, message: message.into(), hint: None, detail_log: None }
}

impl Parts {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl PqError {
    fn parts(self) -> Parts {
        match self {
            PqError::Core(CoreError::DecryptionFailed) => parts(b"PQ001", "decryption failed"),
            PqError::Core(CoreError::Malformed(Malformed::WrongKind)) => {
                parts(b"22023", "envelope of the wrong kind for this function")
            }
            PqError::Core(e @ CoreError::Malformed(_)) => parts(b"22023", e.to_string())
                .hint("a v1 envelope starts with 0x01 followed by 'S', 'L', 'X', 'B', 'M', 'W', 'K', 'G' or 'H' and has the length of its kind"),
            PqError::Core(CoreError::InvalidKey) => parts(b"22023", "invalid key: wrong length or encoding").hint(
                "ML-KEM-768 keys: public 1184 bytes, secret 64 (seed) or 2400 bytes; ML-KEM-1024: public 1568, secret 64 (seed) or 3168; X-Wing: public 1216, secret 32 (seed); ML-DSA-65: public 1952, secret 32 (seed); ML-DSA-87: public 2592, secret 32 (seed); SLH-DSA-SHA2-128s: public 32, secret 48 (seed); the envelope's kind names the suite",
            ),
            PqError::Core(CoreError::ContextTooLong) => parts(b"22023", "context string longer than 255 bytes"),
            PqError::Core(CoreError::OutOfMemory) | PqError::OutOfMemory => {
                parts(b"53200", "out of memory for a value of this size")
            }
            PqError::Core(CoreError::RandomUnavailable) => parts(b"58000", "random number generator unavailable"),
            PqError::Core(e) => parts(b"XX000", e.to_string()),
            PqError::WrongKind { found, function } => {
                parts(b"22023", format!("{function} does not take {} envelopes", found.name())).hint(kind_hint(found))
            }
            PqError::InvalidParameter(m) => parts(b"22023", m),
            PqError::NotText => parts(b"22021", "decrypted value is not valid text in the database encoding")
                .hint("use pq_decrypt (or pq_unseal) for binary values"),
            PqError::UnknownKid => parts(b"PQ002", "unknown key id"),
            PqError::KeyState(m) => parts(b"PQ003", m),
            PqError::KeyStateHint(m, hint) => parts(b"PQ003", m).hint(hint),
            PqError::Provider { message, hint, detail_log } => Parts { code: b"PQ004", message, hint, detail_log },
            PqError::PermissionDenied(m) => parts(b"42501", m),
            PqError::UnknownTenant(t) => parts(b"42704", format!("tenant \"{t}\" does not exist")),
            PqError::DuplicateTenant(t) => parts(b"42710", format!("tenant \"{t}\" already exists")),
            PqError::ReadOnly(what) => parts(b"25006", format!("cannot {what} during recovery"))
                .hint("run it on the primary; a hot standby only decrypts and verifies"),
            PqError::TooLarge => parts(b"54000", "the result would exceed the maximum bytea size (1 GB)"),
            PqError::Sql { code, message, hint } => Parts { code, message, hint, detail_log: None },
            PqError::NeedsPreload(what) => parts(b"55000", format!("{what} needs the apg_pqcrypto background worker"))
                .hint("add apg_pqcrypto to shared_preload_libraries and restart the server"),
            PqError::Internal { message, detail_log } => Parts { code: b"XX000", message, hint: None, detail_log },
        }
    }

    /// "SQLSTATE: message", for errors reported other than by raising (the
    /// worker's log lines and job records).
    pub fn describe(self) -> String {
        let Parts { code, message, .. } = self.parts();
        format!("{}: {message}", String::from_utf8_lossy(code))
    }

    /// Raises this error as a PostgreSQL ERROR with its own SQLSTATE.
    ///
    /// pgrx's `ereport!` only takes the SQLSTATEs of its enum, and DESIGN.md's
    /// PQ00x codes are custom, so this calls the ereport functions directly.
    /// errfinish longjmps and never returns: every Rust value must be gone
    /// by then. Callers raise at the top of a `#[pg_extern]` function, once
    /// their own values are dropped; here each string is freed as soon as
    /// PostgreSQL has copied it into its error data.
    pub fn raise(self) -> ! {
        let Parts { code, message, hint, detail_log } = self.parts();
        // SAFETY: PostgreSQL's ereport API on the backend's main thread
        // (every #[pg_extern] runs there). Each err* call copies its "%s"
        // argument into ErrorContext before the Rust string is dropped.
        unsafe {
            if errstart(pgrx::pg_sys::PGERROR as c_int, std::ptr::null()) {
                errcode(sqlstate_code(code));
                with_cstring(message, |m| errmsg(c"%s".as_ptr(), m));
                if let Some(hint) = hint {
                    with_cstring(hint, |h| errhint(c"%s".as_ptr(), h));
                }
                if let Some(detail) = detail_log {
                    with_cstring(detail, |d| errdetail_log(c"%s".as_ptr(), d));
                }
                errfinish(c"apg_pqcrypto".as_ptr(), 0, c"apg_pqcrypto".as_ptr());
            }
        }
        // errstart returns true for ERROR always; keep the type `!` honest.
        std::process::abort()
    }
}

/// Writes `message` to the server log only (LOG_SERVER_ONLY: never sent to
/// a client, whatever its client_min_messages), for details such as key
/// references and endpoints.
pub fn log_server_only(message: String) {
    // SAFETY: PostgreSQL's ereport API on the backend's main thread; at a
    // level below ERROR, errfinish returns normally.
    unsafe {
        if errstart(pgrx::pg_sys::LOG_SERVER_ONLY as c_int, std::ptr::null()) {
            with_cstring(message, |m| errmsg(c"%s".as_ptr(), m));
            errfinish(c"apg_pqcrypto".as_ptr(), 0, c"apg_pqcrypto".as_ptr());
        }
    }
}

/// Calls `f` with `s` as a C string, and frees it before returning.
fn with_cstring(s: String, f: impl FnOnce(*const c_char) -> c_int) {
    let c = CString::new(s.replace('\0', " ")).unwrap_or_default();
    f(c.as_ptr());
}

// SAFETY: these are PostgreSQL's exported ereport functions (elog.h), left
// out of pgrx's bindings on purpose; signatures as in PostgreSQL 15.
unsafe extern "C-unwind" {
    fn errstart(elevel: c_int, domain: *const c_char) -> bool;
    fn errcode(sqlerrcode: c_int) -> c_int;
    fn errmsg(fmt: *const c_char, ...) -> c_int;
    fn errhint(fmt: *const c_char, ...) -> c_int;
    fn errdetail_log(fmt: *const c_char, ...) -> c_int;
    fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
}

/// Unwraps a SQL function's result or raises its error. Every
/// `#[pg_extern]` in this crate ends in this.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for PqResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}
