//! The pkcs11 provider against a real SoftHSM2 token.
mod common;
use common::*;
use pqprovider::{
    pkcs11::{Pkcs11Provider, WrapMechanism, GCM_BLOB_LEN, KWP_BLOB_LEN},
    ErrorKind, KeyProvider,
};

fn provider() -> Pkcs11Provider {
    Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"))
}

#[test]
fn wraps_and_unwraps_with_aes_gcm_inside_the_token() {
    let mut p = provider();
    assert_eq!(p.mechanism(&limits()).unwrap(), WrapMechanism::AesGcm);
    let blob = p.wrap(&mdk(1), &binding(1), &limits()).unwrap();
    assert_eq!(blob.len(), GCM_BLOB_LEN);
    assert_eq!(blob[0], 0x01);
    assert!(!blob.windows(32).any(|w| w == [1u8; 32]), "the MDK is not in the blob");
    let again = p.wrap(&mdk(1), &binding(1), &limits()).unwrap();
    assert_ne!(blob, again, "every wrap draws a new IV");
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    // A second provider (another backend's view of the same token) unwraps it too.
    assert_eq!(provider().unwrap(&again, &binding(1), &limits()).unwrap(), mdk(1));
    assert_eq!(p.key_ref(), "pkcs11:token=apg-test;object=kek;type=secret-key");
}

#[test]
fn wraps_with_aes_key_wrap_pad_when_asked() {
    let mut p = Pkcs11Provider::with_mechanism(pkcs11_config(TOKEN, "kek", "pin"), WrapMechanism::AesKeyWrapPad);
    let blob = p.wrap(&mdk(2), &binding(2), &limits()).unwrap();
    assert_eq!(blob.len(), KWP_BLOB_LEN);
    assert_eq!(blob[0], 0x02);
    assert_eq!(p.unwrap(&blob, &binding(2), &limits()).unwrap(), mdk(2));
    assert_eq!(provider().unwrap(&blob, &binding(2), &limits()).unwrap(), mdk(2), "the blob names its mechanism");
    let mut tampered = blob.clone();
    tampered[10] ^= 1;
    assert_eq!(p.unwrap(&tampered, &binding(2), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    // RFC 5649 has no AAD: the MDK id check refuses another binding.
    assert_eq!(p.unwrap(&blob, &binding(3), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
}

#[test]
fn refuses_tampered_blobs_other_bindings_and_other_keys() {
    let mut p = provider();
    let blob = p.wrap(&mdk(4), &binding(4), &limits()).unwrap();
    for i in [0usize, 5, 20, GCM_BLOB_LEN - 1] {
        let mut tampered = blob.clone();
        tampered[i] ^= 0x40;
        assert_eq!(p.unwrap(&tampered, &binding(4), &limits()).unwrap_err().kind, ErrorKind::WrongKey, "byte {i}");
    }
    assert_eq!(p.unwrap(&blob[..40], &binding(4), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    let mut other_system = binding(4);
    other_system.system_identifier.push('9');
    assert_eq!(p.unwrap(&blob, &other_system, &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    let mut other = Pkcs11Provider::new(pkcs11_config(TOKEN, "other-kek", "pin"));
    assert_eq!(other.unwrap(&blob, &binding(4), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    // The provider still works after the failures.
    assert_eq!(p.unwrap(&blob, &binding(4), &limits()).unwrap(), mdk(4));
}

fn misconfigured(mut p: Pkcs11Provider, message_part: &str) {
    let e = p.wrap(&mdk(5), &binding(5), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(e.message.contains(message_part), "{e:?}");
    for secret in [PIN, "0000-not-the-pin", "/usr/lib", "softhsm-"] {
        assert!(!e.message.contains(secret) && !e.hint.clone().unwrap_or_default().contains(secret), "{e:?} names {secret}");
    }
    assert!(!e.detail.contains(PIN) && !e.detail.contains("0000-not-the-pin"), "{e:?}");
}

#[test]
fn a_wrong_pin_is_refused() {
    misconfigured(Pkcs11Provider::new(pkcs11_config(PIN_TOKEN, "kek", "wrong-pin")), "refused the PIN");
}

#[test]
fn a_missing_key_token_or_module_is_refused() {
    misconfigured(Pkcs11Provider::new(pkcs11_config(TOKEN, "no-such-key", "pin")), "key was not found");
    let e = Pkcs11Provider::new(pkcs11_config("no-such-token", "kek", "pin")).wrap(&mdk(5), &binding(5), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "a token may be missing for a while: {e:?}");
    assert!(e.message.contains("token was not found") && !e.detail.contains(PIN), "{e:?}");
    let mut config = pkcs11_config(TOKEN, "kek", "pin");
    config.module = "/usr/lib/softhsm/no-such-module.so".into();
    misconfigured(Pkcs11Provider::new(config), "module cannot be loaded");
    misconfigured(Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "no-such-pin-file")), "PIN file does not exist");
}

#[test]
fn an_extractable_key_is_refused() {
    misconfigured(Pkcs11Provider::new(pkcs11_config(TOKEN, "extractable-kek", "pin")), "non-extractable");
}

#[test]
fn a_pin_file_open_to_others_is_refused() {
    let dir = softhsm();
    let path = dir.join("open-pin");
    std::fs::write(&path, PIN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    misconfigured(Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "open-pin")), "accessible by group or others");
}

/// docs/FORMAT.md §6.2: the vector's blobs (made with Python's
/// `cryptography`, not with this code) unwrap in a real token holding the
/// vector's KEK, to the vector's MDK, under the vector's binding only.
#[test]
fn the_documented_vectors_unwrap_in_a_token() {
    let (mdk, binding) = vector_mdk();
    assert_eq!(
        binding.aad(),
        hex_bytes("6170672d7071207631206d646b2d7772617000271aea6ff76e893d854c495fa3c97dd1 37333032303030303030303030303030303031")
    );
    let gcm = hex_bytes("01a0a1a2a3a4a5a6a7a8a9aaabc6395e0e61ee24984a4cadf82b57eef1409d6b23a682
                   745ba4371cbd43964b3e7f986fdf741b150885c8266c8e60c7e8");
    let kwp = hex_bytes("0292f48c52045c08050ec796a5a91c5ddaf7c61cbdc940adc8d3dc8a144f6161a8c5d3
                   299e325f1750");
    let mut p = Pkcs11Provider::new(pkcs11_config(TOKEN, "vector-kek", "pin"));
    assert_eq!(p.unwrap(&gcm, &binding, &limits()).unwrap(), mdk);
    assert_eq!(p.unwrap(&kwp, &binding, &limits()).unwrap(), mdk);
    let mut other = binding.clone();
    other.system_identifier = "7302000000000000002".into();
    assert_eq!(p.unwrap(&gcm, &other, &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    // And what the token wraps, it unwraps (a fresh IV each time).
    let blob = p.wrap(&mdk, &binding, &limits()).unwrap();
    assert_eq!(p.unwrap(&blob, &binding, &limits()).unwrap(), mdk);
}
