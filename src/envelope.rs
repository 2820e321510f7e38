//! The data plane's encryption: `pq_encrypt`, `pq_decrypt`,
//! `pq_decrypt_text`, `pq_seal`, `pq_open`, `pq_inspect`, and the check
//! behind the `pq_envelope` domain.
use crate::{
    errors::{OrRaise, PqError, PqResult},
    keystore,
};
use pgrx::prelude::*;
use pqcore::{sealed, Envelope, KemPublicKey, KemSecretKey, Plaintext};
use serde_json::json;

fn encrypt(tenant: &str, plaintext: &[u8], aad: &[u8]) -> PqResult<Vec<u8>> {
    let keys = keystore::active_version(tenant)?;
    Ok(keys.cipher.encrypt(plaintext, aad)?)
}

fn decrypt(envelope: &[u8], aad: &[u8]) -> PqResult<Plaintext> {
    let parsed = Envelope::parse(envelope)?;
    let keys = keystore::version_by_kid(parsed.kid())?;
    match parsed {
        Envelope::Keyed(env) => Ok(keys.cipher.decrypt(&env, aad)?),
        Envelope::Sealed(env) => Ok(sealed::open(&keys.kem, &env, aad)?),
        Envelope::Signature(_) => Err(pqcore::Error::Malformed(pqcore::Malformed::WrongKind).into()),
    }
}

fn seal(public_key: &[u8], plaintext: &[u8], aad: &[u8]) -> PqResult<Vec<u8>> {
    let key = KemPublicKey::from_slice(public_key)?;
    Ok(sealed::seal(&key, plaintext, aad)?)
}

fn open(secret_key: &[u8], envelope: &[u8], aad: &[u8]) -> PqResult<Plaintext> {
    let key = KemSecretKey::from_slice(secret_key)?;
    let env = Envelope::parse(envelope)?.into_sealed()?;
    Ok(sealed::open(&key, &env, aad)?)
}

fn inspect(envelope: &[u8]) -> PqResult<serde_json::Value> {
    let parsed = Envelope::parse(envelope)?;
    let mut out = json!({
        "version": 1,
        "kind": parsed.kind().name(),
        "kid": parsed.kid().to_hex(),
        "envelope_length": envelope.len(),
    });
    if parsed.kind() != pqcore::Kind::Signature {
        out["plaintext_length"] = json!(parsed.plaintext_len());
    }
    if let Some((tenant, version)) = keystore::describe_kid(parsed.kid(), parsed.kind())? {
        out["tenant"] = json!(tenant);
        out["key_version"] = json!(version);
    }
    Ok(out)
}

/// Keyed envelope of a text value under the tenant's active key; `aad`
/// (typically the configuration key's name) must be given again to decrypt.
#[pg_extern(volatile, strict, parallel_restricted)]
pub fn pq_encrypt(tenant: &str, plaintext: &str, aad: default!(&str, "''")) -> Vec<u8> {
    encrypt(tenant, plaintext.as_bytes(), aad.as_bytes()).or_raise()
}

/// Keyed envelope of a bytea value.
#[pg_extern(volatile, strict, parallel_restricted, name = "pq_encrypt")]
pub fn pq_encrypt_bytea(tenant: &str, plaintext: &[u8], aad: default!(&[u8], "''")) -> Vec<u8> {
    encrypt(tenant, plaintext, aad).or_raise()
}

/// Opens a keyed or sealed envelope of any key version the caller may use.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_decrypt(envelope: &[u8], aad: default!(&[u8], "''")) -> Vec<u8> {
    decrypt(envelope, aad).map(Plaintext::into_bytes).or_raise()
}

/// As `pq_decrypt`, for values that are UTF-8 text.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_decrypt_text(envelope: &[u8], aad: default!(&str, "''")) -> String {
    decrypt(envelope, aad.as_bytes())
        .and_then(|p| String::from_utf8(p.into_bytes()).map_err(|e| {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            PqError::NotUtf8
        }))
        .or_raise()
}

/// Sealed envelope to a raw ML-KEM-768 public key (1184 bytes).
#[pg_extern(volatile, strict, parallel_safe)]
pub fn pq_seal(public_key: &[u8], plaintext: &str, aad: default!(&str, "''")) -> Vec<u8> {
    seal(public_key, plaintext.as_bytes(), aad.as_bytes()).or_raise()
}

/// Sealed envelope of a bytea value.
#[pg_extern(volatile, strict, parallel_safe, name = "pq_seal")]
pub fn pq_seal_bytea(public_key: &[u8], plaintext: &[u8], aad: default!(&[u8], "''")) -> Vec<u8> {
    seal(public_key, plaintext, aad).or_raise()
}

/// Opens a sealed envelope with a raw secret key (64-byte seed or 2400-byte expanded key).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn pq_open(secret_key: &[u8], envelope: &[u8], aad: default!(&[u8], "''")) -> Vec<u8> {
    open(secret_key, envelope, aad).map(Plaintext::into_bytes).or_raise()
}

/// What an envelope is: version, kind, kid, sizes, and the tenant and key
/// version when the caller may use that tenant. Never secrets.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_inspect(envelope: &[u8]) -> pgrx::JsonB {
    pgrx::JsonB(inspect(envelope).or_raise())
}

/// The check of the `pq_envelope` domain: true for a well-formed v1
/// envelope, otherwise ERROR 22023 (not a check violation), so a bad value
/// fails at INSERT with the same code everywhere.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn pq_envelope_check(value: &[u8]) -> bool {
    Envelope::parse(value).map(|_| true).map_err(PqError::from).or_raise()
}
