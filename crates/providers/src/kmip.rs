//! The `kmip` provider: the KEK is an AES-256 symmetric key object in a KMIP
//! server, reached over TLS with a client certificate. The MDK is generated
//! locally, wrapped by the server's Encrypt operation and unwrapped by its
//! Decrypt (docs/FORMAT.md §6.5):
//!
//! - AES-256-GCM (KMIP 1.4), the [`Binding`]'s AAD as the authenticated
//!   additional data, a 16-byte tag and an IV the server draws;
//! - where the server refuses that request as unsupported (a KMIP 1.2 or
//!   1.3 server, no GCM, no additional data), AES-256-CBC with PKCS#5
//!   padding over `SHA-256(AAD) || MDK` (KMIP 1.2): the binding is then
//!   checked here, after Decrypt, not by the server. A tampered blob still
//!   fails (the hash or the MDK id no longer matches); what is lost is the
//!   server's own refusal, and a blob has 31 bytes more (IV + 82 instead
//!   of IV + 51).
//!
//! `kmip_key_id` is a unique identifier or a name: a Locate by name comes
//! first, and the unique identifier it finds is what the key reference
//! records (`kmip:server=HOST:PORT;uid=UID`), so renaming or re-pointing
//! the name later leaves stored MDKs unwrapping with their own key.
//!
//! Each call opens one TLS connection (calls happen only on cache misses),
//! on a current-thread runtime owned by the provider ([`net`]).
use crate::{check_id, net::{self, Connected}, Binding, CallLimits, ErrorKind, KeyProvider, ProviderError, Result};
use pqcore::Dek;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ttlv::{tag, Item};
use zeroize::Zeroizing;

pub mod ttlv;

const NAME: &str = "kmip";
/// An answer is at most this long.
const MAX_RESPONSE: usize = 1 << 20;

/// Blob modes (the first byte of a wrapped MDK).
pub const MODE_GCM: u8 = 0x01;
pub const MODE_CBC: u8 = 0x02;

// Enumerations (KMIP 1.4 §9.1.3.2).
const OP_LOCATE: u32 = 0x08;
const OP_ENCRYPT: u32 = 0x1F;
const OP_DECRYPT: u32 = 0x20;
const AES: u32 = 0x03;
const CBC: u32 = 0x01;
const GCM: u32 = 0x09;
const PKCS5: u32 = 0x03;
const NAME_TYPE_TEXT: u32 = 0x01;
const GCM_TAG_LEN: usize = 16;

/// Result reasons that mean "the server does not do this request" (the GCM
/// wrap falls back to CBC on these).
const UNSUPPORTED: [u32; 7] = [0x04, 0x05, 0x07, 0x08, 0x24, 0x3E, 0x3F];

/// Which settings configure the provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KmipConfig {
    /// `kmip_host`.
    pub host: String,
    /// `kmip_port` (5696).
    pub port: u16,
    /// `kmip_client_cert`: PEM, the client's certificate (and chain).
    pub client_cert: String,
    /// `kmip_client_key`: PEM, its private key (a secret file).
    pub client_key: String,
    /// `kmip_ca_file`: PEM roots that sign the server's certificate.
    pub ca_file: Option<String>,
    /// `kmip_key_id`: a unique identifier or a name.
    pub key_id: String,
    /// `key_id` is a unique identifier for sure (a stored key reference's):
    /// no Locate.
    pub key_is_uid: bool,
}

pub struct KmipProvider {
    config: KmipConfig,
    connected: Option<Connected<Arc<rustls::ClientConfig>>>,
    /// The unique identifier `key_id` was found to name.
    uid: Option<String>,
    /// Wrap with CBC only (tests of the fallback).
    cbc_only: bool,
}

/// The unique identifier in a key reference.
pub fn parse_key_ref(key_ref: &str) -> Option<String> {
    let rest = key_ref.strip_prefix("kmip:")?;
    let (_, uid) = rest.split_once(";uid=")?;
    (!uid.is_empty()).then(|| uid.to_owned())
}

fn misconfigured(message: &str, hint: &str, detail: String) -> ProviderError {
    ProviderError::new(ErrorKind::Misconfigured, message, Some(hint), detail)
}

impl KmipProvider {
    /// Nothing is read or connected until the first call.
    pub fn new(config: KmipConfig) -> Self {
        let uid = config.key_is_uid.then(|| config.key_id.clone());
        Self { config, connected: None, uid, cbc_only: false }
    }

    /// A provider that wraps as a server without AES-GCM would have it
    /// wrap: AES-CBC (for the tests of that path).
    pub fn cbc_only(config: KmipConfig) -> Self {
        Self { cbc_only: true, ..Self::new(config) }
    }

    fn tls(&mut self) -> Result<(&tokio::runtime::Runtime, Arc<rustls::ClientConfig>)> {
        let c = &self.config;
        let (cert, key, ca) = (c.client_cert.clone(), c.client_key.clone(), c.ca_file.clone());
        let connected = net::connection(&mut self.connected, NAME, |_| {
            let tls = net::tls_config(
                NAME,
                ca.as_deref().map(|p| (p, "apg_pqcrypto.kmip_ca_file")),
                Some(((&cert, "apg_pqcrypto.kmip_client_cert"), (&key, "apg_pqcrypto.kmip_client_key"))),
            )?;
            Ok(Arc::new(tls))
        })?;
        Ok((&connected.runtime, connected.client.clone()))
    }

    /// Runs `requests(uid)` against the server on one connection: first a
    /// Locate when the unique identifier is not known yet.
    fn call(&mut self, limits: &CallLimits, doing: &'static str, requests: Requests) -> Result<Item> {
        let (host, port, key_id) = (self.config.host.clone(), self.config.port, self.config.key_id.clone());
        let uid = self.uid.clone();
        let (runtime, tls) = self.tls()?;
        let (uid, reply) = net::block_on(runtime, NAME, limits, async move {
            let mut stream = open(&host, port, tls).await?;
            let uid = match uid {
                Some(uid) => uid,
                None => locate(&mut stream, &key_id).await?,
            };
            let mut last = None;
            for (i, request) in requests(&uid).into_iter().enumerate() {
                match roundtrip(&mut stream, &request, doing).await {
                    Ok(reply) => return Ok((uid, reply)),
                    // A request the server does not do: the next one (CBC) if any.
                    Err(Failure::Refused(reason, e)) if UNSUPPORTED.contains(&reason) && i == 0 => last = Some(e),
                    Err(Failure::Refused(_, e)) | Err(Failure::Other(e)) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| net::unavailable(NAME, "kmip: no request was made".into())))
        })?;
        self.uid = Some(uid);
        Ok(reply)
    }
}

/// The requests of one call, given the key's unique identifier; each one
/// after the first is tried only if the one before was refused as
/// unsupported.
type Requests = Box<dyn FnOnce(&str) -> Vec<Zeroizing<Vec<u8>>> + Send>;

type Stream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn open(host: &str, port: u16, tls: Arc<rustls::ClientConfig>) -> Result<Stream> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| net::unavailable(NAME, format!("kmip: connect to {host}:{port}: {e}")))?;
    // One request, one answer: nothing to gain from Nagle's delay.
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        misconfigured(
            "the kmip master key provider's host is not a host name",
            "check apg_pqcrypto.kmip_host",
            format!("kmip: kmip_host \"{host}\": {e}"),
        )
    })?;
    tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| {
        let detail = format!("kmip: TLS with {host}:{port}: {e}");
        // A certificate refused on either side is a setting to fix; a reset
        // or an early close while nobody answers is an outage.
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            misconfigured(
                "the kmip master key provider's TLS handshake failed",
                "check apg_pqcrypto.kmip_ca_file, kmip_client_cert and kmip_client_key; the server log has the reason",
                detail,
            )
        } else {
            net::unavailable(NAME, detail)
        }
    })
}

enum Failure {
    /// The server answered with a failed result and this reason.
    Refused(u32, ProviderError),
    Other(ProviderError),
}

/// Sends one request message and reads the answer; the payload of a
/// successful batch item.
async fn roundtrip(stream: &mut Stream, request: &[u8], doing: &str) -> std::result::Result<Item, Failure> {
    let io = |e: std::io::Error| Failure::Other(net::unavailable(NAME, format!("kmip: {doing}: {e}")));
    stream.write_all(request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).await.map_err(io)?;
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > MAX_RESPONSE {
        return Err(Failure::Other(net::unavailable(NAME, format!("kmip: {doing}: an answer of {len} bytes"))));
    }
    let mut message = Zeroizing::new(vec![0u8; 8 + len]);
    message[..8].copy_from_slice(&head);
    stream.read_exact(&mut message[8..]).await.map_err(io)?;
    let malformed = |what: &str| Failure::Other(net::unavailable(NAME, format!("kmip: {doing}: a malformed answer: {what}")));
    let (response, _) = Item::decode(&message).map_err(|m| malformed(m.0))?;
    if response.tag != tag::RESPONSE_MESSAGE {
        return Err(malformed("not a response message"));
    }
    let item = response.get(tag::BATCH_ITEM).ok_or_else(|| malformed("no batch item"))?;
    let status = item.get(tag::RESULT_STATUS).and_then(Item::as_enum).ok_or_else(|| malformed("no result status"))?;
    if status != 0 {
        let reason = item.get(tag::RESULT_REASON).and_then(Item::as_enum).unwrap_or(0);
        let text = item.get(tag::RESULT_MESSAGE).and_then(Item::as_text).unwrap_or("");
        return Err(Failure::Refused(reason, failed(doing, reason, text)));
    }
    match response.value {
        ttlv::Value::Structure(mut items) => {
            let at = items.iter().position(|i| i.tag == tag::BATCH_ITEM).ok_or_else(|| malformed("no batch item"))?;
            let batch = items.swap_remove(at);
            match batch.value {
                ttlv::Value::Structure(mut parts) => match parts.iter().position(|i| i.tag == tag::RESPONSE_PAYLOAD) {
                    Some(p) => Ok(parts.swap_remove(p)),
                    None => Ok(ttlv::structure(tag::RESPONSE_PAYLOAD, Vec::new())),
                },
                _ => Err(malformed("a batch item that is not a structure")),
            }
        }
        _ => Err(malformed("a response that is not a structure")),
    }
}

/// A failed result: the server's reason and message go to the log only.
fn failed(doing: &str, reason: u32, message: &str) -> ProviderError {
    let detail = format!("kmip: {doing}: result reason 0x{reason:02X}: {message}");
    match reason {
        0x01 => misconfigured(
            "the kmip master key provider has no such key",
            "check apg_pqcrypto.kmip_key_id; the server log has the server's answer",
            detail,
        ),
        0x03 | 0x0C => misconfigured(
            "the kmip master key provider refused the request",
            "check the client certificate and the key's owner, state and usage; the server log has the server's answer",
            detail,
        ),
        // A tag or padding that does not check out: Cryptographic Failure,
        // or General Failure from servers (PyKMIP) that do not tell.
        0x0A | 0x100 if doing == "Decrypt" => ProviderError::wrong_key(NAME, detail),
        r if UNSUPPORTED.contains(&r) => misconfigured(
            "the kmip master key provider does not support the request",
            "the server must do AES Encrypt and Decrypt (GCM, or CBC); the server log has the server's answer",
            detail,
        ),
        _ => net::unavailable(NAME, detail),
    }
}

/// A request message of one batch item (protocol 1.`minor`).
fn request(minor: i32, operation: u32, payload: Vec<Item>) -> Zeroizing<Vec<u8>> {
    let message = ttlv::structure(
        tag::REQUEST_MESSAGE,
        vec![
            ttlv::structure(
                tag::REQUEST_HEADER,
                vec![
                    ttlv::structure(
                        tag::PROTOCOL_VERSION,
                        vec![ttlv::integer(tag::PROTOCOL_VERSION_MAJOR, 1), ttlv::integer(tag::PROTOCOL_VERSION_MINOR, minor)],
                    ),
                    ttlv::integer(tag::BATCH_COUNT, 1),
                ],
            ),
            ttlv::structure(
                tag::BATCH_ITEM,
                vec![ttlv::enumeration(tag::OPERATION, operation), ttlv::structure(tag::REQUEST_PAYLOAD, payload)],
            ),
        ],
    );
    let mut out = Zeroizing::new(Vec::with_capacity(256));
    message.encode(&mut out);
    out
}

/// The unique identifier of the one key named `name`, or `name` itself when
/// no object has that name.
async fn locate(stream: &mut Stream, name: &str) -> Result<String> {
    let attribute = ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
            ttlv::structure(
                tag::ATTRIBUTE_VALUE,
                vec![ttlv::text(tag::NAME_VALUE, name), ttlv::enumeration(tag::NAME_TYPE, NAME_TYPE_TEXT)],
            ),
        ],
    );
    let reply = match roundtrip(stream, &request(2, OP_LOCATE, vec![attribute]), "Locate").await {
        Ok(reply) => reply,
        Err(Failure::Refused(_, e)) | Err(Failure::Other(e)) => return Err(e),
    };
    let found: Vec<&str> = reply.all(tag::UNIQUE_IDENTIFIER).filter_map(Item::as_text).collect();
    match found.as_slice() {
        [] => Ok(name.to_owned()),
        [uid] => Ok((*uid).to_owned()),
        _ => Err(misconfigured(
            "the kmip master key provider's key name names several keys",
            "set apg_pqcrypto.kmip_key_id to the key's unique identifier",
            format!("kmip: the name \"{name}\" names {} objects", found.len()),
        )),
    }
}

fn gcm_parameters(random_iv: bool) -> Item {
    // Fields in the specification's order (servers read them in it).
    let mut p = vec![ttlv::enumeration(tag::BLOCK_CIPHER_MODE, GCM), ttlv::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, AES)];
    if random_iv {
        p.push(ttlv::boolean(tag::RANDOM_IV, true));
    }
    p.push(ttlv::integer(tag::TAG_LENGTH, GCM_TAG_LEN as i32));
    ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, p)
}

fn cbc_parameters(random_iv: bool) -> Item {
    let mut p = vec![
        ttlv::enumeration(tag::BLOCK_CIPHER_MODE, CBC),
        ttlv::enumeration(tag::PADDING_METHOD, PKCS5),
        ttlv::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, AES),
    ];
    if random_iv {
        p.push(ttlv::boolean(tag::RANDOM_IV, true));
    }
    ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, p)
}

/// `SHA-256(AAD) || MDK`: what the CBC fallback encrypts.
fn cbc_plaintext(mdk: &Dek, binding: &Binding) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Sha256::digest(binding.aad()).to_vec());
    p.extend_from_slice(mdk.expose());
    p
}

/// A blob's parts: mode, IV, tag (GCM only), ciphertext.
struct Blob<'a> {
    mode: u8,
    iv: &'a [u8],
    tag: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Blob<'a> {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.mode, self.iv.len() as u8];
        out.extend_from_slice(self.iv);
        if self.mode == MODE_GCM {
            out.push(self.tag.len() as u8);
            out.extend_from_slice(self.tag);
        }
        out.extend_from_slice(self.ciphertext);
        out
    }

    fn parse(b: &'a [u8]) -> Option<Self> {
        let (&mode, rest) = b.split_first()?;
        let (&iv_len, rest) = rest.split_first()?;
        if !(1..=32).contains(&iv_len) || rest.len() < iv_len as usize {
            return None;
        }
        let (iv, rest) = rest.split_at(iv_len as usize);
        match mode {
            MODE_GCM => {
                let (&tag_len, rest) = rest.split_first()?;
                if tag_len as usize != GCM_TAG_LEN || rest.len() != GCM_TAG_LEN + 32 {
                    return None;
                }
                let (tag, ciphertext) = rest.split_at(GCM_TAG_LEN);
                Some(Blob { mode, iv, tag, ciphertext })
            }
            MODE_CBC if rest.len() == 80 => Some(Blob { mode, iv, tag: &[], ciphertext: rest }),
            _ => None,
        }
    }
}

impl KeyProvider for KmipProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `kmip:server=HOST:PORT;uid=UID`; the configured key id until a call
    /// has resolved it.
    fn key_ref(&self) -> String {
        let uid = self.uid.as_deref().unwrap_or(&self.config.key_id);
        format!("kmip:server={}:{};uid={uid}", self.config.host, self.config.port)
    }

    /// The same unique identifier (the server may have moved).
    fn same_key(&self, recorded: &str) -> bool {
        parse_key_ref(recorded).is_some_and(|uid| Some(&uid) == self.uid.as_ref() || uid == self.config.key_id)
    }

    fn wrap(&mut self, mdk: &Dek, binding: &Binding, limits: &CallLimits) -> Result<Vec<u8>> {
        let (aad, key, cbc_plain, cbc_only) =
            (binding.aad(), Zeroizing::new(mdk.expose().to_vec()), cbc_plaintext(mdk, binding), self.cbc_only);
        let requests: Requests = Box::new(move |uid| {
            let gcm = request(
                4,
                OP_ENCRYPT,
                vec![
                    ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
                    gcm_parameters(true),
                    ttlv::bytes(tag::DATA, &key),
                    ttlv::bytes(tag::AEAD_ADDITIONAL_DATA, &aad),
                ],
            );
            let cbc = request(
                2,
                OP_ENCRYPT,
                vec![ttlv::text(tag::UNIQUE_IDENTIFIER, uid), cbc_parameters(true), ttlv::bytes(tag::DATA, &cbc_plain)],
            );
            if cbc_only {
                vec![cbc]
            } else {
                vec![gcm, cbc]
            }
        });
        let reply = self.call(limits, "Encrypt", requests)?;
        let missing = |what: &str| net::unavailable(NAME, format!("kmip: Encrypt returned no {what}"));
        let data = reply.get(tag::DATA).and_then(Item::as_bytes).ok_or_else(|| missing("data"))?;
        let iv = reply.get(tag::IV_COUNTER_NONCE).and_then(Item::as_bytes).ok_or_else(|| missing("IV"))?;
        let (mode, tag) = match reply.get(tag::AEAD_TAG).and_then(Item::as_bytes) {
            Some(tag) => (MODE_GCM, tag),
            None => (MODE_CBC, &[][..]),
        };
        let blob = Blob { mode, iv, tag, ciphertext: data }.encode();
        if Blob::parse(&blob).is_none() {
            return Err(net::unavailable(NAME, format!("kmip: Encrypt returned an answer of unexpected sizes (IV {}, data {})", iv.len(), data.len())));
        }
        Ok(blob)
    }

    fn unwrap(&mut self, wrapped: &[u8], binding: &Binding, limits: &CallLimits) -> Result<Dek> {
        let blob = Blob::parse(wrapped)
            .ok_or_else(|| ProviderError::wrong_key(NAME, "kmip: the stored blob is not a KMIP wrap (docs/FORMAT.md §6.5)"))?;
        let (mode, iv, gcm_tag, ciphertext, aad) =
            (blob.mode, blob.iv.to_vec(), blob.tag.to_vec(), blob.ciphertext.to_vec(), binding.aad());
        let requests: Requests = Box::new(move |uid| {
            let payload = if mode == MODE_GCM {
                vec![
                    ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
                    gcm_parameters(false),
                    ttlv::bytes(tag::DATA, &ciphertext),
                    ttlv::bytes(tag::IV_COUNTER_NONCE, &iv),
                    ttlv::bytes(tag::AEAD_ADDITIONAL_DATA, &aad),
                    ttlv::bytes(tag::AEAD_TAG, &gcm_tag),
                ]
            } else {
                vec![
                    ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
                    cbc_parameters(false),
                    ttlv::bytes(tag::DATA, &ciphertext),
                    ttlv::bytes(tag::IV_COUNTER_NONCE, &iv),
                ]
            };
            vec![request(if mode == MODE_GCM { 4 } else { 2 }, OP_DECRYPT, payload)]
        });
        let reply = self.call(limits, "Decrypt", requests)?;
        let plain = reply.get(tag::DATA).and_then(Item::as_bytes).unwrap_or(&[]);
        let key = if mode == MODE_GCM {
            plain
        } else {
            let expected = Sha256::digest(binding.aad());
            match plain.split_at_checked(32) {
                Some((hash, key)) if bool::from(hash.ct_eq(expected.as_slice())) => key,
                _ => return Err(ProviderError::wrong_key(NAME, "kmip: the CBC-wrapped key is bound to another binding")),
            }
        };
        let key = Dek::from_slice(key)
            .map_err(|_| ProviderError::wrong_key(NAME, "kmip: Decrypt returned a key that is not 32 bytes"))?;
        check_id(NAME, key, binding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_parse_only_at_their_sizes() {
        let gcm = Blob { mode: MODE_GCM, iv: &[1; 16], tag: &[2; 16], ciphertext: &[3; 32] }.encode();
        assert_eq!(gcm.len(), 1 + 1 + 16 + 1 + 16 + 32);
        assert!(Blob::parse(&gcm).is_some());
        let cbc = Blob { mode: MODE_CBC, iv: &[1; 16], tag: &[], ciphertext: &[3; 80] }.encode();
        assert_eq!(cbc.len(), 1 + 1 + 16 + 80);
        assert!(Blob::parse(&cbc).is_some());
        for b in [&gcm, &cbc] {
            for cut in 0..b.len() {
                assert!(Blob::parse(&b[..cut]).is_none());
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(Blob::parse(&longer).is_none());
        }
        let mut other = gcm.clone();
        other[0] = 3;
        assert!(Blob::parse(&other).is_none());
        assert_eq!(parse_key_ref("kmip:server=h:5696;uid=42"), Some("42".into()));
        assert_eq!(parse_key_ref("kmip:server=h:5696;uid="), None);
    }
}
