//! SLH-DSA-SHA2-128s key generation against NIST's ACVP vectors
//! (tests/data/acvp): the audit key's hedge derives exactly FIPS 205's keys
//! from its 48-byte seed. Signatures are checked byte for byte against an
//! independent implementation by tests/verify_kat.py (FORMAT.md §11.5).
use pqcore::slh::{self, SlhSigningKey};
use serde_json::Value;

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn keygen_matches_acvp() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/acvp/slh_dsa_sha2_128s_keygen.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        assert_eq!(group["parameterSet"], "SLH-DSA-SHA2-128s");
        for t in group["tests"].as_array().unwrap() {
            let seed = [bytes(&t["skSeed"]), bytes(&t["skPrf"]), bytes(&t["pkSeed"])].concat();
            assert_eq!(seed.len(), slh::SEED_LEN);
            let key = SlhSigningKey::from_seed(&seed).unwrap();
            assert_eq!(key.public_key().to_vec(), bytes(&t["pk"]), "tcId {}", t["tcId"]);
            // sk = SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root: our seed, then the public root.
            assert_eq!(bytes(&t["sk"]), [seed.clone(), bytes(&t["pk"])[slh::N..].to_vec()].concat());
            let sig = key.sign(b"acvp", b"", None).unwrap();
            assert!(slh::verify(&key.public_key(), b"acvp", b"", &sig));
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
}
