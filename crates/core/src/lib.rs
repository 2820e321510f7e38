//! Pure-Rust core of apg_pqcrypto: the v1 envelope formats, key types and the
//! post-quantum primitives behind them. No PostgreSQL here, so everything is
//! testable, benchmarkable and fuzzable with plain `cargo`.
//!
//! The byte layouts are specified in `docs/FORMAT.md`; the constants of that
//! document live in [`format`].
//!
//! Entry points:
//! - [`Envelope::parse`] turns bytes into a typed envelope (the only parser).
//! - [`KemPublicKey`] / [`KemSecretKey`], [`XWingPublicKey`] / [`XWingSecretKey`]
//!   (either as [`RecipientKey`] / [`RecipientSecret`]): sealed envelopes and
//!   batches ([`sealed`]); large files as streams ([`stream`]).
//! - [`KeyedCipher`]: keyed envelopes under a DEK ([`keyed`]).
//! - [`SigningKey`] / [`VerifyingKey`]: ML-DSA-65 signatures and signature envelopes.
//! - [`MasterDataKey`]: wrapping of tenant secrets; [`TenantKeys`]: a new key version.
//! - [`blind`]: blind index terms for equality search over encrypted values.
//! - [`audit`]: canonical encodings of config changes, audit rows and checkpoints.

mod aead;
pub mod algorithms;
pub mod audit;
pub mod backend;
pub mod blind;
pub mod backup;
pub mod classical;
mod envelope;
pub mod escrow;
mod error;
pub mod format;
pub mod kem;
mod keyed;
mod keys;
pub mod policy;
pub mod redact;
pub mod rng;
mod secret;
pub mod sealed;
pub mod shamir;
mod signature;
pub mod slh;
pub mod stream;
pub mod tenant;
mod wrap;

pub use envelope::{Envelope, Kind, KeyedEnvelope, SealedEnvelope, SignatureEnvelope};
pub use error::{Error, Malformed};
pub use keyed::{keyed_len, KeyedCipher};
pub use keys::{
    Kem1024PublicKey, Kem1024SecretKey, KemPublicKey, KemSecretKey, Kid, MlKemPublicKey, MlKemSecretKey, SignatureSuite,
    SigningKey, VerifyingKey,
};
pub use kem::{Opener, Recipient, RecipientKey, RecipientSecret, Suite, XWingPublicKey, XWingSecretKey};
pub use secret::{Dek, DsaSeed, KemSeed, Plaintext, SuiteSeed, XWingSeed};
pub use tenant::{dek_suite, open_dek, seal_dek, TenantKeys};
pub use wrap::{kek_id, mdk_id, MasterDataKey, Purpose, WrapContext};

#[cfg(test)]
mod kat;
#[cfg(test)]
mod test_rng;
