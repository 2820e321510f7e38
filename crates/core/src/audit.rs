//! Canonical encodings of the configuration store and the audit trail
//! (docs/FORMAT.md §11), and the audit key that signs checkpoints.
//!
//! Every encoding here is a concatenation of fixed-width big-endian
//! integers, 32-byte hashes and length-prefixed UTF-8 strings, so that an
//! outside verifier rebuilds the exact bytes from the exported columns:
//!
//! ```text
//! str(s)      = u32be(len(s)) || s
//! opt_str(s)  = 0x00                      (NULL)
//!             | 0x01 || str(s)
//! hash(x)     = SHA-256(x), or 32 zero bytes for "no value"
//! ```
use crate::{
    format::DSA_SEED_LEN,
    keys::{Kid, SignatureSuite, SigningKey, VerifyingKey},
    rng::{OsRandom, RandomSource},
    secret::DsaSeed,
    slh::{self, SlhSigningKey},
    Error,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// FIPS 204 context string of a configuration change record's signature.
pub const CONFIG_CHANGE_CONTEXT: &[u8] = b"apg-pq config-change v1";
/// FIPS 204 context string of a client's signature over a sealed value,
/// format 1 (before 0.8.0; read only to verify the records it signed).
pub const CONFIG_SEALED_CONTEXT: &[u8] = b"apg-pq config-sealed v1";
/// FIPS 204 context string of a client's signature over a sealed value,
/// format 2 (0.8.0): the message binds the record the value replaces.
pub const CONFIG_SEALED_CONTEXT_V2: &[u8] = b"apg-pq config-sealed v2";
/// FIPS 204 context string of an audit checkpoint; also the prefix of the
/// Ed25519-signed message.
pub const CHECKPOINT_CONTEXT: &[u8] = b"apg-pq audit-checkpoint v1";
/// Prefix of every audit row hash.
pub const AUDIT_ROW_LABEL: &[u8] = b"apg-pq audit v1";
/// Prefix of the AAD of a configuration value.
pub const CONFIG_AAD_LABEL: &[u8] = b"apg-pq config v1";
/// Longest configuration key name, in bytes.
pub const MAX_CONFIG_KEY_LEN: usize = 255;
/// Hash length.
pub const HASH_LEN: usize = 32;
/// Length of an Ed25519 public key and seed.
pub const ED25519_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;

/// A SHA-256 digest.
pub type Hash = [u8; HASH_LEN];

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_hash(out: &mut Vec<u8>, h: Option<&Hash>) {
    out.extend_from_slice(h.unwrap_or(&[0u8; HASH_LEN]));
}

/// The AAD a configuration value is encrypted (keyed) or sealed with:
/// `"apg-pq config v1" || str(tenant) || str(key)`.
pub fn config_aad(tenant: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONFIG_AAD_LABEL.len() + 8 + tenant.len() + key.len());
    out.extend_from_slice(CONFIG_AAD_LABEL);
    put_str(&mut out, tenant);
    put_str(&mut out, key);
    out
}

/// What a change did to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    /// A value encrypted by the server (`pq.config_set`).
    Set = 1,
    /// A value sealed and signed by a client (`pq.config_set_sealed`).
    SetSealed = 2,
    /// The key was deleted (`pq.config_delete`).
    Delete = 3,
}

impl ConfigOp {
    /// The name stored in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            ConfigOp::Set => "set",
            ConfigOp::SetSealed => "set_sealed",
            ConfigOp::Delete => "delete",
        }
    }

    /// The operation a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [ConfigOp::Set, ConfigOp::SetSealed, ConfigOp::Delete].into_iter().find(|op| op.name() == name)
    }
}

/// One change of a configuration key, as it is signed and chained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange<'a> {
    pub op: ConfigOp,
    pub tenant: &'a str,
    pub key: &'a str,
    /// 1 for the first change of a key, then +1 per change.
    pub version: u64,
    /// SHA-256 of the previous stored envelope (None: no previous value).
    pub old_hash: Option<Hash>,
    /// SHA-256 of the new stored envelope (None: a deletion).
    pub new_hash: Option<Hash>,
    pub user: &'a str,
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    pub ts_micros: i64,
    /// The record hash of the previous change of this key (None for version 1).
    pub prev_hash: Option<Hash>,
}

impl ConfigChange<'_> {
    /// The signed message:
    /// `u8(op) || str(tenant) || str(key) || u64be(version) || hash(old) ||
    /// hash(new) || str(user) || i64be(ts_micros) || prev_hash`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 12 + self.tenant.len() + self.key.len() + self.user.len() + 8 * 2 + 32 * 3);
        out.push(self.op as u8);
        put_str(&mut out, self.tenant);
        put_str(&mut out, self.key);
        out.extend_from_slice(&self.version.to_be_bytes());
        put_hash(&mut out, self.old_hash.as_ref());
        put_hash(&mut out, self.new_hash.as_ref());
        put_str(&mut out, self.user);
        out.extend_from_slice(&self.ts_micros.to_be_bytes());
        put_hash(&mut out, self.prev_hash.as_ref());
        out
    }

    /// The record hash the next change of this key chains to: SHA-256 of [`Self::encode`].
    pub fn record_hash(&self) -> Hash {
        sha256(&self.encode())
    }

    /// ML-DSA-65 signature (3309 bytes) with context [`CONFIG_CHANGE_CONTEXT`].
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, Error> {
        key.sign(&self.encode(), CONFIG_CHANGE_CONTEXT)
    }

    /// True if `signature` is this record's signature under `key`.
    pub fn verify(&self, key: &VerifyingKey, signature: &[u8]) -> bool {
        key.verify(&self.encode(), CONFIG_CHANGE_CONTEXT, signature).unwrap_or(false)
    }
}

/// What a client signs when it stores a sealed value:
/// `str(tenant) || str(key) || SHA-256(envelope)`, context [`CONFIG_SEALED_CONTEXT`].
pub fn sealed_value_message(tenant: &str, key: &str, envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + tenant.len() + key.len() + 2 * HASH_LEN);
    put_str(&mut out, tenant);
    put_str(&mut out, key);
    out.extend_from_slice(&sha256(envelope));
    out
}

/// What a client signs for a sealed value in `format` 1 or 2, and the
/// context it signs with. Format 2 (0.8.0) appends the `record_hash` of the
/// key's newest record, the one the value replaces (32 zero bytes when the
/// key has none): a signature is good for that one change, so an old
/// (envelope, signature) pair cannot be submitted again once the key has
/// moved on. None for an unknown format.
pub fn sealed_value_signed(
    format: u8,
    tenant: &str,
    key: &str,
    envelope: &[u8],
    replaces: Option<&Hash>,
) -> Option<(Vec<u8>, &'static [u8])> {
    let mut message = sealed_value_message(tenant, key, envelope);
    match format {
        1 => Some((message, CONFIG_SEALED_CONTEXT)),
        2 => {
            put_hash(&mut message, replaces);
            Some((message, CONFIG_SEALED_CONTEXT_V2))
        }
        _ => None,
    }
}

/// One row of `pq.audit_log`, as it is chained. `details` is the text
/// PostgreSQL prints for the row's jsonb (its canonical form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow<'a> {
    pub id: u64,
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    pub ts_micros: i64,
    pub event: &'a str,
    pub tenant: Option<&'a str>,
    pub actor: &'a str,
    pub details: &'a str,
}

impl AuditRow<'_> {
    /// `u64be(id) || i64be(ts_micros) || str(event) || opt_str(tenant) ||
    /// str(actor) || str(details)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 13 + self.event.len() + self.actor.len() + self.details.len() + 64);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.ts_micros.to_be_bytes());
        put_str(&mut out, self.event);
        put_opt_str(&mut out, self.tenant);
        put_str(&mut out, self.actor);
        put_str(&mut out, self.details);
        out
    }

    /// `SHA-256("apg-pq audit v1" || prev_hash || encode(row))`; the first
    /// row's `prev_hash` is 32 zero bytes.
    pub fn chain_hash(&self, prev_hash: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(AUDIT_ROW_LABEL);
        h.update(prev_hash);
        h.update(self.encode());
        h.finalize().into()
    }
}

/// A signed statement of the audit chain's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Id of the last row covered (0 for an empty log).
    pub head_id: u64,
    /// That row's hash (32 zero bytes for an empty log).
    pub head_hash: Hash,
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    pub ts_micros: i64,
}

impl Checkpoint {
    /// `u64be(head_id) || head_hash || i64be(ts_micros)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.extend_from_slice(&self.head_id.to_be_bytes());
        out.extend_from_slice(&self.head_hash);
        out.extend_from_slice(&self.ts_micros.to_be_bytes());
        out
    }

    /// The Ed25519-signed message: `"apg-pq audit-checkpoint v1" || encode()`.
    pub fn ed25519_message(&self) -> Vec<u8> {
        let mut out = CHECKPOINT_CONTEXT.to_vec();
        out.extend_from_slice(&self.encode());
        out
    }
}

/// The algorithms of the system audit key (`apg_pqcrypto.audit_signature`):
/// a primary ML-DSA signature and a hedge of another family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuditSuite {
    /// ML-DSA-65 and, as a classical hedge, Ed25519 (RFC 8032). The default.
    #[default]
    MlDsa65Ed25519,
    /// ML-DSA-87 and Ed25519 (CNSA 2.0's signature set).
    MlDsa87Ed25519,
    /// ML-DSA-65 and SLH-DSA-SHA2-128s (FIPS 205): a hash-based hedge for
    /// checkpoints that must verify for decades.
    SlhDsaMlDsa65,
}

impl AuditSuite {
    /// Every suite.
    pub const ALL: [AuditSuite; 3] = [AuditSuite::MlDsa65Ed25519, AuditSuite::MlDsa87Ed25519, AuditSuite::SlhDsaMlDsa65];

    /// The name the setting and `pq.audit_verifying_keys` use.
    pub fn name(self) -> &'static str {
        match self {
            AuditSuite::MlDsa65Ed25519 => "ml-dsa-65+ed25519",
            AuditSuite::MlDsa87Ed25519 => "ml-dsa-87+ed25519",
            AuditSuite::SlhDsaMlDsa65 => "slh-dsa+ml-dsa-65",
        }
    }

    /// Parses [`AuditSuite::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The ML-DSA parameter set.
    pub fn ml_dsa(self) -> SignatureSuite {
        if self == AuditSuite::MlDsa87Ed25519 { SignatureSuite::MlDsa87 } else { SignatureSuite::MlDsa65 }
    }

    /// True if the hedge is SLH-DSA (else Ed25519).
    pub fn slh_dsa(self) -> bool {
        self == AuditSuite::SlhDsaMlDsa65
    }

    /// Length of the hedge's stored seed: 32 (Ed25519) or 48 (SLH-DSA).
    pub fn hedge_seed_len(self) -> usize {
        if self.slh_dsa() { slh::SEED_LEN } else { ED25519_KEY_LEN }
    }
}

/// The hedge half of an audit key.
enum Hedge {
    Ed25519(ed25519_dalek::SigningKey),
    SlhDsa(SlhSigningKey),
}

/// The system audit key: an ML-DSA key and a hedge (Ed25519 or SLH-DSA),
/// both from seeds wrapped under the MDK.
pub struct AuditKey {
    suite: AuditSuite,
    dsa: SigningKey,
    hedge: Hedge,
}

/// The public half of a hedge.
#[derive(Clone)]
enum HedgeKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    SlhDsa([u8; slh::PUBLIC_KEY_LEN]),
}

/// The public half of an [`AuditKey`].
pub struct AuditVerifyingKey {
    dsa: VerifyingKey,
    hedge: HedgeKey,
}

/// Both signatures of a checkpoint.
pub struct CheckpointSignatures {
    /// ML-DSA-65 or -87, context [`CHECKPOINT_CONTEXT`], 3309 or 4627 bytes.
    pub ml_dsa: Vec<u8>,
    /// Ed25519 over [`Checkpoint::ed25519_message`], 64 bytes (Ed25519 suites).
    pub ed25519: Option<Vec<u8>>,
    /// SLH-DSA-SHA2-128s over [`Checkpoint::encode`] with context
    /// [`CHECKPOINT_CONTEXT`], 7856 bytes (the SLH-DSA suite).
    pub slh_dsa: Option<Vec<u8>>,
}

impl AuditKey {
    /// A new key of `suite`; returns the two seeds to be wrapped (ML-DSA ξ,
    /// then the hedge's: the Ed25519 secret or the SLH-DSA seed).
    pub fn generate(suite: AuditSuite) -> Result<(DsaSeed, Zeroizing<Vec<u8>>, Self), Error> {
        Self::generate_from(&mut OsRandom, suite)
    }

    pub(crate) fn generate_from(rng: &mut impl RandomSource, suite: AuditSuite) -> Result<(DsaSeed, Zeroizing<Vec<u8>>, Self), Error> {
        let dsa_seed = DsaSeed::from_slice(&rng.array::<DSA_SEED_LEN>()?)?;
        let mut hedge_seed = Zeroizing::new(vec![0u8; suite.hedge_seed_len()]);
        rng.fill(&mut hedge_seed)?;
        let key = Self::from_seeds(suite, &dsa_seed, &hedge_seed)?;
        Ok((dsa_seed, hedge_seed, key))
    }

    /// The key of `suite` from its two seeds.
    pub fn from_seeds(suite: AuditSuite, dsa_seed: &DsaSeed, hedge_seed: &[u8]) -> Result<Self, Error> {
        let hedge = if suite.slh_dsa() {
            Hedge::SlhDsa(SlhSigningKey::from_seed(hedge_seed)?)
        } else {
            let ed: Zeroizing<[u8; ED25519_KEY_LEN]> = Zeroizing::new(hedge_seed.try_into().map_err(|_| Error::InvalidKey)?);
            Hedge::Ed25519(ed25519_dalek::SigningKey::from_bytes(&ed))
        };
        Ok(Self { suite, dsa: SigningKey::from_seed_for(suite.ml_dsa(), dsa_seed), hedge })
    }

    /// Its suite.
    pub fn suite(&self) -> AuditSuite {
        self.suite
    }

    /// The verifying keys.
    pub fn verifying_key(&self) -> Result<AuditVerifyingKey, Error> {
        let hedge = match &self.hedge {
            Hedge::Ed25519(ed) => HedgeKey::Ed25519(ed.verifying_key()),
            Hedge::SlhDsa(slh) => HedgeKey::SlhDsa(slh.public_key()),
        };
        Ok(AuditVerifyingKey { dsa: VerifyingKey::from_slice(self.dsa.verifying_key().as_bytes())?, hedge })
    }

    /// Signs a checkpoint with both algorithms (hedged).
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<CheckpointSignatures, Error> {
        self.sign_from(&mut OsRandom, checkpoint)
    }

    /// [`AuditKey::sign`] with the signatures' randomness from `rng`
    /// (the known-answer vectors use the deterministic variants).
    pub(crate) fn sign_from(&self, rng: &mut impl RandomSource, checkpoint: &Checkpoint) -> Result<CheckpointSignatures, Error> {
        use ed25519_dalek::Signer;
        let ml_dsa = self.dsa.sign_from(rng, &checkpoint.encode(), CHECKPOINT_CONTEXT)?;
        Ok(match &self.hedge {
            Hedge::Ed25519(ed) => CheckpointSignatures {
                ml_dsa,
                ed25519: Some(ed.sign(&checkpoint.ed25519_message()).to_bytes().to_vec()),
                slh_dsa: None,
            },
            Hedge::SlhDsa(slh) => {
                let opt_rand = rng.array::<{ slh::N }>()?;
                // All-zero randomness (the vectors' ZeroRandom) selects the
                // deterministic variant, as for ML-DSA.
                let opt_rand = (opt_rand != [0; slh::N]).then_some(opt_rand);
                let sig = slh.sign(&checkpoint.encode(), CHECKPOINT_CONTEXT, opt_rand.as_ref())?;
                CheckpointSignatures { ml_dsa, ed25519: None, slh_dsa: Some(sig) }
            }
        })
    }
}

impl AuditVerifyingKey {
    /// From the stored public keys: ML-DSA (1952 or 2592 bytes), then
    /// Ed25519 (32 bytes) or SLH-DSA (32 bytes), exactly one of the two.
    pub fn from_parts(ml_dsa: &[u8], ed25519: Option<&[u8]>, slh_dsa: Option<&[u8]>) -> Result<Self, Error> {
        let hedge = match (ed25519, slh_dsa) {
            (Some(ed), None) => {
                let ed: [u8; ED25519_KEY_LEN] = ed.try_into().map_err(|_| Error::InvalidKey)?;
                HedgeKey::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&ed).map_err(|_| Error::InvalidKey)?)
            }
            (None, Some(slh)) => HedgeKey::SlhDsa(slh.try_into().map_err(|_| Error::InvalidKey)?),
            _ => return Err(Error::InvalidKey),
        };
        Ok(Self { dsa: VerifyingKey::from_slice(ml_dsa)?, hedge })
    }

    /// From the stored public keys of an Ed25519 suite (ML-DSA, then 32 bytes).
    pub fn from_slices(ml_dsa: &[u8], ed25519: &[u8]) -> Result<Self, Error> {
        Self::from_parts(ml_dsa, Some(ed25519), None)
    }

    /// The key's suite.
    pub fn suite(&self) -> AuditSuite {
        match (&self.hedge, self.dsa.suite()) {
            (HedgeKey::SlhDsa(_), _) => AuditSuite::SlhDsaMlDsa65,
            (HedgeKey::Ed25519(_), SignatureSuite::MlDsa87) => AuditSuite::MlDsa87Ed25519,
            (HedgeKey::Ed25519(_), SignatureSuite::MlDsa65) => AuditSuite::MlDsa65Ed25519,
        }
    }

    /// The ML-DSA public key.
    pub fn ml_dsa(&self) -> &VerifyingKey {
        &self.dsa
    }

    /// The Ed25519 public key (32 bytes), for the Ed25519 suites.
    pub fn ed25519(&self) -> Option<[u8; ED25519_KEY_LEN]> {
        match &self.hedge {
            HedgeKey::Ed25519(ed) => Some(ed.to_bytes()),
            HedgeKey::SlhDsa(_) => None,
        }
    }

    /// The SLH-DSA public key (32 bytes), for the SLH-DSA suite.
    pub fn slh_dsa(&self) -> Option<[u8; slh::PUBLIC_KEY_LEN]> {
        match &self.hedge {
            HedgeKey::SlhDsa(pk) => Some(*pk),
            HedgeKey::Ed25519(_) => None,
        }
    }

    /// The key's id: the kid of its ML-DSA public key.
    pub fn kid(&self) -> Kid {
        self.dsa.kid()
    }

    /// (ML-DSA valid, hedge valid) for a checkpoint's signatures: the hedge
    /// is the Ed25519 or the SLH-DSA signature, whichever the key has; a
    /// missing one is not valid.
    pub fn verify(&self, checkpoint: &Checkpoint, ml_dsa: &[u8], ed25519: Option<&[u8]>, slh_dsa: Option<&[u8]>) -> (bool, bool) {
        let dsa_ok = self.dsa.verify(&checkpoint.encode(), CHECKPOINT_CONTEXT, ml_dsa).unwrap_or(false);
        let hedge_ok = match (&self.hedge, ed25519, slh_dsa) {
            (HedgeKey::Ed25519(ed), Some(sig), None) => <[u8; ED25519_SIGNATURE_LEN]>::try_from(sig)
                .map(|s| ed.verify_strict(&checkpoint.ed25519_message(), &ed25519_dalek::Signature::from_bytes(&s)).is_ok())
                .unwrap_or(false),
            (HedgeKey::SlhDsa(pk), None, Some(sig)) => slh::verify(pk, &checkpoint.encode(), CHECKPOINT_CONTEXT, sig),
            _ => false,
        };
        (dsa_ok, hedge_ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> ConfigChange<'static> {
        ConfigChange {
            op: ConfigOp::Set,
            tenant: "acme",
            key: "db.password",
            version: 2,
            old_hash: Some([1; 32]),
            new_hash: Some([2; 32]),
            user: "alice",
            ts_micros: 1_700_000_000_000_000,
            prev_hash: Some([3; 32]),
        }
    }

    #[test]
    fn config_change_encoding_is_fixed() {
        let e = change().encode();
        assert_eq!(e.len(), 1 + 4 + 4 + 4 + 11 + 8 + 32 + 32 + 4 + 5 + 8 + 32);
        assert_eq!(e[0], 1);
        assert_eq!(&e[1..9], b"\0\0\0\x04acme");
        let mut deleted = change();
        deleted.op = ConfigOp::Delete;
        deleted.new_hash = None;
        let d = deleted.encode();
        assert_eq!(d[0], 3);
        assert_eq!(&d[64..96], &[0u8; 32]);
    }

    #[test]
    fn every_field_is_signed() {
        let (_, key) = SigningKey::generate().unwrap();
        let c = change();
        let sig = c.sign(&key).unwrap();
        assert!(c.verify(key.verifying_key(), &sig));
        let variants: Vec<ConfigChange<'_>> = vec![
            ConfigChange { op: ConfigOp::SetSealed, ..c.clone() },
            ConfigChange { tenant: "acmf", ..c.clone() },
            ConfigChange { key: "db.passwore", ..c.clone() },
            ConfigChange { version: 3, ..c.clone() },
            ConfigChange { old_hash: None, ..c.clone() },
            ConfigChange { new_hash: Some([9; 32]), ..c.clone() },
            ConfigChange { user: "mallory", ..c.clone() },
            ConfigChange { ts_micros: c.ts_micros + 1, ..c.clone() },
            ConfigChange { prev_hash: None, ..c.clone() },
        ];
        for v in variants {
            assert!(!v.verify(key.verifying_key(), &sig), "{v:?}");
            assert_ne!(v.record_hash(), c.record_hash());
        }
        // Length prefixes keep field boundaries: moving a byte between tenant and key changes the encoding.
        let shifted = ConfigChange { tenant: "acmed", key: "b.password", ..c.clone() };
        assert_ne!(shifted.encode(), c.encode());
    }

    #[test]
    fn audit_rows_chain() {
        let row = AuditRow { id: 1, ts_micros: 5, event: "tenant_created", tenant: Some("acme"), actor: "postgres", details: "{}" };
        let h1 = row.chain_hash(&[0; 32]);
        let none = AuditRow { tenant: None, ..row.clone() };
        let empty = AuditRow { tenant: Some(""), ..row.clone() };
        assert_ne!(none.chain_hash(&[0; 32]), empty.chain_hash(&[0; 32]));
        assert_ne!(h1, row.chain_hash(&[1; 32]));
        assert_eq!(h1, row.chain_hash(&[0; 32]));
    }

    #[test]
    fn checkpoints_verify_with_both_algorithms() {
        for suite in AuditSuite::ALL {
            let (dsa_seed, hedge_seed, key) = AuditKey::generate(suite).unwrap();
            let vk = key.verifying_key().unwrap();
            assert_eq!(vk.suite(), suite);
            assert_eq!(vk.ml_dsa().suite(), suite.ml_dsa());
            let cp = Checkpoint { head_id: 42, head_hash: [7; 32], ts_micros: 99 };
            let sigs = key.sign(&cp).unwrap();
            let (ed, slh) = (sigs.ed25519.as_deref(), sigs.slh_dsa.as_deref());
            assert_eq!((ed.is_some(), slh.is_some()), (!suite.slh_dsa(), suite.slh_dsa()), "{suite:?}");
            assert_eq!(vk.verify(&cp, &sigs.ml_dsa, ed, slh), (true, true), "{suite:?}");
            let other = Checkpoint { head_id: 41, ..cp.clone() };
            assert_eq!(vk.verify(&other, &sigs.ml_dsa, ed, slh), (false, false), "{suite:?}");
            // The hedge's signature must be there, and only it.
            assert_eq!(vk.verify(&cp, &sigs.ml_dsa, None, None), (true, false));
            assert_eq!(vk.verify(&cp, &sigs.ml_dsa, Some(&[0; 64]), Some(&[0; 7856])), (true, false));
            let again = AuditKey::from_seeds(suite, &dsa_seed, &hedge_seed[..]).unwrap().verifying_key().unwrap();
            assert_eq!((again.kid(), again.ed25519(), again.slh_dsa()), (vk.kid(), vk.ed25519(), vk.slh_dsa()));
            let parsed = AuditVerifyingKey::from_parts(vk.ml_dsa().as_bytes(), vk.ed25519().as_ref().map(|k| &k[..]), vk.slh_dsa().as_ref().map(|k| &k[..])).unwrap();
            assert_eq!(parsed.verify(&cp, &sigs.ml_dsa, ed, slh), (true, true));
            let mut bad = sigs.ml_dsa.clone();
            bad[7] ^= 1;
            assert_eq!(parsed.verify(&cp, &bad, ed, slh), (false, true));
            assert_eq!(AuditSuite::parse(suite.name()), Some(suite));
        }
        assert_eq!(AuditSuite::parse("slh-dsa"), None);
    }
}
