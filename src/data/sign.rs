//! Signatures and raw keys: `pq_sign`, `pq_verify`, `pq_sign_with`,
//! `pq_verify_with`, `pq_generate_keypair`.
use crate::{
    journal::{latency::{self, Op}, monitor::{self, Counted}},
    keys::versions,
    platform::{datum::PgBytea, errors::{OrRaise, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::{Envelope, Kind, RecipientSecret, SigningKey, Suite, VerifyingKey};

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
    } else if algorithm.eq_ignore_ascii_case("ml-dsa-65") {
        let (seed, key) = SigningKey::generate()?;
        let public = key.verifying_key();
        Ok((public.as_bytes().to_vec(), PgBytea::copy_of(seed.expose())?, public.kid().as_bytes().to_vec()))
    } else {
        Err(PqError::InvalidParameter(format!(
            "unknown algorithm \"{}\": use 'ml-kem-768', 'x-wing' or 'ml-dsa-65'",
            crate::platform::errors::echo(algorithm)
        )))
    }
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

/// Raw FIPS 204 signature (3309 bytes) with a 32-byte ML-DSA-65 seed.
#[pg_extern(volatile, strict, parallel_safe)]
pub fn pq_sign_with(secret_key: &[u8], message: &[u8], context: default!(&[u8], "''")) -> Vec<u8> {
    SigningKey::from_slice(secret_key)
        .and_then(|key| key.sign(message, context))
        .map_err(PqError::from)
        .or_raise()
}

/// Checks a raw FIPS 204 signature with a 1952-byte ML-DSA-65 public key.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn pq_verify_with(public_key: &[u8], message: &[u8], signature: &[u8], context: default!(&[u8], "''")) -> bool {
    VerifyingKey::from_slice(public_key)
        .and_then(|key| key.verify(message, context, signature))
        .map_err(PqError::from)
        .or_raise()
}

/// A new key pair: ML-KEM-768 (secret key = 64-byte seed), X-Wing (32-byte
/// seed) or ML-DSA-65 (32-byte seed), with the kid of the public key.
#[pg_extern(volatile, strict, parallel_safe)]
pub fn pq_generate_keypair(
    algorithm: default!(&str, "'ml-kem-768'"),
) -> TableIterator<'static, (name!(public_key, Vec<u8>), name!(secret_key, PgBytea), name!(kid, Vec<u8>))> {
    TableIterator::once(generate(algorithm).or_raise())
}
