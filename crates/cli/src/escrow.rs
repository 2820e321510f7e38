//! Key escrow for the people who hold its keys, offline (docs/RECOVERY.md,
//! FORMAT.md §14.1 and §14.2):
//!
//! - an approver reads a recovery request's statement and signs it with
//!   their ML-DSA-65 key (`escrow approve`);
//! - a custodian re-seals their share to the request's key only if the
//!   request's approved statement names that key and this share's escrow
//!   and master key, carries valid signatures of at least `--approvals` of
//!   the approver keys pinned at the ceremony, and its wait is over
//!   (`escrow reseal`). A key handed over by one administrator, without a
//!   request the approvers signed, is refused.
use crate::{not_this_key, read_input, read_key_file, recipient, secret_kem_key, wrong_key, write_output, CliError, Result};
use pqcore::escrow::{ApprovedRequest, RequestStatement, APPROVAL_CONTEXT, KIND_ESCROW_SHARE, STATEMENT_LEN};
use pqcore::{SigningKey, VerifyingKey};
use std::path::Path;

/// Unix time in microseconds, from the system clock.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `micros` (Unix) as an ISO 8601 UTC time, for people to read.
fn time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn describe(s: &RequestStatement) -> String {
    format!(
        "request {} for escrow {} of master data key {}: re-seal to key {}; requested {}, may complete from {}, needs {} approvals",
        uuid(&s.request_id),
        hex::encode(s.escrow_id),
        s.mdk_id.to_hex(),
        s.request_kid.to_hex(),
        time(s.requested_at),
        time(s.ready_at),
        s.approvers_required
    )
}

fn uuid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// `escrow approve`: shows what a request's statement says and signs it
/// with the approver's ML-DSA-65 secret key (a raw signature, for
/// `pq.escrow_approve`). Takes the 83-byte statement or an 'A' record.
pub fn approve(secret_key: &Path, statement: &Path, output: Option<&Path>) -> Result<String> {
    let key = SigningKey::from_slice(&read_key_file(secret_key)?)
        .map_err(|_| wrong_key(secret_key, "an ML-DSA-65 secret key (32-byte seed)"))?;
    let bytes = read_input(Some(statement))?;
    let parsed = RequestStatement::parse(&bytes[..bytes.len().min(STATEMENT_LEN)])
        .map_err(|e| CliError::Input(format!("{} is not a request statement (FORMAT.md §14.2): {e}", statement.display())))?;
    let signature = key.sign(&parsed.encode(), APPROVAL_CONTEXT)?;
    write_output(output, &signature, false)?;
    Ok(format!("approved, as key {}: {}", key.kid().to_hex(), describe(&parsed)))
}

/// What a custodian pins at the ceremony and requires of a statement.
pub struct Pinned<'a> {
    /// The approvers' ML-DSA-65 public keys.
    pub approver_keys: &'a [std::path::PathBuf],
    /// How many distinct pinned approvers must have signed.
    pub approvals: usize,
    /// The least time between request and ready_at, in seconds.
    pub min_wait: Option<u64>,
}

/// `escrow reseal`, run by a custodian offline: checks the request's
/// approved statement against what the custodian pinned, then opens its
/// share record ('E') with its own secret key and re-seals the share to the
/// request's public key ('R'), for `pq.escrow_recover`. Prints what it
/// checked.
pub fn reseal(
    secret_key: &Path,
    share: &Path,
    request_key: &Path,
    statement: &Path,
    pinned: &Pinned<'_>,
    output: Option<&Path>,
) -> Result<String> {
    let key = secret_kem_key(secret_key)?;
    let request = recipient(request_key)?;
    let record = read_input(Some(share))?;
    let parsed = pqcore::escrow::ShareRecord::parse(&record)?;
    if parsed.header.kind != KIND_ESCROW_SHARE {
        return Err(CliError::Input(format!("{} is not a share sealed to a custodian", share.display())));
    }
    if parsed.header.kid != key.kid() {
        return Err(not_this_key(parsed.header.kid, &key, secret_key));
    }
    if pinned.approvals == 0 || pinned.approver_keys.is_empty() {
        return Err(CliError::Input("give the approver keys pinned at the ceremony (--approver-key) and --approvals N (N ≥ 1)".into()));
    }
    let keys = pinned
        .approver_keys
        .iter()
        .map(|p| VerifyingKey::from_slice(&read_key_file(p)?).map_err(|_| wrong_key(p, "an ML-DSA-65 public key (1952 bytes)")))
        .collect::<Result<Vec<_>>>()?;
    let bytes = read_input(Some(statement))?;
    // The bare statement (what approvers sign) carries no approval at all.
    let approved = if bytes.len() == STATEMENT_LEN {
        RequestStatement::parse(&bytes).map(|statement| ApprovedRequest { statement, approvals: Vec::new() })
    } else {
        ApprovedRequest::parse(&bytes)
    }
    .map_err(|e| CliError::Input(format!("{} is not an approved request statement (FORMAT.md §14.2): {e}", statement.display())))?;
    let s = approved.statement;
    let h = parsed.header;
    let mut checked = vec![describe(&s)];
    if s.request_kid != request.kid() {
        return Err(CliError::NotApproved(format!(
            "the statement names request key {}, and {} is key {}",
            s.request_kid.to_hex(),
            request_key.display(),
            request.kid().to_hex()
        )));
    }
    checked.push(format!("the request key {} is the statement's", request.kid().to_hex()));
    if s.escrow_id != h.escrow_id || s.mdk_id != h.mdk_id {
        return Err(CliError::NotApproved(format!(
            "the statement is for escrow {} of master data key {}, this share of escrow {} of {}",
            hex::encode(s.escrow_id),
            s.mdk_id.to_hex(),
            hex::encode(h.escrow_id),
            h.mdk_id.to_hex()
        )));
    }
    checked.push(format!("share {} of {} belongs to that escrow and master data key", h.index, h.total));
    let approvers = approved.verified_approvers(&keys);
    if approvers.len() < pinned.approvals {
        return Err(CliError::NotApproved(format!(
            "{} of the pinned approvers signed the statement ({}); {} needed",
            approvers.len(),
            approvers.iter().map(|k| k.to_hex()).collect::<Vec<_>>().join(", "),
            pinned.approvals
        )));
    }
    checked.push(format!(
        "{} pinned approvers signed it: {}",
        approvers.len(),
        approvers.iter().map(|k| k.to_hex()).collect::<Vec<_>>().join(", ")
    ));
    if let Some(min) = pinned.min_wait {
        let wait = s.ready_at.saturating_sub(s.requested_at) / 1_000_000;
        if wait < i64::try_from(min).unwrap_or(i64::MAX) {
            return Err(CliError::NotApproved(format!("the request waits {wait} s; at least {min} s were pinned")));
        }
        checked.push(format!("its wait ({wait} s) is at least the pinned {min} s"));
    }
    let now = now_micros();
    if now < s.ready_at {
        return Err(CliError::NotApproved(format!("the request may not proceed before {} (now {})", time(s.ready_at), time(now))));
    }
    checked.push(format!("its wait is over (now {})", time(now)));
    let resealed = pqcore::escrow::reseal(&record, &key, request.recipient())?;
    write_output(output, &resealed, false)?;
    checked.push(format!(
        "re-sealed share {} of {} (threshold {}) of escrow {}, master data key {}",
        h.index,
        h.total,
        h.threshold,
        hex::encode(h.escrow_id),
        h.mdk_id.to_hex()
    ));
    Ok(checked.join("\n"))
}

/// A duration in seconds: a number, or a number with s, m, h or d.
pub fn parse_duration(s: &str) -> Result<u64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| CliError::Input(format!("\"{s}\" is not a duration (say 86400, 90m, 24h or 2d)")))?;
    let factor = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(CliError::Input(format!("\"{s}\" is not a duration (say 86400, 90m, 24h or 2d)"))),
    };
    n.checked_mul(factor).ok_or_else(|| CliError::Input(format!("\"{s}\" is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{keygen, Algorithm};
    use pqcore::escrow::{Approval, ApprovedRequest};
    use pqcore::{RecipientSecret, Suite};

    /// Approvers sign a request's statement; custodians check it against the
    /// keys they pinned and re-seal; the shares recover the key. Statements
    /// for another key, with too few pinned approvers, or before their time
    /// are refused (exit 8) and nothing is written.
    #[test]
    fn approved_reseal_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let generated: Vec<(pqcore::SuiteSeed, RecipientSecret)> =
            (0..3).map(|_| RecipientSecret::generate(Suite::XWing).unwrap()).collect();
        let seeds: Vec<&[u8]> = generated.iter().map(|(s, _)| s.expose()).collect();
        let publics: Vec<pqcore::Recipient<'_>> = generated.iter().map(|(_, c)| c.public_key()).collect();
        let mdk = pqcore::Dek::generate().unwrap();
        let mdk_id = pqcore::mdk_id(&mdk);
        let records = pqcore::escrow::split_mdk(&mdk, [3; 16], 2, &publics).unwrap();
        keygen(Algorithm::MlKem768, &p("req.sk"), &p("req.pk")).unwrap();
        keygen(Algorithm::MlKem768, &p("mine.sk"), &p("mine.pk")).unwrap();
        for a in ["a1", "a2", "outsider"] {
            keygen(Algorithm::MlDsa65, &p(&format!("{a}.sk")), &p(&format!("{a}.pk"))).unwrap();
        }
        let request = RecipientSecret::from_slice(&std::fs::read(p("req.sk")).unwrap()).unwrap();
        let now = now_micros();
        let statement = |ready_at: i64, kid: pqcore::Kid| RequestStatement {
            request_id: [7; 16],
            request_kid: kid,
            escrow_id: [3; 16],
            mdk_id,
            requested_at: now - 86_400_000_000,
            ready_at,
            approvers_required: 2,
        };
        // Each approver signs with `escrow approve`; the server gathers the signatures.
        let approved = |s: RequestStatement, by: &[&str]| {
            std::fs::write(p("stmt"), s.encode()).unwrap();
            let approvals = by
                .iter()
                .map(|a| {
                    let said = approve(&p(&format!("{a}.sk")), &p("stmt"), Some(&p("sig"))).unwrap();
                    assert!(said.contains("re-seal to key"), "{said}");
                    let key = SigningKey::from_slice(&std::fs::read(p(&format!("{a}.sk"))).unwrap()).unwrap();
                    Approval { approver_kid: key.kid(), signature: std::fs::read(p("sig")).unwrap() }
                })
                .collect();
            std::fs::write(p("approved"), ApprovedRequest { statement: s, approvals }.encode().unwrap()).unwrap();
        };
        let keys = [p("a1.pk"), p("a2.pk")];
        let pinned = Pinned { approver_keys: &keys, approvals: 2, min_wait: Some(3600) };
        approved(statement(now - 1, request.kid()), &["a1", "a2"]);
        let mut resealed = Vec::new();
        for (i, record) in records.iter().enumerate().take(2) {
            std::fs::write(p(&format!("c{i}.sk")), seeds[i]).unwrap();
            std::fs::write(p(&format!("share{i}")), record).unwrap();
            let out = p(&format!("resealed{i}"));
            let said = reseal(&p(&format!("c{i}.sk")), &p(&format!("share{i}")), &p("req.pk"), &p("approved"), &pinned, Some(&out))
                .unwrap();
            assert!(said.contains("2 pinned approvers signed it"), "{said}");
            assert!(said.contains(&format!("share {} of 3 (threshold 2)", i + 1)), "{said}");
            resealed.push(std::fs::read(&out).unwrap());
        }
        let refs: Vec<&[u8]> = resealed.iter().map(|r| &r[..]).collect();
        assert_eq!(pqcore::escrow::recover(&refs, &request, mdk_id, [3; 16]).unwrap(), mdk);
        let refused = |key: &str, why: &str| {
            let e = reseal(&p("c0.sk"), &p("share0"), &p(key), &p("approved"), &pinned, Some(&p("no"))).unwrap_err();
            assert_eq!(e.exit_code(), 8, "{e}");
            assert!(e.to_string().contains(why), "{e}");
            assert!(!p("no").exists());
        };
        // A key one administrator hands over, without a statement naming it.
        refused("mine.pk", "names request key");
        // One pinned approver and an outsider: too few.
        approved(statement(now - 1, request.kid()), &["a1", "outsider"]);
        refused("req.pk", "1 of the pinned approvers signed");
        // Approved, but before its time; or waiting less than pinned.
        approved(statement(now + 3_600_000_000, request.kid()), &["a1", "a2"]);
        refused("req.pk", "may not proceed before");
        approved(statement(now - 86_400_000_000 + 60_000_000, request.kid()), &["a1", "a2"]);
        refused("req.pk", "waits 60 s");
        // Another custodian's key: exit 3 (sealed to another key).
        approved(statement(now - 1, request.kid()), &["a1", "a2"]);
        std::fs::write(p("c2.sk"), seeds[2]).unwrap();
        let e = reseal(&p("c2.sk"), &p("share0"), &p("req.pk"), &p("approved"), &pinned, Some(&p("no"))).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(!p("no").exists());
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_798_761_600_123_456), "2027-01-01T00:00:00Z");
        assert_eq!(time(951_782_400_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("86400").unwrap(), 86_400);
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
