//! Signatures and raw keys: `pq_sign`, `pq_verify`, `pq_sign_with`,
//! `pq_verify_with`, `pq_generate_keypair`.
use crate::{
    journal::{latency::{self, Op}, monitor::{self, Counted}},
    keys::versions,
    platform::{datum::PgBytea, errors::{OrRaise, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::{slh, Envelope, Kind, RecipientSecret, SignatureSuite, SigningKey, Suite, VerifyingKey};

/// A signature envelope over `message` with the tenant's active key.
pub fn sign(tenant: &str, message: &[u8], context: &[u8]) -> PqResult<Vec<u8>> {
    let timer = latency::start(Op::Sign);
    let keys = versions::active_version(tenant, "sign")?;
    let signing = versions::signing_key(&keys)?;
    let signature = signing.sign_envelope(message, context)?;
    monitor::used(tenant, Counted::Sign);
    latency::finish(Op::Sign, tenant, timer);
    Ok(signature)
}

/// True if `signature` (an envelope) is valid under a non-destroyed version of the tenant.
pub fn verify(tenant: &str, message: &[u8], signature: &[u8], context: &[u8]) -> PqResult<bool> {
    let timer = latency::start(Op::Verify);
    let parsed = Envelope::parse(signature)?;
    if parsed.kind() != Kind::Signature {
        return Err(PqError::WrongKind { found: parsed.kind(), function: "pq_verify" });
    }
    let env = parsed.into_signature()?;
    let valid = match versions::verifying_key(tenant, env.kid())? {
        Some(key) => key.verify_envelope(&env, message, context)?,
        None => false,
    };
    if valid {
        monitor::used(tenant, Counted::Verify);
    } else {
        monitor::failed(Some(tenant), Counted::FailedVerify);
    }
    latency::finish(Op::Verify, tenant, timer);
    Ok(valid)
}

/// Public key, secret key (a seed, copied from zeroizing memory straight
/// into the result), kid.
type KeyPair = (Vec<u8>, PgBytea, Vec<u8>);

fn generate(algorithm: &str) -> PqResult<KeyPair> {
    if let Some(suite) = Suite::parse(&algorithm.to_ascii_lowercase()) {
        let (seed, key) = RecipientSecret::generate(suite)?;
        let public = key.public_key();
        Ok((public.as_bytes().to_vec(), PgBytea::copy_of(seed.expose())?, public.kid().as_bytes().to_vec()))
    } else if let Some(suite) = SignatureSuite::parse(&algorithm.to_ascii_lowercase()) {
        let (seed, key) = SigningKey::generate_for(suite)?;
        let public = key.verifying_key();
        Ok((public.as_bytes().to_vec(), PgBytea::copy_of(seed.expose())?, public.kid().as_bytes().to_vec()))
    } else if algorithm.eq_ignore_ascii_case(slh::NAME) {
        let (seed, key) = slh::SlhSigningKey::generate()?;
        let public = key.public_key();
        Ok((public.to_vec(), PgBytea::copy_of(&seed[..])?, pqcore::Kid::of(&public).as_bytes().to_vec()))
    } else {
        Err(PqError::InvalidParameter(format!(
            "unknown algorithm \"{}\": use 'ml-kem-768', 'ml-kem-1024', 'x-wing', 'ml-dsa-65', 'ml-dsa-87' or '{}'",
            crate::platform::errors::echo(algorithm),
            slh::NAME
        )))
    }
}

fn sign_with(secret_key: &[u8], message: &[u8], context: &[u8], algorithm: &str) -> PqResult<Vec<u8>> {
    if algorithm.eq_ignore_ascii_case(slh::NAME) {
        if context.len() > pqcore::format::DSA_MAX_CONTEXT_LEN {
            return Err(pqcore::Error::ContextTooLong.into());
        }
        return Ok(slh::SlhSigningKey::from_seed(secret_key)?.sign_hedged(message, context)?);
    }
    let suite = SignatureSuite::parse(&algorithm.to_ascii_lowercase()).ok_or_else(|| {
        PqError::InvalidParameter(format!(
            "algorithm must be one of 'ml-dsa-65', 'ml-dsa-87', '{}', not \"{}\"",
            slh::NAME,
            crate::platform::errors::echo(algorithm)
        ))
    })?;
    Ok(SigningKey::from_slice_for(suite, secret_key)?.sign(message, context)?)
}

fn verify_with(public_key: &[u8], message: &[u8], signature: &[u8], context: &[u8]) -> PqResult<bool> {
    if public_key.len() == slh::PUBLIC_KEY_LEN {
        if context.len() > pqcore::format::DSA_MAX_CONTEXT_LEN {
            return Err(pqcore::Error::ContextTooLong.into());
        }
        return Ok(slh::verify(public_key, message, context, signature));
    }
    Ok(VerifyingKey::from_slice(public_key)?.verify(message, context, signature)?)
}

/// Signature envelope over `message` with the tenant's active ML-DSA-65 key.
#[pg_extern(volatile, strict, parallel_restricted)]
pub fn pq_sign(tenant: &str, message: &[u8], context: default!(&[u8], "''")) -> Vec<u8> {
    sign(tenant, message, context).or_raise()
}

/// True if `signature` (an envelope from `pq_sign`) is valid for `message`
/// under any non-destroyed key version of the tenant.
#[pg_extern(stable, strict, parallel_restricted)]
pub fn pq_verify(tenant: &str, message: &[u8], signature: &[u8], context: default!(&[u8], "''")) -> bool {
    verify(tenant, message, signature, context).or_raise()
}

/// Raw signature with a seed: ML-DSA-65 (32-byte seed, 3309 bytes), with
/// `algorithm` 'ml-dsa-87' ML-DSA-87 (32, 4627), or 'slh-dsa-sha2-128s'
/// SLH-DSA (FIPS 205; 48-byte seed, 7856 bytes, about 0.2 s). Its C symbol
/// is new in 0.11.0; the one below serves older scripts.
#[pg_extern(volatile, strict, parallel_safe, name = "pq_sign_with")]
pub fn pq_sign_with_suite(
    secret_key: &[u8],
    message: &[u8],
    context: default!(&[u8], "''"),
    algorithm: default!(&str, "'ml-dsa-65'"),
) -> Vec<u8> {
    sign_with(secret_key, message, context, algorithm).or_raise()
}

/// `pq_sign_with(bytea, bytea, bytea)` of the install scripts before 0.11.0.
#[pg_extern(volatile, strict, parallel_safe, sql = false)]
pub fn pq_sign_with(secret_key: &[u8], message: &[u8], context: &[u8]) -> Vec<u8> {
    sign_with(secret_key, message, context, SignatureSuite::MlDsa65.name()).or_raise()
}

/// Checks a raw signature with an ML-DSA-65 (1952-byte), ML-DSA-87
/// (2592-byte) or SLH-DSA-SHA2-128s (32-byte) public key.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn pq_verify_with(public_key: &[u8], message: &[u8], signature: &[u8], context: default!(&[u8], "''")) -> bool {
    verify_with(public_key, message, signature, context).or_raise()
}

/// A new key pair: ML-KEM-768 or ML-KEM-1024 (secret key = 64-byte seed),
/// X-Wing (32-byte seed), ML-DSA-65 or ML-DSA-87 (32-byte seed), or
/// SLH-DSA-SHA2-128s (48-byte seed), with the kid of the public key.
#[pg_extern(volatile, strict, parallel_safe)]
pub fn pq_generate_keypair(
    algorithm: default!(&str, "'ml-kem-768'"),
) -> TableIterator<'static, (name!(public_key, Vec<u8>), name!(secret_key, PgBytea), name!(kid, Vec<u8>))> {
    TableIterator::once(generate(algorithm).or_raise())
}
