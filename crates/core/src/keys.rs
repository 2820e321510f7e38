//! Key types: parsed once, ready for repeated use (callers cache them).
use crate::{
    backend::{ActiveKem, ActiveSignature, KemBackend, SignatureBackend},
    format::{
        DSA_MAX_CONTEXT_LEN, DSA_PUBLIC_KEY_LEN, DSA_SIGNATURE_LEN, KEM_EXPANDED_KEY_LEN,
        KEM_PUBLIC_KEY_LEN, KEM_SEED_LEN, KID_LEN,
    },
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

/// A validated ML-KEM-768 encapsulation key.
pub struct KemPublicKey {
    bytes: Box<[u8; KEM_PUBLIC_KEY_LEN]>,
    parsed: <ActiveKem as KemBackend>::EncapsulationKey,
    kid: Kid,
}

impl KemPublicKey {
    /// Exactly 1184 bytes passing the FIPS 203 modulus check, else [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: &[u8; KEM_PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
        Self::from_array(Box::new(*bytes))
    }

    fn from_array(bytes: Box<[u8; KEM_PUBLIC_KEY_LEN]>) -> Result<Self, Error> {
        let parsed = ActiveKem::encapsulation_key(&bytes).ok_or(Error::InvalidKey)?;
        let kid = Kid::of(&bytes[..]);
        Ok(Self { bytes, parsed, kid })
    }

    /// The 1184-byte encoding.
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// `kid(ek)`.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    pub(crate) fn parsed(&self) -> &<ActiveKem as KemBackend>::EncapsulationKey {
        &self.parsed
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemPublicKey({})", self.kid.to_hex())
    }
}

/// An ML-KEM-768 decapsulation key, expanded once from its seed.
pub struct KemSecretKey {
    dk: <ActiveKem as KemBackend>::DecapsulationKey,
    public: KemPublicKey,
}

impl KemSecretKey {
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
        let (dk, ek) = ActiveKem::from_seed(seed.expose());
        Ok(Self { dk, public: KemPublicKey::from_array(ek)? })
    }

    /// Raw key input: the 64-byte seed, or the 2400-byte expanded key (validated
    /// as FIPS 203 §7.3 requires). Any other length is [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.len() {
            KEM_SEED_LEN => Self::from_seed(&KemSeed::from_slice(bytes)?),
            KEM_EXPANDED_KEY_LEN => {
                let expanded: &[u8; KEM_EXPANDED_KEY_LEN] =
                    bytes.try_into().map_err(|_| Error::InvalidKey)?;
                let (dk, ek) = ActiveKem::from_expanded(expanded).ok_or(Error::InvalidKey)?;
                Ok(Self { dk, public: KemPublicKey::from_array(ek)? })
            }
            _ => Err(Error::InvalidKey),
        }
    }

    /// The matching encapsulation key.
    pub fn public_key(&self) -> &KemPublicKey {
        &self.public
    }

    /// `kid(ek)`.
    pub fn kid(&self) -> Kid {
        self.public.kid
    }

    pub(crate) fn parsed(&self) -> &<ActiveKem as KemBackend>::DecapsulationKey {
        &self.dk
    }
}

impl fmt::Debug for KemSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemSecretKey({}, <redacted>)", self.kid().to_hex())
    }
}

/// An ML-DSA-65 verifying key.
pub struct VerifyingKey {
    bytes: Box<[u8; DSA_PUBLIC_KEY_LEN]>,
    parsed: <ActiveSignature as SignatureBackend>::VerifyingKey,
    kid: Kid,
}

impl VerifyingKey {
    /// Exactly 1952 bytes, else [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: &[u8; DSA_PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
        Ok(Self::from_array(Box::new(*bytes)))
    }

    fn from_array(bytes: Box<[u8; DSA_PUBLIC_KEY_LEN]>) -> Self {
        let parsed = ActiveSignature::verifying_key(&bytes);
        let kid = Kid::of(&bytes[..]);
        Self { bytes, parsed, kid }
    }

    /// The 1952-byte encoding.
    pub fn as_bytes(&self) -> &[u8; DSA_PUBLIC_KEY_LEN] {
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
        let Ok(sig) = <&[u8; DSA_SIGNATURE_LEN]>::try_from(signature) else {
            return Ok(false);
        };
        Ok(ActiveSignature::verify(&self.parsed, message, context, sig))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.kid.to_hex())
    }
}

/// An ML-DSA-65 signing key, expanded once from its seed.
pub struct SigningKey {
    sk: <ActiveSignature as SignatureBackend>::SigningKey,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// A new key from a fresh random seed; returns the seed to store.
    pub fn generate() -> Result<(DsaSeed, Self), Error> {
        Self::generate_from(&mut OsRandom)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource) -> Result<(DsaSeed, Self), Error> {
        let seed = DsaSeed::generate_from(rng)?;
        let key = Self::from_seed(&seed);
        Ok((seed, key))
    }

    /// The key of a 32-byte seed `ξ`.
    pub fn from_seed(seed: &DsaSeed) -> Self {
        let (sk, pk) = ActiveSignature::from_seed(seed.expose());
        Self { sk, verifying: VerifyingKey::from_array(pk) }
    }

    /// Raw key input: the 32-byte seed; any other length is [`Error::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_seed(&DsaSeed::from_slice(bytes)?))
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// `kid(pk)`.
    pub fn kid(&self) -> Kid {
        self.verifying.kid
    }

    /// Hedged FIPS 204 ML-DSA.Sign: a raw 3309-byte signature.
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
        ActiveSignature::sign(&self.sk, message, context, &rnd).map(|sig| sig.to_vec()).ok_or(Error::SigningFailed)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.kid().to_hex())
    }
}

fn check_context(context: &[u8]) -> Result<(), Error> {
    if context.len() > DSA_MAX_CONTEXT_LEN {
        return Err(Error::ContextTooLong);
    }
    Ok(())
}
