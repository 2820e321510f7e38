//! The three key encapsulation suites of sealed envelopes: ML-KEM-768 and
//! ML-KEM-1024 alone (FIPS 203) and X-Wing (X25519 + ML-KEM-768,
//! draft-connolly-cfrg-xwing-kem-06).
//! X-Wing is the draft's composition of three primitives from well-kept
//! crates: ML-KEM-768 through the same backend seam as the ML-KEM suite
//! (libcrux by default), X25519 from `x25519-dalek`, SHAKE256 and SHA3-256
//! from `libcrux-sha3`. Keys are expanded once, when parsed or derived from
//! their seed, and kept: RustCrypto's `x-wing` crate expands a decapsulation
//! key from its seed at every call. That crate stays as a test oracle: the
//! draft's vectors and random cases must agree with it byte for byte.
//! [`RecipientKey`] and [`RecipientSecret`] hold a key of either suite;
//! [`Recipient`] and [`Opener`] borrow one, and
//! are what [`crate::sealed`] takes, so callers holding a concrete key type
//! pass it as it is.
use crate::{
    format::{
        KEM1024_CIPHERTEXT_LEN, KEM1024_EXPANDED_KEY_LEN, KEM1024_PUBLIC_KEY_LEN, KEM_CIPHERTEXT_LEN,
        KEM_EXPANDED_KEY_LEN, KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN, XWING_CIPHERTEXT_LEN, XWING_PUBLIC_KEY_LEN,
        XWING_SEED_LEN,
    },
    backend::{ActiveKem, KemBackend, MlKem1024, MlKem768},
    rng::{OsRandom, RandomSource},
    secret::{SharedSecret, SuiteSeed, XWingSeed},
    Error, Kem1024PublicKey, Kem1024SecretKey, KemPublicKey, KemSecretKey, KemSeed, Kid,
};
use core::fmt;
use zeroize::{Zeroize, Zeroizing};

/// A key encapsulation suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// ML-KEM-768 alone.
    MlKem768,
    /// ML-KEM-1024 alone (CNSA 2.0).
    MlKem1024,
    /// X-Wing: X25519 and ML-KEM-768 combined with SHA3-256.
    XWing,
}

impl Suite {
    /// Every suite, in the order reports list them.
    pub const ALL: [Suite; 3] = [Suite::MlKem768, Suite::MlKem1024, Suite::XWing];

    /// The name used in SQL and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Suite::MlKem768 => "ml-kem-768",
            Suite::MlKem1024 => "ml-kem-1024",
            Suite::XWing => "x-wing",
        }
    }

    /// Parses [`Suite::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Length of the KEM ciphertext in an envelope.
    pub fn ciphertext_len(self) -> usize {
        match self {
            Suite::MlKem768 => KEM_CIPHERTEXT_LEN,
            Suite::MlKem1024 => KEM1024_CIPHERTEXT_LEN,
            Suite::XWing => XWING_CIPHERTEXT_LEN,
        }
    }

    /// Length of the public key.
    pub fn public_key_len(self) -> usize {
        match self {
            Suite::MlKem768 => KEM_PUBLIC_KEY_LEN,
            Suite::MlKem1024 => KEM1024_PUBLIC_KEY_LEN,
            Suite::XWing => XWING_PUBLIC_KEY_LEN,
        }
    }

    /// Length of the stored seed.
    pub fn seed_len(self) -> usize {
        match self {
            Suite::MlKem768 | Suite::MlKem1024 => KEM_SEED_LEN,
            Suite::XWing => XWING_SEED_LEN,
        }
    }
}

/// A validated X-Wing encapsulation key (1216 bytes).
pub struct XWingPublicKey {
    bytes: Box<[u8; XWING_PUBLIC_KEY_LEN]>,
    pk_m: <ActiveKem as KemBackend<MlKem768>>::EncapsulationKey,
    pk_x: x25519_dalek::PublicKey,
    /// `pk_x` on the Edwards form, for sealing: a variable-base
    /// multiplication there and back to the Montgomery u-coordinate gives
    /// X25519's result (for every clamped scalar, torsion included) about a
    /// fifth faster than the Montgomery ladder here (docs/PERFORMANCE.md).
    /// None for a u-coordinate on the twist: sealing then uses the ladder.
    pk_x_edwards: Option<curve25519_dalek::EdwardsPoint>,
    kid: Kid,
}

/// X25519(k, pk) for the `pk` of [`XWingPublicKey`]: the Edwards form when
/// it has one, else the ladder. Both give the same 32 bytes.
fn x25519_to(k: &x25519_dalek::StaticSecret, pk: &x25519_dalek::PublicKey, edwards: Option<&curve25519_dalek::EdwardsPoint>) -> Zeroizing<[u8; 32]> {
    match edwards {
        Some(point) => {
            let scalar = Zeroizing::new(k.to_bytes());
            let mut shared = point.mul_clamped(*scalar).to_montgomery();
            let out = Zeroizing::new(shared.to_bytes());
            shared.0.zeroize();
            out
        }
        None => Zeroizing::new(k.diffie_hellman(pk).to_bytes()),
    }
}

/// The draft's domain separation label, `\.//^\`.
const XWING_LABEL: &[u8; 6] = b"\\.//^\\";

/// The draft's combiner: SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ label).
fn xwing_combiner(ss_m: &SharedSecret, ss_x: &[u8; 32], ct_x: &[u8; 32], pk_x: &[u8; 32]) -> SharedSecret {
    let mut input = Zeroizing::new([0u8; 32 * 4 + XWING_LABEL.len()]);
    input[..32].copy_from_slice(ss_m.expose());
    input[32..64].copy_from_slice(ss_x);
    input[64..96].copy_from_slice(ct_x);
    input[96..128].copy_from_slice(pk_x);
    input[128..].copy_from_slice(XWING_LABEL);
    let ss = Zeroizing::new(libcrux_sha3::sha256(&input[..]));
    SharedSecret::from_array(&ss)
}

impl XWingPublicKey {
    /// Exactly 1216 bytes whose ML-KEM-768 half passes the FIPS 203 modulus
    /// check, else [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: &[u8; XWING_PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
        let (m, x) = array.split_at(KEM_PUBLIC_KEY_LEN);
        let pk_m = <ActiveKem as KemBackend<MlKem768>>::encapsulation_key(m.try_into().map_err(|_| Error::InvalidKey)?)
            .ok_or(Error::InvalidKey)?;
        let pk_x: [u8; 32] = x.try_into().map_err(|_| Error::InvalidKey)?;
        let pk_x_edwards = curve25519_dalek::montgomery::MontgomeryPoint(pk_x).to_edwards(0);
        Ok(Self { bytes: Box::new(*array), pk_m, pk_x: pk_x.into(), pk_x_edwards, kid: Kid::of(bytes) })
    }

    /// The 1216-byte encoding.
    pub fn as_bytes(&self) -> &[u8; XWING_PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// `kid(pk)`.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    /// The draft's Encapsulate with 64 random bytes: the first 32 for
    /// ML-KEM-768, the last 32 the ephemeral X25519 secret.
    fn encapsulate(&self, rng: &mut impl RandomSource) -> Result<(Vec<u8>, SharedSecret), Error> {
        let eseed = Zeroizing::new(rng.array::<64>()?);
        let mut m = Zeroizing::new([0u8; 32]);
        m.copy_from_slice(&eseed[..32]);
        let mut ek = [0u8; 32];
        ek.copy_from_slice(&eseed[32..]);
        let ek_x = x25519_dalek::StaticSecret::from(ek);
        ek.zeroize();
        let (ct_m, ss_m) = <ActiveKem as KemBackend<MlKem768>>::encapsulate(&self.pk_m, &m);
        let ct_x = x25519_dalek::PublicKey::from(&ek_x);
        let ss_x = x25519_to(&ek_x, &self.pk_x, self.pk_x_edwards.as_ref());
        let ss = xwing_combiner(&ss_m, &ss_x, ct_x.as_bytes(), self.pk_x.as_bytes());
        let mut ct = Vec::with_capacity(XWING_CIPHERTEXT_LEN);
        ct.extend_from_slice(&ct_m[..]);
        ct.extend_from_slice(ct_x.as_bytes());
        Ok((ct, ss))
    }
}

impl fmt::Debug for XWingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XWingPublicKey({})", self.kid.to_hex())
    }
}

/// An X-Wing decapsulation key (from its 32-byte seed), expanded once: the
/// ML-KEM-768 key, the X25519 secret (both wiped on drop) and the public key.
pub struct XWingSecretKey {
    sk_m: <ActiveKem as KemBackend<MlKem768>>::DecapsulationKey,
    sk_x: x25519_dalek::StaticSecret,
    public: XWingPublicKey,
}

impl XWingSecretKey {
    /// A new key from a fresh random seed; returns the seed to store.
    pub fn generate() -> Result<(XWingSeed, Self), Error> {
        Self::generate_from(&mut OsRandom)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource) -> Result<(XWingSeed, Self), Error> {
        let seed = XWingSeed::generate_from(rng)?;
        let key = Self::from_seed(&seed)?;
        Ok((seed, key))
    }

    /// The key of a 32-byte seed: the draft's expandDecapsulationKey,
    /// SHAKE256(seed, 96) = ML-KEM-768 seed d ‖ z (64) ‖ X25519 secret (32).
    pub fn from_seed(seed: &XWingSeed) -> Result<Self, Error> {
        let expanded = Zeroizing::new(libcrux_sha3::shake256::<96>(seed.expose()));
        let mut d_z = Zeroizing::new([0u8; KEM_SEED_LEN]);
        d_z.copy_from_slice(&expanded[..KEM_SEED_LEN]);
        let mut x = [0u8; 32];
        x.copy_from_slice(&expanded[KEM_SEED_LEN..]);
        let sk_x = x25519_dalek::StaticSecret::from(x);
        x.zeroize();
        let (sk_m, pk_m) = <ActiveKem as KemBackend<MlKem768>>::from_seed(&d_z);
        let pk_x = x25519_dalek::PublicKey::from(&sk_x);
        let mut pk = [0u8; XWING_PUBLIC_KEY_LEN];
        pk[..KEM_PUBLIC_KEY_LEN].copy_from_slice(&pk_m[..]);
        pk[KEM_PUBLIC_KEY_LEN..].copy_from_slice(pk_x.as_bytes());
        let public = XWingPublicKey::from_slice(&pk)?;
        Ok(Self { sk_m, sk_x, public })
    }

    /// The matching encapsulation key.
    pub fn public_key(&self) -> &XWingPublicKey {
        &self.public
    }

    /// `kid(pk)`.
    pub fn kid(&self) -> Kid {
        self.public.kid
    }

    /// The draft's Decapsulate (ML-KEM-768's implicit rejection; an X25519
    /// share of low order gives the all-zero ss_X, as the draft allows).
    fn decapsulate(&self, ct: &[u8]) -> Result<SharedSecret, Error> {
        let ct: &[u8; XWING_CIPHERTEXT_LEN] = ct.try_into().map_err(|_| Error::DecryptionFailed)?;
        let (ct_m, ct_x) = ct.split_at(KEM_CIPHERTEXT_LEN);
        let ct_m: &[u8; KEM_CIPHERTEXT_LEN] = ct_m.try_into().map_err(|_| Error::DecryptionFailed)?;
        let ct_x: [u8; 32] = ct_x.try_into().map_err(|_| Error::DecryptionFailed)?;
        let ss_m = <ActiveKem as KemBackend<MlKem768>>::decapsulate(&self.sk_m, ct_m);
        let ss_x = self.sk_x.diffie_hellman(&ct_x.into());
        Ok(xwing_combiner(&ss_m, ss_x.as_bytes(), &ct_x, self.public.pk_x.as_bytes()))
    }
}

impl fmt::Debug for XWingSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XWingSecretKey({}, <redacted>)", self.kid().to_hex())
    }
}

/// A public key of either suite, parsed from raw bytes.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // parsed once, then borrowed; never moved in a hot loop
pub enum RecipientKey {
    /// 1184 bytes.
    MlKem768(KemPublicKey),
    /// 1568 bytes.
    MlKem1024(Kem1024PublicKey),
    /// 1216 bytes.
    XWing(XWingPublicKey),
}

impl RecipientKey {
    /// 1184 bytes (ML-KEM-768), 1568 bytes (ML-KEM-1024) or 1216 bytes
    /// (X-Wing), validated; anything else is [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.len() {
            KEM_PUBLIC_KEY_LEN => Ok(RecipientKey::MlKem768(KemPublicKey::from_slice(bytes)?)),
            KEM1024_PUBLIC_KEY_LEN => Ok(RecipientKey::MlKem1024(Kem1024PublicKey::from_slice(bytes)?)),
            XWING_PUBLIC_KEY_LEN => Ok(RecipientKey::XWing(XWingPublicKey::from_slice(bytes)?)),
            _ => Err(Error::InvalidKey),
        }
    }

    /// The key as [`crate::sealed`] takes it.
    pub fn recipient(&self) -> Recipient<'_> {
        match self {
            RecipientKey::MlKem768(k) => Recipient::MlKem768(k),
            RecipientKey::MlKem1024(k) => Recipient::MlKem1024(k),
            RecipientKey::XWing(k) => Recipient::XWing(k),
        }
    }

    /// Its kid.
    pub fn kid(&self) -> Kid {
        self.recipient().kid()
    }

    /// Its suite.
    pub fn suite(&self) -> Suite {
        self.recipient().suite()
    }
}

/// A secret key of either suite.
#[allow(clippy::large_enum_variant)] // parsed once, then borrowed (the extension caches it behind an Rc)
pub enum RecipientSecret {
    /// From a 64-byte seed or a 2400-byte expanded key.
    MlKem768(KemSecretKey),
    /// From a 64-byte seed or a 3168-byte expanded key.
    MlKem1024(Kem1024SecretKey),
    /// From a 32-byte seed.
    XWing(XWingSecretKey),
}

impl RecipientSecret {
    /// A new key of `suite`; returns the seed to store (wiped on drop).
    pub fn generate(suite: Suite) -> Result<(SuiteSeed, Self), Error> {
        Self::generate_from(&mut OsRandom, suite)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource, suite: Suite) -> Result<(SuiteSeed, Self), Error> {
        Ok(match suite {
            Suite::MlKem768 => {
                let (seed, key) = KemSecretKey::generate_from(rng)?;
                (SuiteSeed::from_slice(seed.expose()), RecipientSecret::MlKem768(key))
            }
            Suite::MlKem1024 => {
                let (seed, key) = Kem1024SecretKey::generate_from(rng)?;
                (SuiteSeed::from_slice(seed.expose()), RecipientSecret::MlKem1024(key))
            }
            Suite::XWing => {
                let (seed, key) = XWingSecretKey::generate_from(rng)?;
                (SuiteSeed::from_slice(seed.expose()), RecipientSecret::XWing(key))
            }
        })
    }

    /// The key of a stored seed of `suite` (64 or 32 bytes).
    pub fn from_seed(suite: Suite, seed: &[u8]) -> Result<Self, Error> {
        match suite {
            Suite::MlKem768 => Ok(RecipientSecret::MlKem768(KemSecretKey::from_seed(&KemSeed::from_slice(seed)?)?)),
            Suite::MlKem1024 => Ok(RecipientSecret::MlKem1024(Kem1024SecretKey::from_seed(&KemSeed::from_slice(seed)?)?)),
            Suite::XWing => Ok(RecipientSecret::XWing(XWingSecretKey::from_seed(&XWingSeed::from_slice(seed)?)?)),
        }
    }

    /// Raw key input: an ML-KEM-768 seed (64 bytes) or expanded key (2400),
    /// an ML-KEM-1024 expanded key (3168), or an X-Wing seed (32 bytes).
    /// A 64-byte seed is read as ML-KEM-768: a caller that knows the suite
    /// (from an envelope's kind) uses [`RecipientSecret::from_slice_for`].
    /// Any other length is [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.len() {
            KEM_SEED_LEN | KEM_EXPANDED_KEY_LEN => Ok(RecipientSecret::MlKem768(KemSecretKey::from_slice(bytes)?)),
            KEM1024_EXPANDED_KEY_LEN => Ok(RecipientSecret::MlKem1024(Kem1024SecretKey::from_slice(bytes)?)),
            XWING_SEED_LEN => Self::from_seed(Suite::XWing, bytes),
            _ => Err(Error::InvalidKey),
        }
    }

    /// Raw key input of a known `suite`: its seed, or (ML-KEM) its
    /// expanded key. Anything else is [`Error::InvalidKey`].
    pub fn from_slice_for(suite: Suite, bytes: &[u8]) -> Result<Self, Error> {
        match suite {
            Suite::MlKem768 => Ok(RecipientSecret::MlKem768(KemSecretKey::from_slice(bytes)?)),
            Suite::MlKem1024 => Ok(RecipientSecret::MlKem1024(Kem1024SecretKey::from_slice(bytes)?)),
            Suite::XWing => Self::from_seed(Suite::XWing, bytes),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> Recipient<'_> {
        match self {
            RecipientSecret::MlKem768(k) => Recipient::MlKem768(k.public_key()),
            RecipientSecret::MlKem1024(k) => Recipient::MlKem1024(k.public_key()),
            RecipientSecret::XWing(k) => Recipient::XWing(k.public_key()),
        }
    }

    /// Its kid.
    pub fn kid(&self) -> Kid {
        self.public_key().kid()
    }

    /// Its suite.
    pub fn suite(&self) -> Suite {
        self.public_key().suite()
    }
}

impl fmt::Debug for RecipientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientSecret({}, {}, <redacted>)", self.suite().name(), self.kid().to_hex())
    }
}

/// A borrowed public key of either suite: what sealing takes.
#[derive(Clone, Copy, Debug)]
pub enum Recipient<'a> {
    /// ML-KEM-768.
    MlKem768(&'a KemPublicKey),
    /// ML-KEM-1024.
    MlKem1024(&'a Kem1024PublicKey),
    /// X-Wing.
    XWing(&'a XWingPublicKey),
}

impl Recipient<'_> {
    /// Its kid.
    pub fn kid(&self) -> Kid {
        match self {
            Recipient::MlKem768(k) => k.kid(),
            Recipient::MlKem1024(k) => k.kid(),
            Recipient::XWing(k) => k.kid(),
        }
    }

    /// Its suite.
    pub fn suite(&self) -> Suite {
        match self {
            Recipient::MlKem768(_) => Suite::MlKem768,
            Recipient::MlKem1024(_) => Suite::MlKem1024,
            Recipient::XWing(_) => Suite::XWing,
        }
    }

    /// The encoded public key.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Recipient::MlKem768(k) => &k.as_bytes()[..],
            Recipient::MlKem1024(k) => &k.as_bytes()[..],
            Recipient::XWing(k) => &k.as_bytes()[..],
        }
    }

    /// A fresh KEM ciphertext and the shared secret it carries.
    pub(crate) fn encapsulate(&self, rng: &mut impl RandomSource) -> Result<(Vec<u8>, SharedSecret), Error> {
        match self {
            Recipient::MlKem768(k) => {
                let m = Zeroizing::new(rng.array::<32>()?);
                let (ct, ss) = <ActiveKem as KemBackend<MlKem768>>::encapsulate(k.parsed(), &m);
                Ok((ct.to_vec(), ss))
            }
            Recipient::MlKem1024(k) => {
                let m = Zeroizing::new(rng.array::<32>()?);
                let (ct, ss) = <ActiveKem as KemBackend<MlKem1024>>::encapsulate(k.parsed(), &m);
                Ok((ct.to_vec(), ss))
            }
            Recipient::XWing(k) => k.encapsulate(rng),
        }
    }
}

impl<'a> From<&'a KemPublicKey> for Recipient<'a> {
    fn from(k: &'a KemPublicKey) -> Self {
        Recipient::MlKem768(k)
    }
}
impl<'a> From<&'a Kem1024PublicKey> for Recipient<'a> {
    fn from(k: &'a Kem1024PublicKey) -> Self {
        Recipient::MlKem1024(k)
    }
}
impl<'a> From<&'a XWingPublicKey> for Recipient<'a> {
    fn from(k: &'a XWingPublicKey) -> Self {
        Recipient::XWing(k)
    }
}
impl<'a> From<&'a RecipientKey> for Recipient<'a> {
    fn from(k: &'a RecipientKey) -> Self {
        k.recipient()
    }
}

/// A borrowed secret key of either suite: what opening takes.
#[derive(Clone, Copy)]
pub enum Opener<'a> {
    /// ML-KEM-768.
    MlKem768(&'a KemSecretKey),
    /// ML-KEM-1024.
    MlKem1024(&'a Kem1024SecretKey),
    /// X-Wing.
    XWing(&'a XWingSecretKey),
}

impl Opener<'_> {
    pub(crate) fn kid(&self) -> Kid {
        match self {
            Opener::MlKem768(k) => k.kid(),
            Opener::MlKem1024(k) => k.kid(),
            Opener::XWing(k) => k.kid(),
        }
    }

    pub(crate) fn suite(&self) -> Suite {
        match self {
            Opener::MlKem768(_) => Suite::MlKem768,
            Opener::MlKem1024(_) => Suite::MlKem1024,
            Opener::XWing(_) => Suite::XWing,
        }
    }

    /// The shared secret of a KEM ciphertext of this suite.
    pub(crate) fn decapsulate(&self, ct: &[u8]) -> Result<SharedSecret, Error> {
        match self {
            Opener::MlKem768(k) => {
                let ct: &[u8; KEM_CIPHERTEXT_LEN] = ct.try_into().map_err(|_| Error::DecryptionFailed)?;
                Ok(<ActiveKem as KemBackend<MlKem768>>::decapsulate(k.parsed(), ct))
            }
            Opener::MlKem1024(k) => {
                let ct: &[u8; KEM1024_CIPHERTEXT_LEN] = ct.try_into().map_err(|_| Error::DecryptionFailed)?;
                Ok(<ActiveKem as KemBackend<MlKem1024>>::decapsulate(k.parsed(), ct))
            }
            Opener::XWing(k) => k.decapsulate(ct),
        }
    }
}

impl<'a> From<&'a KemSecretKey> for Opener<'a> {
    fn from(k: &'a KemSecretKey) -> Self {
        Opener::MlKem768(k)
    }
}
impl<'a> From<&'a Kem1024SecretKey> for Opener<'a> {
    fn from(k: &'a Kem1024SecretKey) -> Self {
        Opener::MlKem1024(k)
    }
}
impl<'a> From<&'a XWingSecretKey> for Opener<'a> {
    fn from(k: &'a XWingSecretKey) -> Self {
        Opener::XWing(k)
    }
}
impl<'a> From<&'a RecipientSecret> for Opener<'a> {
    fn from(k: &'a RecipientSecret) -> Self {
        match k {
            RecipientSecret::MlKem768(k) => Opener::MlKem768(k),
            RecipientSecret::MlKem1024(k) => Opener::MlKem1024(k),
            RecipientSecret::XWing(k) => Opener::XWing(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out fixed bytes: the draft's encapsulation randomness.
    struct Fixed(Vec<u8>);

    impl RandomSource for Fixed {
        fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
            let rest = self.0.split_off(out.len());
            out.copy_from_slice(&self.0);
            self.0 = rest;
            Ok(())
        }
    }

    fn unhex(s: &serde_json::Value) -> Vec<u8> {
        hex::decode(s.as_str().unwrap()).unwrap()
    }

    /// draft-connolly-cfrg-xwing-kem-06's vectors (tests/data/xwing).
    #[test]
    fn xwing_draft_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/xwing/test-vectors.json");
        let vectors: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let vectors = vectors.as_array().unwrap();
        assert_eq!(vectors.len(), 3);
        for v in vectors {
            let seed = XWingSeed::from_slice(&unhex(&v["sk"])).unwrap();
            let key = XWingSecretKey::from_seed(&seed).unwrap();
            assert_eq!(&key.public_key().as_bytes()[..], &unhex(&v["pk"])[..]);
            assert_eq!(key.kid(), Kid::of(&unhex(&v["pk"])));
            let public = RecipientKey::from_slice(&unhex(&v["pk"])).unwrap();
            assert_eq!(public.suite(), Suite::XWing);
            let (ct, ss) = public.recipient().encapsulate(&mut Fixed(unhex(&v["eseed"]))).unwrap();
            assert_eq!(ct, unhex(&v["ct"]));
            assert_eq!(&ss.expose()[..], &unhex(&v["ss"])[..]);
            let opened = Opener::from(&key).decapsulate(&unhex(&v["ct"])).unwrap();
            assert_eq!(&opened.expose()[..], &unhex(&v["ss"])[..]);
            // The raw-key path takes the same 32-byte seed.
            assert_eq!(RecipientSecret::from_slice(&unhex(&v["sk"])).unwrap().kid(), key.kid());
        }
    }

    /// The composition agrees with RustCrypto's `x-wing` crate (the
    /// oracle) on random seeds and encapsulation randomness, and on
    /// ciphertexts with a flipped bit in either half (ML-KEM's implicit
    /// rejection, X25519 on another point) or a low-order X25519 share.
    #[test]
    fn xwing_agrees_with_the_x_wing_crate() {
        use x_wing::{Decapsulate, KeyExport, KeyInit};
        let mut rng = crate::test_rng::SeededRandom::new("x-wing against the x-wing crate");
        for case in 0..64 {
            let seed = XWingSeed::generate_from(&mut rng).unwrap();
            let eseed = rng.array::<64>().unwrap();
            let ours = XWingSecretKey::from_seed(&seed).unwrap();
            let oracle = x_wing::DecapsulationKey::new(&(*seed.expose()).into());
            let oracle_pk: [u8; XWING_PUBLIC_KEY_LEN] = {
                use x_wing::Decapsulator;
                oracle.encapsulation_key().to_bytes().into()
            };
            assert_eq!(ours.public_key().as_bytes(), &oracle_pk, "case {case}: public key");
            let (ct, ss) = ours.public_key().encapsulate(&mut Fixed(eseed.to_vec())).unwrap();
            let (oracle_ct, oracle_ss) = {
                use x_wing::Decapsulator;
                oracle.encapsulation_key().encapsulate_deterministic(&eseed.into())
            };
            assert_eq!(ct, oracle_ct.to_vec(), "case {case}: ciphertext");
            assert_eq!(&ss.expose()[..], &oracle_ss[..], "case {case}: shared secret");
            let mut variants = vec![ct.clone()];
            let mut flipped = ct.clone();
            flipped[case * 17 % KEM_CIPHERTEXT_LEN] ^= 1 << (case % 8);
            variants.push(flipped);
            let mut flipped = ct.clone();
            flipped[KEM_CIPHERTEXT_LEN + case % 32] ^= 1 << (case % 8);
            variants.push(flipped);
            let mut low_order = ct.clone();
            low_order[KEM_CIPHERTEXT_LEN..].fill(0);
            variants.push(low_order);
            for (i, c) in variants.iter().enumerate() {
                let mine = ours.decapsulate(c).unwrap();
                let theirs = oracle.decapsulate(&<[u8; XWING_CIPHERTEXT_LEN]>::try_from(&c[..]).unwrap().into());
                assert_eq!(&mine.expose()[..], &theirs[..], "case {case}, variant {i}: decapsulation");
            }
        }
    }

    /// The Edwards-form shortcut of sealing gives X25519's bytes for every
    /// u-coordinate: random ones (about half on the twist, which take the
    /// ladder), low-order points, non-canonical encodings and the top bit set.
    #[test]
    fn x25519_edwards_shortcut_is_x25519() {
        let mut rng = crate::test_rng::SeededRandom::new("x25519 on the edwards form");
        let mut specials: Vec<[u8; 32]> = vec![[0; 32], [0xff; 32], [0x7f; 32]];
        let mut one = [0u8; 32];
        one[0] = 1;
        specials.push(one);
        // p - 1 and p (= 0), p + 1: non-canonical encodings.
        let mut p_minus_1 = [0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        specials.push(p_minus_1);
        let mut p = p_minus_1;
        p[0] = 0xed;
        specials.push(p);
        let mut p_plus_1 = p_minus_1;
        p_plus_1[0] = 0xee;
        specials.push(p_plus_1);
        // A point of order 8 (RFC 7748's list of low-order u-coordinates).
        specials.push(hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap().try_into().unwrap());
        let mut on_curve = 0;
        for i in 0..400 {
            let u: [u8; 32] = if i < specials.len() { specials[i] } else { rng.array().unwrap() };
            let k = x25519_dalek::StaticSecret::from(rng.array::<32>().unwrap());
            let pk = x25519_dalek::PublicKey::from(u);
            let edwards = curve25519_dalek::montgomery::MontgomeryPoint(u).to_edwards(0);
            on_curve += usize::from(edwards.is_some());
            assert_eq!(*x25519_to(&k, &pk, edwards.as_ref()), k.diffie_hellman(&pk).to_bytes(), "case {i}");
        }
        assert!(on_curve > 100 && on_curve < 350, "{on_curve} of 400 on the curve");
    }

    #[test]
    fn raw_keys_by_length() {
        for len in [0, 31, 33, 63, 65, 1183, 1185, 1215, 1217] {
            assert_eq!(RecipientKey::from_slice(&vec![0u8; len]).unwrap_err(), Error::InvalidKey);
        }
        for len in [0, 31, 33, 63, 65, 2399] {
            assert!(RecipientSecret::from_slice(&vec![1u8; len]).is_err());
        }
        // An X-Wing key whose ML-KEM half fails the modulus check.
        assert_eq!(XWingPublicKey::from_slice(&[0xFF; XWING_PUBLIC_KEY_LEN]).unwrap_err(), Error::InvalidKey);
    }
}
