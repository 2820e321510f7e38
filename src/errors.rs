//! The one mapping from failures to SQLSTATEs (DESIGN.md §4), and the one
//! place that raises them. Messages never carry secrets or plaintext.
use pqcore::{Error as CoreError, Malformed};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// Every failure a SQL function can report.
#[derive(Debug)]
pub enum PqError {
    /// From the core crate.
    Core(CoreError),
    /// 22023: a bad argument other than an envelope (algorithm name, length…).
    InvalidParameter(String),
    /// 22021: decrypted bytes are not valid UTF-8 (pq_decrypt_text).
    NotUtf8,
    /// PQ002: no key version has this kid.
    UnknownKid,
    /// PQ003: the key state forbids the operation.
    KeyState(String),
    /// PQ004: master key provider unavailable or misconfigured.
    Provider { message: String, hint: Option<String> },
    /// 42501: the role may not use this tenant's keys (or run this admin function).
    PermissionDenied(String),
    /// 42704: unknown tenant.
    UnknownTenant(String),
    /// 42710: the tenant exists already.
    DuplicateTenant(String),
    /// XX000: a bug or an unexpected catalog state; the message says which.
    Internal(String),
}

pub type PqResult<T> = Result<T, PqError>;

impl From<CoreError> for PqError {
    fn from(e: CoreError) -> Self {
        PqError::Core(e)
    }
}

impl From<pgrx::spi::SpiError> for PqError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        PqError::Internal(format!("catalog query failed: {e}"))
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

impl PqError {
    fn parts(&self) -> (&'static [u8; 5], String, Option<String>) {
        match self {
            PqError::Core(CoreError::DecryptionFailed) => (b"PQ001", "decryption failed".into(), None),
            PqError::Core(CoreError::Malformed(Malformed::WrongKind)) => {
                (b"22023", "envelope of the wrong kind for this function".into(), None)
            }
            PqError::Core(e @ CoreError::Malformed(_)) => (
                b"22023",
                e.to_string(),
                Some("a v1 envelope starts with 0x01 followed by 'S', 'K' or 'G'".into()),
            ),
            PqError::Core(CoreError::InvalidKey) => (
                b"22023",
                "invalid key: wrong length or encoding".into(),
                Some("ML-KEM-768 keys: public 1184 bytes, secret 64 (seed) or 2400 bytes; ML-DSA-65 keys: public 1952 bytes, secret 32 bytes (seed)".into()),
            ),
            PqError::Core(CoreError::ContextTooLong) => {
                (b"22023", "context string longer than 255 bytes".into(), None)
            }
            PqError::Core(e) => (b"58000", e.to_string(), None),
            PqError::InvalidParameter(m) => (b"22023", m.clone(), None),
            PqError::NotUtf8 => (
                b"22021",
                "decrypted value is not valid UTF-8".into(),
                Some("use pq_decrypt for binary values".into()),
            ),
            PqError::UnknownKid => (b"PQ002", "unknown key id".into(), None),
            PqError::KeyState(m) => (b"PQ003", m.clone(), None),
            PqError::Provider { message, hint } => (b"PQ004", message.clone(), hint.clone()),
            PqError::PermissionDenied(m) => (b"42501", m.clone(), None),
            PqError::UnknownTenant(t) => (b"42704", format!("tenant \"{t}\" does not exist"), None),
            PqError::DuplicateTenant(t) => (b"42710", format!("tenant \"{t}\" already exists"), None),
            PqError::Internal(m) => (b"XX000", m.clone(), None),
        }
    }

    /// Raises this error as a PostgreSQL ERROR with its own SQLSTATE.
    ///
    /// pgrx's `ereport!` only takes the SQLSTATEs of its enum, and DESIGN.md's
    /// PQ00x codes are custom, so this calls the ereport functions directly.
    /// Call it only at the top of a `#[pg_extern]` function, once every Rust
    /// value holding secrets has been dropped: the ERROR longjmps past any
    /// frame still live.
    pub fn raise(self) -> ! {
        let (code, message, hint) = self.parts();
        drop(self);
        let message = to_cstring(message);
        let hint = hint.map(to_cstring);
        // SAFETY: the err* functions are PostgreSQL's ereport API; the
        // format strings are "%s" with NUL-terminated arguments that stay
        // alive until errfinish, which does not return at ERROR level. We are
        // on the backend's main thread (every #[pg_extern] is).
        unsafe {
            if errstart(pgrx::pg_sys::PGERROR as c_int, std::ptr::null()) {
                errcode(sqlstate_code(code));
                errmsg(c"%s".as_ptr(), message.as_ptr());
                if let Some(hint) = &hint {
                    errhint(c"%s".as_ptr(), hint.as_ptr());
                }
                errfinish(c"apg_pqcrypto".as_ptr(), 0, c"apg_pqcrypto".as_ptr());
            }
        }
        // errstart returns true for ERROR always; keep the type `!` honest.
        std::process::abort()
    }
}

fn to_cstring(s: String) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

// SAFETY: these are PostgreSQL's exported ereport functions (elog.h), left
// out of pgrx's bindings on purpose; signatures as in PostgreSQL 15.
unsafe extern "C-unwind" {
    fn errstart(elevel: c_int, domain: *const c_char) -> bool;
    fn errcode(sqlerrcode: c_int) -> c_int;
    fn errmsg(fmt: *const c_char, ...) -> c_int;
    fn errhint(fmt: *const c_char, ...) -> c_int;
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

