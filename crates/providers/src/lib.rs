//! Master key providers of apg_pqcrypto: they hold the key-encryption key
//! (KEK) and wrap and unwrap the 32-byte master data key (MDK). The KEK never
//! leaves the provider: a key file read into locked process memory
//! ([`file`], for development), an AES-256 key inside a PKCS#11 token
//! ([`pkcs11`]), a KMS key in AWS KMS ([`kms`]), a Transit key in HashiCorp
//! Vault or OpenBao ([`vault`]), or an AES-256 key in a KMIP server
//! ([`kmip`]).
//!
//! No PostgreSQL here: the extension chooses a provider from its settings
//! and caches what it unwraps; the command-line client can use the same
//! providers. Every wrap is bound to a [`Binding`] (the MDK id and the
//! database system identifier), and every unwrap checks that the key it got
//! back has the MDK id it was asked for.
//!
//! Errors ([`ProviderError`]) carry two texts: a sanitised one for the
//! client (no path, PIN, key reference or credential) and a detailed one for
//! the server log only.
use pqcore::{Dek, Kid};
use std::fmt;
use std::time::Duration;

pub mod file;
pub mod kmip;
pub mod kms;
pub mod net;
pub mod pkcs11;
pub mod secure_file;
pub mod vault;

/// What a wrapped MDK is bound to. The binding is stored beside the wrapped
/// key (it is not secret), so a dump restored into another cluster unwraps
/// with the binding it was made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `SHA-256("apg-pq v1 mdk" || mdk)[0..16]`.
    pub mdk_id: Kid,
    /// The database system identifier (decimal) of the cluster that created
    /// the wrap.
    pub system_identifier: String,
}

impl Binding {
    /// The AAD of a PKCS#11 AES-GCM wrap (docs/FORMAT.md §6.2):
    /// `"apg-pq v1 mdk-wrap" || 0x00 || mdk_id || system_identifier`.
    pub fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(AAD_LABEL);
        aad.push(0);
        aad.extend_from_slice(self.mdk_id.as_bytes());
        aad.extend_from_slice(self.system_identifier.as_bytes());
        aad
    }

    /// The KMS encryption context (docs/FORMAT.md §6.3).
    pub fn encryption_context(&self) -> [(&'static str, String); 3] {
        [
            ("apg_pqcrypto", "master data key".to_string()),
            ("mdk_id", self.mdk_id.to_hex()),
            ("system_identifier", self.system_identifier.clone()),
        ]
    }
}

/// The label that starts the AES-GCM AAD of a provider wrap.
pub const AAD_LABEL: &[u8] = b"apg-pq v1 mdk-wrap";

/// Bounds on one provider call: a deadline, and a cancellation check that
/// the caller's thread polls while it waits (PostgreSQL's statement cancel).
#[derive(Clone, Copy)]
pub struct CallLimits {
    /// Longest a call may take, retries included.
    pub timeout: Duration,
    /// Polled about every 20 ms on the calling thread while a call waits;
    /// `true` abandons the call with [`ErrorKind::Cancelled`].
    pub cancelled: fn() -> bool,
}

impl CallLimits {
    /// A timeout and no cancellation.
    pub fn timeout(timeout: Duration) -> Self {
        fn never() -> bool {
            false
        }
        Self { timeout, cancelled: never }
    }
}

/// What went wrong, coarsely: enough to choose a reaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Settings name something that does not exist or is not acceptable
    /// (no module, no token, no key, wrong PIN, an extractable key).
    Misconfigured,
    /// The provider did not answer, or answered with a failure that may go
    /// away (network, throttling, a token that was removed).
    Unavailable,
    /// The provider answered, but the wrapped key does not unwrap under it
    /// (wrong key, tampered blob, another binding).
    WrongKey,
    /// The call took longer than [`CallLimits::timeout`].
    TimedOut,
    /// [`CallLimits::cancelled`] said so.
    Cancelled,
}

/// A provider failure. `message` and `hint` may go to a client; `detail`
/// (paths, key references, the provider's own error text) only to a log.
#[derive(Clone, Debug)]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    pub detail: String,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, hint: Option<&str>, detail: impl Into<String>) -> Self {
        Self { kind, message: message.into(), hint: hint.map(str::to_owned), detail: detail.into() }
    }

    fn timed_out(provider: &str, limits: &CallLimits) -> Self {
        Self::new(
            ErrorKind::TimedOut,
            format!("the {provider} master key provider did not answer in time"),
            Some("check that the provider is reachable; apg_pqcrypto.provider_timeout bounds each call"),
            format!("{provider}: no answer within {} ms", limits.timeout.as_millis()),
        )
    }

    fn cancelled(provider: &str) -> Self {
        Self::new(
            ErrorKind::Cancelled,
            format!("the call to the {provider} master key provider was interrupted"),
            None,
            format!("{provider}: call abandoned on cancel"),
        )
    }

    fn wrong_key(provider: &str, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::WrongKey,
            format!("the {provider} master key provider does not unwrap the master data key"),
            Some("the master data key must be unwrapped by the key it was wrapped with; the server log names both"),
            detail,
        )
    }
}

impl fmt::Display for ProviderError {
    /// The client-safe message only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

pub type Result<T> = std::result::Result<T, ProviderError>;

/// What every provider does.
pub trait KeyProvider {
    /// `file`, `pkcs11`, `aws_kms`, `vault_transit` or `kmip`.
    fn name(&self) -> &'static str;
    /// Names the KEK (never the key itself); stored beside each wrapped MDK.
    /// After a wrap or rewrap it names what that call used (a Transit key's
    /// version, a KMIP key's unique identifier).
    fn key_ref(&self) -> String;
    /// True when a key reference stored beside a wrapped MDK names the key
    /// this provider uses (parts that only locate it, such as a server's
    /// address or a key version, may differ).
    fn same_key(&self, recorded: &str) -> bool {
        self.key_ref() == recorded
    }
    /// Wraps `mdk`, bound to `binding`, inside the provider.
    fn wrap(&mut self, mdk: &Dek, binding: &Binding, limits: &CallLimits) -> Result<Vec<u8>>;
    /// Unwraps a blob made by [`KeyProvider::wrap`] with the same binding,
    /// and checks that the key has `binding.mdk_id`.
    fn unwrap(&mut self, wrapped: &[u8], binding: &Binding, limits: &CallLimits) -> Result<Dek>;
    /// Re-encrypts a blob under the newest version of the provider's key
    /// without the MDK leaving the provider, where the provider can; `None`
    /// where it cannot (then a master key rotation moves the MDK).
    fn rewrap(&mut self, _wrapped: &[u8], _binding: &Binding, _limits: &CallLimits) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// Checks an unwrapped key against the id it was stored under.
fn check_id(provider: &str, key: Dek, binding: &Binding) -> Result<Dek> {
    if pqcore::mdk_id(&key) == binding.mdk_id {
        Ok(key)
    } else {
        Err(ProviderError::wrong_key(
            provider,
            format!("{provider}: the unwrapped key does not have id {}", binding.mdk_id.to_hex()),
        ))
    }
}

/// Blocks every signal in the calling thread. Helper threads call it first,
/// so that signals meant for the host process (PostgreSQL's cancel and
/// shutdown requests) are always handled by its main thread.
#[allow(unsafe_code)]
pub(crate) fn block_signals() {
    // SAFETY: `set` is a local sigset_t initialised by sigfillset before use;
    // pthread_sigmask only changes the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
