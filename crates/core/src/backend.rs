//! The seam around the lattice primitives. Formats and key types only call
//! the [`KemBackend`] and [`SignatureBackend`] traits, so another
//! implementation can replace a crate here without touching a byte format.
//!
//! Both traits are generic over a parameter set: ML-KEM-768 and
//! ML-KEM-1024 ([`MlKem768`], [`MlKem1024`], FIPS 203), ML-DSA-65 and
//! ML-DSA-87 ([`MlDsa65`], [`MlDsa87`], FIPS 204). Every set has two
//! implementations, both tested against the Wycheproof vectors and against
//! each other: libcrux (formally verified, AVX2 with runtime detection)
//! serves by default, as it is several times faster (docs/PERFORMANCE.md);
//! the `rustcrypto-kem` and `rustcrypto-dsa` features select RustCrypto's
//! `ml-kem` and `ml-dsa` instead.
//!
//! This module is public for the benchmarks and the cross-implementation
//! tests; application code uses the key types of the crate root.
use crate::{format, secret::SharedSecret};
use zeroize::{Zeroize, Zeroizing};

/// A fixed-length byte array (`[u8; N]`): what the parameter sets' sizes are.
pub trait ByteArray:
    AsRef<[u8]> + AsMut<[u8]> + Copy + Send + Sync + Zeroize + 'static + for<'a> TryFrom<&'a [u8]>
{
    /// All zero.
    fn zeroed() -> Self;
    /// Its length.
    const LEN: usize;
}

impl<const N: usize> ByteArray for [u8; N] {
    fn zeroed() -> Self {
        [0; N]
    }
    const LEN: usize = N;
}

/// An ML-KEM parameter set (FIPS 203 §8): its name and encoding sizes.
/// The seed `d ‖ z` (64 bytes) and the shared secret (32) are the same in every set.
pub trait MlKemParams: Send + Sync + 'static {
    /// FIPS 203's name, lower case: `ml-kem-768`.
    const NAME: &'static str;
    /// The encapsulation key.
    type PublicKey: ByteArray;
    /// The ciphertext.
    type Ciphertext: ByteArray;
    /// The expanded decapsulation key (accepted on input only).
    type ExpandedKey: ByteArray;
}

/// ML-KEM-768 (category 3): 1184-byte keys, 1088-byte ciphertexts.
pub struct MlKem768;
impl MlKemParams for MlKem768 {
    const NAME: &'static str = "ml-kem-768";
    type PublicKey = [u8; 1184];
    type Ciphertext = [u8; 1088];
    type ExpandedKey = [u8; 2400];
}

/// ML-KEM-1024 (category 5, CNSA 2.0): 1568-byte keys, 1568-byte ciphertexts.
pub struct MlKem1024;
impl MlKemParams for MlKem1024 {
    const NAME: &'static str = "ml-kem-1024";
    type PublicKey = [u8; 1568];
    type Ciphertext = [u8; 1568];
    type ExpandedKey = [u8; 3168];
}

/// An ML-DSA parameter set (FIPS 204 §4): its name and encoding sizes.
/// The seed ξ (32 bytes) is the same in every set.
pub trait MlDsaParams: Send + Sync + 'static {
    /// FIPS 204's name, lower case: `ml-dsa-65`.
    const NAME: &'static str;
    /// The verifying (public) key.
    type PublicKey: ByteArray;
    /// The signature.
    type Signature: ByteArray;
}

/// ML-DSA-65 (category 3): 1952-byte keys, 3309-byte signatures.
pub struct MlDsa65;
impl MlDsaParams for MlDsa65 {
    const NAME: &'static str = "ml-dsa-65";
    type PublicKey = [u8; 1952];
    type Signature = [u8; 3309];
}

/// ML-DSA-87 (category 5, CNSA 2.0): 2592-byte keys, 4627-byte signatures.
pub struct MlDsa87;
impl MlDsaParams for MlDsa87 {
    const NAME: &'static str = "ml-dsa-87";
    type PublicKey = [u8; 2592];
    type Signature = [u8; 4627];
}

/// The ML-KEM seed `d ‖ z` (64 bytes) and the ML-DSA seed ξ (32 bytes).
pub use format::{DSA_SEED_LEN, KEM_SEED_LEN};

/// ML-KEM of parameter set `P` as the formats need it.
pub trait KemBackend<P: MlKemParams> {
    /// A decapsulation key ready for use (parsed or expanded as the backend likes).
    type DecapsulationKey: Send + Sync;
    /// A validated encapsulation key ready for use.
    type EncapsulationKey: Send + Sync;
    /// Name for benchmarks and reports.
    const NAME: &'static str;

    /// FIPS 203 ML-KEM.KeyGen_internal(d, z) from the 64-byte seed `d || z`.
    fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> (Self::DecapsulationKey, Box<P::PublicKey>);
    /// An expanded decapsulation key, after the FIPS 203 §7.3 checks (the
    /// embedded hash of `ek` must match, `ek` must be canonical).
    fn from_expanded(dk: &P::ExpandedKey) -> Option<(Self::DecapsulationKey, Box<P::PublicKey>)>;
    /// An encapsulation key after the FIPS 203 §7.2 modulus check.
    fn encapsulation_key(ek: &P::PublicKey) -> Option<Self::EncapsulationKey>;
    /// ML-KEM.Encaps_internal(ek, m): the caller supplies the 32 random bytes.
    fn encapsulate(ek: &Self::EncapsulationKey, m: &[u8; 32]) -> (Box<P::Ciphertext>, SharedSecret);
    /// ML-KEM.Decaps (implicit rejection: a bad ciphertext yields a random-looking secret).
    fn decapsulate(dk: &Self::DecapsulationKey, ct: &P::Ciphertext) -> SharedSecret;
}

/// ML-DSA of parameter set `P` as the formats need it.
pub trait SignatureBackend<P: MlDsaParams> {
    /// An expanded signing key.
    type SigningKey: Send + Sync;
    /// A decoded verifying key.
    type VerifyingKey: Send + Sync;
    /// Name for benchmarks and reports.
    const NAME: &'static str;

    /// FIPS 204 ML-DSA.KeyGen_internal(ξ).
    fn from_seed(seed: &[u8; DSA_SEED_LEN]) -> (Self::SigningKey, Box<P::PublicKey>);
    /// pkDecode; every byte string of the right length decodes.
    fn verifying_key(pk: &P::PublicKey) -> Self::VerifyingKey;
    /// ML-DSA.Sign with context `ctx` (≤ 255 bytes, checked by the caller)
    /// and the 32-byte `rnd` (random: hedged; zero: deterministic variant).
    /// None if the implementation gives up (libcrux bounds its rejection
    /// loop; FIPS 204 makes reaching the bound negligible).
    fn sign(sk: &Self::SigningKey, msg: &[u8], ctx: &[u8], rnd: &[u8; 32]) -> Option<Box<P::Signature>>;
    /// ML-DSA.Verify with context `ctx`.
    fn verify(vk: &Self::VerifyingKey, msg: &[u8], ctx: &[u8], sig: &P::Signature) -> bool;
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

/// RustCrypto's ML-KEM for one parameter set (`$module`: the crate's module).
macro_rules! rustcrypto_kem {
    ($params:ty, $module:ident) => {
        impl KemBackend<$params> for RustCryptoKem {
            type DecapsulationKey = ml_kem::$module::DecapsulationKey;
            type EncapsulationKey = ml_kem::$module::EncapsulationKey;
            const NAME: &'static str = "rustcrypto";

            fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> (Self::DecapsulationKey, Box<<$params as MlKemParams>::PublicKey>) {
                use ml_kem::KeyExport;
                let dk = Self::DecapsulationKey::from_seed(ml_kem::Seed::from(*seed));
                let ek: <$params as MlKemParams>::PublicKey = dk.encapsulation_key().to_bytes().into();
                (dk, Box::new(ek))
            }

            fn from_expanded(
                dk: &<$params as MlKemParams>::ExpandedKey,
            ) -> Option<(Self::DecapsulationKey, Box<<$params as MlKemParams>::PublicKey>)> {
                #[allow(deprecated)] // the expanded form is accepted on input only
                use ml_kem::ExpandedKeyEncoding;
                use ml_kem::KeyExport;
                let expanded = Zeroizing::new(ml_kem::array::Array::from(*dk));
                #[allow(deprecated)] // the expanded form is accepted on input only
                let dk = Self::DecapsulationKey::from_expanded_bytes(&expanded).ok()?;
                let ek: <$params as MlKemParams>::PublicKey = dk.encapsulation_key().to_bytes().into();
                Some((dk, Box::new(ek)))
            }

            fn encapsulation_key(ek: &<$params as MlKemParams>::PublicKey) -> Option<Self::EncapsulationKey> {
                Self::EncapsulationKey::new(&ml_kem::array::Array::from(*ek)).ok()
            }

            fn encapsulate(
                ek: &Self::EncapsulationKey,
                m: &[u8; 32],
            ) -> (Box<<$params as MlKemParams>::Ciphertext>, SharedSecret) {
                let mut m = Zeroizing::new(ml_kem::B32::from(*m));
                let (ct, k) = ek.encapsulate_deterministic(&m);
                let ss = shared_secret(k.into());
                m.zeroize();
                (Box::new(ct.into()), ss)
            }

            fn decapsulate(dk: &Self::DecapsulationKey, ct: &<$params as MlKemParams>::Ciphertext) -> SharedSecret {
                use ml_kem::Decapsulate;
                shared_secret(dk.decapsulate(&ml_kem::array::Array::from(*ct)).into())
            }
        }
    };
}
rustcrypto_kem!(MlKem768, ml_kem_768);
rustcrypto_kem!(MlKem1024, ml_kem_1024);

/// libcrux-ml-kem (formally verified; portable or AVX2, chosen at run time).
pub struct LibcruxKem;

/// The expanded decapsulation key, held in our own zeroizing buffer because
/// libcrux's key types cannot be wiped from outside the crate.
pub struct LibcruxDecapsulationKey<P: MlKemParams>(Box<Zeroizing<P::ExpandedKey>>);

/// libcrux's ML-KEM for one parameter set (`$module`: the crate's module
/// and its key, private key and ciphertext types).
macro_rules! libcrux_kem {
    ($params:ty, $module:ident, $public:ident, $private:ident, $ciphertext:ident) => {
        impl KemBackend<$params> for LibcruxKem {
            type DecapsulationKey = LibcruxDecapsulationKey<$params>;
            type EncapsulationKey = libcrux_ml_kem::$module::$public;
            const NAME: &'static str = "libcrux";

            fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> (Self::DecapsulationKey, Box<<$params as MlKemParams>::PublicKey>) {
                let pair = libcrux_ml_kem::$module::generate_key_pair(*seed);
                let (sk, pk) = pair.into_parts();
                let mut dk = Box::new(Zeroizing::new(<<$params as MlKemParams>::ExpandedKey as ByteArray>::zeroed()));
                dk.copy_from_slice(sk.as_slice());
                let mut sk_bytes: <$params as MlKemParams>::ExpandedKey = sk.into();
                sk_bytes.zeroize();
                (LibcruxDecapsulationKey(dk), Box::new(*pk.as_slice()))
            }

            fn from_expanded(
                dk: &<$params as MlKemParams>::ExpandedKey,
            ) -> Option<(Self::DecapsulationKey, Box<<$params as MlKemParams>::PublicKey>)> {
                // The FIPS 203 input checks are done once, by the implementation
                // that exposes them; libcrux then serves the validated bytes.
                let (_, ek) = <RustCryptoKem as KemBackend<$params>>::from_expanded(dk)?;
                Some((LibcruxDecapsulationKey(Box::new(Zeroizing::new(*dk))), ek))
            }

            fn encapsulation_key(ek: &<$params as MlKemParams>::PublicKey) -> Option<Self::EncapsulationKey> {
                let key = libcrux_ml_kem::$module::$public::from(ek);
                libcrux_ml_kem::$module::validate_public_key(&key).then_some(key)
            }

            fn encapsulate(
                ek: &Self::EncapsulationKey,
                m: &[u8; 32],
            ) -> (Box<<$params as MlKemParams>::Ciphertext>, SharedSecret) {
                let (ct, k) = libcrux_ml_kem::$module::encapsulate(ek, *m);
                (Box::new(*ct.as_slice()), shared_secret(k))
            }

            fn decapsulate(dk: &Self::DecapsulationKey, ct: &<$params as MlKemParams>::Ciphertext) -> SharedSecret {
                let sk = libcrux_ml_kem::$module::$private::from(&**dk.0);
                let ct = libcrux_ml_kem::$module::$ciphertext::from(ct);
                let ss = shared_secret(libcrux_ml_kem::$module::decapsulate(&sk, &ct));
                let mut sk_bytes: <$params as MlKemParams>::ExpandedKey = sk.into();
                sk_bytes.zeroize();
                ss
            }
        }
    };
}
libcrux_kem!(MlKem768, mlkem768, MlKem768PublicKey, MlKem768PrivateKey, MlKem768Ciphertext);
libcrux_kem!(MlKem1024, mlkem1024, MlKem1024PublicKey, MlKem1024PrivateKey, MlKem1024Ciphertext);

/// RustCrypto's `ml-dsa`.
pub struct RustCryptoDsa;

/// RustCrypto's ML-DSA for one parameter set (`$set`: the crate's type).
macro_rules! rustcrypto_dsa {
    ($params:ty, $set:ty) => {
        impl SignatureBackend<$params> for RustCryptoDsa {
            type SigningKey = ml_dsa::ExpandedSigningKey<$set>;
            type VerifyingKey = ml_dsa::VerifyingKey<$set>;
            const NAME: &'static str = "rustcrypto";

            fn from_seed(seed: &[u8; DSA_SEED_LEN]) -> (Self::SigningKey, Box<<$params as MlDsaParams>::PublicKey>) {
                let mut xi = Zeroizing::new(ml_dsa::B32::from(*seed));
                let sk = ml_dsa::ExpandedSigningKey::<$set>::from_seed(&xi);
                xi.zeroize();
                let pk: <$params as MlDsaParams>::PublicKey = sk.verifying_key().encode().into();
                (sk, Box::new(pk))
            }

            fn verifying_key(pk: &<$params as MlDsaParams>::PublicKey) -> Self::VerifyingKey {
                ml_dsa::VerifyingKey::decode(&ml_dsa::EncodedVerifyingKey::<$set>::from(*pk))
            }

            fn sign(
                sk: &Self::SigningKey,
                msg: &[u8],
                ctx: &[u8],
                rnd: &[u8; 32],
            ) -> Option<Box<<$params as MlDsaParams>::Signature>> {
                // FIPS 204 Algorithm 2: M' = 0 || |ctx| || ctx || M (pure ML-DSA).
                let prefix = [0u8, ctx.len() as u8];
                let sig = sk.sign_internal(&[&prefix, ctx, msg], &ml_dsa::B32::from(*rnd));
                Some(Box::new(sig.encode().into()))
            }

            fn verify(vk: &Self::VerifyingKey, msg: &[u8], ctx: &[u8], sig: &<$params as MlDsaParams>::Signature) -> bool {
                let encoded = ml_dsa::EncodedSignature::<$set>::from(*sig);
                match ml_dsa::Signature::decode(&encoded) {
                    Some(sig) => vk.verify_with_context(msg, ctx, &sig),
                    None => false,
                }
            }
        }
    };
}
rustcrypto_dsa!(MlDsa65, ml_dsa::MlDsa65);
rustcrypto_dsa!(MlDsa87, ml_dsa::MlDsa87);

/// libcrux-ml-dsa (formally verified; portable or AVX2, chosen at run time).
pub struct LibcruxDsa;

/// libcrux's expanded signing key, wiped when dropped (the crate's key
/// type does not wipe itself).
pub struct LibcruxSigningKey<K: LibcruxKeyBytes>(Box<K>);

/// A libcrux signing key type whose bytes can be wiped.
pub trait LibcruxKeyBytes: Send + Sync {
    /// Wipes the key's bytes.
    fn wipe(&mut self);
}

impl<K: LibcruxKeyBytes> Drop for LibcruxSigningKey<K> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

/// libcrux's ML-DSA for one parameter set (`$module`: the crate's module
/// and its signing key, verification key and signature types).
macro_rules! libcrux_dsa {
    ($params:ty, $module:ident, $signing:ident, $verification:ident, $signature:ident) => {
        impl LibcruxKeyBytes for libcrux_ml_dsa::$module::$signing {
            fn wipe(&mut self) {
                self.as_ref_mut().zeroize();
            }
        }

        impl SignatureBackend<$params> for LibcruxDsa {
            type SigningKey = LibcruxSigningKey<libcrux_ml_dsa::$module::$signing>;
            type VerifyingKey = libcrux_ml_dsa::$module::$verification;
            const NAME: &'static str = "libcrux";

            fn from_seed(seed: &[u8; DSA_SEED_LEN]) -> (Self::SigningKey, Box<<$params as MlDsaParams>::PublicKey>) {
                let pair = libcrux_ml_dsa::$module::generate_key_pair(*seed);
                let pk = Box::new(*pair.verification_key.as_ref());
                let mut sk = pair.signing_key;
                let key = LibcruxSigningKey(Box::new(libcrux_ml_dsa::$module::$signing::new(*sk.as_ref())));
                sk.as_ref_mut().zeroize();
                (key, pk)
            }

            fn verifying_key(pk: &<$params as MlDsaParams>::PublicKey) -> Self::VerifyingKey {
                libcrux_ml_dsa::$module::$verification::new(*pk)
            }

            fn sign(
                sk: &Self::SigningKey,
                msg: &[u8],
                ctx: &[u8],
                rnd: &[u8; 32],
            ) -> Option<Box<<$params as MlDsaParams>::Signature>> {
                // The callers check ctx <= 255 bytes; the rejection loop's
                // bound is the only other failure.
                libcrux_ml_dsa::$module::sign(&sk.0, msg, ctx, *rnd).ok().map(|sig| Box::new(*sig.as_ref()))
            }

            fn verify(vk: &Self::VerifyingKey, msg: &[u8], ctx: &[u8], sig: &<$params as MlDsaParams>::Signature) -> bool {
                let sig = libcrux_ml_dsa::$module::$signature::new(*sig);
                libcrux_ml_dsa::$module::verify(vk, msg, ctx, &sig).is_ok()
            }
        }
    };
}
libcrux_dsa!(MlDsa65, ml_dsa_65, MLDSA65SigningKey, MLDSA65VerificationKey, MLDSA65Signature);
libcrux_dsa!(MlDsa87, ml_dsa_87, MLDSA87SigningKey, MLDSA87VerificationKey, MLDSA87Signature);

// The parameter sets' sizes are the format's (docs/FORMAT.md §1).
const _: () = assert!(format::KEM1024_PUBLIC_KEY_LEN == <<MlKem1024 as MlKemParams>::PublicKey as ByteArray>::LEN);
const _: () = assert!(format::KEM1024_CIPHERTEXT_LEN == <<MlKem1024 as MlKemParams>::Ciphertext as ByteArray>::LEN);
const _: () = assert!(format::KEM1024_EXPANDED_KEY_LEN == <<MlKem1024 as MlKemParams>::ExpandedKey as ByteArray>::LEN);
const _: () = assert!(format::KEM_PUBLIC_KEY_LEN == <<MlKem768 as MlKemParams>::PublicKey as ByteArray>::LEN);
const _: () = assert!(format::KEM_CIPHERTEXT_LEN == <<MlKem768 as MlKemParams>::Ciphertext as ByteArray>::LEN);
const _: () = assert!(format::KEM_EXPANDED_KEY_LEN == <<MlKem768 as MlKemParams>::ExpandedKey as ByteArray>::LEN);
const _: () = assert!(format::DSA_PUBLIC_KEY_LEN == <<MlDsa65 as MlDsaParams>::PublicKey as ByteArray>::LEN);
const _: () = assert!(format::DSA_SIGNATURE_LEN == <<MlDsa65 as MlDsaParams>::Signature as ByteArray>::LEN);
const _: () = assert!(format::DSA87_PUBLIC_KEY_LEN == <<MlDsa87 as MlDsaParams>::PublicKey as ByteArray>::LEN);
const _: () = assert!(format::DSA87_SIGNATURE_LEN == <<MlDsa87 as MlDsaParams>::Signature as ByteArray>::LEN);
