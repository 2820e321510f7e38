//! The file provider: key file checks and wrapping.
mod common;
use common::*;
use pqprovider::{file::FileProvider, ErrorKind, KeyProvider};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("filekeys-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key_file(name: &str, bytes: &[u8], mode: u32) -> String {
    let path = dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

#[test]
fn wraps_and_unwraps_and_refuses_the_wrong_key_or_a_tampered_blob() {
    let path = key_file("kek", &[3u8; 32], 0o600);
    let mut p = FileProvider::open(&path).unwrap();
    let blob = p.wrap(&mdk(1), &binding(1), &limits()).unwrap();
    assert_eq!(p.unwrap(&blob, &binding(1), &limits()).unwrap(), mdk(1));
    assert_eq!(p.key_ref().len(), 32);
    let mut tampered = blob.clone();
    tampered[20] ^= 1;
    assert_eq!(p.unwrap(&tampered, &binding(1), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    assert_eq!(p.unwrap(&blob, &binding(2), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
    let mut other = FileProvider::open(&key_file("other", "cd".repeat(32).as_bytes(), 0o600)).unwrap();
    assert_eq!(other.unwrap(&blob, &binding(1), &limits()).unwrap_err().kind, ErrorKind::WrongKey);
}

#[test]
fn refuses_unsafe_or_malformed_key_files() {
    let cases = [
        (key_file("open", &[3u8; 32], 0o640), "accessible by group or others"),
        (key_file("short", &[3u8; 31], 0o600), "does not hold a 32-byte key"),
        (key_file("long", &[b'a'; 200], 0o600), "is too long"),
        (dir().join("missing").display().to_string(), "does not exist"),
        (dir().display().to_string(), "is not a regular file"),
    ];
    for (path, message) in cases {
        let e = FileProvider::open(&path).err().expect(message);
        assert_eq!(e.kind, ErrorKind::Misconfigured);
        assert!(e.message.contains(message), "{e:?}");
        assert!(!e.message.contains(&path) && e.detail.contains(&path), "{e:?}");
    }
    let link = dir().join("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(key_file("target", &[3u8; 32], 0o600), &link).unwrap();
    assert!(FileProvider::open(&link.display().to_string()).err().unwrap().message.contains("symbolic link"));
}
