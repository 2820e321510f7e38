//! Key types: parsed once, ready for repeated use (callers cache them).
use crate::{
    backend::{
        ActiveKem, ActiveSignature, ByteArray, KemBackend, MlDsa65, MlDsa87, MlDsaParams, MlKem1024, MlKem768,
        MlKemParams, SignatureBackend,
    },
    format::{DSA87_PUBLIC_KEY_LEN, DSA_MAX_CONTEXT_LEN, DSA_PUBLIC_KEY_LEN, KEM_SEED_LEN, KID_LEN},
    rng::{OsRandom, RandomSource},
    DsaSeed, Error, KemSeed,
};
use core::fmt;
use sha2::{Digest, Sha256};

/// Key id: the first 16 bytes of SHA-256 of a public key (`kid(ek)`, `kid(pk)`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(pub [u8; KID_LEN]);

impl Kid {
    /// `SHA-256(public_key)[0..16]`.
    pub fn of(public_key: &[u8]) -> Self {
        let digest = Sha256::digest(public_key);
        let mut kid = [0u8; KID_LEN];
        kid.copy_from_slice(&digest[..KID_LEN]);
        Kid(kid)
    }

    /// Exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        bytes.try_into().map(Kid).map_err(|_| Error::InvalidKey)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; KID_LEN] {
        &self.0
    }

    /// Lower-case hex, as shown to people.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({})", self.to_hex())
    }
}

/// A validated ML-KEM encapsulation key of parameter set `P`.
pub struct MlKemPublicKey<P: MlKemParams>
where
    ActiveKem: KemBackend<P>,
{
    bytes: Box<P::PublicKey>,
    parsed: <ActiveKem as KemBackend<P>>::EncapsulationKey,
    kid: Kid,
}

/// An ML-KEM-768 encapsulation key (1184 bytes).
pub type KemPublicKey = MlKemPublicKey<MlKem768>;
/// An ML-KEM-1024 encapsulation key (1568 bytes).
pub type Kem1024PublicKey = MlKemPublicKey<MlKem1024>;

impl<P: MlKemParams> MlKemPublicKey<P>
where
    ActiveKem: KemBackend<P>,
{
    /// Exactly the set's key length, passing the FIPS 203 modulus check,
    /// else [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let bytes = P::PublicKey::try_from(bytes).map_err(|_| Error::InvalidKey)?;
        Self::from_array(Box::new(bytes))
    }

    fn from_array(bytes: Box<P::PublicKey>) -> Result<Self, Error> {
        let parsed = <ActiveKem as KemBackend<P>>::encapsulation_key(&bytes).ok_or(Error::InvalidKey)?;
        let kid = Kid::of((*bytes).as_ref());
        Ok(Self { bytes, parsed, kid })
    }

    /// The encoding (1184 or 1568 bytes).
    pub fn as_bytes(&self) -> &P::PublicKey {
        &self.bytes
    }

    /// `kid(ek)`.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    pub(crate) fn parsed(&self) -> &<ActiveKem as KemBackend<P>>::EncapsulationKey {
        &self.parsed
    }
}

impl<P: MlKemParams> fmt::Debug for MlKemPublicKey<P>
where
    ActiveKem: KemBackend<P>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemPublicKey({}, {})", P::NAME, self.kid.to_hex())
    }
}

/// An ML-KEM decapsulation key of parameter set `P`, expanded once from its seed.
pub struct MlKemSecretKey<P: MlKemParams>
where
    ActiveKem: KemBackend<P>,
{
    dk: <ActiveKem as KemBackend<P>>::DecapsulationKey,
    public: MlKemPublicKey<P>,
}

/// An ML-KEM-768 decapsulation key.
pub type KemSecretKey = MlKemSecretKey<MlKem768>;
/// An ML-KEM-1024 decapsulation key.
pub type Kem1024SecretKey = MlKemSecretKey<MlKem1024>;

impl<P: MlKemParams> MlKemSecretKey<P>
where
    ActiveKem: KemBackend<P>,
{
    /// A new key from a fresh random seed; returns the seed to store.
    pub fn generate() -> Result<(KemSeed, Self), Error> {
        Self::generate_from(&mut OsRandom)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource) -> Result<(KemSeed, Self), Error> {
        let seed = KemSeed::generate_from(rng)?;
        let key = Self::from_seed(&seed)?;
        Ok((seed, key))
    }

    /// The key of a 64-byte seed `d || z`.
    pub fn from_seed(seed: &KemSeed) -> Result<Self, Error> {
        let (dk, ek) = <ActiveKem as KemBackend<P>>::from_seed(seed.expose());
        Ok(Self { dk, public: MlKemPublicKey::from_array(ek)? })
    }

    /// Raw key input: the 64-byte seed, or the expanded key (2400 or 3168
    /// bytes, validated as FIPS 203 §7.3 requires). Any other length is
    /// [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() == KEM_SEED_LEN {
            return Self::from_seed(&KemSeed::from_slice(bytes)?);
        }
        let expanded = zeroize::Zeroizing::new(P::ExpandedKey::try_from(bytes).map_err(|_| Error::InvalidKey)?);
        let (dk, ek) = <ActiveKem as KemBackend<P>>::from_expanded(&expanded).ok_or(Error::InvalidKey)?;
        Ok(Self { dk, public: MlKemPublicKey::from_array(ek)? })
    }

    /// The matching encapsulation key.
    pub fn public_key(&self) -> &MlKemPublicKey<P> {
        &self.public
    }

    /// `kid(ek)`.
    pub fn kid(&self) -> Kid {
        self.public.kid
    }

    pub(crate) fn parsed(&self) -> &<ActiveKem as KemBackend<P>>::DecapsulationKey {
        &self.dk
    }
}

impl<P: MlKemParams> fmt::Debug for MlKemSecretKey<P>
where
    ActiveKem: KemBackend<P>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemSecretKey({}, {}, <redacted>)", P::NAME, self.kid().to_hex())
    }
}

/// A signature parameter set of tenant keys and signature envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SignatureSuite {
    /// ML-DSA-65 (FIPS 204, category 3): envelopes of kind 'G'.
    #[default]
    MlDsa65,
    /// ML-DSA-87 (FIPS 204, category 5, CNSA 2.0): envelopes of kind 'H'.
    MlDsa87,
}

impl SignatureSuite {
    /// Every suite, in the order reports list them.
    pub const ALL: [SignatureSuite; 2] = [SignatureSuite::MlDsa65, SignatureSuite::MlDsa87];

    /// The name used in SQL and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SignatureSuite::MlDsa65 => MlDsa65::NAME,
            SignatureSuite::MlDsa87 => MlDsa87::NAME,
        }
    }

    /// Parses [`SignatureSuite::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Length of the verifying key.
    pub fn public_key_len(self) -> usize {
        match self {
            SignatureSuite::MlDsa65 => <MlDsa65 as MlDsaParams>::PublicKey::LEN,
            SignatureSuite::MlDsa87 => <MlDsa87 as MlDsaParams>::PublicKey::LEN,
        }
    }

    /// Length of a raw signature.
    pub fn signature_len(self) -> usize {
        match self {
            SignatureSuite::MlDsa65 => <MlDsa65 as MlDsaParams>::Signature::LEN,
            SignatureSuite::MlDsa87 => <MlDsa87 as MlDsaParams>::Signature::LEN,
        }
    }

    /// The suite of a verifying key of `len` bytes.
    pub fn of_public_key_len(len: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.public_key_len() == len)
    }
}

/// A decoded verifying key of either parameter set.
enum ParsedVerifyingKey {
    MlDsa65(<ActiveSignature as SignatureBackend<MlDsa65>>::VerifyingKey),
    MlDsa87(<ActiveSignature as SignatureBackend<MlDsa87>>::VerifyingKey),
}

/// An ML-DSA verifying key (ML-DSA-65 or ML-DSA-87, told by its length).
pub struct VerifyingKey {
    bytes: Box<[u8]>,
    parsed: ParsedVerifyingKey,
    kid: Kid,
}

impl VerifyingKey {
    /// Exactly 1952 bytes (ML-DSA-65) or 2592 bytes (ML-DSA-87), else
    /// [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let parsed = match bytes.len() {
            DSA_PUBLIC_KEY_LEN => ParsedVerifyingKey::MlDsa65(<ActiveSignature as SignatureBackend<MlDsa65>>::verifying_key(
                &<MlDsa65 as MlDsaParams>::PublicKey::try_from(bytes).map_err(|_| Error::InvalidKey)?,
            )),
            DSA87_PUBLIC_KEY_LEN => ParsedVerifyingKey::MlDsa87(<ActiveSignature as SignatureBackend<MlDsa87>>::verifying_key(
                &<MlDsa87 as MlDsaParams>::PublicKey::try_from(bytes).map_err(|_| Error::InvalidKey)?,
            )),
            _ => return Err(Error::InvalidKey),
        };
        Ok(Self { bytes: bytes.into(), parsed, kid: Kid::of(bytes) })
    }

    /// Its parameter set.
    pub fn suite(&self) -> SignatureSuite {
        match self.parsed {
            ParsedVerifyingKey::MlDsa65(_) => SignatureSuite::MlDsa65,
            ParsedVerifyingKey::MlDsa87(_) => SignatureSuite::MlDsa87,
        }
    }

    /// The encoding (1952 or 2592 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `kid(pk)`.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    /// FIPS 204 ML-DSA.Verify of a raw signature. A signature of the wrong
    /// length is simply not valid; a context over 255 bytes is an error.
    pub fn verify(&self, message: &[u8], context: &[u8], signature: &[u8]) -> Result<bool, Error> {
        check_context(context)?;
        Ok(match &self.parsed {
            ParsedVerifyingKey::MlDsa65(vk) => verify_as::<MlDsa65>(vk, message, context, signature),
            ParsedVerifyingKey::MlDsa87(vk) => verify_as::<MlDsa87>(vk, message, context, signature),
        })
    }
}

fn verify_as<P: MlDsaParams>(
    vk: &<ActiveSignature as SignatureBackend<P>>::VerifyingKey,
    message: &[u8],
    context: &[u8],
    signature: &[u8],
) -> bool
where
    ActiveSignature: SignatureBackend<P>,
{
    match P::Signature::try_from(signature) {
        Ok(sig) => <ActiveSignature as SignatureBackend<P>>::verify(vk, message, context, &sig),
        Err(_) => false,
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}, {})", self.suite().name(), self.kid.to_hex())
    }
}

/// An expanded signing key of either parameter set.
enum ExpandedSigningKey {
    MlDsa65(<ActiveSignature as SignatureBackend<MlDsa65>>::SigningKey),
    MlDsa87(<ActiveSignature as SignatureBackend<MlDsa87>>::SigningKey),
}

/// An ML-DSA signing key, expanded once from its seed.
pub struct SigningKey {
    sk: ExpandedSigningKey,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// A new ML-DSA-65 key from a fresh random seed; returns the seed to store.
    pub fn generate() -> Result<(DsaSeed, Self), Error> {
        Self::generate_from(&mut OsRandom, SignatureSuite::MlDsa65)
    }

    /// A new key of `suite` from a fresh random seed; returns the seed to store.
    pub fn generate_for(suite: SignatureSuite) -> Result<(DsaSeed, Self), Error> {
        Self::generate_from(&mut OsRandom, suite)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource, suite: SignatureSuite) -> Result<(DsaSeed, Self), Error> {
        let seed = DsaSeed::generate_from(rng)?;
        let key = Self::from_seed_for(suite, &seed);
        Ok((seed, key))
    }

    /// The ML-DSA-65 key of a 32-byte seed `ξ`.
    pub fn from_seed(seed: &DsaSeed) -> Self {
        Self::from_seed_for(SignatureSuite::MlDsa65, seed)
    }

    /// The key of `suite` of a 32-byte seed `ξ`.
    pub fn from_seed_for(suite: SignatureSuite, seed: &DsaSeed) -> Self {
        let (sk, pk, parsed) = match suite {
            SignatureSuite::MlDsa65 => {
                let (sk, pk) = <ActiveSignature as SignatureBackend<MlDsa65>>::from_seed(seed.expose());
                let parsed = ParsedVerifyingKey::MlDsa65(<ActiveSignature as SignatureBackend<MlDsa65>>::verifying_key(&pk));
                (ExpandedSigningKey::MlDsa65(sk), pk.to_vec(), parsed)
            }
            SignatureSuite::MlDsa87 => {
                let (sk, pk) = <ActiveSignature as SignatureBackend<MlDsa87>>::from_seed(seed.expose());
                let parsed = ParsedVerifyingKey::MlDsa87(<ActiveSignature as SignatureBackend<MlDsa87>>::verifying_key(&pk));
                (ExpandedSigningKey::MlDsa87(sk), pk.to_vec(), parsed)
            }
        };
        let kid = Kid::of(&pk);
        Self { sk, verifying: VerifyingKey { bytes: pk.into_boxed_slice(), parsed, kid } }
    }

    /// Raw key input: the 32-byte seed of an ML-DSA-65 key; any other length
    /// is [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_slice_for(SignatureSuite::MlDsa65, bytes)
    }

    /// Raw key input: the 32-byte seed of a key of `suite`.
    pub fn from_slice_for(suite: SignatureSuite, bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_seed_for(suite, &DsaSeed::from_slice(bytes)?))
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Its parameter set.
    pub fn suite(&self) -> SignatureSuite {
        self.verifying.suite()
    }

    /// `kid(pk)`.
    pub fn kid(&self) -> Kid {
        self.verifying.kid
    }

    /// Hedged FIPS 204 ML-DSA.Sign: a raw signature (3309 or 4627 bytes).
    pub fn sign(&self, message: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_from(&mut OsRandom, message, context)
    }

    pub(crate) fn sign_from(
        &self,
        rng: &mut impl RandomSource,
        message: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        check_context(context)?;
        let rnd = zeroize::Zeroizing::new(rng.array::<32>()?);
        let sig = match &self.sk {
            ExpandedSigningKey::MlDsa65(sk) => {
                <ActiveSignature as SignatureBackend<MlDsa65>>::sign(sk, message, context, &rnd).map(|s| s.to_vec())
            }
            ExpandedSigningKey::MlDsa87(sk) => {
                <ActiveSignature as SignatureBackend<MlDsa87>>::sign(sk, message, context, &rnd).map(|s| s.to_vec())
            }
        };
        sig.ok_or(Error::SigningFailed)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, {}, <redacted>)", self.suite().name(), self.kid().to_hex())
    }
}

fn check_context(context: &[u8]) -> Result<(), Error> {
    if context.len() > DSA_MAX_CONTEXT_LEN {
        return Err(Error::ContextTooLong);
    }
    Ok(())
}
