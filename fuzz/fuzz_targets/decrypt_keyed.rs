#![no_main]
//! Decrypting arbitrary bytes as a keyed envelope under a fixed DEK, and
//! unwrapping them under a fixed master data key.
use libfuzzer_sys::fuzz_target;
use pqcore::{Dek, Envelope, KeyedCipher, Kid, MasterDataKey, Purpose, WrapContext};
use std::sync::OnceLock;

fn cipher() -> &'static KeyedCipher {
    static C: OnceLock<KeyedCipher> = OnceLock::new();
    C.get_or_init(|| KeyedCipher::new(&Dek::from_slice(&[7; 32]).unwrap(), Kid([1; 16])))
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (aad, bytes) = rest.split_at((n as usize).min(rest.len()));
    let mut bytes = bytes.to_vec();
    if bytes.len() >= 18 {
        bytes[2..18].copy_from_slice(&[1; 16]);
    }
    if let Ok(env) = Envelope::parse(&bytes).and_then(|e| e.into_keyed()) {
        let _ = cipher().decrypt(&env, aad);
    }
    let mdk = MasterDataKey::new(Kid([1; 16]), &Dek::from_slice(&[7; 32]).unwrap());
    let tenant = String::from_utf8_lossy(aad);
    let _ = mdk.unwrap(&bytes, &WrapContext { tenant: &tenant, version: n as u32, purpose: Purpose::KemSeed });
});
