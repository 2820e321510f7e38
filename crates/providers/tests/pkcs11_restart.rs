//! A token whose file SoftHSM2 left empty: SoftHSM2 rewrites a token's
//! `token.object` in place at every C_Login, so a process killed in that
//! moment (kill -9, or the SIGQUIT of PostgreSQL's crash restart) leaves it
//! empty, and then no process finds the token; one that initialised the
//! module meanwhile does not find it again while it keeps that context. The provider tries a failed
//! open again on a new context within the call's time, and starts from a
//! new context at the next call: once the file is back (restored from a
//! copy), the same process finds the token without a restart. Alone in its
//! test binary (its own SoftHSM2 directory and module state).
mod common;
use common::*;
use pqprovider::{pkcs11::Pkcs11Provider, CallLimits, ErrorKind, KeyProvider};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `token.object` of token `label`.
fn token_object(label: &str) -> PathBuf {
    let tokens = softhsm().join("tokens");
    for dir in std::fs::read_dir(&tokens).unwrap() {
        let path = dir.unwrap().path().join("token.object");
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(label.len()).any(|w| w == label.as_bytes()) {
            return path;
        }
    }
    panic!("no token.object holds the label {label}");
}

#[test]
fn a_token_file_emptied_and_restored_is_found_again_without_a_restart() {
    let path = token_object(TOKEN);
    let copy = std::fs::read(&path).unwrap();
    let provider = || Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"));

    // Emptied before this process first initialises the module: no token.
    std::fs::write(&path, b"").unwrap();
    let started = Instant::now();
    let e = provider().wrap(&mdk(1), &binding(1), &limits()).unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(e.message.contains("token was not found"), "{e:?}");
    // Tried again (1.55 s of pauses), well within the 5 s timeout.
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(4), "{took:?}");

    // A short timeout: the pauses that would pass it are not taken; the
    // answer is the token's error, before the timeout.
    let started = Instant::now();
    let e = provider().wrap(&mdk(1), &binding(1), &CallLimits::timeout(Duration::from_millis(300))).unwrap_err();
    assert!(e.message.contains("token was not found"), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());

    // Restored while a call is retrying: that call succeeds.
    let restore = {
        let (path, copy) = (path.clone(), copy.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::write(&path, &copy).unwrap();
        })
    };
    let mut p = provider();
    let blob = p.wrap(&mdk(2), &binding(2), &limits()).unwrap();
    restore.join().unwrap();
    assert_eq!(p.unwrap(&blob, &binding(2), &limits()).unwrap(), mdk(2));

    // Emptied again while this process has the token: SoftHSM2 then lists
    // no such token to this process either, so a new session fails; the
    // file restored, the same process finds it again.
    std::fs::write(&path, b"").unwrap();
    let e = provider().unwrap(&blob, &binding(2), &limits()).unwrap_err();
    assert!(e.message.contains("token was not found"), "{e:?}");
    std::fs::write(&path, &copy).unwrap();
    assert_eq!(provider().unwrap(&blob, &binding(2), &limits()).unwrap(), mdk(2));
    assert_eq!(p.unwrap(&blob, &binding(2), &limits()).unwrap(), mdk(2));
}
