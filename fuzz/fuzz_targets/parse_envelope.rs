#![no_main]
//! The one parser: any bytes give a typed envelope or an error, never a panic,
//! and a parsed envelope's accessors stay in bounds.
use libfuzzer_sys::fuzz_target;
use pqcore::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::parse(data) {
        let _ = env.kid();
        assert!(env.plaintext_len() <= data.len());
        assert_eq!(env.bytes().len(), data.len());
        let _ = env.into_sealed();
        let _ = env.into_keyed();
        if let Ok(sig) = env.into_signature() {
            assert_eq!(sig.signature().len(), 3309);
        }
    }
});
