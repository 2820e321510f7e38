//! PKCS#11 after fork(): a child process that inherits an initialised module
//! and an open session must not use them; the provider forgets both and
//! initialises the module again (PKCS#11 v2.40 §6.6.1). PostgreSQL forks
//! every backend, so this is the extension's everyday case if anything ever
//! initialised the module before a fork. Alone in its test binary: fork()
//! with other test threads running could copy a held lock.
mod common;
use common::*;
use pqprovider::{pkcs11::Pkcs11Provider, KeyProvider};

#[test]
#[allow(unsafe_code)]
fn a_forked_child_initialises_the_module_again() {
    let mut p = Pkcs11Provider::new(pkcs11_config(TOKEN, "kek", "pin"));
    let blob = p.wrap(&mdk(9), &binding(9), &limits()).unwrap();
    // Let the helper thread of that call finish before forking.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: the child only runs the provider and then _exit()s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = p.unwrap(&blob, &binding(9), &limits()).map(|k| k == mdk(9)).unwrap_or(false)
            && p.wrap(&mdk(8), &binding(8), &limits()).is_ok();
        // SAFETY: ends the child without running the parent's test harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child made above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
    // The parent's session is untouched by the child.
    assert_eq!(p.unwrap(&blob, &binding(9), &limits()).unwrap(), mdk(9));
}
