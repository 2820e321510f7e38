#![no_main]
//! Verifying arbitrary signature envelopes and raw signatures with a fixed key.
use libfuzzer_sys::fuzz_target;
use pqcore::{Envelope, SigningKey};
use std::sync::OnceLock;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_slice(&[0x24; 32]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (msg, bytes) = rest.split_at((n as usize).min(rest.len()));
    let vk = key().verifying_key();
    let mut bytes = bytes.to_vec();
    if bytes.len() >= 18 {
        bytes[2..18].copy_from_slice(key().kid().as_bytes());
    }
    if let Ok(env) = Envelope::parse(&bytes).and_then(|e| e.into_signature()) {
        let _ = vk.verify_envelope(&env, msg, b"");
    }
    let _ = vk.verify(msg, &[], &bytes);
});
