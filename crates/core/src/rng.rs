use crate::Error;

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

/// The operating system's CSPRNG (getrandom(2) on Linux).
pub(crate) struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(out).map_err(|_| Error::RandomUnavailable)
    }
}
