//! Shamir's secret sharing over GF(2^8), byte by byte (the escrow of the
//! master data key; FORMAT.md §14, vector `shamir-2-of-3`). The field is AES's: polynomial
//! x^8 + x^4 + x^3 + x + 1 (0x11B). For each byte of the secret, a random
//! polynomial of degree `threshold - 1` whose constant term is that byte;
//! share `x` (1..=total) holds the polynomial's values at `x`. Any
//! `threshold` shares give the secret back by Lagrange interpolation at 0;
//! fewer give no information about it.
//!
//! No crate fits: the maintained ones are generic over elliptic-curve
//! scalar fields (vsss-rs) or unmaintained (sharks); this is ~80 lines,
//! with arithmetic free of secret-dependent branches and table lookups,
//! property tests and a known-answer vector (kat.rs) that
//! tests/verify_kat.py re-derives from FORMAT.md's text.
use crate::{
    rng::{OsRandom, RandomSource},
    Error,
};
use core::fmt;
use zeroize::Zeroizing;

/// One share: its x coordinate (1..=255) and one byte per secret byte.
pub struct Share {
    /// The x coordinate, never 0.
    pub index: u8,
    /// The polynomials' values at `index`.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share({}, <{} bytes redacted>)", self.index, self.bytes.len())
    }
}

/// a * b in GF(2^8) mod 0x11B, without branches on the values.
fn mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut p) = (a, b, 0u8);
    for _ in 0..8 {
        p ^= a & (b & 1).wrapping_neg();
        let carry = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (0x1B & carry);
        b >>= 1;
    }
    p
}

/// a^-1 = a^254 (0 for 0, which never occurs: indexes are distinct and non-zero).
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// Splits `secret` into `total` shares, any `threshold` of which recover
/// it. 1 ≤ threshold ≤ total ≤ 255, else [`Error::InvalidKey`].
pub fn split(secret: &[u8], threshold: u8, total: u8) -> Result<Vec<Share>, Error> {
    split_from(&mut OsRandom, secret, threshold, total)
}

pub(crate) fn split_from(rng: &mut impl RandomSource, secret: &[u8], threshold: u8, total: u8) -> Result<Vec<Share>, Error> {
    if threshold == 0 || threshold > total {
        return Err(Error::InvalidKey);
    }
    // coefficients[k][i]: the degree-k coefficient of byte i's polynomial.
    let mut coefficients = Zeroizing::new(vec![0u8; usize::from(threshold) * secret.len()]);
    coefficients[..secret.len()].copy_from_slice(secret);
    rng.fill(&mut coefficients[secret.len()..])?;
    Ok((1..=total)
        .map(|x| {
            let bytes = (0..secret.len())
                .map(|i| {
                    // Horner, from the highest degree down.
                    (0..usize::from(threshold)).rev().fold(0u8, |acc, k| mul(acc, x) ^ coefficients[k * secret.len() + i])
                })
                .collect();
            Share { index: x, bytes: Zeroizing::new(bytes) }
        })
        .collect())
}

/// The secret from `shares` (at least the threshold; with fewer the
/// result is some other value, which the caller's own check, such as the
/// MDK id, rejects). Shares must have distinct non-zero indexes and equal
/// lengths, else [`Error::InvalidKey`].
pub fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let len = shares.first().map(|s| s.bytes.len()).ok_or(Error::InvalidKey)?;
    for (n, s) in shares.iter().enumerate() {
        if s.index == 0 || s.bytes.len() != len || shares[..n].iter().any(|t| t.index == s.index) {
            return Err(Error::InvalidKey);
        }
    }
    let mut secret = Zeroizing::new(vec![0u8; len]);
    for s in shares {
        // Lagrange basis at 0: prod over the others of x_j / (x_j - x_i); minus is xor.
        let basis = shares
            .iter()
            .filter(|t| t.index != s.index)
            .fold(1u8, |acc, t| mul(acc, mul(t.index, inv(t.index ^ s.index))));
        for (out, y) in secret.iter_mut().zip(s.bytes.iter()) {
            *out ^= mul(*y, basis);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::SeededRandom;
    use proptest::prelude::*;

    #[test]
    fn field_arithmetic() {
        // FIPS 197 §4.2: {57} • {83} = {c1}, {57} • {13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
        }
    }

    fn subsets(n: u8, k: usize) -> Vec<Vec<u8>> {
        (0u32..1 << n)
            .filter(|m| m.count_ones() as usize == k)
            .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
            .collect()
    }

    fn pick(shares: &[Share], which: &[u8]) -> Vec<Share> {
        which.iter().map(|&i| Share { index: shares[usize::from(i)].index, bytes: shares[usize::from(i)].bytes.clone() }).collect()
    }

    /// 3 of 5: every one of the 10 subsets of 3 (and of 4, and all 5)
    /// recovers; no subset of 2 does.
    #[test]
    fn every_threshold_subset_and_no_smaller_one() {
        let secret = [0xA5u8; 32];
        let shares = split(&secret, 3, 5).unwrap();
        assert_eq!(subsets(5, 3).len(), 10);
        for k in 3..=5 {
            for which in subsets(5, k) {
                assert_eq!(&combine(&pick(&shares, &which)).unwrap()[..], &secret[..], "{which:?}");
            }
        }
        for which in subsets(5, 2) {
            assert_ne!(&combine(&pick(&shares, &which)).unwrap()[..], &secret[..], "{which:?}");
        }
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(split(b"s", 0, 3).unwrap_err(), Error::InvalidKey);
        assert_eq!(split(b"s", 4, 3).unwrap_err(), Error::InvalidKey);
        let shares = split(&[7u8; 32], 2, 3).unwrap();
        let dup = pick(&shares, &[0, 0]);
        assert_eq!(combine(&dup).unwrap_err(), Error::InvalidKey);
        let mut short = pick(&shares, &[0, 1]);
        short[1].bytes.truncate(31);
        assert_eq!(combine(&short).unwrap_err(), Error::InvalidKey);
        let zero = vec![Share { index: 0, bytes: Zeroizing::new(vec![1; 32]) }];
        assert_eq!(combine(&zero).unwrap_err(), Error::InvalidKey);
        assert_eq!(combine(&[]).unwrap_err(), Error::InvalidKey);
        // A modified share gives another secret (the caller's id check rejects it).
        let mut bad = pick(&shares, &[0, 1]);
        bad[0].bytes[5] ^= 1;
        assert_ne!(&combine(&bad).unwrap()[..], &[7u8; 32][..]);
        assert!(!format!("{:?}", shares[0]).contains("07"));
    }

    proptest! {
        #[test]
        fn any_threshold_recovers(secret in proptest::collection::vec(any::<u8>(), 1..64), t in 1u8..6, extra in 0u8..4, seed in any::<u64>()) {
            let total = t + extra;
            let shares = split_from(&mut SeededRandom::new(&seed.to_string()), &secret, t, total).unwrap();
            let first: Vec<u8> = (0..t).collect();
            let last: Vec<u8> = (extra..total).collect();
            prop_assert_eq!(&combine(&pick(&shares, &first)).unwrap()[..], &secret[..]);
            prop_assert_eq!(&combine(&pick(&shares, &last)).unwrap()[..], &secret[..]);
        }
    }
}
