#![no_main]
//! Opening arbitrary bytes as a sealed envelope to a fixed key. The first
//! byte picks how many following bytes are AAD. Inputs start from a valid
//! envelope often enough because the kid check needs the right 16 bytes:
//! the fuzzer is seeded with one (see fuzz/README.md).
use libfuzzer_sys::fuzz_target;
use pqcore::{sealed, Envelope, KemSecretKey};
use std::sync::OnceLock;

fn key() -> &'static KemSecretKey {
    static KEY: OnceLock<KemSecretKey> = OnceLock::new();
    KEY.get_or_init(|| KemSecretKey::from_slice(&[0x42; 64]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (aad, bytes) = rest.split_at((n as usize).min(rest.len()));
    // Splice the fixed key's kid in so decapsulation and the AEAD are reached.
    let mut bytes = bytes.to_vec();
    if bytes.len() >= 18 {
        bytes[2..18].copy_from_slice(key().kid().as_bytes());
    }
    if let Ok(env) = Envelope::parse(&bytes).and_then(|e| e.into_sealed()) {
        let _ = sealed::open(key(), &env, aad);
    }
});
