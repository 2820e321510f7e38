//! Randomness: the OS CSPRNG behind a small read-ahead pool.
use crate::Error;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroize;

/// Where randomness comes from. Production code uses [`OsRandom`]; tests and
/// the known-answer generator use a seeded source.
pub(crate) trait RandomSource {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error>;

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error>
    where
        Self: Sized,
    {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }
}

/// The operating system's CSPRNG (getrandom(2)), read ahead in 4 KiB blocks.
///
/// A getrandom call costs ~350 ns, more than encrypting a short value, and a
/// keyed envelope needs a salt and a nonce. So small requests are served
/// from a per-thread block of getrandom output. Each byte is handed out once
/// and wiped as it leaves the block. After a fork the block must not be used
/// by both processes: by default every draw compares the process id (a
/// getpid call); a program that instead runs [`discard_pool`] in every forked
/// child (pthread_atfork) says so with [`fork_handler_installed`].
pub(crate) struct OsRandom;

static FORK_HANDLED: AtomicBool = AtomicBool::new(false);

/// 16 fresh bytes from the operating system's CSPRNG: an identifier (a
/// session, an escrow split, a backup) that must not be guessable.
pub fn random_id() -> Result<[u8; 16], Error> {
    OsRandom.array()
}

/// Drops the calling thread's unused random bytes. Run it in a forked child
/// before anything else draws randomness.
pub fn discard_pool() {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.bytes.zeroize();
        pool.pos = POOL_LEN;
        pool.pid = 0;
    });
}

/// Declares that [`discard_pool`] runs in every child this process forks,
/// so draws need not check the process id.
pub fn fork_handler_installed() {
    FORK_HANDLED.store(true, Ordering::Relaxed);
}

const POOL_LEN: usize = 4096;
/// Requests larger than this go straight to getrandom.
const POOL_MAX_REQUEST: usize = 64;

struct Pool {
    pid: u32,
    pos: usize,
    bytes: Box<[u8; POOL_LEN]>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool { pid: 0, pos: POOL_LEN, bytes: Box::new([0; POOL_LEN]) });
}

impl RandomSource for OsRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        if out.len() > POOL_MAX_REQUEST {
            return getrandom::fill(out).map_err(|_| Error::RandomUnavailable);
        }
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let pid = if FORK_HANDLED.load(Ordering::Relaxed) { 1 } else { std::process::id() };
            if pool.pid != pid || pool.pos + out.len() > POOL_LEN {
                getrandom::fill(&mut pool.bytes[..]).map_err(|_| Error::RandomUnavailable)?;
                pool.pid = pid;
                pool.pos = 0;
            }
            let start = pool.pos;
            let taken = &mut pool.bytes[start..start + out.len()];
            out.copy_from_slice(taken);
            taken.zeroize();
            pool.pos += out.len();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_each_byte_once() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * POOL_LEN / 32 {
            let block: [u8; 32] = OsRandom.array().unwrap();
            assert!(seen.insert(block), "repeated random block");
        }
        let big: [u8; 100] = OsRandom.array().unwrap();
        assert_ne!(big, [0u8; 100]);
    }

    #[test]
    fn discarded_pool_is_refilled() {
        let a: [u8; 16] = OsRandom.array().unwrap();
        discard_pool();
        let b: [u8; 16] = OsRandom.array().unwrap();
        assert_ne!(a, b);
        POOL.with(|p| assert_eq!(p.borrow().pos, 16));
    }
}
