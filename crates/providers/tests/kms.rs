//! The aws_kms provider against moto_server, a KMS-compatible server, over HTTP.
mod common;
use common::*;
use pqprovider::{kms::KmsProvider, ErrorKind, KeyProvider};

#[test]
fn wraps_and_unwraps_under_the_encryption_context() {
    let moto = moto();
    let key = create_kms_key(&moto);
    let mut p = KmsProvider::new(kms_config(&moto, &key));
    let blob = p.wrap(&mdk(1), &binding(1), &limits()).unwrap();
    assert!(!blob.windows(32).any(|w| w == [1u8; 32]));
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    assert_eq!(KmsProvider::new(kms_config(&moto, &key)).unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    assert_eq!(p.key_ref(), key);

    // Another MDK id or system identifier is another encryption context:
    // AWS answers InvalidCiphertextException (WrongKey), moto 5.2 answers
    // AccessDeniedException (Misconfigured); both refuse it.
    let refused = |e: pqprovider::ProviderError| matches!(e.kind, ErrorKind::WrongKey | ErrorKind::Misconfigured);
    assert!(refused(p.unwrap(&blob, &binding(2), &limits()).unwrap_err()));
    let mut other_system = binding(1);
    other_system.system_identifier = "1".into();
    assert!(refused(p.unwrap(&blob, &other_system, &limits()).unwrap_err()));
    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(p.unwrap(&tampered, &binding(1), &limits()).unwrap_err().kind, ErrorKind::WrongKey);

    // Another key may not decrypt it.
    let other = create_kms_key(&moto);
    let e = KmsProvider::new(kms_config(&moto, &other)).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert!(refused(e.clone()), "{e:?}");
    assert!(!e.message.contains(&key) && !e.message.contains("127.0.0.1"), "{e:?}");
}

#[test]
fn an_unknown_key_is_misconfigured() {
    let moto = moto();
    let mut p = KmsProvider::new(kms_config(&moto, "alias/no-such-key"));
    let e = p.wrap(&mdk(1), &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(e.detail.contains("no-such-key") && !e.message.contains("no-such-key"), "{e:?}");
}

#[test]
fn a_closed_port_is_unavailable_and_a_stopped_server_times_out() {
    let moto = moto();
    let key = create_kms_key(&moto);
    let mut p = KmsProvider::new(kms_config(&moto, &key));
    let blob = p.wrap(&mdk(3), &binding(3), &limits()).unwrap();

    stopped_server_checks(moto.child.id(), |l| p.unwrap(&blob, &binding(3), l), &mdk(3));

    // Nothing listens: refused at once.
    let mut config = kms_config(&moto, &key);
    config.endpoint = Some(format!("http://127.0.0.1:{}", free_port()));
    let e = KmsProvider::new(config).unwrap(&blob, &binding(3), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
}
