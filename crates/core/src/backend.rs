//! The seam around the lattice primitives. Formats and key types only call
//! the [`KemBackend`] and [`SignatureBackend`] traits, so another
//! implementation can replace a crate here without touching a byte format.
//!
//! ML-KEM-768 has two implementations, both tested against the Wycheproof
//! vectors and against each other: libcrux-ml-kem (formally verified, AVX2
//! with runtime detection) serves by default, as it is several times faster
//! (docs/PERFORMANCE.md); the `rustcrypto-kem` feature selects RustCrypto's
//! `ml-kem` instead. ML-DSA-65 likewise has two: libcrux-ml-dsa serves by
//! default (signing ~3x faster here, docs/PERFORMANCE.md), and the
//! `rustcrypto-dsa` feature selects RustCrypto's `ml-dsa`.
//!
//! This module is public for the benchmarks and the cross-implementation
//! tests; application code uses the key types of the crate root.
use crate::{
    format::{
        DSA_PUBLIC_KEY_LEN, DSA_SEED_LEN, DSA_SIGNATURE_LEN, KEM_CIPHERTEXT_LEN,
        KEM_EXPANDED_KEY_LEN, KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN,
    },
    secret::SharedSecret,
};
use zeroize::{Zeroize, Zeroizing};

/// ML-KEM-768 as the formats need it.
pub trait KemBackend {
    /// A decapsulation key ready for use (parsed or expanded as the backend likes).
    type DecapsulationKey: Send + Sync;
    /// A validated encapsulation key ready for use.
    type EncapsulationKey: Send + Sync;
    /// Name for benchmarks and reports.
    const NAME: &'static str;

    /// FIPS 203 ML-KEM.KeyGen_internal(d, z) from the 64-byte seed `d || z`.
    fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> (Self::DecapsulationKey, Box<[u8; KEM_PUBLIC_KEY_LEN]>);
    /// An expanded 2400-byte decapsulation key, after the FIPS 203 §7.3 checks
    /// (the embedded hash of `ek` must match, `ek` must be canonical).
    fn from_expanded(
        dk: &[u8; KEM_EXPANDED_KEY_LEN],
    ) -> Option<(Self::DecapsulationKey, Box<[u8; KEM_PUBLIC_KEY_LEN]>)>;
    /// An encapsulation key after the FIPS 203 §7.2 modulus check.
    fn encapsulation_key(ek: &[u8; KEM_PUBLIC_KEY_LEN]) -> Option<Self::EncapsulationKey>;
    /// ML-KEM.Encaps_internal(ek, m): the caller supplies the 32 random bytes.
    fn encapsulate(
        ek: &Self::EncapsulationKey,
        m: &[u8; 32],
    ) -> (Box<[u8; KEM_CIPHERTEXT_LEN]>, SharedSecret);
    /// ML-KEM.Decaps (implicit rejection: a bad ciphertext yields a random-looking secret).
    fn decapsulate(dk: &Self::DecapsulationKey, ct: &[u8; KEM_CIPHERTEXT_LEN]) -> SharedSecret;
}

/// ML-DSA-65 as the formats need it.
pub trait SignatureBackend {
    /// An expanded signing key.
    type SigningKey: Send + Sync;
    /// A decoded verifying key.
    type VerifyingKey: Send + Sync;
    /// Name for benchmarks and reports.
    const NAME: &'static str;

    /// FIPS 204 ML-DSA.KeyGen_internal(ξ).
    fn from_seed(seed: &[u8; DSA_SEED_LEN]) -> (Self::SigningKey, Box<[u8; DSA_PUBLIC_KEY_LEN]>);
    /// pkDecode; every byte string of the right length decodes.
    fn verifying_key(pk: &[u8; DSA_PUBLIC_KEY_LEN]) -> Self::VerifyingKey;
    /// ML-DSA.Sign with context `ctx` (≤ 255 bytes, checked by the caller)
    /// and the 32-byte `rnd` (random: hedged; zero: deterministic variant).
    /// None if the implementation gives up (libcrux bounds its rejection
    /// loop; FIPS 204 makes reaching the bound negligible).
    fn sign(
        sk: &Self::SigningKey,
        msg: &[u8],
        ctx: &[u8],
        rnd: &[u8; 32],
    ) -> Option<Box<[u8; DSA_SIGNATURE_LEN]>>;
    /// ML-DSA.Verify with context `ctx`.
    fn verify(vk: &Self::VerifyingKey, msg: &[u8], ctx: &[u8], sig: &[u8; DSA_SIGNATURE_LEN]) -> bool;
}

/// The ML-KEM implementation the key types use.
#[cfg(not(feature = "rustcrypto-kem"))]
pub type ActiveKem = LibcruxKem;
/// The ML-KEM implementation the key types use.
#[cfg(feature = "rustcrypto-kem")]
pub type ActiveKem = RustCryptoKem;
/// The ML-DSA implementation the key types use.
#[cfg(not(feature = "rustcrypto-dsa"))]
pub type ActiveSignature = LibcruxDsa;
/// The ML-DSA implementation the key types use.
#[cfg(feature = "rustcrypto-dsa")]
pub type ActiveSignature = RustCryptoDsa;

/// Moves a backend's shared secret into our zeroizing type and wipes the original.
fn shared_secret(mut k: [u8; 32]) -> SharedSecret {
    let ss = SharedSecret::from_array(&k);
    k.zeroize();
    ss
}

/// RustCrypto's `ml-kem`.
pub struct RustCryptoKem;

impl KemBackend for RustCryptoKem {
    type DecapsulationKey = ml_kem::ml_kem_768::DecapsulationKey;
    type EncapsulationKey = ml_kem::ml_kem_768::EncapsulationKey;
    const NAME: &'static str = "rustcrypto";

    fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> (Self::DecapsulationKey, Box<[u8; KEM_PUBLIC_KEY_LEN]>) {
        use ml_kem::KeyExport;
        let dk = Self::DecapsulationKey::from_seed(ml_kem::Seed::from(*seed));
        let ek: [u8; KEM_PUBLIC_KEY_LEN] = dk.encapsulation_key().to_bytes().into();
        (dk, Box::new(ek))
    }

    fn from_expanded(
        dk: &[u8; KEM_EXPANDED_KEY_LEN],
    ) -> Option<(Self::DecapsulationKey, Box<[u8; KEM_PUBLIC_KEY_LEN]>)> {
        #[allow(deprecated)] // the expanded form is accepted on input only
        use ml_kem::ExpandedKeyEncoding;
        use ml_kem::KeyExport;
        let expanded = Zeroizing::new(ml_kem::array::Array::from(*dk));
        #[allow(deprecated)] // the expanded form is accepted on input only
        let dk = Self::DecapsulationKey::from_expanded_bytes(&expanded).ok()?;
        let ek: [u8; KEM_PUBLIC_KEY_LEN] = dk.encapsulation_key().to_bytes().into();
        Some((dk, Box::new(ek)))
    }

    fn encapsulation_key(ek: &[u8; KEM_PUBLIC_KEY_LEN]) -> Option<Self::EncapsulationKey> {
        Self::EncapsulationKey::new(&ml_kem::array::Array::from(*ek)).ok()
    }

    fn encapsulate(
        ek: &Self::EncapsulationKey,
        m: &[u8; 32],
    ) -> (Box<[u8; KEM_CIPHERTEXT_LEN]>, SharedSecret) {
        let mut m = Zeroizing::new(ml_kem::B32::from(*m));
        let (ct, k) = ek.encapsulate_deterministic(&m);
        let ss = shared_secret(k.into());
        m.zeroize();
        (Box::new(ct.into()), ss)
    }

    fn decapsulate(dk: &Self::DecapsulationKey, ct: &[u8; KEM_CIPHERTEXT_LEN]) -> SharedSecret {
        use ml_kem::Decapsulate;
        shared_secret(dk.decapsulate(&ml_kem::array::Array::from(*ct)).into())
    }
}

/// libcrux-ml-kem (formally verified; portable or AVX2, chosen at run time).
pub struct LibcruxKem;

/// The expanded decapsulation key, held in our own zeroizing buffer because
/// libcrux's key types cannot be wiped from outside the crate.
pub struct LibcruxDecapsulationKey(Box<Zeroizing<[u8; KEM_EXPANDED_KEY_LEN]>>);

impl KemBackend for LibcruxKem {
    type DecapsulationKey = LibcruxDecapsulationKey;
    type EncapsulationKey = libcrux_ml_kem::mlkem768::MlKem768PublicKey;
    const NAME: &'static str = "libcrux";

    fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> (Self::DecapsulationKey, Box<[u8; KEM_PUBLIC_KEY_LEN]>) {
        let pair = libcrux_ml_kem::mlkem768::generate_key_pair(*seed);
        let (sk, pk) = pair.into_parts();
        let mut dk = Box::new(Zeroizing::new([0u8; KEM_EXPANDED_KEY_LEN]));
        dk.copy_from_slice(sk.as_slice());
        let mut sk_bytes: [u8; KEM_EXPANDED_KEY_LEN] = sk.into();
        sk_bytes.zeroize();
        (LibcruxDecapsulationKey(dk), Box::new(*pk.as_slice()))
    }

    fn from_expanded(
        dk: &[u8; KEM_EXPANDED_KEY_LEN],
    ) -> Option<(Self::DecapsulationKey, Box<[u8; KEM_PUBLIC_KEY_LEN]>)> {
        // The FIPS 203 input checks are done once, by the implementation that
        // exposes them; libcrux then serves the validated bytes.
        let (_, ek) = RustCryptoKem::from_expanded(dk)?;
        let mut copy = Box::new(Zeroizing::new([0u8; KEM_EXPANDED_KEY_LEN]));
        copy.copy_from_slice(dk);
        Some((LibcruxDecapsulationKey(copy), ek))
    }

    fn encapsulation_key(ek: &[u8; KEM_PUBLIC_KEY_LEN]) -> Option<Self::EncapsulationKey> {
        let key = libcrux_ml_kem::mlkem768::MlKem768PublicKey::from(ek);
        libcrux_ml_kem::mlkem768::validate_public_key(&key).then_some(key)
    }

    fn encapsulate(
        ek: &Self::EncapsulationKey,
        m: &[u8; 32],
    ) -> (Box<[u8; KEM_CIPHERTEXT_LEN]>, SharedSecret) {
        let (ct, k) = libcrux_ml_kem::mlkem768::encapsulate(ek, *m);
        (Box::new(*ct.as_slice()), shared_secret(k))
    }

    fn decapsulate(dk: &Self::DecapsulationKey, ct: &[u8; KEM_CIPHERTEXT_LEN]) -> SharedSecret {
        let sk = libcrux_ml_kem::mlkem768::MlKem768PrivateKey::from(&**dk.0);
        let ct = libcrux_ml_kem::mlkem768::MlKem768Ciphertext::from(ct);
        let ss = shared_secret(libcrux_ml_kem::mlkem768::decapsulate(&sk, &ct));
        let mut sk_bytes: [u8; KEM_EXPANDED_KEY_LEN] = sk.into();
        sk_bytes.zeroize();
        ss
    }
}

/// RustCrypto's `ml-dsa`.
pub struct RustCryptoDsa;

impl SignatureBackend for RustCryptoDsa {
    type SigningKey = ml_dsa::ExpandedSigningKey<ml_dsa::MlDsa65>;
    type VerifyingKey = ml_dsa::VerifyingKey<ml_dsa::MlDsa65>;
    const NAME: &'static str = "rustcrypto";

    fn from_seed(seed: &[u8; DSA_SEED_LEN]) -> (Self::SigningKey, Box<[u8; DSA_PUBLIC_KEY_LEN]>) {
        let mut xi = Zeroizing::new(ml_dsa::B32::from(*seed));
        let sk = ml_dsa::ExpandedSigningKey::<ml_dsa::MlDsa65>::from_seed(&xi);
        xi.zeroize();
        let pk: [u8; DSA_PUBLIC_KEY_LEN] = sk.verifying_key().encode().into();
        (sk, Box::new(pk))
    }

    fn verifying_key(pk: &[u8; DSA_PUBLIC_KEY_LEN]) -> Self::VerifyingKey {
        ml_dsa::VerifyingKey::decode(&ml_dsa::EncodedVerifyingKey::<ml_dsa::MlDsa65>::from(*pk))
    }

    fn sign(
        sk: &Self::SigningKey,
        msg: &[u8],
        ctx: &[u8],
        rnd: &[u8; 32],
    ) -> Option<Box<[u8; DSA_SIGNATURE_LEN]>> {
        // FIPS 204 Algorithm 2: M' = 0 || |ctx| || ctx || M (pure ML-DSA).
        let prefix = [0u8, ctx.len() as u8];
        let sig = sk.sign_internal(&[&prefix, ctx, msg], &ml_dsa::B32::from(*rnd));
        Some(Box::new(sig.encode().into()))
    }

    fn verify(vk: &Self::VerifyingKey, msg: &[u8], ctx: &[u8], sig: &[u8; DSA_SIGNATURE_LEN]) -> bool {
        let encoded = ml_dsa::EncodedSignature::<ml_dsa::MlDsa65>::from(*sig);
        match ml_dsa::Signature::decode(&encoded) {
            Some(sig) => vk.verify_with_context(msg, ctx, &sig),
            None => false,
        }
    }
}

/// libcrux-ml-dsa (formally verified; portable or AVX2, chosen at run time).
pub struct LibcruxDsa;

/// libcrux's expanded signing key, wiped when dropped (the crate's key
/// type does not wipe itself).
pub struct LibcruxSigningKey(Box<libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey>);

impl Drop for LibcruxSigningKey {
    fn drop(&mut self) {
        self.0.as_ref_mut().zeroize();
    }
}

impl SignatureBackend for LibcruxDsa {
    type SigningKey = LibcruxSigningKey;
    type VerifyingKey = libcrux_ml_dsa::ml_dsa_65::MLDSA65VerificationKey;
    const NAME: &'static str = "libcrux";

    fn from_seed(seed: &[u8; DSA_SEED_LEN]) -> (Self::SigningKey, Box<[u8; DSA_PUBLIC_KEY_LEN]>) {
        let pair = libcrux_ml_dsa::ml_dsa_65::generate_key_pair(*seed);
        let pk = Box::new(*pair.verification_key.as_ref());
        let mut sk = pair.signing_key;
        let key = LibcruxSigningKey(Box::new(libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey::new(*sk.as_ref())));
        sk.as_ref_mut().zeroize();
        (key, pk)
    }

    fn verifying_key(pk: &[u8; DSA_PUBLIC_KEY_LEN]) -> Self::VerifyingKey {
        libcrux_ml_dsa::ml_dsa_65::MLDSA65VerificationKey::new(*pk)
    }

    fn sign(
        sk: &Self::SigningKey,
        msg: &[u8],
        ctx: &[u8],
        rnd: &[u8; 32],
    ) -> Option<Box<[u8; DSA_SIGNATURE_LEN]>> {
        // The callers check ctx <= 255 bytes; the rejection loop's bound is
        // the only other failure.
        libcrux_ml_dsa::ml_dsa_65::sign(&sk.0, msg, ctx, *rnd).ok().map(|sig| Box::new(*sig.as_ref()))
    }

    fn verify(vk: &Self::VerifyingKey, msg: &[u8], ctx: &[u8], sig: &[u8; DSA_SIGNATURE_LEN]) -> bool {
        let sig = libcrux_ml_dsa::ml_dsa_65::MLDSA65Signature::new(*sig);
        libcrux_ml_dsa::ml_dsa_65::verify(vk, msg, ctx, &sig).is_ok()
    }
}
