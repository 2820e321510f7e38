//! Known-answer vectors for every envelope kind, with every intermediate
//! value, committed as `tests/data/kat/v1.json` and explained in
//! docs/FORMAT.md. This test rebuilds them from a fixed seed and compares;
//! `APG_PQ_WRITE_KAT=1 cargo test -p apg-pqcrypto-core kat` rewrites the file
//! after an intended change (which for a v1 format must never happen).
use crate::{
    backend::{ActiveKem, KemBackend},
    format::*,
    keyed::KeyedCipher,
    rng::RandomSource,
    sealed,
    test_rng::{SeededRandom, ZeroRandom},
    Dek, DsaSeed, Envelope, KemSecretKey, KemSeed, Kid, MasterDataKey, Purpose, SigningKey,
    WrapContext,
};
use serde_json::{json, Value};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

fn sealed_case(rng: &mut SeededRandom, plaintext: &[u8], user_aad: &[u8]) -> Value {
    let seed = KemSeed::generate_from(rng).unwrap();
    let key = KemSecretKey::from_seed(&seed).unwrap();
    let ek = key.public_key();
    let mut peek = rng.clone();
    let m: [u8; 32] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let (kem_ct, shared) = ActiveKem::encapsulate(ek.parsed(), &m);
    let derived = sealed::derive_key(&shared).unwrap();
    let envelope = sealed::seal_from(rng, ek, plaintext, user_aad).unwrap();
    assert_eq!(&envelope[SEALED_KEM_CT_OFFSET..SEALED_NONCE_OFFSET], &kem_ct[..]);
    let header = &envelope[..SEALED_HEADER_LEN];
    let parsed = Envelope::parse(&envelope).unwrap().into_sealed().unwrap();
    assert_eq!(sealed::open(&key, &parsed, user_aad).unwrap().expose(), plaintext);
    json!({
        "kind": "sealed",
        "kem_seed": hex(seed.expose()),
        "ek": hex(ek.as_bytes()),
        "kid": hex(ek.kid().as_bytes()),
        "m": hex(&m),
        "kem_ct": hex(&kem_ct[..]),
        "shared_secret": hex(shared.expose()),
        "hkdf_salt": "",
        "hkdf_info": hex(INFO_SEALED),
        "key": hex(derived.expose()),
        "nonce": hex(&nonce),
        "plaintext": hex(plaintext),
        "user_aad": hex(user_aad),
        "aad": hex(&concat(header, user_aad)),
        "envelope": hex(&envelope),
    })
}

fn keyed_case(rng: &mut SeededRandom, plaintext: &[u8], user_aad: &[u8]) -> Value {
    let dek = Dek::generate_from(rng).unwrap();
    let kid = Kid(rng.array().unwrap());
    let cipher = KeyedCipher::new(&dek, kid);
    let mut peek = rng.clone();
    let salt: [u8; SALT_LEN] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let derived = cipher.derive_key(&salt).unwrap();
    let envelope = cipher.encrypt_from(rng, plaintext, user_aad).unwrap();
    let parsed = Envelope::parse(&envelope).unwrap().into_keyed().unwrap();
    assert_eq!(cipher.decrypt(&parsed, user_aad).unwrap().expose(), plaintext);
    json!({
        "kind": "keyed",
        "dek": hex(dek.expose()),
        "kid": hex(kid.as_bytes()),
        "salt": hex(&salt),
        "hkdf_info": hex(&concat(INFO_KEYED, &salt)),
        "key": hex(derived.expose()),
        "nonce": hex(&nonce),
        "plaintext": hex(plaintext),
        "user_aad": hex(user_aad),
        "aad": hex(&concat(&envelope[..KEYED_HEADER_LEN], user_aad)),
        "envelope": hex(&envelope),
    })
}

fn signature_case(rng: &mut SeededRandom, message: &[u8], context: &[u8], hedged: bool) -> Value {
    let seed = DsaSeed::generate_from(rng).unwrap();
    let key = SigningKey::from_seed(&seed);
    let (rnd, envelope) = if hedged {
        let rnd: [u8; 32] = rng.clone().array().unwrap();
        (rnd, key.sign_envelope_from(rng, message, context).unwrap())
    } else {
        ([0; 32], key.sign_envelope_from(&mut ZeroRandom, message, context).unwrap())
    };
    let parsed = Envelope::parse(&envelope).unwrap().into_signature().unwrap();
    assert!(key.verifying_key().verify_envelope(&parsed, message, context).unwrap());
    json!({
        "kind": "signature",
        "dsa_seed": hex(seed.expose()),
        "pk": hex(key.verifying_key().as_bytes()),
        "kid": hex(key.kid().as_bytes()),
        "message": hex(message),
        "context": hex(context),
        "rnd": hex(&rnd),
        "signature": hex(parsed.signature()),
        "envelope": hex(&envelope),
    })
}

fn dek_case(rng: &mut SeededRandom) -> Value {
    let keys = crate::TenantKeys::generate_from(rng).unwrap();
    assert_eq!(crate::open_dek(&keys.kem, &keys.sealed_dek).unwrap(), keys.dek);
    json!({
        "kind": "sealed-dek",
        "kem_seed": hex(keys.kem_seed.expose()),
        "kid": hex(keys.kem.kid().as_bytes()),
        "dek": hex(keys.dek.expose()),
        "user_aad": hex(AAD_DEK),
        "envelope": hex(&keys.sealed_dek),
    })
}

fn wrap_case(rng: &mut SeededRandom) -> Value {
    let mdk_bytes = Dek::generate_from(rng).unwrap();
    let id = Kid(rng.array().unwrap());
    let mdk = MasterDataKey::new(id, &mdk_bytes);
    let secret = KemSeed::generate_from(rng).unwrap();
    let context = WrapContext { tenant: "acme", version: 1, purpose: Purpose::KemSeed };
    let wrapped = mdk.wrap_from(rng, secret.expose(), &context).unwrap();
    assert_eq!(mdk.unwrap(&wrapped, &context).unwrap().expose(), secret.expose());
    json!({
        "kind": "mdk-wrap",
        "mdk": hex(mdk_bytes.expose()),
        "mdk_id": hex(id.as_bytes()),
        "tenant": context.tenant,
        "version": context.version,
        "purpose": context.purpose.label(),
        "user_aad": hex(&context.aad()),
        "secret": hex(secret.expose()),
        "envelope": hex(&wrapped),
    })
}

fn build() -> Value {
    let mut rng = SeededRandom::new("apg-pq v1 known-answer vectors");
    let config = b"postgres://app:s3cret@db.internal:5432/app";
    let cases = vec![
        sealed_case(&mut rng, b"", b""),
        sealed_case(&mut rng, config, b"database_url"),
        keyed_case(&mut rng, b"", b""),
        keyed_case(&mut rng, config, b"database_url"),
        keyed_case(&mut rng, &[0xA5; 100], b""),
        signature_case(&mut rng, b"", b"", false),
        signature_case(&mut rng, config, b"config v7", true),
        dek_case(&mut rng),
        wrap_case(&mut rng),
    ];
    json!({
        "description": "apg_pqcrypto format v1 known-answer vectors; hex strings; see docs/FORMAT.md",
        "cases": cases,
    })
}

#[test]
fn known_answer_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kat/v1.json");
    let built = serde_json::to_string_pretty(&build()).unwrap() + "\n";
    if std::env::var_os("APG_PQ_WRITE_KAT").is_some() {
        std::fs::write(path, &built).unwrap();
    }
    let committed = std::fs::read_to_string(path).expect("tests/data/kat/v1.json");
    assert!(committed == built, "format v1 output differs from the committed vectors");
}
