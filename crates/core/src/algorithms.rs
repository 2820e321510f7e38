//! What each suite is, for reports (`pq_algorithms()`, `apg-pq algorithms`):
//! its standard, NIST security category, whether CNSA 2.0 admits it, the
//! implementation that serves it in this build, and its sizes in bytes.
use crate::{
    backend::{ActiveKem, ActiveSignature, KemBackend, MlDsa65, MlDsa87, MlKem1024, MlKem768, SignatureBackend},
    envelope::SealedLayout,
    format::{DSA_SEED_LEN, SIGNATURE_OFFSET},
    kem::Suite,
    keys::SignatureSuite,
    slh,
};

/// One row of the algorithm report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Algorithm {
    /// The name SQL and the command line take.
    pub name: &'static str,
    /// "kem" or "signature".
    pub kind: &'static str,
    /// The standard that defines it.
    pub standard: &'static str,
    /// NIST security category (1 to 5).
    pub category: i32,
    /// True for the parameter sets CNSA 2.0 requires (ML-KEM-1024, ML-DSA-87).
    pub cnsa2: bool,
    /// The implementation this build uses.
    pub backend: String,
    /// Public key length.
    pub public_key_bytes: usize,
    /// Stored secret key length (the seed).
    pub secret_key_bytes: usize,
    /// KEM ciphertext or signature length.
    pub output_bytes: usize,
    /// What an envelope adds: a sealed envelope's header and tag, or the
    /// whole signature envelope.
    pub envelope_bytes: usize,
    /// The envelope kind bytes: sealed and batch item, or signature.
    pub envelope_kinds: &'static str,
}

/// Every KEM suite, then every signature suite.
pub fn all() -> Vec<Algorithm> {
    let mut out: Vec<Algorithm> = Suite::ALL.into_iter().map(kem).collect();
    out.extend(SignatureSuite::ALL.into_iter().map(signature));
    out.push(Algorithm {
        name: slh::NAME,
        kind: "signature",
        standard: "FIPS 205",
        category: 1,
        cnsa2: false,
        backend: "rustcrypto slh-dsa".into(),
        public_key_bytes: slh::PUBLIC_KEY_LEN,
        secret_key_bytes: slh::SEED_LEN,
        output_bytes: slh::SIGNATURE_LEN,
        // No envelope: raw signatures (pq_sign_with) and audit checkpoints.
        envelope_bytes: 0,
        envelope_kinds: "",
    });
    out
}

fn kem(suite: Suite) -> Algorithm {
    let mlkem768 = <ActiveKem as KemBackend<MlKem768>>::NAME;
    let (standard, category, cnsa2, backend, kinds) = match suite {
        Suite::MlKem768 => ("FIPS 203", 3, false, format!("{mlkem768} ml-kem"), "S, B"),
        Suite::MlKem1024 => ("FIPS 203", 5, true, format!("{} ml-kem", <ActiveKem as KemBackend<MlKem1024>>::NAME), "L, M"),
        Suite::XWing => (
            "draft-connolly-cfrg-xwing-kem-06",
            3,
            false,
            format!("{mlkem768} ml-kem, x25519-dalek, libcrux-sha3"),
            "X, W",
        ),
    };
    Algorithm {
        name: suite.name(),
        kind: "kem",
        standard,
        category,
        cnsa2,
        backend,
        public_key_bytes: suite.public_key_len(),
        secret_key_bytes: suite.seed_len(),
        output_bytes: suite.ciphertext_len(),
        envelope_bytes: SealedLayout::new(suite, false).overhead(),
        envelope_kinds: kinds,
    }
}

fn signature(suite: SignatureSuite) -> Algorithm {
    let (category, cnsa2, backend, kinds) = match suite {
        SignatureSuite::MlDsa65 => (3, false, <ActiveSignature as SignatureBackend<MlDsa65>>::NAME, "G"),
        SignatureSuite::MlDsa87 => (5, true, <ActiveSignature as SignatureBackend<MlDsa87>>::NAME, "H"),
    };
    Algorithm {
        name: suite.name(),
        kind: "signature",
        standard: "FIPS 204",
        category,
        cnsa2,
        backend: format!("{backend} ml-dsa"),
        public_key_bytes: suite.public_key_len(),
        secret_key_bytes: DSA_SEED_LEN,
        output_bytes: suite.signature_len(),
        envelope_bytes: SIGNATURE_OFFSET + suite.signature_len(),
        envelope_kinds: kinds,
    }
}

/// True if a version of `kem` and `signature` may be made under a policy
/// requiring CNSA 2.0.
pub fn cnsa2(kem: Suite, signature: SignatureSuite) -> bool {
    kem == Suite::MlKem1024 && signature == SignatureSuite::MlDsa87
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_format() {
        let rows = all();
        assert_eq!(rows.len(), 6);
        let by = |name: &str| rows.iter().find(|r| r.name == name).unwrap().clone();
        assert_eq!((by("slh-dsa-sha2-128s").public_key_bytes, by("slh-dsa-sha2-128s").output_bytes), (32, 7856));
        assert_eq!((by("ml-kem-768").public_key_bytes, by("ml-kem-768").output_bytes, by("ml-kem-768").envelope_bytes), (1184, 1088, 1134));
        assert_eq!((by("ml-kem-1024").public_key_bytes, by("ml-kem-1024").output_bytes, by("ml-kem-1024").envelope_bytes), (1568, 1568, 1614));
        assert_eq!((by("x-wing").public_key_bytes, by("x-wing").secret_key_bytes, by("x-wing").envelope_bytes), (1216, 32, 1166));
        assert_eq!((by("ml-dsa-65").public_key_bytes, by("ml-dsa-65").output_bytes, by("ml-dsa-65").envelope_bytes), (1952, 3309, 3327));
        assert_eq!((by("ml-dsa-87").public_key_bytes, by("ml-dsa-87").output_bytes, by("ml-dsa-87").envelope_bytes), (2592, 4627, 4645));
        assert_eq!(rows.iter().filter(|r| r.cnsa2).map(|r| r.name).collect::<Vec<_>>(), ["ml-kem-1024", "ml-dsa-87"]);
        assert!(cnsa2(Suite::MlKem1024, SignatureSuite::MlDsa87));
        assert!(!cnsa2(Suite::XWing, SignatureSuite::MlDsa87));
    }
}
