#![no_main]
//! Reading arbitrary bytes as a stream ('T', FORMAT.md §12) to a fixed
//! key: the prefix and key envelope are parsed, the fixed key's kid is
//! spliced in so that the key envelope is decapsulated, and whatever
//! follows is opened chunk by chunk. Nothing may panic; a stream opens
//! only if every chunk authenticates.
use libfuzzer_sys::fuzz_target;
use pqcore::stream::StreamHeader;
use pqcore::KemSecretKey;
use std::sync::OnceLock;

fn key() -> &'static KemSecretKey {
    static KEY: OnceLock<KemSecretKey> = OnceLock::new();
    KEY.get_or_init(|| KemSecretKey::from_slice(&[0x42; 64]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    // The prefix's kid and the key envelope's kid (at 26 + 2).
    if bytes.len() >= 18 {
        bytes[2..18].copy_from_slice(key().kid().as_bytes());
    }
    if bytes.len() >= 46 {
        bytes[28..44].copy_from_slice(key().kid().as_bytes());
    }
    let mut reader = bytes.as_slice();
    if let Ok(header) = StreamHeader::read(&mut reader) {
        let mut out = Vec::new();
        let _ = header.open(key(), b"", &mut reader, &mut out, &mut |_| {});
    }
});
