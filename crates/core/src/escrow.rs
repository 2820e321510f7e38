//! Escrow share records (FORMAT.md §14.1): a Shamir share of the master
//! data key sealed to one custodian ('E'), and the same share re-sealed by
//! that custodian, offline, to a recovery request's public key ('R').
//!
//! ```text
//! record = 0x01 ‖ kind ‖ kid(16) ‖ escrow_id(16) ‖ u8 index ‖ u8 threshold ‖ u8 total ‖ mdk_id(16)   (53 bytes)
//!          ‖ sealed envelope ('S' or 'X') of the 32-byte share to the key named by kid,
//!            user AAD = label ‖ record[0..53)
//! label  = "apg-pq v1 escrow share" ('E', kid = the custodian's) or
//!          "apg-pq v1 escrow reseal" ('R', kid = the request's)
//! ```
//! The header is authenticated by the envelope's AAD, so an index, escrow
//! id or MDK id changed in transit fails to open. The recovered key is
//! checked against the MDK id before anyone may use it.
//!
//! A custodian re-seals only to a request key named by an approved request
//! statement ('A', FORMAT.md §14.2): the request's fields signed by
//! approvers whose ML-DSA-65 keys the custodian pinned at the ceremony, so
//! that no single administrator can hand custodians a key of their own.
use crate::{
    format::{DSA_SIGNATURE_LEN, INFO_SEALED},
    kem::{Opener, Recipient},
    keys::{Kid, VerifyingKey},
    rng::{OsRandom, RandomSource},
    sealed,
    shamir::{self, Share},
    wrap::mdk_id,
    Dek, Envelope, Error, Malformed,
};
use zeroize::Zeroizing;

/// Kind byte of a share sealed to a custodian ('E').
pub const KIND_ESCROW_SHARE: u8 = 0x45;
/// Kind byte of a share re-sealed to a recovery request ('R').
pub const KIND_ESCROW_RESEALED: u8 = 0x52;
/// AAD label of 'E' records.
pub const LABEL_SHARE: &[u8] = b"apg-pq v1 escrow share";
/// AAD label of 'R' records.
pub const LABEL_RESEAL: &[u8] = b"apg-pq v1 escrow reseal";
/// Length of a record's header.
pub const RECORD_HEADER_LEN: usize = 53;
/// Length of a share of the 32-byte MDK.
pub const SHARE_LEN: usize = 32;

/// Kind byte of an approved recovery request statement ('A').
pub const KIND_REQUEST_STATEMENT: u8 = 0x41;
/// FIPS 204 context string of an approver's signature over a statement.
pub const APPROVAL_CONTEXT: &[u8] = b"apg-pq escrow-approval v1";
/// Length of the signed part of a statement.
pub const STATEMENT_LEN: usize = 83;
/// Length of one approval in a statement record: approver kid ‖ signature.
pub const APPROVAL_LEN: usize = 16 + DSA_SIGNATURE_LEN;

/// What the approvers of a recovery request sign (FORMAT.md §14.2):
///
/// ```text
/// statement = 0x01 ‖ 'A' ‖ request_id(16) ‖ request_kid(16) ‖ escrow_id(16) ‖ mdk_id(16)
///             ‖ i64be requested_at ‖ i64be ready_at ‖ u8 approvers_required          (83 bytes)
/// ```
/// Times are microseconds since 1970-01-01 UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestStatement {
    /// The request's UUID, as its 16 bytes.
    pub request_id: [u8; 16],
    /// The kid of the request's one-time public key: the only key a
    /// custodian may re-seal a share to.
    pub request_kid: Kid,
    pub escrow_id: [u8; 16],
    pub mdk_id: Kid,
    pub requested_at: i64,
    /// The earliest time the request may complete.
    pub ready_at: i64,
    pub approvers_required: u8,
}

impl RequestStatement {
    /// The signed bytes.
    pub fn encode(&self) -> [u8; STATEMENT_LEN] {
        let mut s = [0u8; STATEMENT_LEN];
        s[0] = 0x01;
        s[1] = KIND_REQUEST_STATEMENT;
        s[2..18].copy_from_slice(&self.request_id);
        s[18..34].copy_from_slice(self.request_kid.as_bytes());
        s[34..50].copy_from_slice(&self.escrow_id);
        s[50..66].copy_from_slice(self.mdk_id.as_bytes());
        s[66..74].copy_from_slice(&self.requested_at.to_be_bytes());
        s[74..82].copy_from_slice(&self.ready_at.to_be_bytes());
        s[82] = self.approvers_required;
        s
    }

    /// A statement's exact bytes (the signed part of a record).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < STATEMENT_LEN {
            return Err(Malformed::Truncated.into());
        }
        if bytes.len() > STATEMENT_LEN {
            return Err(Malformed::WrongLength.into());
        }
        if bytes[0] != 0x01 {
            return Err(Malformed::UnknownVersion(bytes[0]).into());
        }
        if bytes[1] != KIND_REQUEST_STATEMENT {
            return Err(Malformed::UnknownKind(bytes[1]).into());
        }
        let field = |a: usize| -> [u8; 16] { bytes[a..a + 16].try_into().unwrap_or([0; 16]) };
        let time = |a: usize| -> i64 { i64::from_be_bytes(bytes[a..a + 8].try_into().unwrap_or([0; 8])) };
        let statement = RequestStatement {
            request_id: field(2),
            request_kid: Kid(field(18)),
            escrow_id: field(34),
            mdk_id: Kid(field(50)),
            requested_at: time(66),
            ready_at: time(74),
            approvers_required: bytes[82],
        };
        if statement.approvers_required == 0 || statement.ready_at < statement.requested_at {
            return Err(Malformed::WrongLength.into());
        }
        Ok(statement)
    }
}

/// One approver's signature over a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// `kid` of the approver's ML-DSA-65 public key.
    pub approver_kid: Kid,
    /// ML-DSA-65 over the statement's bytes, context [`APPROVAL_CONTEXT`].
    pub signature: Vec<u8>,
}

/// An approved request statement as the server issues it:
/// `statement ‖ u8 n ‖ n × (approver kid ‖ signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovedRequest {
    pub statement: RequestStatement,
    pub approvals: Vec<Approval>,
}

impl ApprovedRequest {
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let n = u8::try_from(self.approvals.len()).map_err(|_| Error::from(Malformed::WrongLength))?;
        let mut out = Vec::with_capacity(STATEMENT_LEN + 1 + self.approvals.len() * APPROVAL_LEN);
        out.extend_from_slice(&self.statement.encode());
        out.push(n);
        for a in &self.approvals {
            if a.signature.len() != DSA_SIGNATURE_LEN {
                return Err(Malformed::WrongLength.into());
            }
            out.extend_from_slice(a.approver_kid.as_bytes());
            out.extend_from_slice(&a.signature);
        }
        Ok(out)
    }

    /// Structure only, with exact lengths; no signature is checked.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < STATEMENT_LEN + 1 {
            return Err(Malformed::Truncated.into());
        }
        let statement = RequestStatement::parse(&bytes[..STATEMENT_LEN])?;
        let n = usize::from(bytes[STATEMENT_LEN]);
        let rest = &bytes[STATEMENT_LEN + 1..];
        if rest.len() != n * APPROVAL_LEN {
            return Err(if rest.len() < n * APPROVAL_LEN { Malformed::Truncated } else { Malformed::WrongLength }.into());
        }
        let approvals = rest
            .chunks_exact(APPROVAL_LEN)
            .map(|c| Approval { approver_kid: Kid(c[..16].try_into().unwrap_or([0; 16])), signature: c[16..].to_vec() })
            .collect();
        Ok(ApprovedRequest { statement, approvals })
    }

    /// The distinct approvers among `pinned` whose signature in the record
    /// verifies over the statement: an approval by a key not pinned, a
    /// signature that does not verify, and a second approval by the same
    /// key count for nothing.
    pub fn verified_approvers(&self, pinned: &[VerifyingKey]) -> Vec<Kid> {
        let message = self.statement.encode();
        let mut out: Vec<Kid> = Vec::new();
        for a in &self.approvals {
            if out.contains(&a.approver_kid) {
                continue;
            }
            let Some(key) = pinned.iter().find(|k| k.kid() == a.approver_kid) else { continue };
            if key.verify(&message, APPROVAL_CONTEXT, &a.signature).unwrap_or(false) {
                out.push(a.approver_kid);
            }
        }
        out
    }
}

/// The header of a share record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareHeader {
    /// 'E' or 'R'.
    pub kind: u8,
    /// The key the share is sealed to (custodian or request).
    pub kid: Kid,
    /// Which escrow (one split of one MDK).
    pub escrow_id: [u8; 16],
    /// The share's x coordinate, 1..=total.
    pub index: u8,
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub total: u8,
    /// The id of the MDK the shares recombine to.
    pub mdk_id: Kid,
}

impl ShareHeader {
    fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0] = 0x01;
        h[1] = self.kind;
        h[2..18].copy_from_slice(self.kid.as_bytes());
        h[18..34].copy_from_slice(&self.escrow_id);
        h[34] = self.index;
        h[35] = self.threshold;
        h[36] = self.total;
        h[37..53].copy_from_slice(self.mdk_id.as_bytes());
        h
    }

    fn aad(&self) -> Vec<u8> {
        let label = if self.kind == KIND_ESCROW_SHARE { LABEL_SHARE } else { LABEL_RESEAL };
        [label, &self.encode()[..]].concat()
    }
}

/// A parsed record: its header and its envelope.
pub struct ShareRecord<'a> {
    /// The authenticated header.
    pub header: ShareHeader,
    envelope: &'a [u8],
}

impl<'a> ShareRecord<'a> {
    /// Structure only: version, kind, field ranges, a sealed envelope to the
    /// header's kid. Anything else is [`Error::Malformed`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(Malformed::Truncated.into());
        }
        if bytes[0] != 0x01 {
            return Err(Malformed::UnknownVersion(bytes[0]).into());
        }
        if bytes[1] != KIND_ESCROW_SHARE && bytes[1] != KIND_ESCROW_RESEALED {
            return Err(Malformed::UnknownKind(bytes[1]).into());
        }
        let field = |a: usize| -> [u8; 16] { bytes[a..a + 16].try_into().unwrap_or([0; 16]) };
        let header = ShareHeader {
            kind: bytes[1],
            kid: Kid(field(2)),
            escrow_id: field(18),
            index: bytes[34],
            threshold: bytes[35],
            total: bytes[36],
            mdk_id: Kid(field(37)),
        };
        if header.index == 0 || header.threshold == 0 || header.threshold > header.total || header.index > header.total {
            return Err(Malformed::WrongLength.into());
        }
        let envelope = &bytes[RECORD_HEADER_LEN..];
        let env = Envelope::parse(envelope)?.into_sealed()?;
        if env.kid() != header.kid || env.batch_position().is_some() || env.plaintext_len() != SHARE_LEN {
            return Err(Malformed::WrongKind.into());
        }
        Ok(Self { header, envelope })
    }

    /// The share, opened with the secret key the record is sealed to.
    pub fn open<'k>(&self, key: impl Into<Opener<'k>>) -> Result<Share, Error> {
        let env = Envelope::parse(self.envelope)?.into_sealed()?;
        let plain = sealed::open(key, &env, &self.header.aad())?;
        Ok(Share { index: self.header.index, bytes: Zeroizing::new(plain.expose().to_vec()) })
    }
}

fn record(rng: &mut impl RandomSource, header: &ShareHeader, to: Recipient<'_>, share: &[u8]) -> Result<Vec<u8>, Error> {
    let envelope = sealed::seal_from(rng, to, INFO_SEALED, share, &header.aad())?;
    Ok([&header.encode()[..], &envelope].concat())
}

/// Splits the MDK into `custodians.len()` shares, any `threshold` of which
/// recover it, each sealed to its custodian: 'E' records, in custodian
/// order (share index i + 1 to custodian i).
pub fn split_mdk(mdk: &Dek, escrow_id: [u8; 16], threshold: u8, custodians: &[Recipient<'_>]) -> Result<Vec<Vec<u8>>, Error> {
    split_mdk_from(&mut OsRandom, mdk, escrow_id, threshold, custodians)
}

pub(crate) fn split_mdk_from(
    rng: &mut impl RandomSource,
    mdk: &Dek,
    escrow_id: [u8; 16],
    threshold: u8,
    custodians: &[Recipient<'_>],
) -> Result<Vec<Vec<u8>>, Error> {
    let total = u8::try_from(custodians.len()).map_err(|_| Error::InvalidKey)?;
    let shares = shamir::split_from(rng, mdk.expose(), threshold, total)?;
    let mdk_id = mdk_id(mdk);
    shares
        .iter()
        .zip(custodians)
        .map(|(share, to)| {
            let header = ShareHeader { kind: KIND_ESCROW_SHARE, kid: to.kid(), escrow_id, index: share.index, threshold, total, mdk_id };
            record(rng, &header, *to, &share.bytes)
        })
        .collect()
}

/// What a custodian runs offline: opens its 'E' record with its own key and
/// re-seals the share to the recovery request's public key ('R').
pub fn reseal<'k>(share_record: &[u8], custodian: impl Into<Opener<'k>>, request: Recipient<'_>) -> Result<Vec<u8>, Error> {
    reseal_from(&mut OsRandom, share_record, custodian, request)
}

pub(crate) fn reseal_from<'k>(
    rng: &mut impl RandomSource,
    share_record: &[u8],
    custodian: impl Into<Opener<'k>>,
    request: Recipient<'_>,
) -> Result<Vec<u8>, Error> {
    let parsed = ShareRecord::parse(share_record)?;
    if parsed.header.kind != KIND_ESCROW_SHARE {
        return Err(Malformed::WrongKind.into());
    }
    let share = parsed.open(custodian)?;
    let header = ShareHeader { kind: KIND_ESCROW_RESEALED, kid: request.kid(), ..parsed.header };
    record(rng, &header, request, &share.bytes)
}

/// Why a recovery failed, naming the share where one is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverError {
    /// Share `index` (1-based position in the input when the index is unknown) is malformed,
    /// of another escrow, sealed to another key, or does not open.
    Share { position: usize, index: u8, error: Error },
    /// Two shares have the same index.
    Duplicate { index: u8 },
    /// Fewer shares than the threshold.
    TooFew { have: usize, threshold: u8 },
    /// The shares open but recombine to another key than the MDK id says.
    WrongKey,
}

/// Opens 'R' records with the request's secret key, recombines them and
/// checks the result against `mdk_id`: the recovered MDK, or which share failed.
pub fn recover<'k>(records: &[&[u8]], request: impl Into<Opener<'k>> + Copy, mdk: Kid, escrow_id: [u8; 16]) -> Result<Dek, RecoverError> {
    let mut shares: Vec<Share> = Vec::new();
    let mut threshold = 0;
    for (n, bytes) in records.iter().enumerate() {
        let position = n + 1;
        let parsed = ShareRecord::parse(bytes).map_err(|error| RecoverError::Share { position, index: 0, error })?;
        let h = parsed.header;
        let bad = |error| RecoverError::Share { position, index: h.index, error };
        if h.kind != KIND_ESCROW_RESEALED || h.escrow_id != escrow_id || h.mdk_id != mdk {
            return Err(bad(Malformed::WrongKind.into()));
        }
        if shares.iter().any(|s| s.index == h.index) {
            return Err(RecoverError::Duplicate { index: h.index });
        }
        shares.push(parsed.open(request).map_err(bad)?);
        threshold = h.threshold;
    }
    if shares.len() < usize::from(threshold) || shares.is_empty() {
        return Err(RecoverError::TooFew { have: shares.len(), threshold });
    }
    let secret = shamir::combine(&shares).map_err(|_| RecoverError::WrongKey)?;
    let key = Dek::from_slice(&secret).map_err(|_| RecoverError::WrongKey)?;
    if mdk_id(&key) != mdk {
        return Err(RecoverError::WrongKey);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecipientSecret, Suite};

    fn setup() -> (Dek, Vec<RecipientSecret>, RecipientSecret, Vec<Vec<u8>>) {
        let mdk = Dek::generate().unwrap();
        let custodians: Vec<RecipientSecret> = (0..5)
            .map(|i| RecipientSecret::generate(if i % 2 == 0 { Suite::MlKem768 } else { Suite::XWing }).unwrap().1)
            .collect();
        let publics: Vec<Recipient<'_>> = custodians.iter().map(|c| c.public_key()).collect();
        let records = split_mdk(&mdk, [9; 16], 3, &publics).unwrap();
        let (_, request) = RecipientSecret::generate(Suite::MlKem768).unwrap();
        (mdk, custodians, request, records)
    }

    #[test]
    fn every_three_of_five_recover_and_fewer_do_not() {
        let (mdk, custodians, request, records) = setup();
        let resealed: Vec<Vec<u8>> =
            records.iter().zip(&custodians).map(|(r, c)| reseal(r, c, request.public_key()).unwrap()).collect();
        let mdk_id = mdk_id(&mdk);
        let mut subsets = 0;
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let pick = [&resealed[a][..], &resealed[b][..], &resealed[c][..]];
                    assert_eq!(recover(&pick, &request, mdk_id, [9; 16]).unwrap(), mdk);
                    subsets += 1;
                }
                let two = [&resealed[a][..], &resealed[b][..]];
                assert_eq!(recover(&two, &request, mdk_id, [9; 16]).unwrap_err(), RecoverError::TooFew { have: 2, threshold: 3 });
            }
        }
        assert_eq!(subsets, 10);
    }

    #[test]
    fn statements_carry_verified_approvals_only() {
        use crate::SigningKey;
        let statement = RequestStatement {
            request_id: [1; 16],
            request_kid: Kid([2; 16]),
            escrow_id: [3; 16],
            mdk_id: Kid([4; 16]),
            requested_at: 1_800_000_000_000_000,
            ready_at: 1_800_086_400_000_000,
            approvers_required: 2,
        };
        assert_eq!(RequestStatement::parse(&statement.encode()).unwrap(), statement);
        let keys: Vec<SigningKey> = (0..3).map(|_| SigningKey::generate().unwrap().1).collect();
        let pinned: Vec<VerifyingKey> = keys[..2].iter().map(|k| VerifyingKey::from_slice(k.verifying_key().as_bytes()).unwrap()).collect();
        let sign = |k: &SigningKey| Approval {
            approver_kid: k.kid(),
            signature: k.sign(&statement.encode(), APPROVAL_CONTEXT).unwrap(),
        };
        let mut forged = sign(&keys[1]);
        forged.signature[10] ^= 1;
        let record = ApprovedRequest {
            statement,
            // pinned 0, a duplicate of it, one not pinned, a forged one of pinned 1
            approvals: vec![sign(&keys[0]), sign(&keys[0]), sign(&keys[2]), forged],
        };
        let bytes = record.encode().unwrap();
        let parsed = ApprovedRequest::parse(&bytes).unwrap();
        assert_eq!(parsed, record);
        assert_eq!(parsed.verified_approvers(&pinned), vec![keys[0].kid()]);
        let good = ApprovedRequest { statement, approvals: vec![sign(&keys[1]), sign(&keys[0])] };
        assert_eq!(good.verified_approvers(&pinned).len(), 2);
        // A changed statement field voids every signature.
        let mut changed = good.encode().unwrap();
        changed[20] ^= 1;
        assert!(ApprovedRequest::parse(&changed).unwrap().verified_approvers(&pinned).is_empty());
        // Every truncation and an appended byte are malformed.
        let bytes = good.encode().unwrap();
        for len in 0..bytes.len() {
            assert!(ApprovedRequest::parse(&bytes[..len]).is_err(), "{len}");
        }
        assert!(ApprovedRequest::parse(&[&bytes[..], &[0]].concat()).is_err());
        let mut kind = bytes.clone();
        kind[1] = b'E';
        assert!(ApprovedRequest::parse(&kind).is_err());
    }

    #[test]
    fn bad_shares_are_named() {
        let (mdk, custodians, request, records) = setup();
        let id = mdk_id(&mdk);
        let r: Vec<Vec<u8>> = records.iter().zip(&custodians).map(|(r, c)| reseal(r, c, request.public_key()).unwrap()).collect();
        // Another custodian's key cannot reseal a share.
        assert_eq!(reseal(&records[0], &custodians[2], request.public_key()).unwrap_err(), Error::DecryptionFailed);
        // A tampered share (any byte of its envelope): that share is named.
        let mut t = r[1].clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(matches!(recover(&[&r[0][..], &t[..], &r[2][..]], &request, id, [9; 16]), Err(RecoverError::Share { position: 2, index: 2, .. })));
        // A changed index in the header: authenticated, fails to open.
        let mut t = r[2].clone();
        t[34] = 4;
        assert!(matches!(recover(&[&r[0][..], &r[1][..], &t[..]], &request, id, [9; 16]), Err(RecoverError::Share { position: 3, .. })));
        // Duplicates, another escrow, another MDK, an 'E' record, another request key.
        assert_eq!(recover(&[&r[0][..], &r[0][..], &r[2][..]], &request, id, [9; 16]).unwrap_err(), RecoverError::Duplicate { index: 1 });
        assert!(matches!(recover(&[&r[0][..], &r[1][..], &r[2][..]], &request, id, [8; 16]), Err(RecoverError::Share { position: 1, .. })));
        assert!(matches!(recover(&[&r[0][..], &r[1][..], &r[2][..]], &request, Kid([0; 16]), [9; 16]), Err(RecoverError::Share { .. })));
        assert!(matches!(recover(&[&records[0][..]], &request, id, [9; 16]), Err(RecoverError::Share { position: 1, .. })));
        let (_, other) = RecipientSecret::generate(Suite::MlKem768).unwrap();
        assert!(matches!(recover(&[&r[0][..], &r[1][..], &r[2][..]], &other, id, [9; 16]), Err(RecoverError::Share { .. })));
        // Truncations of a record are malformed or fail.
        for len in 0..r[0].len() {
            assert!(ShareRecord::parse(&r[0][..len]).and_then(|p| p.open(&request)).is_err());
        }
    }
}
