//! The connection of `backup` and `fetch-key` to a database: the password
//! from a file or `PGPASSWORD` (never the URL), and TLS with rustls in the
//! modes libpq names (`sslmode`: disable, prefer, require, verify-ca,
//! verify-full; `--root-cert` or `sslrootcert`, else `PGSSLROOTCERT`, else
//! `~/.postgresql/root.crt`).
//!
//! Both commands trust what the server sends (a bundle holding every
//! secret, the public key a client seals to): an attacker between them and
//! the server could hand over a key of their own. So over TCP to any host
//! other than the loopback they refuse every mode but verify-full, unless
//! told `--insecure`.
use crate::{CliError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where and how to connect.
#[derive(Clone, Copy, Debug, Default)]
pub struct Database<'a> {
    /// `postgresql://user@host:port/db[?sslmode=…&sslrootcert=…]` or a
    /// `key=value` connection string, without a password.
    pub url: &'a str,
    /// A file holding the password (else `PGPASSWORD`).
    pub password_file: Option<&'a Path>,
    /// Overrides the URL's `sslmode` (and `PGSSLMODE`).
    pub sslmode: Option<&'a str>,
    /// Overrides the URL's `sslrootcert` (and `PGSSLROOTCERT`).
    pub root_cert: Option<&'a Path>,
    /// Allow a connection to a non-loopback host without verify-full.
    pub insecure: bool,
}

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(CliError::Input(format!(
                    "sslmode \"{other}\" is none of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The URL without its `sslmode` and `sslrootcert` (which the `postgres`
/// crate does not read in full), and their values.
fn split_tls_options(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None, None) };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.split_once('=') {
                Some(("sslmode", v)) => {
                    mode = Some(v.to_owned());
                    false
                }
                Some(("sslrootcert", v)) => {
                    root = Some(v.to_owned());
                    false
                }
                _ => true,
            })
            .collect();
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return (rest, mode, root);
    }
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|pair| match pair.split_once('=') {
            Some(("sslmode", v)) => {
                mode = Some(v.to_owned());
                false
            }
            Some(("sslrootcert", v)) => {
                root = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    (kept.join(" "), mode, root)
}

/// True if every host of `config` is a Unix socket or a loopback address
/// (`localhost`, 127.0.0.0/8, ::1): a literal test, no name is resolved.
fn loopback_only(config: &postgres::Config) -> bool {
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|h| match h {
            postgres::config::Host::Unix(_) => true,
            postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        })
}

/// The root certificates for verify-ca and verify-full.
fn root_store(path: Option<PathBuf>) -> Result<rustls::RootCertStore> {
    let path = path
        .or_else(|| std::env::var_os("PGSSLROOTCERT").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".postgresql/root.crt")).filter(|p| p.exists()))
        .ok_or_else(|| {
            CliError::Input("verify-ca and verify-full need the server's root certificate: --root-cert FILE (PEM)".into())
        })?;
    let mut store = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| CliError::Input(format!("{} is not a PEM certificate file: {e}", path.display())))?;
        store.add(cert).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(CliError::Input(format!("{} holds no certificate", path.display())));
    }
    Ok(store)
}

/// Accepts any certificate (sslmode require and prefer encrypt, but do not
/// authenticate the server), still checking the handshake's signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the chain must lead to a root certificate, whatever name the
/// server's certificate carries.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn tls_config(mode: SslMode, root: Option<PathBuf>) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Input(format!("TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(root)?), provider)
                .build()
                .map_err(|e| CliError::Input(format!("TLS: {e}")))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(NoVerification(provider)),
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// Connects to `db`; returns the client and the sslmode it used.
pub fn connect(db: &Database<'_>) -> Result<(postgres::Client, SslMode)> {
    let (url, url_mode, url_root) = split_tls_options(db.url);
    let mut config: postgres::Config = url.parse().map_err(|e| CliError::Input(format!("not a database URL: {e}")))?;
    if config.get_password().is_some() {
        return Err(CliError::Input(
            "the URL holds a password: give it in PGPASSWORD or --password-file, never on the command line".into(),
        ));
    }
    let mode = match db.sslmode.map(str::to_owned).or(url_mode).or_else(|| std::env::var("PGSSLMODE").ok()) {
        Some(m) => SslMode::parse(&m)?,
        None => SslMode::Prefer,
    };
    if mode != SslMode::VerifyFull && !db.insecure && !loopback_only(&config) {
        return Err(CliError::Input(format!(
            "refusing sslmode {} to a host that is not the loopback: the server's answer is trusted (a bundle of \
             secrets, a key to seal to), so its certificate must be verified: use --sslmode verify-full \
             --root-cert FILE, or --insecure to accept the risk",
            mode.name()
        )));
    }
    if let Some(file) = db.password_file {
        let password = crate::read_key_file(file)?;
        let trimmed = password.strip_suffix(b"\n").unwrap_or(&password);
        config.password(trimmed);
    } else if let Ok(password) = std::env::var("PGPASSWORD") {
        config.password(password.as_bytes());
    }
    let client = match mode {
        SslMode::Disable => config.ssl_mode(postgres::config::SslMode::Disable).connect(postgres::NoTls),
        _ => {
            let ssl = if mode == SslMode::Prefer { postgres::config::SslMode::Prefer } else { postgres::config::SslMode::Require };
            let root = db.root_cert.map(Path::to_path_buf).or(url_root.map(PathBuf::from));
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(mode, root)?);
            config.ssl_mode(ssl).connect(tls)
        }
    };
    Ok((client.map_err(|e| CliError::Database(e.to_string()))?, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_come_out_of_the_url() {
        let (url, mode, root) = split_tls_options("postgresql://a@db/app?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem");
        assert_eq!((url.as_str(), mode.as_deref(), root.as_deref()), ("postgresql://a@db/app?application_name=x", Some("verify-full"), Some("/ca.pem")));
        let (url, mode, _) = split_tls_options("host=db user=a sslmode=require");
        assert_eq!((url.as_str(), mode.as_deref()), ("host=db user=a", Some("require")));
        assert_eq!(split_tls_options("postgresql://a@db/app").0, "postgresql://a@db/app");
    }

    #[test]
    fn loopback_is_literal() {
        let lo = |u: &str| loopback_only(&u.parse::<postgres::Config>().unwrap());
        assert!(lo("postgresql://a@127.0.0.1/x"));
        assert!(lo("postgresql://a@localhost/x"));
        assert!(lo("postgresql://a@[::1]/x"));
        assert!(lo("host=/var/run/postgresql user=a"));
        assert!(!lo("postgresql://a@db.example.com/x"));
        assert!(!lo("postgresql://a@10.0.0.5/x"));
        assert!(!lo("postgresql://a@127.0.0.1,10.0.0.5/x"));
    }

    #[test]
    fn a_remote_host_needs_verify_full() {
        for mode in [None, Some("disable"), Some("require"), Some("verify-ca")] {
            let db = Database { url: "postgresql://a@192.0.2.10/x", sslmode: mode, ..Database::default() };
            let e = connect(&db).err().unwrap();
            assert_eq!(e.exit_code(), 3, "{e}");
            assert!(e.to_string().contains("verify-full"), "{e}");
        }
        let db = Database { url: "postgresql://a@192.0.2.10/x?connect_timeout=1", sslmode: Some("verify-full"), ..Database::default() };
        let e = connect(&db).err().unwrap();
        assert!(e.to_string().contains("root certificate") || e.exit_code() == 6, "{e}");
    }
}
