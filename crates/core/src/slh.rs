//! SLH-DSA-SHA2-128s (FIPS 205), from RustCrypto's `slh-dsa`: the
//! hash-based signature of the `slh-dsa+ml-dsa-65` audit key. Its security
//! rests on SHA-256 alone, so checkpoints signed with it stay verifiable if
//! lattices ever fall. 128s: category 1, a 32-byte public key, 7,856-byte
//! signatures, slow signing (a checkpoint is signed once per interval) and
//! fast verification; SHA2 rather than SHAKE because SHA-256 is what every
//! other hash of the audit trail uses.
use crate::Error;
use slh_dsa::{Sha2_128s, Signature, SigningKey, VerifyingKey};

/// n of SLH-DSA-SHA2-128s.
pub const N: usize = 16;
/// The stored secret: `SK.seed ‖ SK.prf ‖ PK.seed` (FIPS 205 slh_keygen_internal's inputs).
pub const SEED_LEN: usize = 3 * N;
/// Public key: `PK.seed ‖ PK.root`.
pub const PUBLIC_KEY_LEN: usize = 2 * N;
/// Signature.
pub const SIGNATURE_LEN: usize = 7856;
/// The name SQL and the command line take.
pub const NAME: &str = "slh-dsa-sha2-128s";

/// An SLH-DSA-SHA2-128s signing key.
pub struct SlhSigningKey(Box<SigningKey<Sha2_128s>>);

impl SlhSigningKey {
    /// slh_keygen_internal(SK.seed, SK.prf, PK.seed) from the 48-byte seed.
    pub fn from_seed(seed: &[u8]) -> Result<Self, Error> {
        if seed.len() != SEED_LEN {
            return Err(Error::InvalidKey);
        }
        Ok(Self(Box::new(SigningKey::slh_keygen_internal(&seed[..N], &seed[N..2 * N], &seed[2 * N..]))))
    }

    /// A new key from a fresh random seed; returns the seed too.
    pub fn generate() -> Result<(zeroize::Zeroizing<[u8; SEED_LEN]>, Self), Error> {
        Self::generate_from(&mut crate::rng::OsRandom)
    }

    /// Hedged pure SLH-DSA (random `opt_rand`) with context `ctx`.
    pub fn sign_hedged(&self, msg: &[u8], ctx: &[u8]) -> Result<Vec<u8>, Error> {
        use crate::rng::RandomSource;
        let opt_rand = zeroize::Zeroizing::new(crate::rng::OsRandom.array::<N>()?);
        self.sign(msg, ctx, Some(&opt_rand))
    }

    /// A new key; returns its seed (to be wrapped) too.
    pub(crate) fn generate_from(
        rng: &mut impl crate::rng::RandomSource,
    ) -> Result<(zeroize::Zeroizing<[u8; SEED_LEN]>, Self), Error> {
        let seed = zeroize::Zeroizing::new(rng.array::<SEED_LEN>()?);
        let key = Self::from_seed(&seed[..])?;
        Ok((seed, key))
    }

    /// `PK.seed ‖ PK.root`.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(&self.0.as_ref().as_ref().to_bytes());
        out
    }

    /// Pure SLH-DSA (FIPS 205 Algorithm 22) with context `ctx`; `opt_rand`
    /// is 16 random bytes (hedged) or None for the deterministic variant
    /// (opt_rand = PK.seed).
    pub fn sign(&self, msg: &[u8], ctx: &[u8], opt_rand: Option<&[u8; N]>) -> Result<Vec<u8>, Error> {
        let sig = self.0.try_sign_with_context(msg, ctx, opt_rand.map(|r| &r[..])).map_err(|_| Error::ContextTooLong)?;
        Ok(sig.to_vec())
    }
}

/// Pure SLH-DSA verification of `sig` over `msg` with context `ctx` under the
/// 32-byte public key `public_key`. Anything malformed is simply not valid.
pub fn verify(public_key: &[u8], msg: &[u8], ctx: &[u8], sig: &[u8]) -> bool {
    let (Ok(vk), Ok(sig)) = (VerifyingKey::<Sha2_128s>::try_from(public_key), Signature::<Sha2_128s>::try_from(sig)) else {
        return false;
    };
    vk.try_verify_with_context(msg, ctx, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_refuse() {
        let mut rng = crate::test_rng::SeededRandom::new("slh-dsa");
        let (seed, key) = SlhSigningKey::generate_from(&mut rng).unwrap();
        let pk = key.public_key();
        assert_eq!(SlhSigningKey::from_seed(&seed[..]).unwrap().public_key(), pk);
        let sig = key.sign(b"checkpoint", b"ctx", Some(&[5; N])).unwrap();
        assert_eq!(sig.len(), SIGNATURE_LEN);
        assert!(verify(&pk, b"checkpoint", b"ctx", &sig));
        assert!(!verify(&pk, b"checkpoint", b"other", &sig));
        assert!(!verify(&pk, b"checkpoinT", b"ctx", &sig));
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert!(!verify(&pk, b"checkpoint", b"ctx", &bad));
        assert!(!verify(&pk, b"checkpoint", b"ctx", &sig[..SIGNATURE_LEN - 1]));
        assert!(!verify(&pk[..31], b"checkpoint", b"ctx", &sig));
        // Deterministic: the same signature twice.
        assert_eq!(key.sign(b"m", b"", None).unwrap(), key.sign(b"m", b"", None).unwrap());
        assert!(SlhSigningKey::from_seed(&[0; 47]).is_err());
    }
}
