#![no_main]
//! Arbitrary bytes as escrow records (FORMAT.md §14.1, §14.2): a share
//! record ('E'/'R') parsed and, with the fixed key's kid spliced in,
//! opened; recombination of up to four records; and a request statement
//! and an approved statement ('A') parsed and checked against a pinned
//! key. Nothing may panic, and a statement the fuzzer forges never counts
//! an approval by the pinned key.
use libfuzzer_sys::fuzz_target;
use pqcore::escrow::{self, ApprovedRequest, RequestStatement, ShareRecord};
use pqcore::{KemSecretKey, Kid, SigningKey, VerifyingKey};
use std::sync::OnceLock;

fn key() -> &'static KemSecretKey {
    static KEY: OnceLock<KemSecretKey> = OnceLock::new();
    KEY.get_or_init(|| KemSecretKey::from_slice(&[0x42; 64]).unwrap())
}

fn approver() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let signing = SigningKey::from_seed(&pqcore::DsaSeed::from_slice(&[7; 32]).unwrap());
        VerifyingKey::from_slice(signing.verifying_key().as_bytes()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() >= 18 {
        bytes[2..18].copy_from_slice(key().kid().as_bytes());
    }
    if bytes.len() >= 71 {
        bytes[55..71].copy_from_slice(key().kid().as_bytes());
    }
    if let Ok(record) = ShareRecord::parse(&bytes) {
        let _ = record.open(key());
    }
    let records: Vec<&[u8]> = bytes.chunks(bytes.len().div_ceil(4).max(1)).collect();
    let _ = escrow::recover(&records, key(), Kid::from_slice(&[0; 16]).unwrap(), [0; 16]);
    let _ = RequestStatement::parse(data);
    if let Ok(approved) = ApprovedRequest::parse(data) {
        assert!(approved.verified_approvers(std::slice::from_ref(approver())).is_empty(), "a forged approval counted");
    }
});
