//! The kmip provider against a real KMIP server (PyKMIP's, with TLS client
//! certificates) on loopback.
mod common;
use common::*;
use pqprovider::{kmip::{KmipProvider, MODE_CBC, MODE_GCM}, ErrorKind, KeyProvider};

#[test]
fn wraps_and_unwraps_with_the_binding_as_additional_data() {
    let kmip = kmip();
    let uid = kmip.tool(&["create", "apg-pq-kek"]);
    // By name: a Locate finds the unique identifier, which the reference records.
    let mut p = KmipProvider::new(kmip.config("apg-pq-kek", "client"));
    let blob = p.wrap(&mdk(1), &binding(1), &limits()).unwrap();
    assert_eq!(blob[0], MODE_GCM);
    assert_eq!(p.key_ref(), format!("kmip:server=127.0.0.1:{};uid={uid}", kmip.port));
    assert!(!blob.windows(32).any(|w| w == [1u8; 32]));
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    // By unique identifier.
    let mut by_uid = KmipProvider::new(kmip.config(&uid, "client"));
    assert_eq!(by_uid.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    assert!(by_uid.same_key(&p.key_ref()));

    // Another binding, a tampered blob: the server's GCM refuses.
    assert_eq!(p.unwrap(&blob, &binding(2), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    let mut other_system = binding(1);
    other_system.system_identifier = "1".into();
    assert_eq!(p.unwrap(&blob, &other_system, &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    for i in [2, 20, blob.len() - 1] {
        let mut tampered = blob.clone();
        tampered[i] ^= 1;
        assert_eq!(p.unwrap(&tampered, &binding(1), &limits()).unwrap_err().kind, ErrorKind::WrongKey, "byte {i}");
    }
    // Another key of the same client does not decrypt it.
    let other = kmip.tool(&["create", "other-kek"]);
    let e = KmipProvider::new(kmip.config(&other, "client")).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::WrongKey, "{e:?}");
    // Another client may not use the key at all.
    let e = KmipProvider::new(kmip.config(&uid, "other")).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(!e.message.contains(&uid) && !e.message.contains("127.0.0.1"), "{e:?}");
}

#[test]
fn the_cbc_fallback_binds_by_hash() {
    let kmip = kmip();
    kmip.tool(&["create", "apg-pq-kek"]);
    let mut p = KmipProvider::cbc_only(kmip.config("apg-pq-kek", "client"));
    let blob = p.wrap(&mdk(4), &binding(4), &limits()).unwrap();
    assert_eq!(blob[0], MODE_CBC);
    assert_eq!(blob.len(), 2 + blob[1] as usize + 80);
    // Any provider reads it by its mode byte.
    assert_eq!(KmipProvider::new(kmip.config("apg-pq-kek", "client")).unwrap(&blob, &binding(4), &limits()).unwrap(), mdk(4));
    assert_eq!(p.unwrap(&blob, &binding(5), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    for i in [2, 20, 40, blob.len() - 1] {
        let mut tampered = blob.clone();
        tampered[i] ^= 1;
        assert_eq!(p.unwrap(&tampered, &binding(4), &limits()).unwrap_err().kind, ErrorKind::WrongKey, "byte {i}");
    }
}

#[test]
fn missing_revoked_keys_bad_certificates_a_stopped_server_and_a_dead_port() {
    let kmip = kmip();
    let uid = kmip.tool(&["create", "apg-pq-kek"]);
    let mut p = KmipProvider::new(kmip.config(&uid, "client"));
    let blob = p.wrap(&mdk(3), &binding(3), &limits()).unwrap();

    let e = KmipProvider::new(kmip.config("no-such-key", "client")).wrap(&mdk(3), &binding(3), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(e.detail.contains("no-such-key") && !e.message.contains("no-such-key"), "{e:?}");

    // A client certificate the server's CA did not sign.
    let mut stranger = kmip.config(&uid, "client");
    stranger.ca_file = Some(kmip.file("server.pem"));
    let e = KmipProvider::new(stranger).unwrap(&blob, &binding(3), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    // A client key file others may read.
    {
        use std::os::unix::fs::PermissionsExt;
        let open = kmip.dir.join("open.key");
        std::fs::copy(kmip.dir.join("client.key"), &open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut config = kmip.config(&uid, "client");
        config.client_key = open.display().to_string();
        let e = KmipProvider::new(config).unwrap(&blob, &binding(3), &limits()).unwrap_err();
        assert!(e.message.contains("accessible by group or others"), "{e:?}");
    }

    // SIGSTOP: connections are accepted by the kernel, nothing answers.
    stopped_server_checks(kmip.child.id(), |l| p.unwrap(&blob, &binding(3), l), &mdk(3));

    // A revoked key, then a destroyed one.
    kmip.tool(&["revoke", &uid]);
    assert_eq!(p.unwrap(&blob, &binding(3), &limits()).unwrap_err().kind, ErrorKind::Misconfigured);
    kmip.tool(&["destroy", &uid]);
    assert_eq!(p.unwrap(&blob, &binding(3), &limits()).unwrap_err().kind, ErrorKind::Misconfigured);

    let mut dead = kmip.config(&uid, "client");
    dead.port = free_port();
    let e = KmipProvider::new(dead).unwrap(&blob, &binding(3), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
}

/// docs/FORMAT.md §6.5's vectors unwrap through a server holding their KEK.
#[test]
fn the_format_vectors_unwrap() {
    let kmip = kmip();
    let kek: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    let uid = kmip.tool(&["register", "vector-kek", &kek]);
    let (mdk, binding) = vector_mdk();
    let gcm = hex_bytes(concat!(
        "0110c0c1c2c3c4c5c6c7c8c9cacbcccdcecf1076bda67616500015d03310c084f7da0b",
        "9d4f6a4cc35ef3d3e85b58ad2c595b2a480a7ee66cf4e1ca41d04548a8f41a53"
    ));
    let cbc = hex_bytes(concat!(
        "0210b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc307729fa54b6bc16a83f7f2416747bf",
        "e03af2b187a2ec1fedc45bf124f3417bb36e8105b304285da1e79d25610691aa3881",
        "7bcf3cfea09d39884df9fa7d817deacad49a791010ca75c6ae258ceb1ea7"
    ));
    let mut p = KmipProvider::new(kmip.config(&uid, "client"));
    assert_eq!(p.unwrap(&gcm, &binding, &limits()).unwrap(), mdk);
    assert_eq!(p.unwrap(&cbc, &binding, &limits()).unwrap(), mdk);
}
