#![no_main]
//! Arbitrary bytes as a key backup bundle ('D', FORMAT.md §15) sealed to a
//! fixed key: the header is parsed, the fixed key's kid is spliced in (in
//! the header and the envelope) so that the envelope is opened, and a
//! payload that opens is decoded; `Payload::decode` also gets the raw
//! bytes directly, as if they had opened. Nothing may panic.
use libfuzzer_sys::fuzz_target;
use pqcore::backup::{self, Payload};
use pqcore::KemSecretKey;
use std::sync::OnceLock;

fn key() -> &'static KemSecretKey {
    static KEY: OnceLock<KemSecretKey> = OnceLock::new();
    KEY.get_or_init(|| KemSecretKey::from_slice(&[0x42; 64]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let _ = Payload::decode(data);
    let mut bytes = data.to_vec();
    if bytes.len() >= 18 {
        bytes[2..18].copy_from_slice(key().kid().as_bytes());
    }
    if bytes.len() >= 60 {
        bytes[44..60].copy_from_slice(key().kid().as_bytes());
    }
    let _ = backup::open(&bytes, key());
});
