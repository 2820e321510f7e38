//! The data plane's encryption: `pq_encrypt`, `pq_decrypt`,
//! `pq_decrypt_text`, `pq_unseal`, `pq_unseal_text`, `pq_seal`, `pq_open`,
//! `pq_seal_batch`, `pq_inspect`, and the check behind the `pq_envelope` domain.
//!
//! What each opener proves (docs/FORMAT.md §8):
//! - `pq_decrypt` opens *keyed* envelopes only. Only a holder of the
//!   tenant's DEK (the server, for roles granted the tenant) can make one,
//!   so a keyed envelope that opens was made by the server.
//! - `pq_unseal` opens envelopes *sealed* to a tenant's public key. Anyone
//!   with the public key can make one: it is confidential, but proves
//!   nothing about its maker (pair it with a signature where origin matters).
//!
//! Results are written straight into the returned datum (`platform::datum`).
use crate::{
    journal::{latency::{self, Op}, monitor::{self, Counted}},
    keys::versions,
    platform::{datum::{PgBytea, PgByteaArray, PgText}, errors::{OrRaise, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::{keyed_len, sealed, Envelope, Kind, RecipientKey, RecipientSecret};
use serde_json::json;

fn encrypt(tenant: &str, plaintext: &[u8], aad: &[u8]) -> PqResult<PgBytea> {
    let timer = latency::start(Op::Encrypt);
    let keys = versions::active_version(tenant, "encrypt")?;
    let out = PgBytea::build(keyed_len(plaintext.len())?, |out| Ok(keys.cipher.encrypt_to(plaintext, aad, out)?))?;
    monitor::used(&keys.tenant, Counted::Encrypt);
    latency::finish(Op::Encrypt, &keys.tenant, timer);
    Ok(out)
}

/// Parses `envelope` and requires `kind` before any key is looked up.
fn expect_kind<'a>(envelope: &'a [u8], kind: Kind, function: &'static str) -> PqResult<Envelope<'a>> {
    let parsed = Envelope::parse(envelope)?;
    if parsed.kind() != kind {
        return Err(PqError::WrongKind { found: parsed.kind(), function });
    }
    Ok(parsed)
}

/// Opens a keyed envelope of a version the caller may use (counted).
pub fn decrypt(envelope: &[u8], aad: &[u8], function: &'static str) -> PqResult<PgBytea> {
    let timer = latency::start(Op::Decrypt);
    let env = expect_kind(envelope, Kind::Keyed, function)?.into_keyed()?;
    let keys = versions::version_by_kid(env.kid()).map_err(|e| monitor::failed_decryption(e, None))?;
    let out =
        monitor::decryption(PgBytea::build(env.plaintext_len(), |out| Ok(keys.cipher.decrypt_to(&env, aad, out)?)), &keys.tenant)?;
    latency::finish(Op::Decrypt, &keys.tenant, timer);
    Ok(out)
}

/// Opens an envelope sealed to a version the caller may use (counted).
pub fn unseal(envelope: &[u8], aad: &[u8], function: &'static str) -> PqResult<PgBytea> {
    let timer = latency::start(Op::Unseal);
    let env = expect_kind(envelope, Kind::Sealed, function)?.into_sealed()?;
    let keys = versions::version_by_kid(env.kid()).map_err(|e| monitor::failed_decryption(e, None))?;
    let out =
        monitor::decryption(PgBytea::build(env.plaintext_len(), |out| Ok(sealed::open_to(&keys.kem, &env, aad, out)?)), &keys.tenant)?;
    latency::finish(Op::Unseal, &keys.tenant, timer);
    Ok(out)
}

/// Sealing takes a raw public key, not a tenant: its latency is counted
/// under tenant ''.
fn seal(public_key: &[u8], plaintext: &[u8], aad: &[u8]) -> PqResult<PgBytea> {
    let timer = latency::start(Op::Seal);
    let key = RecipientKey::from_slice(public_key)?;
    let out =
        PgBytea::build(sealed::sealed_len_for(key.suite(), plaintext.len())?, |out| Ok(sealed::seal_to(&key, plaintext, aad, out)?))?;
    latency::finish(Op::Seal, "", timer);
    Ok(out)
}

/// One batch item per value (NULL stays NULL), all under one key
/// encapsulation; `aads`, when given, pairs with `values` one to one.
fn seal_batch(public_key: &[u8], values: &[Option<&[u8]>], aads: Option<&[Option<&[u8]>]>) -> PqResult<PgByteaArray> {
    let key = RecipientKey::from_slice(public_key)?;
    if let Some(aads) = aads {
        if aads.len() != values.len() {
            return Err(PqError::InvalidParameter(format!(
                "aads has {} elements and values {}: pass one AAD per value, or none",
                aads.len(),
                values.len()
            )));
        }
    }
    let mut batch = sealed::BatchSealer::new(&key, values.len())?;
    let lens = values
        .iter()
        .map(|v| v.map(|v| sealed::batch_item_len(key.suite(), v.len())).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    // Items are written straight into the returned array. A NULL value's
    // index is skipped, so the items keep their positions.
    PgByteaArray::build(&lens, |i, out| {
        let aad = aads.and_then(|a| a[i]).unwrap_or_default();
        Ok(batch.seal_at(i, values[i].unwrap_or_default(), aad, out)?)
    })
}

fn open(secret_key: &[u8], envelope: &[u8], aad: &[u8]) -> PqResult<PgBytea> {
    let env = expect_kind(envelope, Kind::Sealed, "pq_open")?.into_sealed()?;
    // The envelope's kind names the suite, and with it how to read the key
    // (a 64-byte seed is ML-KEM-768's or ML-KEM-1024's).
    let key = RecipientSecret::from_slice_for(env.suite(), secret_key)?;
    PgBytea::build(env.plaintext_len(), |out| Ok(sealed::open_to(&key, &env, aad, out)?))
}

fn inspect(envelope: &[u8]) -> PqResult<serde_json::Value> {
    let parsed = Envelope::parse(envelope)?;
    let mut out = json!({
        "version": 1,
        "kind": parsed.kind().name(),
        "kid": parsed.kid().to_hex(),
        "envelope_length": envelope.len(),
    });
    if parsed.kind() != Kind::Signature {
        out["plaintext_length"] = json!(parsed.plaintext_len());
    }
    if let Envelope::Signature(signature) = parsed {
        out["signature"] = json!(signature.suite().name());
    }
    if let Envelope::Sealed(sealed) = parsed {
        out["kem"] = json!(sealed.suite().name());
        if let Some((index, count)) = sealed.batch_position() {
            out["batch_index"] = json!(index);
            out["batch_count"] = json!(count);
        }
    }
    if let Some((tenant, version)) = versions::describe_kid(parsed.kid(), parsed.kind())? {
        out["tenant"] = json!(tenant);
        out["key_version"] = json!(version);
    }
    Ok(out)
}

/// Keyed envelope of a text value under the tenant's active key; `aad`
/// (typically the configuration key's name) must be given again to decrypt.
#[pg_extern(volatile, strict, parallel_restricted)]
pub fn pq_encrypt(tenant: &str, plaintext: &str, aad: default!(&str, "''")) -> PgBytea {
    encrypt(tenant, plaintext.as_bytes(), aad.as_bytes()).or_raise()
}

/// Keyed envelope of a bytea value.
#[pg_extern(volatile, strict, parallel_restricted, name = "pq_encrypt")]
pub fn pq_encrypt_bytea(tenant: &str, plaintext: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
    encrypt(tenant, plaintext, aad).or_raise()
}

/// Opens a keyed envelope of any key version the caller may use.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_decrypt(envelope: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
    decrypt(envelope, aad, "pq_decrypt").or_raise()
}

/// As `pq_decrypt`, for values that are text in the database encoding.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_decrypt_text(envelope: &[u8], aad: default!(&str, "''")) -> PgText {
    decrypt(envelope, aad.as_bytes(), "pq_decrypt_text").and_then(PgBytea::into_text).or_raise()
}

/// Opens an envelope sealed to a tenant key version's public key.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_unseal(envelope: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
    unseal(envelope, aad, "pq_unseal").or_raise()
}

/// As `pq_unseal`, for values that are text in the database encoding.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_unseal_text(envelope: &[u8], aad: default!(&str, "''")) -> PgText {
    unseal(envelope, aad.as_bytes(), "pq_unseal_text").and_then(PgBytea::into_text).or_raise()
}

/// Sealed envelope to a raw public key: ML-KEM-768 (1184 bytes, kind 'S')
/// or X-Wing (1216 bytes, kind 'X').
#[pg_extern(volatile, strict, parallel_safe)]
pub fn pq_seal(public_key: &[u8], plaintext: &str, aad: default!(&str, "''")) -> PgBytea {
    seal(public_key, plaintext.as_bytes(), aad.as_bytes()).or_raise()
}

/// Sealed envelope of a bytea value.
#[pg_extern(volatile, strict, parallel_safe, name = "pq_seal")]
pub fn pq_seal_bytea(public_key: &[u8], plaintext: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
    seal(public_key, plaintext, aad).or_raise()
}

/// Seals every element of `values` to a raw public key with one key
/// encapsulation: element i becomes a batch item ('B' or 'W') binding
/// `aads[i]`, opened by itself with `pq_unseal` (or `pq_open`). NULL
/// elements stay NULL; `aads` NULL means no AAD.
#[pg_extern(volatile, parallel_safe)]
pub fn pq_seal_batch(
    public_key: Option<&[u8]>,
    values: Option<Array<&[u8]>>,
    aads: default!(Option<Array<&[u8]>>, "NULL"),
) -> Option<PgByteaArray> {
    let (public_key, values) = (public_key?, values?);
    let values: Vec<Option<&[u8]>> = values.iter().collect();
    let aads: Option<Vec<Option<&[u8]>>> = aads.as_ref().map(|a| a.iter().collect());
    Some(seal_batch(public_key, &values, aads.as_deref()).or_raise())
}

/// Opens a sealed envelope with a raw secret key: ML-KEM-768 (64-byte seed
/// or 2400-byte expanded key) or X-Wing (32-byte seed). STABLE, not
/// IMMUTABLE although it is deterministic: the planner folds an immutable
/// call with constant arguments into its result at plan time, and a plan
/// (EXPLAIN VERBOSE, auto_explain) would then show the plaintext.
#[pg_extern(stable, strict, parallel_safe)]
pub fn pq_open(secret_key: &[u8], envelope: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
    open(secret_key, envelope, aad).or_raise()
}

/// What an envelope is: version, kind, kid, sizes, and the tenant and key
/// version when the caller sees that tenant. Never secrets.
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
