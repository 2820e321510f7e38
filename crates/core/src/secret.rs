//! Secret byte strings: zeroized on drop, heap-held so that moves do not
//! leave copies on the stack, `Debug` redacted, compared in constant time.
use crate::{
    format::{DSA_SEED_LEN, KEM_SEED_LEN, KEY_LEN, XWING_SEED_LEN},
    rng::{OsRandom, RandomSource},
    Error,
};
use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        pub struct $name(Box<Zeroizing<[u8; $len]>>);

        #[allow(dead_code)] // internal secret types use only part of this
        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Takes exactly `LEN` bytes; any other length is [`Error::InvalidKey`].
            pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
                let bytes: &[u8; $len] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
                Ok(Self::from_array(bytes))
            }

            pub(crate) fn from_array(bytes: &[u8; $len]) -> Self {
                let mut out = Self(Box::new(Zeroizing::new([0u8; $len])));
                out.0.copy_from_slice(bytes);
                out
            }

            /// A fresh value from the operating system's CSPRNG.
            pub fn generate() -> Result<Self, Error> {
                Self::generate_from(&mut OsRandom)
            }

            pub(crate) fn generate_from(rng: &mut impl RandomSource) -> Result<Self, Error> {
                let mut out = Self(Box::new(Zeroizing::new([0u8; $len])));
                rng.fill(&mut out.0[..])?;
                Ok(out)
            }

            /// The secret bytes. Callers must not log or display them.
            pub fn expose(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0[..].ct_eq(&other.0[..])
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $name {}
    };
}

secret_bytes!(
    /// ML-KEM-768 key generation seed `d || z` (FIPS 203), the stored form of
    /// an ML-KEM secret key.
    KemSeed,
    KEM_SEED_LEN
);
secret_bytes!(
    /// X-Wing secret key: the 32-byte seed the draft expands into an
    /// ML-KEM-768 and an X25519 key (the stored form of an X-Wing key).
    XWingSeed,
    XWING_SEED_LEN
);
secret_bytes!(
    /// ML-DSA-65 key generation seed `ξ` (FIPS 204), the stored form of a
    /// signing key.
    DsaSeed,
    DSA_SEED_LEN
);
secret_bytes!(
    /// A 32-byte symmetric key: a tenant's data encryption key, or the master
    /// data key.
    Dek,
    KEY_LEN
);
secret_bytes!(
    /// A per-envelope ChaCha20-Poly1305 key derived with HKDF.
    DerivedKey,
    KEY_LEN
);
secret_bytes!(
    /// An ML-KEM-768 shared secret.
    SharedSecret,
    KEY_LEN
);

/// The stored seed of a KEM key of either suite (64 bytes for ML-KEM-768,
/// 32 for X-Wing); wiped when dropped, `Debug` redacted.
pub struct SuiteSeed(Zeroizing<Vec<u8>>);

impl SuiteSeed {
    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The seed bytes. Callers must not log or display them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SuiteSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SuiteSeed(<redacted>)")
    }
}

/// Decrypted bytes; wiped when dropped.
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// `len` zero bytes, allocated fallibly (the length is the caller's).
    pub(crate) fn zeroed(len: usize) -> Result<Self, Error> {
        Ok(Self(Zeroizing::new(zeroed_vec(len)?)))
    }

    /// `a || b`, wiped when dropped (for hashing a label with a key).
    pub(crate) fn concat(a: &[u8], b: &[u8]) -> Self {
        Self(Zeroizing::new([a, b].concat()))
    }

    /// The plaintext bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// `len` zero bytes, or [`Error::OutOfMemory`] instead of aborting the process.
pub(crate) fn zeroed_vec(len: usize) -> Result<Vec<u8>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory)?;
    v.resize(len, 0);
    Ok(v)
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext(<{} bytes redacted>)", self.0.len())
    }
}
