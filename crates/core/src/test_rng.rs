//! A deterministic random source for tests and known-answer vectors:
//! SHA-256(seed || counter) blocks. Not for production.
use crate::{rng::RandomSource, Error};
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub(crate) struct SeededRandom {
    seed: [u8; 32],
    counter: u64,
}

impl SeededRandom {
    pub(crate) fn new(label: &str) -> Self {
        Self { seed: Sha256::digest(label.as_bytes()).into(), counter: 0 }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        for chunk in out.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

/// A source of zero bytes: ML-DSA's deterministic variant (rnd = 0^32).
pub(crate) struct ZeroRandom;

impl RandomSource for ZeroRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        out.fill(0);
        Ok(())
    }
}
