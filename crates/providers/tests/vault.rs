//! The vault_transit provider against a real OpenBao server (dev mode, TLS
//! with its own CA) on loopback.
mod common;
use common::*;
use pqprovider::{vault::VaultProvider, ErrorKind, KeyProvider};
use std::time::{Duration, Instant};

#[test]
fn wraps_unwraps_and_rewraps_bound_to_the_context() {
    let bao = bao();
    let token = bao.policy_token_file("token", "1h");
    let mut p = VaultProvider::new(bao.config("apg-pq", Some(token.clone())));
    let blob = p.wrap(&mdk(1), &binding(1), &limits()).unwrap();
    assert!(blob.starts_with(b"vault:v1:"), "{}", String::from_utf8_lossy(&blob));
    assert!(p.key_ref().ends_with(";mount=transit;key=apg-pq;version=1"), "{}", p.key_ref());
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    assert_eq!(VaultProvider::new(bao.config("apg-pq", Some(token.clone()))).unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));

    // Another MDK id or system identifier is another derived key.
    assert_eq!(p.unwrap(&blob, &binding(2), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    let mut other_system = binding(1);
    other_system.system_identifier = "1".into();
    assert_eq!(p.unwrap(&blob, &other_system, &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    // A tampered ciphertext.
    let mut tampered = blob.clone();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(p.unwrap(&tampered, &binding(1), &limits()).unwrap_err().kind, ErrorKind::WrongKey);

    // Another key (the root token may use it) does not decrypt it.
    bao.cli(&["write", "-f", "transit/keys/other", "type=aes256-gcm96", "derived=true"]);
    let root = bao.dir.join("root-token");
    write_secret(&root, "apg-pq-root");
    let mut other = VaultProvider::new(bao.config("other", Some(root.display().to_string())));
    let e = other.unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::WrongKey, "{e:?}");
    assert!(!e.message.contains("127.0.0.1") && !e.message.contains("other"), "{e:?}");

    // The policy allows nothing else: another key with the policy's token is refused.
    let e = VaultProvider::new(bao.config("other", Some(token.clone()))).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");

    // Transit key rotated: the blob moves to version 2 inside the server.
    bao.cli(&["write", "-f", "transit/keys/apg-pq/rotate"]);
    let moved = p.rewrap(&blob, &binding(1), &limits()).unwrap().unwrap();
    assert!(moved.starts_with(b"vault:v2:"), "{}", String::from_utf8_lossy(&moved));
    assert!(p.key_ref().ends_with(";version=2"));
    assert_eq!(p.unwrap(&moved, &binding(1), &limits()).unwrap(), mdk(1));
    // With version 1 no longer allowed to decrypt, only the moved blob opens.
    bao.cli(&["write", "transit/keys/apg-pq/config", "min_decryption_version=2"]);
    assert!(p.unwrap(&blob, &binding(1), &limits()).is_err());
    assert_eq!(p.unwrap(&moved, &binding(1), &limits()).unwrap(), mdk(1));
    // A rewrap keeps the binding: another one does not open it.
    assert_eq!(p.unwrap(&moved, &binding(2), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    assert!(p.same_key(&VaultProvider::new(bao.config("apg-pq", None)).key_ref()));
    assert!(!p.same_key(&VaultProvider::new(bao.config("other", None)).key_ref()));
}

#[test]
fn refuses_keys_that_would_not_bind_and_credentials_that_do_not_work() {
    let bao = bao();
    let root = bao.dir.join("root-token");
    write_secret(&root, "apg-pq-root");
    // A key without derivation would ignore the context.
    let e = VaultProvider::new(bao.config("not-derived", Some(root.display().to_string())))
        .wrap(&mdk(1), &binding(1), &limits())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(e.message.contains("not a derived key"), "{e:?}");

    let token = bao.policy_token_file("token", "1h");
    let blob = VaultProvider::new(bao.config("apg-pq", Some(token.clone()))).wrap(&mdk(1), &binding(1), &limits()).unwrap();
    // A wrong token, a token file others may read, a missing key.
    let wrong = bao.dir.join("wrong-token");
    write_secret(&wrong, "s.not-a-token");
    let e = VaultProvider::new(bao.config("apg-pq", Some(wrong.display().to_string()))).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(!format!("{e:?}").contains("s.not-a-token"), "{e:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let open = bao.dir.join("open-token");
        write_secret(&open, "apg-pq-root");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = VaultProvider::new(bao.config("apg-pq", Some(open.display().to_string()))).unwrap(&blob, &binding(1), &limits()).unwrap_err();
        assert!(e.message.contains("accessible by group or others"), "{e:?}");
    }
    let e = VaultProvider::new(bao.config("no-such-key", Some(root.display().to_string()))).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");

    // An expired token.
    let short = bao.policy_token_file("short-token", "2s");
    let mut p = VaultProvider::new(bao.config("apg-pq", Some(short)));
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap_err().kind, ErrorKind::Misconfigured);
    // A token file rewritten (by an agent) is read at the next call.
    let renewed = bao.cli(&["token", "create", "-policy=apg-pq", "-field=token"]);
    write_secret(&bao.dir.join("short-token"), &renewed);
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));

    // AppRole: a login; a revoked secret id cannot log in again.
    let role_id = bao.cli(&["read", "-field=role_id", "auth/approle/role/apg-pq/role-id"]);
    let secret = bao.cli(&["write", "-f", "-field=secret_id", "auth/approle/role/apg-pq/secret-id"]);
    let secret_file = bao.dir.join("secret-id");
    write_secret(&secret_file, &secret);
    let mut config = bao.config("apg-pq", None);
    config.role_id = Some(role_id);
    config.secret_id_file = Some(secret_file.display().to_string());
    let mut approle = VaultProvider::new(config.clone());
    assert_eq!(approle.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    bao.cli(&["write", "auth/approle/role/apg-pq/secret-id/destroy", &format!("secret_id={secret}")]);
    let e = VaultProvider::new(config).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(!format!("{e:?}").contains(&secret), "{e:?}");

    // Plain HTTP only to loopback.
    let mut far = bao.config("apg-pq", Some(token));
    far.addr = "http://vault.example:8200".into();
    let e = VaultProvider::new(far).unwrap(&blob, &binding(1), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Misconfigured, "{e:?}");
    assert!(e.message.contains("HTTPS"), "{e:?}");
}

#[test]
fn a_stopped_server_times_out_a_cancel_ends_the_wait_and_a_dead_port_is_unavailable() {
    let bao = bao();
    let token = bao.policy_token_file("token", "1h");
    let mut p = VaultProvider::new(bao.config("apg-pq", Some(token.clone())));
    let blob = p.wrap(&mdk(3), &binding(3), &limits()).unwrap();

    stopped_server_checks(bao.child.id(), |l| p.unwrap(&blob, &binding(3), l), &mdk(3));

    let mut dead = bao.config("apg-pq", Some(token));
    dead.addr = format!("https://127.0.0.1:{}", free_port());
    let start = Instant::now();
    let e = VaultProvider::new(dead).unwrap(&blob, &binding(3), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

/// docs/FORMAT.md §6.4: the context is base64 of §6.2's AAD, so another
/// Transit client decrypts a wrapped MDK with the documented string.
#[test]
fn the_documented_context_decrypts() {
    let bao = bao();
    let token = bao.policy_token_file("token", "1h");
    let (mdk, binding) = vector_mdk();
    let blob = VaultProvider::new(bao.config("apg-pq", Some(token))).wrap(&mdk, &binding, &limits()).unwrap();
    let plaintext = bao.cli(&[
        "write",
        "-field=plaintext",
        "transit/decrypt/apg-pq",
        &format!("ciphertext={}", String::from_utf8(blob).unwrap()),
        "context=YXBnLXBxIHYxIG1kay13cmFwACca6m/3bok9hUxJX6PJfdE3MzAyMDAwMDAwMDAwMDAwMDAx",
    ]);
    assert_eq!(plaintext, "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=");
}

/// A Transit mount inside a namespace (OpenBao has namespaces, as Vault
/// Enterprise does): the namespace header reaches it, another does not.
#[test]
fn a_namespace_reaches_its_own_mount() {
    let bao = bao();
    bao.cli(&["namespace", "create", "team-a"]);
    let ns = |args: &[&str]| {
        let out = std::process::Command::new(venv_bin("bao"))
            .args(args)
            .env("BAO_ADDR", &bao.addr)
            .env("BAO_CACERT", bao.ca())
            .env("BAO_TOKEN", "apg-pq-root")
            .env("BAO_NAMESPACE", "team-a")
            .output()
            .unwrap();
        assert!(out.status.success(), "bao {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ns(&["secrets", "enable", "transit"]);
    ns(&["write", "-f", "transit/keys/apg-pq", "type=aes256-gcm96", "derived=true"]);
    let root = bao.dir.join("root-token");
    write_secret(&root, "apg-pq-root");
    let mut config = bao.config("apg-pq", Some(root.display().to_string()));
    config.namespace = Some("team-a".into());
    let mut p = VaultProvider::new(config);
    let blob = p.wrap(&mdk(6), &binding(6), &limits()).unwrap();
    assert!(p.key_ref().contains(";namespace=team-a;"), "{}", p.key_ref());
    assert_eq!(p.unwrap(&blob, &binding(6), &limits()).unwrap(), mdk(6));
    // The root namespace's key of the same name is another key.
    let e = VaultProvider::new(bao.config("apg-pq", Some(root.display().to_string()))).unwrap(&blob, &binding(6), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::WrongKey, "{e:?}");
}
