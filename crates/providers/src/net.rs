//! What the providers that talk over a network share (aws_kms,
//! vault_transit, kmip): a current-thread tokio runtime per provider, made on
//! first use and forgotten after a `fork()` (a runtime made by the parent is
//! never used or dropped in the child); calls bounded by [`CallLimits`]; and
//! rustls client settings read from PEM files.
use crate::{secure_file::SecretFile, CallLimits, ErrorKind, ProviderError, Result};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A runtime and what was built on it (a client), valid in the process that
/// made them.
pub struct Connected<C> {
    pub runtime: tokio::runtime::Runtime,
    pub client: C,
    pid: u32,
}

/// The connection in `slot`, made by `make` when there is none or when it
/// was made before a fork.
pub fn connection<'a, C>(
    slot: &'a mut Option<Connected<C>>,
    provider: &str,
    make: impl FnOnce(&tokio::runtime::Runtime) -> Result<C>,
) -> Result<&'a mut Connected<C>> {
    match slot.take() {
        Some(c) if c.pid == std::process::id() => return Ok(slot.insert(c)),
        // Made by the parent before a fork: not usable here.
        Some(c) => std::mem::forget(c),
        None => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(crate::block_signals)
        .build()
        .map_err(|e| unavailable(provider, format!("{provider}: cannot start a runtime: {e}")))?;
    let client = make(&runtime)?;
    Ok(slot.insert(Connected { runtime, client, pid: std::process::id() }))
}

/// Runs `future` on `runtime` within `limits`: [`ErrorKind::TimedOut`] after
/// the timeout, [`ErrorKind::Cancelled`] as soon as the cancel check says so.
pub fn block_on<T>(
    runtime: &tokio::runtime::Runtime,
    provider: &str,
    limits: &CallLimits,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limits = *limits;
    let outcome = runtime.block_on(async move {
        tokio::select! {
            r = tokio::time::timeout(limits.timeout, future) => Some(r),
            _ = watch(limits.cancelled) => None,
        }
    });
    match outcome {
        None => Err(ProviderError::cancelled(provider)),
        Some(Err(_)) => Err(ProviderError::timed_out(provider, &limits)),
        Some(Ok(r)) => r,
    }
}

async fn watch(cancelled: fn() -> bool) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if cancelled() {
            return;
        }
    }
}

/// "the PROVIDER master key provider is unavailable", with `detail` for the
/// log.
pub fn unavailable(provider: &str, detail: String) -> ProviderError {
    ProviderError::new(
        ErrorKind::Unavailable,
        format!("the {provider} master key provider is unavailable"),
        Some("the server log has the error; check the server's address, the network and the credentials"),
        detail,
    )
}

/// A PEM file of certificates or a key is at most this long.
const MAX_PEM_LEN: usize = 1 << 20;

fn misconfigured(provider: &str, what: &str, setting: &str, detail: String) -> ProviderError {
    ProviderError::new(
        ErrorKind::Misconfigured,
        format!("the {provider} master key provider's {what} cannot be used"),
        Some(&format!("check apg_pqcrypto.{setting}; the server log has the reason")),
        detail,
    )
}

/// The certificates of a PEM file (public: read without the secret-file
/// checks).
fn certificates(provider: &str, path: &str, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let what = "certificate file";
    let bytes = std::fs::read(path).map_err(|e| misconfigured(provider, what, setting, format!("{setting} \"{path}\": {e}")))?;
    if bytes.len() > MAX_PEM_LEN {
        return Err(misconfigured(provider, what, setting, format!("{setting} \"{path}\": longer than {MAX_PEM_LEN} bytes")));
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| misconfigured(provider, what, setting, format!("{setting} \"{path}\": {e}")))?;
    if certs.is_empty() {
        return Err(misconfigured(provider, what, setting, format!("{setting} \"{path}\": no certificate in it")));
    }
    Ok(certs)
}

/// A PEM file and the setting that names it (for messages).
pub type PemFile<'a> = (&'a str, &'a str);

/// rustls client settings: the roots of `ca_file` (else the operating
/// system's), and a client certificate with its key when given. The key file
/// is a secret: owned by the server's user, no group or other access.
pub fn tls_config(
    provider: &str,
    ca_file: Option<PemFile<'_>>,
    client: Option<(PemFile<'_>, PemFile<'_>)>,
) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some((path, setting)) => {
            for cert in certificates(provider, path, setting)? {
                roots
                    .add(cert)
                    .map_err(|e| misconfigured(provider, "certificate file", setting, format!("{setting} \"{path}\": {e}")))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(provider, format!("{provider}: TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(((cert_path, cert_setting), (key_path, key_setting))) => {
            let chain = certificates(provider, cert_path, cert_setting)?;
            let file = SecretFile { what: "client key file", setting: key_setting };
            let pem = file.read(key_path, MAX_PEM_LEN)?;
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                misconfigured(provider, "client key file", key_setting, format!("{key_setting} \"{key_path}\": {e}"))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                misconfigured(provider, "client certificate", cert_setting, format!("{cert_setting} \"{cert_path}\": {e}"))
            })?
        }
    };
    Ok(config)
}

/// True for a loopback host name or address (where plain HTTP is allowed).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
