//! The extension's side of the master key providers (crates/providers):
//! which provider a call goes to, built from the settings and kept per
//! backend (a PKCS#11 session, a KMS client and its runtime are reused);
//! the bounds of each call (`apg_pqcrypto.provider_timeout`, statement
//! cancel); and what `pq.master_key_status()` reports (calls made, last
//! success, last error, in this backend).
//!
//! PQ004 messages say what failed without paths, PINs, key references or
//! credentials; those go to the server log only (`errdetail_log`).
use crate::journal::latency::{self, Op};
use crate::platform::{errors::{PqError, PqResult}, gucs, secure_mem};
use pqcore::{Dek, Kid};
use pqprovider::{
    file::FileProvider,
    kmip::{KmipConfig, KmipProvider},
    kms::{KmsConfig, KmsProvider},
    pkcs11::{Pkcs11Config, Pkcs11Provider},
    secure_file,
    vault::{VaultConfig, VaultProvider},
    Binding, CallLimits, ErrorKind, KeyProvider, ProviderError,
};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};
use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, Ordering};

/// The providers this version knows.
pub const NAMES: [&str; 5] = ["file", "pkcs11", "aws_kms", "vault_transit", "kmip"];

/// The providers that move a wrapped MDK to a newer version of their key
/// inside themselves ([`rewrap`]).
pub const REWRAPS: [&str; 1] = ["vault_transit"];

/// The hint of an unknown provider name.
pub const NAMES_HINT: &str = "the providers are: file, pkcs11, aws_kms, vault_transit, kmip";

const DEV_KEY_NAME: &str = "apg_pqcrypto_dev_master.key";

/// What a backend remembers of one provider.
#[derive(Default, Clone)]
pub struct Status {
    /// Provider calls (wrap, unwrap) made by this backend.
    pub calls: i64,
    /// When the last call succeeded (PostgreSQL microseconds): this
    /// backend's, or the server's in [`status`] when preloaded.
    pub last_success: Option<i64>,
    /// The client-safe message of the last failure, if the last call failed.
    pub last_error: Option<String>,
}

/// A provider built from the settings in force when it was made.
struct Built {
    name: &'static str,
    settings: Vec<Option<String>>,
    provider: Box<dyn KeyProvider>,
}

thread_local! {
    static BUILT: RefCell<Vec<Built>> = const { RefCell::new(Vec::new()) };
    static STATUS: RefCell<Vec<(&'static str, Status)>> = const { RefCell::new(Vec::new()) };
}

// The last success of each provider in any process of the server (shared
// memory, when preloaded; PostgreSQL microseconds, 0 for never).
static LAST_OK_FILE: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"apg_pqcrypto_provider_ok_file") };
static LAST_OK_PKCS11: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"apg_pqcrypto_provider_ok_pkcs11") };
static LAST_OK_KMS: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"apg_pqcrypto_provider_ok_aws_kms") };
static LAST_OK_VAULT: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"apg_pqcrypto_provider_ok_vault_transit") };
static LAST_OK_KMIP: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"apg_pqcrypto_provider_ok_kmip") };

/// Creates the shared last-success times; from _PG_init, when preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(LAST_OK_FILE);
    pg_shmem_init!(LAST_OK_PKCS11);
    pg_shmem_init!(LAST_OK_KMS);
    pg_shmem_init!(LAST_OK_VAULT);
    pg_shmem_init!(LAST_OK_KMIP);
}

fn shared_last_ok(name: &str) -> Option<&'static AtomicI64> {
    if !crate::platform::shmem::preloaded() {
        return None;
    }
    Some(match name {
        "file" => LAST_OK_FILE.get(),
        "pkcs11" => LAST_OK_PKCS11.get(),
        "vault_transit" => LAST_OK_VAULT.get(),
        "kmip" => LAST_OK_KMIP.get(),
        _ => LAST_OK_KMS.get(),
    })
}

/// What this backend knows of `name`; `last_success` is the server's (any
/// backend or the worker) when the library is preloaded.
pub fn status(name: &str) -> Status {
    let mut st =
        STATUS.with(|s| s.borrow().iter().find(|(n, _)| *n == name).map(|(_, st)| st.clone()).unwrap_or_default());
    if let Some(at) = shared_last_ok(name).map(|a| a.load(Ordering::Relaxed)).filter(|at| *at > 0) {
        st.last_success = Some(st.last_success.map_or(at, |own| own.max(at)));
    }
    st
}

fn record(name: &'static str, outcome: Result<(), &ProviderError>) {
    STATUS.with(|s| {
        let mut s = s.borrow_mut();
        let i = match s.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                s.push((name, Status::default()));
                s.len() - 1
            }
        };
        let st = &mut s[i].1;
        st.calls += 1;
        match outcome {
            Ok(()) => {
                // SAFETY: reads the clock; no preconditions.
                let now = unsafe { pgrx::pg_sys::GetCurrentTimestamp() };
                st.last_success = Some(now);
                st.last_error = None;
                if let Some(shared) = shared_last_ok(name) {
                    shared.fetch_max(now, Ordering::Relaxed);
                }
            }
            Err(e) => st.last_error = Some(e.message.clone()),
        }
    });
}

/// The canonical name of a provider, or 22023 for anything else.
pub fn canonical(name: &str) -> PqResult<&'static str> {
    NAMES.iter().copied().find(|n| *n == name).ok_or_else(|| {
        PqError::Provider {
            message: format!("unknown master key provider \"{}\"", crate::platform::errors::echo(name)),
            hint: Some(NAMES_HINT.into()),
            detail_log: None,
        }
    })
}

/// The provider that wraps new master data keys
/// (`apg_pqcrypto.master_key_provider`).
pub fn configured() -> PqResult<&'static str> {
    canonical(&gucs::master_key_provider())
}

/// Where the database system identifier binds a wrap.
pub fn system_identifier() -> String {
    // SAFETY: set from pg_control at startup; no preconditions.
    unsafe { pgrx::pg_sys::GetSystemIdentifier() }.to_string()
}

/// True while PostgreSQL has a cancel or termination request pending. Read
/// on the backend's main thread while a provider call waits; the caller
/// then processes the interrupt.
fn interrupt_pending() -> bool {
    // SAFETY: plain reads of sig_atomic_t flags that signal handlers set.
    unsafe {
        std::ptr::read_volatile(&raw const pgrx::pg_sys::QueryCancelPending) != 0
            || std::ptr::read_volatile(&raw const pgrx::pg_sys::ProcDiePending) != 0
    }
}

fn limits() -> CallLimits {
    CallLimits { timeout: gucs::provider_timeout(), cancelled: interrupt_pending }
}

fn missing(name: &str, setting: &str) -> PqError {
    PqError::Provider {
        message: format!("the {name} master key provider is not configured"),
        hint: Some(format!("set apg_pqcrypto.{setting} (docs/PROVIDERS.md)")),
        detail_log: None,
    }
}

fn settings_of(name: &str) -> Vec<Option<String>> {
    match name {
        "pkcs11" => gucs::pkcs11().to_vec(),
        "aws_kms" => gucs::kms().to_vec(),
        "vault_transit" => gucs::vault().to_vec(),
        "kmip" => {
            let mut settings = gucs::kmip().to_vec();
            settings.push(None); // the key id may be a name
            settings
        }
        _ => Vec::new(),
    }
}

/// Tells the PKCS#11 provider the status this backend exits with, so that a
/// backend leaving while a call into a hung token is still in flight exits
/// with it (see `pqprovider::pkcs11::set_exit_status`).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn record_exit_status(code: std::ffi::c_int, _arg: pgrx::pg_sys::Datum) {
    pqprovider::pkcs11::set_exit_status(code);
}

fn build(name: &'static str, settings: &[Option<String>]) -> PqResult<Box<dyn KeyProvider>> {
    let need = |i: usize, setting: &str| settings[i].clone().ok_or_else(|| missing(name, setting));
    if name == "pkcs11" {
        thread_local! {
            static REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if !REGISTERED.replace(true) {
            // SAFETY: registers a function that only stores an integer.
            unsafe { pgrx::pg_sys::on_proc_exit(Some(record_exit_status), pgrx::pg_sys::Datum::from(0)) };
        }
    }
    Ok(match name {
        "pkcs11" => Box::new(Pkcs11Provider::new(Pkcs11Config {
            module: need(0, "pkcs11_module")?,
            token_label: need(1, "pkcs11_token_label")?,
            pin_file: need(2, "pkcs11_pin_file")?,
            key_label: need(3, "pkcs11_key_label")?,
        })),
        "aws_kms" => Box::new(KmsProvider::new(KmsConfig {
            key_id: need(0, "kms_key_id")?,
            region: settings[1].clone(),
            endpoint: settings[2].clone(),
        })),
        "vault_transit" => Box::new(VaultProvider::new(VaultConfig {
            addr: need(0, "vault_addr")?,
            mount: settings[1].clone().unwrap_or_else(|| "transit".into()),
            key: need(2, "vault_key")?,
            namespace: settings[3].clone(),
            token_file: settings[4].clone(),
            ca_file: settings[5].clone(),
            role_id: settings[6].clone(),
            secret_id_file: settings[7].clone(),
        })),
        "kmip" => Box::new(KmipProvider::new(KmipConfig {
            host: need(0, "kmip_host")?,
            port: settings[1].as_deref().and_then(|p| p.parse().ok()).unwrap_or(5696),
            client_cert: need(2, "kmip_client_cert")?,
            client_key: need(3, "kmip_client_key")?,
            ca_file: settings[4].clone(),
            key_id: need(5, "kmip_key_id")?,
            key_is_uid: settings[6].is_some(),
        })),
        _ => return Err(PqError::internal("a key file is not a built provider", format!("provider {name}"))),
    })
}

/// The key file's path; a development key is created under the data
/// directory when no file is configured and `create` is set.
fn key_file(create: bool) -> PqResult<String> {
    if let Some(path) = gucs::master_key_file() {
        return Ok(path);
    }
    // SAFETY: DataDir is set before any backend runs SQL and never freed.
    let dir = unsafe { pgrx::pg_sys::DataDir };
    if dir.is_null() {
        return Err(PqError::internal("data directory unknown", String::new()));
    }
    // SAFETY: a NUL-terminated C string owned by the backend.
    let path = format!("{}/{DEV_KEY_NAME}", unsafe { std::ffi::CStr::from_ptr(dir) }.to_string_lossy());
    if create && std::fs::symlink_metadata(&path).is_err() && secure_file::create_key_file(&path).map_err(convert)? {
        pgrx::warning!(
            "apg_pqcrypto created a development master key file in the data directory; set apg_pqcrypto.master_key_file (or another provider) for production"
        );
    }
    Ok(path)
}

/// At most this many providers (name and settings) are kept per backend:
/// a rotation between two keys of one provider needs both.
const MAX_BUILT: usize = 4;

/// Runs `f` on provider `name` with `settings` (every provider but file), or on
/// the key file (file). The file provider reads its key file for each call,
/// in locked memory; the others are built once per backend and settings.
fn with_provider<R>(
    name: &'static str,
    settings: Vec<Option<String>>,
    create_dev_key: bool,
    f: impl FnOnce(&mut dyn KeyProvider, &CallLimits) -> Result<R, ProviderError>,
) -> PqResult<R> {
    let limits = limits();
    let timer = latency::start(Op::ProviderCall);
    let result = if name == "file" {
        let path = key_file(create_dev_key)?;
        secure_mem::scope(|| FileProvider::open(&path).and_then(|mut p| f(&mut p, &limits)))
    } else {
        let entry = BUILT.with(|b| {
            let mut b = b.borrow_mut();
            b.iter().position(|e| e.name == name && e.settings == settings).map(|i| b.remove(i))
        });
        let mut entry = match entry {
            Some(e) => e,
            None => Built { name, provider: build(name, &settings)?, settings },
        };
        let result = f(entry.provider.as_mut(), &limits);
        BUILT.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() >= MAX_BUILT {
                b.remove(0); // the least recently used
            }
            b.push(entry);
        });
        result
    };
    record(name, result.as_ref().map(|_| ()));
    // Provider calls belong to no tenant: counted under tenant ''.
    latency::finish(Op::ProviderCall, "", timer);
    result.map_err(|e| {
        if e.kind == ErrorKind::Cancelled {
            pgrx::check_for_interrupts!();
        }
        convert(e)
    })
}

fn convert(e: ProviderError) -> PqError {
    PqError::Provider { message: e.message, hint: e.hint, detail_log: Some(e.detail) }
}

/// Wraps `mdk` with provider `name`; returns the blob and the key reference.
/// The development key file is created only when `file` is the configured
/// provider: a key administrator cannot move the master key out of an HSM
/// or KMS into a key file the superuser never chose.
pub fn wrap(name: &'static str, mdk: &Dek, binding: &Binding) -> PqResult<(Vec<u8>, String)> {
    let dev_key_allowed = configured().is_ok_and(|c| c == name);
    if name == "file" && !dev_key_allowed && gucs::master_key_file().is_none() {
        return Err(missing("file", "master_key_file"));
    }
    with_provider(name, settings_of(name), dev_key_allowed, |p, limits| Ok((p.wrap(mdk, binding, limits)?, p.key_ref())))
}

fn damaged(name: &str, key_ref: &str) -> PqError {
    PqError::internal("a stored master key reference is damaged", format!("{name} key reference {key_ref}"))
}

/// Unwraps the MDK that pq.master_keys says provider `name` wrapped with
/// key `key_ref`. Every provider but file uses the recorded key (a token's
/// key label, a KMS key id, a Transit mount and key, a KMIP unique
/// identifier) with the configured module, PIN, endpoint, address and
/// credentials, so a newly configured key wraps the next MDK while the
/// current one still unwraps. A key file other than the recorded one is PQ004 before any
/// call (the log names both keys).
pub fn unwrap(name: &str, key_ref: &str, wrapped: &[u8], binding: &Binding) -> PqResult<Dek> {
    with_recorded(name, key_ref, binding, |p, limits| p.unwrap(wrapped, binding, limits))
}

/// Moves a wrapped MDK to the newest version of its provider's key inside
/// the provider (vault_transit's rewrap): the new blob and key reference,
/// or `None` when the provider cannot (then pq.rotate_master_key moves the
/// MDK).
pub fn rewrap(name: &str, key_ref: &str, wrapped: &[u8], binding: &Binding) -> PqResult<Option<(Vec<u8>, String)>> {
    with_recorded(name, key_ref, binding, |p, limits| Ok(p.rewrap(wrapped, binding, limits)?.map(|blob| (blob, p.key_ref()))))
}

/// Runs `f` on the provider `name` built for the key recorded as `key_ref`
/// (see [`unwrap`]), after checking that it is that key.
fn with_recorded<R>(
    name: &str,
    key_ref: &str,
    binding: &Binding,
    f: impl FnOnce(&mut dyn KeyProvider, &CallLimits) -> Result<R, ProviderError>,
) -> PqResult<R> {
    let name = canonical(name)?;
    let settings = match name {
        "pkcs11" => {
            let [module, _, pin_file, _] = gucs::pkcs11();
            let (token, key) = pqprovider::pkcs11::parse_key_ref(key_ref).ok_or_else(|| damaged(name, key_ref))?;
            vec![module, Some(token), pin_file, Some(key)]
        }
        "aws_kms" => {
            let [_, region, endpoint] = gucs::kms();
            vec![Some(key_ref.to_owned()), region, endpoint]
        }
        "vault_transit" => {
            let recorded = pqprovider::vault::KeyRef::parse(key_ref).ok_or_else(|| damaged(name, key_ref))?;
            let [addr, _, _, _, token_file, ca_file, role_id, secret_id_file] = gucs::vault();
            let namespace = Some(recorded.namespace).filter(|n| !n.is_empty());
            vec![addr, Some(recorded.mount), Some(recorded.key), namespace, token_file, ca_file, role_id, secret_id_file]
        }
        "kmip" => {
            let uid = pqprovider::kmip::parse_key_ref(key_ref).ok_or_else(|| damaged(name, key_ref))?;
            let [host, port, cert, key, ca, _] = gucs::kmip();
            vec![host, port, cert, key, ca, Some(uid), Some("uid".into())]
        }
        _ => Vec::new(),
    };
    with_provider(name, settings, false, |p, limits| {
        if !p.same_key(key_ref) {
            return Err(ProviderError::new(
                ErrorKind::Misconfigured,
                "the master data key was wrapped by another key than the one configured",
                Some("configure the provider with the key the master data key was wrapped by; the server log names both"),
                format!(
                    "master data key {} is wrapped by {name} key {key_ref}; {name} is configured with {}",
                    binding.mdk_id.to_hex(),
                    p.key_ref()
                ),
            ));
        }
        f(p, limits)
    })
}

/// The binding of a stored MDK: rows made before 0.3.0 have no system
/// identifier (file wraps never used it).
pub fn binding(mdk_id: Kid, system_identifier: Option<String>) -> Binding {
    Binding { mdk_id, system_identifier: system_identifier.unwrap_or_default() }
}
