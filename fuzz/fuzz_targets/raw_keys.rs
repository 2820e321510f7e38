#![no_main]
//! Raw key inputs as SQL passes them: secret keys of 64 or 2400 bytes, public
//! keys of 1184 or 1952 bytes, and anything else, must load or be refused.
use libfuzzer_sys::fuzz_target;
use pqcore::{sealed, Envelope, KemPublicKey, KemSecretKey, SigningKey, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(sk) = KemSecretKey::from_slice(data) {
        // A key that loads must work end to end.
        let env = sealed::seal(sk.public_key(), b"x", b"").unwrap();
        let env = Envelope::parse(&env).unwrap().into_sealed().unwrap();
        assert_eq!(sealed::open(&sk, &env, b"").unwrap().expose(), b"x");
    }
    let _ = KemPublicKey::from_slice(data);
    let _ = VerifyingKey::from_slice(data).map(|vk| vk.verify(b"m", b"", data));
    let _ = SigningKey::from_slice(data);
});
