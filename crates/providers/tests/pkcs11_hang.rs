//! A token that stops answering: another process holds SoftHSM2's file
//! locks on the token, so every call into it blocks (as a network HSM that
//! went away would). The provider gives up at its timeout, or at once on a
//! cancel, and works again when the token does. Alone in its test binary
//! (its own SoftHSM2 directory), so the locks hold up no other test.
mod common;
use common::*;
use pqprovider::{pkcs11::Pkcs11Provider, CallLimits, ErrorKind, KeyProvider};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Holds the locks; releases them when dropped (also when a test fails, so
/// that calls blocked in the token return before the process exits).
struct Locker(std::process::Child);

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Locks every file of every token until dropped; returns once they are held.
fn hold_token_locks() -> Locker {
    let tokens = softhsm().join("tokens");
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import fcntl, glob, sys, time\n\
             fs = [open(f, 'r+b') for f in glob.glob(sys.argv[1] + '/*/*')]\n\
             [fcntl.lockf(f, fcntl.LOCK_EX) for f in fs]\n\
             print(len(fs), flush=True)\n\
             time.sleep(600)",
            &tokens.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.trim().parse::<u32>().unwrap() > 0, "no token files locked");
    Locker(child)
}

#[test]
fn a_hung_token_times_out_is_cancelled_and_recovers() {
    let mut p = Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"));
    let blob = p.wrap(&mdk(7), &binding(7), &limits()).unwrap();
    let locker = hold_token_locks();

    // A fresh provider (a new backend) has to log in: blocked.
    let mut fresh = Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"));
    let start = Instant::now();
    let e = fresh.unwrap(&blob, &binding(7), &CallLimits::timeout(Duration::from_millis(800))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TimedOut, "{e:?}");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(3), "{took:?}");

    // While that call is still stuck, the same provider fails at once
    // instead of stacking another thread behind it.
    let start = Instant::now();
    let e = fresh.unwrap(&blob, &binding(7), &limits()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(e.message.contains("not answered an earlier call"), "{e:?}");
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
    assert_eq!(pqprovider::pkcs11::calls_in_flight(), 1);

    // Another provider (another backend's) is cancelled while it waits.
    let mut other = Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"));
    fn cancel_after_300ms() -> bool {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed() > Duration::from_millis(300)
    }
    let start = Instant::now();
    let e = other
        .unwrap(&blob, &binding(7), &CallLimits { timeout: Duration::from_secs(60), cancelled: cancel_after_300ms })
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());

    // A process that exits while a call is still blocked in the module ends
    // before the module's destructors can run under that call: with the
    // status it was given (42 here, to tell it from exit(0)).
    // SAFETY: the child only runs the provider and exits.
    #[allow(unsafe_code)]
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut child = Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"));
        let timed_out = child.unwrap(&blob, &binding(7), &CallLimits::timeout(Duration::from_millis(300)));
        pqprovider::pkcs11::set_exit_status(42);
        std::process::exit(if matches!(timed_out, Err(ref e) if e.kind == ErrorKind::TimedOut) { 0 } else { 3 });
    }
    // Without the handler the child hangs in the module's destructors (or
    // crashes): wait 10 s at most.
    let mut status = 0;
    let start = Instant::now();
    loop {
        // SAFETY: polls the child made above.
        #[allow(unsafe_code)]
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            // SAFETY: ends and reaps the child made above.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child hung at exit with a call still in the token");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 42, "the atexit handler ended the process");

    drop(locker);
    // Once the token answers, the abandoned calls return and every provider works.
    let start = Instant::now();
    let recovered = loop {
        match fresh.unwrap(&blob, &binding(7), &limits()) {
            Ok(key) => break key,
            Err(e) if e.kind == ErrorKind::Unavailable && start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(recovered, mdk(7));
    assert_eq!(other.unwrap(&blob, &binding(7), &limits()).unwrap(), mdk(7));
    assert_eq!(p.unwrap(&blob, &binding(7), &limits()).unwrap(), mdk(7));
    // The abandoned calls return once the token answers again.
    let start = Instant::now();
    while pqprovider::pkcs11::calls_in_flight() > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "abandoned calls never returned");
        std::thread::sleep(Duration::from_millis(20));
    }
}
