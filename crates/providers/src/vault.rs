//! The `vault_transit` provider: the KEK is a Transit key in HashiCorp Vault
//! or OpenBao, of type aes256-gcm96 and created with `derived=true`. The MDK
//! is generated locally, wrapped by `transit/encrypt` and unwrapped by
//! `transit/decrypt`, always with the [`Binding`]'s AAD as the derivation
//! `context` (docs/FORMAT.md §6.4): the key that encrypts is derived from
//! the Transit key and the binding, so another binding does not decrypt.
//! `transit/rewrap` moves a blob to the key's newest version inside the
//! server. A key that is not derived would ignore the context: a wrap first
//! checks that the key refuses a request without one.
//!
//! The context, not `associated_data`, carries the binding because Transit's
//! rewrap takes a context and no associated data.
//!
//! Credentials: a token read from a file at each call (so a Vault agent can
//! renew it), or an AppRole login (role id, secret id from a file) whose
//! token is kept in memory and renewed by logging in again when refused.
//! The token travels only in the `X-Vault-Token` header, never in a message.
//! Plain HTTP only to a loopback address; otherwise HTTPS with the roots of
//! `vault_ca_file` (else the system's).
use crate::{
    check_id, net::{self, Connected}, secure_file::SecretFile, Binding, CallLimits, ErrorKind, KeyProvider,
    ProviderError, Result,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use pqcore::Dek;
use serde_json::Value;
use zeroize::Zeroizing;

const NAME: &str = "vault_transit";
/// A token or secret id file holds at most this many bytes.
const MAX_CREDENTIAL_LEN: usize = 4096;
const TOKEN_FILE: SecretFile<'static> = SecretFile { what: "Vault token file", setting: "apg_pqcrypto.vault_token_file" };
const SECRET_ID_FILE: SecretFile<'static> =
    SecretFile { what: "AppRole secret id file", setting: "apg_pqcrypto.vault_approle_secret_id_file" };

/// Which settings configure the provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VaultConfig {
    /// `vault_addr`: `https://vault.example:8200`, or `http://` to loopback.
    pub addr: String,
    /// `vault_mount` (default `transit`).
    pub mount: String,
    /// `vault_key`: the Transit key's name.
    pub key: String,
    /// `vault_namespace` (Vault Enterprise, OpenBao namespaces).
    pub namespace: Option<String>,
    /// `vault_token_file`.
    pub token_file: Option<String>,
    /// `vault_ca_file`: PEM roots for HTTPS.
    pub ca_file: Option<String>,
    /// `vault_approle_role_id`.
    pub role_id: Option<String>,
    /// `vault_approle_secret_id_file`.
    pub secret_id_file: Option<String>,
}

/// The parts of a stored key reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub addr: String,
    pub namespace: String,
    pub mount: String,
    pub key: String,
    /// The Transit key version of the blob it was recorded with.
    pub version: Option<u64>,
}

impl KeyRef {
    /// `vault:addr=A;namespace=N;mount=M;key=K[;version=V]`.
    pub fn format(&self) -> String {
        let mut s = format!("vault:addr={};namespace={};mount={};key={}", self.addr, self.namespace, self.mount, self.key);
        if let Some(v) = self.version {
            s.push_str(&format!(";version={v}"));
        }
        s
    }

    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("vault:")?;
        let mut r = KeyRef { addr: String::new(), namespace: String::new(), mount: String::new(), key: String::new(), version: None };
        for part in rest.split(';') {
            let (k, v) = part.split_once('=')?;
            match k {
                "addr" => r.addr = v.into(),
                "namespace" => r.namespace = v.into(),
                "mount" => r.mount = v.into(),
                "key" => r.key = v.into(),
                "version" => r.version = Some(v.parse().ok()?),
                _ => return None,
            }
        }
        (!r.mount.is_empty() && !r.key.is_empty()).then_some(r)
    }

    fn same_key(&self, other: &KeyRef) -> bool {
        (&self.namespace, &self.mount, &self.key) == (&other.namespace, &other.mount, &other.key)
    }
}

pub struct VaultProvider {
    config: VaultConfig,
    connected: Option<Connected<reqwest::Client>>,
    /// The token of the last AppRole login.
    login_token: Option<Zeroizing<String>>,
    /// The Transit key version of the last wrap or rewrap.
    version: Option<u64>,
}

fn misconfigured(message: &str, hint: &str, detail: String) -> ProviderError {
    ProviderError::new(ErrorKind::Misconfigured, message, Some(hint), detail)
}

/// The Transit key version of a `vault:vN:...` ciphertext.
pub fn blob_version(blob: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(blob).ok()?;
    let rest = s.strip_prefix("vault:v")?;
    rest.split_once(':')?.0.parse().ok()
}

impl VaultProvider {
    /// Nothing is read or connected until the first call.
    pub fn new(config: VaultConfig) -> Self {
        Self { config, connected: None, login_token: None, version: None }
    }

    fn reference(&self) -> KeyRef {
        KeyRef {
            addr: self.config.addr.clone(),
            namespace: self.config.namespace.clone().unwrap_or_default(),
            mount: self.config.mount.clone(),
            key: self.config.key.clone(),
            version: self.version,
        }
    }

    /// Checks the settings that need no call: the address's scheme and host,
    /// names that fit in a key reference.
    fn check_settings(&self) -> Result<()> {
        let c = &self.config;
        let url = reqwest::Url::parse(&c.addr).map_err(|e| {
            misconfigured(
                "the vault_transit master key provider's address is not a URL",
                "set apg_pqcrypto.vault_addr to https://HOST:PORT",
                format!("vault_transit: vault_addr \"{}\": {e}", c.addr),
            )
        })?;
        let host = url.host_str().unwrap_or("");
        match url.scheme() {
            "https" => {}
            "http" if net::is_loopback(host) => {}
            _ => {
                return Err(misconfigured(
                    "the vault_transit master key provider needs HTTPS to a server that is not on this machine",
                    "use an https:// address in apg_pqcrypto.vault_addr (plain http is allowed only to a loopback address)",
                    format!("vault_transit: vault_addr \"{}\" is not https and not loopback", c.addr),
                ))
            }
        }
        let names = [c.mount.as_str(), c.key.as_str(), c.namespace.as_deref().unwrap_or("")];
        if c.addr.contains(';') || names.iter().any(|n| n.contains([';', '=', '?', '#']) || n.contains("..")) {
            return Err(misconfigured(
                "the vault_transit master key provider's settings name an impossible key",
                "check apg_pqcrypto.vault_mount, vault_key and vault_namespace",
                format!("vault_transit: mount \"{}\", key \"{}\", namespace {:?}", c.mount, c.key, c.namespace),
            ));
        }
        Ok(())
    }

    fn client(&mut self, limits: &CallLimits) -> Result<&Connected<reqwest::Client>> {
        self.check_settings()?;
        let (ca_file, timeout) = (self.config.ca_file.clone(), limits.timeout);
        Ok(net::connection(&mut self.connected, NAME, |_| {
            let tls = net::tls_config(NAME, ca_file.as_deref().map(|p| (p, "apg_pqcrypto.vault_ca_file")), None)?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(timeout)
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .map_err(|e| net::unavailable(NAME, format!("vault_transit: cannot build a client: {e}")))
        })?)
    }

    /// The token to send: the token file's (read now), or an AppRole login's.
    fn token(&mut self, limits: &CallLimits) -> Result<Zeroizing<String>> {
        if let Some(path) = &self.config.token_file {
            return credential(&TOKEN_FILE, path);
        }
        if let Some(token) = &self.login_token {
            return Ok(token.clone());
        }
        let (Some(role_id), Some(secret_file)) = (&self.config.role_id, &self.config.secret_id_file) else {
            return Err(misconfigured(
                "the vault_transit master key provider has no credentials",
                "set apg_pqcrypto.vault_token_file, or vault_approle_role_id and vault_approle_secret_id_file",
                "vault_transit: no token file and no AppRole".into(),
            ));
        };
        let secret_id = credential(&SECRET_ID_FILE, secret_file)?;
        let body = body(&[("role_id", role_id), ("secret_id", &secret_id)])?;
        let reply = self.send(limits, "auth/approle/login", body, None)?;
        let token = reply["auth"]["client_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
            net::unavailable(NAME, "vault_transit: the AppRole login returned no token".into())
        })?;
        let token = Zeroizing::new(token.to_owned());
        self.login_token = Some(token.clone());
        Ok(token)
    }

    /// POSTs `body` to `/v1/{path}` with `token`; the JSON reply of a 2xx.
    fn send(&mut self, limits: &CallLimits, path: &str, body: Zeroizing<String>, token: Option<&str>) -> Result<Value> {
        let url = format!("{}/v1/{path}", self.config.addr.trim_end_matches('/'));
        let namespace = self.config.namespace.clone().filter(|n| !n.is_empty());
        let doing = path.to_owned();
        let connected = self.client(limits)?;
        let mut request = connected.client.post(&url).header("Content-Type", "application/json").body(body.to_string());
        if let Some(ns) = namespace {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(token).map_err(|_| {
                misconfigured(
                    "the vault_transit master key provider's token is not valid",
                    "the token file holds one Vault token",
                    "vault_transit: the token has characters a header cannot carry".into(),
                )
            })?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        net::block_on(&connected.runtime, NAME, limits, async move {
            let response = request.send().await.map_err(|e| transport(&doing, &e))?;
            let status = response.status();
            let bytes = Zeroizing::new(response.bytes().await.map_err(|e| transport(&doing, &e))?.to_vec());
            let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_success() {
                Ok(reply)
            } else {
                Err(refused(&doing, status.as_u16(), &reply))
            }
        })
    }

    /// A Transit call: with the token; an AppRole token that is refused is
    /// renewed by one new login, and the call made once more.
    fn transit(&mut self, limits: &CallLimits, op: &str, body: Zeroizing<String>) -> Result<Value> {
        let path = format!("{}/{op}/{}", self.config.mount.trim_matches('/'), self.config.key);
        let token = self.token(limits)?;
        match self.send(limits, &path, body.clone(), Some(&token)) {
            Err(e) if e.kind == ErrorKind::Misconfigured && e.detail.contains("HTTP 403") && self.login_token.is_some() => {
                self.login_token = None;
                let token = self.token(limits)?;
                self.send(limits, &path, body, Some(&token))
            }
            other => other,
        }
    }

    /// A key that is not derived ignores the context, and the binding with
    /// it: such a key must refuse an encryption without a context.
    fn check_derived(&mut self, limits: &CallLimits) -> Result<()> {
        match self.transit(limits, "encrypt", body(&[("plaintext", &B64.encode(b"apg-pq derived key check"))])?) {
            Ok(_) => Err(misconfigured(
                "the Vault Transit key is not a derived key, so it would not bind the master data key to this cluster",
                "create the Transit key with derived=true (docs/PROVIDERS.md)",
                format!("vault_transit: key \"{}\" encrypts without a context", self.config.key),
            )),
            Err(e) if e.detail.contains("'context'") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn ciphertext(&mut self, reply: &Value) -> Result<Vec<u8>> {
        let ct = reply["data"]["ciphertext"]
            .as_str()
            .ok_or_else(|| net::unavailable(NAME, "vault_transit: the reply has no ciphertext".into()))?;
        self.version = blob_version(ct.as_bytes());
        Ok(ct.as_bytes().to_vec())
    }
}

/// A JSON object of string fields, written straight into one zeroizing
/// buffer (a `serde_json::Value` would keep unwiped copies of a key or a
/// secret id). Values are base64, Vault ciphertexts, ids and secret ids:
/// anything that would need escaping is refused.
fn body(fields: &[(&str, &str)]) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(fields.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>() + 2));
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if v.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(misconfigured(
                "the vault_transit master key provider got a value it cannot send",
                "the token and secret id files hold printable characters only",
                format!("vault_transit: the field {k} needs escaping"),
            ));
        }
        if i > 0 {
            out.push(',');
        }
        for part in ["\"", k, "\":\"", v, "\""] {
            out.push_str(part);
        }
    }
    out.push('}');
    Ok(out)
}

fn credential(file: &SecretFile<'_>, path: &str) -> Result<Zeroizing<String>> {
    let bytes = file.read(path, MAX_CREDENTIAL_LEN)?;
    let text = std::str::from_utf8(&bytes).ok().map(str::trim).filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
    text.map(|t| Zeroizing::new(t.to_owned())).ok_or_else(|| {
        misconfigured(
            &format!("the {} does not hold a credential", file.what),
            &format!("{} names a file holding one line", file.setting),
            format!("{} \"{path}\": empty or not printable", file.what),
        )
    })
}

fn transport(doing: &str, e: &reqwest::Error) -> ProviderError {
    // The URL names the server and the path, never a credential.
    let detail = format!("vault_transit: {doing}: {e:?}");
    if e.is_timeout() {
        ProviderError::new(
            ErrorKind::TimedOut,
            "the vault_transit master key provider did not answer in time",
            Some("check that the server is reachable; apg_pqcrypto.provider_timeout bounds each call"),
            detail,
        )
    } else {
        net::unavailable(NAME, detail)
    }
}

/// Maps a refusal onto [`ErrorKind`]: Vault's `errors` go to the log only.
fn refused(doing: &str, status: u16, reply: &Value) -> ProviderError {
    let errors = reply["errors"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
    let errors = errors.unwrap_or_default();
    let detail = format!("vault_transit: {doing}: HTTP {status}: {errors}");
    let lower = errors.to_ascii_lowercase();
    match status {
        400 if lower.contains("message authentication failed") || lower.contains("invalid ciphertext") => {
            ProviderError::wrong_key(NAME, detail)
        }
        400 if lower.contains("key not found") => misconfigured(
            "the vault_transit master key provider has no such key",
            "check apg_pqcrypto.vault_key and vault_mount; the server log has Vault's answer",
            detail,
        ),
        401 | 403 => misconfigured(
            "the vault_transit master key provider refused the request",
            "check the token (or AppRole) and its policy; the server log has Vault's answer",
            detail,
        ),
        400 | 404 | 405 => misconfigured(
            "the vault_transit master key provider refused the request",
            "check apg_pqcrypto.vault_mount, vault_key and vault_namespace; the server log has Vault's answer",
            detail,
        ),
        _ => net::unavailable(NAME, detail),
    }
}

impl KeyProvider for VaultProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `vault:addr=A;namespace=N;mount=M;key=K;version=V` (the version of
    /// the last wrap or rewrap).
    fn key_ref(&self) -> String {
        self.reference().format()
    }

    /// The same namespace, mount and key (the address and version may
    /// differ).
    fn same_key(&self, recorded: &str) -> bool {
        KeyRef::parse(recorded).is_some_and(|r| r.same_key(&self.reference()))
    }

    fn wrap(&mut self, mdk: &Dek, binding: &Binding, limits: &CallLimits) -> Result<Vec<u8>> {
        self.check_derived(limits)?;
        let plaintext = Zeroizing::new(B64.encode(mdk.expose()));
        let reply = self.transit(limits, "encrypt", body(&[("plaintext", &plaintext), ("context", &B64.encode(binding.aad()))])?)?;
        self.ciphertext(&reply)
    }

    fn unwrap(&mut self, wrapped: &[u8], binding: &Binding, limits: &CallLimits) -> Result<Dek> {
        let ciphertext = std::str::from_utf8(wrapped)
            .map_err(|_| ProviderError::wrong_key(NAME, "vault_transit: the stored blob is not a Transit ciphertext"))?;
        let mut reply =
            self.transit(limits, "decrypt", body(&[("ciphertext", ciphertext), ("context", &B64.encode(binding.aad()))])?)?;
        // The base64 of the MDK: taken out of the reply and wiped.
        let encoded = match reply["data"]["plaintext"].take() {
            Value::String(s) => Zeroizing::new(s),
            _ => Zeroizing::new(String::new()),
        };
        let plain = Zeroizing::new(B64.decode(encoded.as_bytes()).unwrap_or_default());
        let key = Dek::from_slice(&plain)
            .map_err(|_| ProviderError::wrong_key(NAME, "vault_transit: decrypt returned a key that is not 32 bytes"))?;
        check_id(NAME, key, binding)
    }

    fn rewrap(&mut self, wrapped: &[u8], binding: &Binding, limits: &CallLimits) -> Result<Option<Vec<u8>>> {
        let ciphertext = std::str::from_utf8(wrapped)
            .map_err(|_| ProviderError::wrong_key(NAME, "vault_transit: the stored blob is not a Transit ciphertext"))?;
        let reply =
            self.transit(limits, "rewrap", body(&[("ciphertext", ciphertext), ("context", &B64.encode(binding.aad()))])?)?;
        self.ciphertext(&reply).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_round_trip() {
        let r = KeyRef {
            addr: "https://vault.example:8200".into(),
            namespace: "team/a".into(),
            mount: "transit".into(),
            key: "apg-pq".into(),
            version: Some(3),
        };
        assert_eq!(KeyRef::parse(&r.format()), Some(r.clone()));
        assert_eq!(KeyRef::parse("vault:mount=transit;key=k"), Some(KeyRef { addr: "".into(), namespace: "".into(), mount: "transit".into(), key: "k".into(), version: None }));
        assert_eq!(KeyRef::parse("vault:mount=transit"), None);
        assert_eq!(KeyRef::parse("pkcs11:token=a"), None);
        assert_eq!(KeyRef::parse("vault:mount=t;key=k;version=x"), None);
        assert_eq!(blob_version(b"vault:v12:abc"), Some(12));
        assert_eq!(blob_version(b"vault:abc"), None);
    }

    #[test]
    fn bodies_are_json_objects_and_refuse_what_needs_escaping() {
        let b = body(&[("plaintext", "AAE="), ("context", "YQ==")]).unwrap();
        assert_eq!(b.as_str(), r#"{"plaintext":"AAE=","context":"YQ=="}"#);
        assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["context"], "YQ==");
        assert!(body(&[("secret_id", "a\"b")]).is_err());
        assert!(body(&[("secret_id", "a\\b")]).is_err());
        assert!(body(&[("secret_id", "a\nb")]).is_err());
    }
}
