//! Blind indexes (docs/SEARCH.md, FORMAT.md §16): `pq_blind_index`,
//! `pq_blind_indexes`, `pq_encrypt_indexed`, and the term of an envelope's
//! plaintext that blind index columns keep (`term_of_envelope`).
//!
//! A term is HMAC-SHA-256 of the normalised value under the index key of a
//! tenant key version and a context, truncated. Lookups compute it under
//! the tenant's active version (`pq_blind_index`) or under every version
//! whose index key is still live (`pq_blind_indexes`, for use with `= ANY`
//! while a rotation's re-encryption is running). The functions are STABLE,
//! so a comparison with a column is an index condition; they only read, so
//! they work in read-only transactions and on a hot standby.
use crate::{
    journal::{
        events,
        monitor::{self, Counted},
    },
    keys::{cache::VersionKeys, versions},
    platform::{catalog, datum::PgBytea, errors::{echo, OrRaise, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::blind::{self, Normalization};
use pqcore::{keyed_len, sealed, RecipientKey};
use serde_json::json;

/// A value to index: text (normalised first) or bytes (as they are).
#[derive(Clone, Copy)]
pub enum Value<'a> {
    Text(&'a str, Normalization),
    Bytes(&'a [u8]),
}

/// What a term is made under: the context and the length, checked.
#[derive(Clone, Copy)]
pub struct TermSpec<'a> {
    pub context: &'a [u8],
    pub len: usize,
}

impl<'a> TermSpec<'a> {
    pub fn new(context: &'a str, bits: i32) -> PqResult<Self> {
        let len = blind::term_len(bits.into()).map_err(invalid)?;
        blind::check_context(context.as_bytes()).map_err(invalid)?;
        Ok(TermSpec { context: context.as_bytes(), len })
    }
}

pub fn invalid(e: blind::BlindError) -> PqError {
    PqError::InvalidParameter(e.to_string())
}

pub fn parse_normalization(spec: &str) -> PqResult<Normalization> {
    Normalization::parse(spec).map_err(invalid)
}

/// The term of `value` under `keys`' index key for the spec's context.
pub fn term(keys: &VersionKeys, value: Value<'_>, spec: TermSpec<'_>) -> PqResult<Vec<u8>> {
    let key = keys.index_key(spec.context).map_err(invalid)?;
    Ok(match value {
        Value::Text(text, n) => key.text_term(text, n, spec.len),
        Value::Bytes(bytes) => key.term(bytes, spec.len),
    })
}

fn lookup_term(tenant: &str, value: Value<'_>, context: &str, bits: i32) -> PqResult<Vec<u8>> {
    let spec = TermSpec::new(context, bits)?;
    term(&*versions::active_for_reading(tenant)?, value, spec)
}

fn lookup_terms(tenant: &str, value: Value<'_>, context: &str, bits: i32) -> PqResult<Vec<Vec<u8>>> {
    let spec = TermSpec::new(context, bits)?;
    versions::live_index_versions(tenant)?.iter().map(|keys| term(keys, value, spec)).collect()
}

/// The term of the plaintext of a keyed envelope, or of an envelope sealed
/// to a tenant version, under the index key of the envelope's own version
/// (a term and its envelope always agree on the version, and
/// re-encryption moves both), with the envelope's tenant. Text
/// normalisations need the plaintext to be UTF-8 (22021 otherwise). Checks
/// the caller's use of the tenant.
pub fn term_of_envelope(value: &[u8], aad: &[u8], normalization: Normalization, spec: TermSpec<'_>) -> PqResult<(String, Vec<u8>)> {
    let parsed = pqcore::Envelope::parse(value)?;
    let keys = versions::version_by_kid(parsed.kid())?;
    let plaintext = match parsed {
        pqcore::Envelope::Keyed(env) => keys.cipher.decrypt(&env, aad)?,
        pqcore::Envelope::Sealed(env) => pqcore::sealed::open(&keys.kem, &env, aad)?,
        pqcore::Envelope::Signature(_) => {
            return Err(PqError::WrongKind { found: pqcore::Kind::Signature, function: "a blind index column" })
        }
    };
    let value = if normalization == Normalization::default() {
        Value::Bytes(plaintext.expose())
    } else {
        Value::Text(std::str::from_utf8(plaintext.expose()).map_err(|_| PqError::NotText)?, normalization)
    };
    Ok((keys.tenant.clone(), term(&keys, value, spec)?))
}

/// `pq.export_index_key`: the index key of `tenant`'s active version (or
/// of `version`, if its index key is live) for `context`, sealed to
/// `recipient` with the AAD of FORMAT.md §16.5, and recorded in the key
/// events. Returns (version, kid, envelope).
fn export_index_key(tenant: &str, context: &str, recipient: &[u8], version: Option<i32>) -> PqResult<(i32, Vec<u8>, PgBytea)> {
    const WHAT: &str = "export blind index keys";
    blind::check_context(context.as_bytes()).map_err(invalid)?;
    // FORMAT.md §16.5: the export is an 'S' or 'X' envelope (`apg-pq
    // index-key` reads the client's key by its length).
    let recipient = RecipientKey::from_slice(recipient)?;
    if recipient.suite() == pqcore::Suite::MlKem1024 {
        return Err(pqcore::Error::InvalidKey.into());
    }
    if catalog::in_recovery() {
        return Err(PqError::ReadOnly(WHAT));
    }
    let keys = match version {
        None => versions::active_version(tenant, WHAT)?,
        Some(v) => versions::live_index_versions(tenant)?.into_iter().find(|k| k.version == v).ok_or_else(|| {
            PqError::KeyState(format!("version {v} of tenant \"{}\" has no live blind index key", echo(tenant)))
        })?,
    };
    let aad = blind::export_aad(&keys.kid(), context.as_bytes());
    // The key lives only while it is sealed, in Rust: it is wiped before
    // anything calls into PostgreSQL (an ERROR would skip destructors).
    let sealed_key = {
        let key = blind::derive_bytes(&keys.cipher, context.as_bytes()).map_err(invalid)?;
        sealed::seal(&recipient, &key[..], &aad)?
    };
    let envelope = PgBytea::copy_of(&sealed_key)?;
    let actor = events::session_user();
    catalog::as_owner(|| {
        events::record(
            "blind_index_key_exported",
            Some(&keys.tenant),
            Some(keys.version),
            &actor,
            None,
            json!({ "context": context, "recipient_kid": recipient.kid().to_hex() }),
        )
    })?;
    Ok((keys.version, keys.kid().as_bytes().to_vec(), envelope))
}

/// A keyed envelope and its term, both under the active version.
fn encrypt_indexed(tenant: &str, plaintext: &str, context: &str, aad: &str, bits: i32, normalization: &str) -> PqResult<(PgBytea, Vec<u8>)> {
    let spec = TermSpec::new(context, bits)?;
    let n = parse_normalization(normalization)?;
    let keys = versions::active_version(tenant, "encrypt")?;
    let t = term(&keys, Value::Text(plaintext, n), spec)?;
    let bytes = plaintext.as_bytes();
    let out = PgBytea::build(keyed_len(bytes.len())?, |out| Ok(keys.cipher.encrypt_to(bytes, aad.as_bytes(), out)?))?;
    monitor::used(&keys.tenant, Counted::Encrypt);
    Ok((out, t))
}

/// The blind index term of a text value under the tenant's active key
/// version, for `context` (a column name, say): HMAC-SHA-256 of the value
/// after `normalization` ('exact', 'trim', 'casefold' or 'trim,casefold'),
/// truncated to `bits` (a multiple of 8, 16 to 256).
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_blind_index(
    tenant: &str,
    value: &str,
    context: &str,
    bits: default!(i32, 256),
    normalization: default!(&str, "'exact'"),
) -> Vec<u8> {
    parse_normalization(normalization).and_then(|n| lookup_term(tenant, Value::Text(value, n), context, bits)).or_raise()
}

/// The blind index term of a bytea value (no normalisation).
#[pg_extern(stable, strict, parallel_restricted, name = "pq_blind_index")]
pub fn pq_blind_index_bytea(tenant: &str, value: &[u8], context: &str, bits: default!(i32, 256)) -> Vec<u8> {
    lookup_term(tenant, Value::Bytes(value), context, bits).or_raise()
}

/// The terms of a text value under every key version of the tenant whose
/// index key is live, the active version's first: `col = ANY(...)` finds
/// rows whether or not re-encryption has reached them yet.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_blind_indexes(
    tenant: &str,
    value: &str,
    context: &str,
    bits: default!(i32, 256),
    normalization: default!(&str, "'exact'"),
) -> Vec<Vec<u8>> {
    parse_normalization(normalization).and_then(|n| lookup_terms(tenant, Value::Text(value, n), context, bits)).or_raise()
}

/// As `pq_blind_indexes`, for a bytea value.
#[pg_extern(stable, strict, parallel_restricted, name = "pq_blind_indexes")]
pub fn pq_blind_indexes_bytea(tenant: &str, value: &[u8], context: &str, bits: default!(i32, 256)) -> Vec<Vec<u8>> {
    lookup_terms(tenant, Value::Bytes(value), context, bits).or_raise()
}

/// A keyed envelope of `plaintext` (as `pq_encrypt`) and its blind index
/// term (as `pq_blind_index`), both under the tenant's active version.
#[pg_extern(volatile, strict, parallel_restricted)]
pub fn pq_encrypt_indexed(
    tenant: &str,
    plaintext: &str,
    context: &str,
    aad: default!(&str, "''"),
    bits: default!(i32, 256),
    normalization: default!(&str, "'exact'"),
) -> TableIterator<'static, (name!(envelope, PgBytea), name!(term, Vec<u8>))> {
    TableIterator::once(encrypt_indexed(tenant, plaintext, context, aad, bits, normalization).or_raise())
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::required;

    /// The blind index key of the tenant's active version (or of `version`,
    /// while its index key is live) for `context`, sealed to a client's
    /// ML-KEM-768 or X-Wing public key, so that the client computes the
    /// terms of its lookups itself (`apg-pq index-key`, `apg-pq
    /// index-term`). No role may call it until granted EXECUTE on it, and
    /// the caller needs the tenant's grant; every export is a key event.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn export_index_key(
        tenant: Option<&str>,
        context: Option<&str>,
        recipient_public_key: Option<&[u8]>,
        version: default!(Option<i32>, "NULL"),
    ) -> TableIterator<'static, (name!(key_version, i32), name!(kid, Vec<u8>), name!(key_envelope, PgBytea))> {
        let tenant = required(tenant, "tenant").or_raise();
        let context = required(context, "context").or_raise();
        let recipient_public_key = required(recipient_public_key, "recipient_public_key").or_raise();
        TableIterator::once(super::export_index_key(tenant, context, recipient_public_key, version).or_raise())
    }
}
