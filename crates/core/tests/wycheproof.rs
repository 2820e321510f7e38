//! Wycheproof vectors (tests/data/wycheproof, Apache-2.0) against both
//! backends of ML-KEM-768, ML-KEM-1024, ML-DSA-65 and ML-DSA-87, and the
//! AEAD and KDF exactly as built here
//! (including the Poly1305 backend chosen in .cargo/config.toml).
//!
//! Every test case must come out as the file says: "valid" cases reproduce the
//! expected outputs, "invalid" cases are rejected at our input checks or by
//! the primitive. Cases are counted so that a silently skipped file fails.

use pqcore::backend::{
    ByteArray, KemBackend, LibcruxDsa, LibcruxKem, MlDsa65, MlDsa87, MlDsaParams, MlKem1024, MlKem768, MlKemParams,
    RustCryptoDsa, RustCryptoKem, SignatureBackend,
};
use pqcore::{MlKemPublicKey, MlKemSecretKey, SignatureSuite, SigningKey, VerifyingKey};
use serde_json::Value;

fn load(name: &str) -> Vec<(Value, Value)> {
    let path = format!("{}/tests/data/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut cases = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            cases.push((group.clone(), test.clone()));
        }
    }
    assert_eq!(cases.len() as u64, doc["numberOfTests"].as_u64().unwrap(), "{name}: case count");
    cases
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or("")).unwrap()
}

fn valid(test: &Value) -> bool {
    match test["result"].as_str().unwrap() {
        "valid" => true,
        "invalid" => false,
        other => panic!("unexpected result {other}"),
    }
}

fn id(test: &Value) -> u64 {
    test["tcId"].as_u64().unwrap()
}

/// The file stem of a parameter set's vectors: `mlkem_768`, `mldsa_87`.
fn stem(name: &str) -> String {
    let mut parts = name.split('-');
    let (a, b, n) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    format!("{a}{b}_{n}")
}

fn array<A: ByteArray>(v: &[u8]) -> Option<A> {
    A::try_from(v).ok()
}

/// Keygen from seed, then decapsulation (mlkem_*_test.json).
fn kem_decaps<P: MlKemParams, B: KemBackend<P>>() {
    for (_, t) in load(&format!("{}_test.json", stem(P::NAME))) {
        let seed = bytes(&t["seed"]);
        let c = bytes(&t["c"]);
        let (Ok(seed), Some(c)) = (<[u8; 64]>::try_from(&seed[..]), array::<P::Ciphertext>(&c)) else {
            assert!(!valid(&t), "{}: valid case rejected by length checks", id(&t));
            continue;
        };
        let (dk, ek) = B::from_seed(&seed);
        if !t["ek"].is_null() {
            assert_eq!((*ek).as_ref(), &bytes(&t["ek"])[..], "{}: ek", id(&t));
        }
        let k = B::decapsulate(&dk, &c);
        assert_eq!(k.expose()[..] == bytes(&t["K"])[..], valid(&t), "{}: K", id(&t));
    }
}

/// Deterministic encapsulation and encapsulation-key validation.
fn kem_encaps<P: MlKemParams, B: KemBackend<P>>() {
    for (_, t) in load(&format!("{}_encaps_test.json", stem(P::NAME))) {
        let ek = bytes(&t["ek"]);
        let m = bytes(&t["m"]);
        let parsed = array::<P::PublicKey>(&ek).and_then(|ek| B::encapsulation_key(&ek));
        let (Some(ek), Ok(m)) = (parsed, <[u8; 32]>::try_from(&m[..])) else {
            assert!(!valid(&t), "{}: valid case rejected", id(&t));
            continue;
        };
        let (c, k) = B::encapsulate(&ek, &m);
        let matches = (*c).as_ref() == &bytes(&t["c"])[..] && k.expose()[..] == bytes(&t["K"])[..];
        assert_eq!(matches, valid(&t), "{}", id(&t));
    }
}

/// Seed → (ek, expanded dk); the expanded key must load and agree.
fn kem_keygen<P: MlKemParams, B: KemBackend<P>>() {
    for (_, t) in load(&format!("{}_keygen_seed_test.json", stem(P::NAME))) {
        assert!(valid(&t));
        let seed: [u8; 64] = bytes(&t["seed"]).try_into().unwrap();
        let dk_bytes = array::<P::ExpandedKey>(&bytes(&t["dk"])).unwrap();
        let (dk, ek) = B::from_seed(&seed);
        assert_eq!((*ek).as_ref(), &bytes(&t["ek"])[..], "{}: ek", id(&t));
        let (expanded, ek2) = B::from_expanded(&dk_bytes).expect("expanded key loads");
        assert_eq!((*ek).as_ref(), (*ek2).as_ref());
        let (c, k) = B::encapsulate(&B::encapsulation_key(&ek).unwrap(), &[7u8; 32]);
        assert_eq!(B::decapsulate(&dk, &c).expose(), k.expose());
        assert_eq!(B::decapsulate(&expanded, &c).expose(), k.expose());
    }
}

/// Expanded decapsulation keys, including malformed ones.
fn kem_expanded<P: MlKemParams, B: KemBackend<P>>() {
    for (_, t) in load(&format!("{}_semi_expanded_decaps_test.json", stem(P::NAME))) {
        let key = array::<P::ExpandedKey>(&bytes(&t["dk"])).and_then(|dk| B::from_expanded(&dk));
        let (Some((dk, _)), Some(c)) = (key, array::<P::Ciphertext>(&bytes(&t["c"]))) else {
            assert!(!valid(&t), "{}: valid case rejected", id(&t));
            continue;
        };
        let k = B::decapsulate(&dk, &c);
        assert_eq!(k.expose()[..] == bytes(&t["K"])[..], valid(&t), "{}", id(&t));
    }
}

fn kem_all<P: MlKemParams, B: KemBackend<P>>() {
    kem_decaps::<P, B>();
    kem_encaps::<P, B>();
    kem_keygen::<P, B>();
    kem_expanded::<P, B>();
}

#[test]
fn mlkem768_libcrux() {
    kem_all::<MlKem768, LibcruxKem>();
}

#[test]
fn mlkem768_rustcrypto() {
    kem_all::<MlKem768, RustCryptoKem>();
}

#[test]
fn mlkem1024_libcrux() {
    kem_all::<MlKem1024, LibcruxKem>();
}

#[test]
fn mlkem1024_rustcrypto() {
    kem_all::<MlKem1024, RustCryptoKem>();
}

/// The public key types agree with the vectors too (whichever backend serves).
fn kem_key_types<P: MlKemParams>()
where
    pqcore::backend::ActiveKem: KemBackend<P>,
{
    for (_, t) in load(&format!("{}_semi_expanded_decaps_test.json", stem(P::NAME))) {
        let sk = MlKemSecretKey::<P>::from_slice(&bytes(&t["dk"]));
        if !valid(&t) && t["flags"].to_string().contains("DecapsulationKey") {
            assert!(sk.is_err(), "{}", id(&t));
        }
        if let Ok(sk) = sk {
            assert_eq!((*sk.public_key().as_bytes()).as_ref(), &bytes(&t["ek"])[..]);
        }
    }
    let mut rejected = 0;
    for (_, t) in load(&format!("{}_encaps_test.json", stem(P::NAME))) {
        let flags = t["flags"].to_string();
        if flags.contains("ModulusOverflow") || bytes(&t["ek"]).len() != P::PublicKey::LEN {
            assert!(MlKemPublicKey::<P>::from_slice(&bytes(&t["ek"])).is_err(), "{}", id(&t));
            rejected += 1;
        }
    }
    assert!(rejected >= 12, "{}: only {rejected} keys rejected", P::NAME);
}

#[test]
fn mlkem_key_types() {
    kem_key_types::<MlKem768>();
    kem_key_types::<MlKem1024>();
}

/// Both implementations, directly, and the key type (whichever serves).
fn dsa_verify_all<P: MlDsaParams>()
where
    LibcruxDsa: SignatureBackend<P>,
    RustCryptoDsa: SignatureBackend<P>,
{
    dsa_verify::<P, LibcruxDsa>();
    dsa_verify::<P, RustCryptoDsa>();
    for (g, t) in load(&format!("{}_verify_test.json", stem(P::NAME))) {
        let msg = bytes(&t["msg"]);
        let ctx = bytes(&t["ctx"]);
        let sig = bytes(&t["sig"]);
        let ok = VerifyingKey::from_slice(&bytes(&g["publicKey"]))
            .and_then(|vk| vk.verify(&msg, &ctx, &sig))
            .unwrap_or(false);
        assert_eq!(ok, valid(&t), "{}: {}", id(&t), t["comment"]);
    }
}

#[test]
fn mldsa65_verify() {
    dsa_verify_all::<MlDsa65>();
}

#[test]
fn mldsa87_verify() {
    dsa_verify_all::<MlDsa87>();
}

fn dsa_verify<P: MlDsaParams, B: SignatureBackend<P>>() {
    let mut checked = 0;
    for (g, t) in load(&format!("{}_verify_test.json", stem(P::NAME))) {
        let (msg, ctx, sig, pk) = (bytes(&t["msg"]), bytes(&t["ctx"]), bytes(&t["sig"]), bytes(&g["publicKey"]));
        let (Some(pk), Some(sig), true) = (array::<P::PublicKey>(&pk), array::<P::Signature>(&sig), ctx.len() <= 255) else {
            assert!(!valid(&t), "{} {}", B::NAME, id(&t));
            continue;
        };
        let ok = B::verify(&B::verifying_key(&pk), &msg, &ctx, &sig);
        assert_eq!(ok, valid(&t), "{} {}: {}", B::NAME, id(&t), t["comment"]);
        checked += 1;
    }
    assert!(checked >= 50, "{}: only {checked} cases", B::NAME);
}

#[test]
fn mldsa65_sign_from_seed() {
    dsa_sign::<MlDsa65, LibcruxDsa>(SignatureSuite::MlDsa65);
    dsa_sign::<MlDsa65, RustCryptoDsa>(SignatureSuite::MlDsa65);
}

#[test]
fn mldsa87_sign_from_seed() {
    dsa_sign::<MlDsa87, LibcruxDsa>(SignatureSuite::MlDsa87);
    dsa_sign::<MlDsa87, RustCryptoDsa>(SignatureSuite::MlDsa87);
}

fn dsa_sign<P: MlDsaParams, B: SignatureBackend<P>>(suite: SignatureSuite) {
    assert_eq!(suite.name(), P::NAME);
    let mut checked = 0;
    let cases = load(&format!("{}_sign_seed_test.json", stem(P::NAME)));
    let expected = cases.iter().filter(|(_, t)| !t["msg"].is_null() && valid(t)).count();
    for (g, t) in cases {
        if t["msg"].is_null() {
            continue; // external-mu cases: the format never signs a bare mu
        }
        let seed = bytes(&g["privateSeed"]);
        let msg = bytes(&t["msg"]);
        let ctx = bytes(&t["ctx"]);
        let Ok(seed) = <[u8; 32]>::try_from(&seed[..]) else {
            assert!(SigningKey::from_slice_for(suite, &seed).is_err());
            assert!(!valid(&t), "{}", id(&t));
            continue;
        };
        if ctx.len() > 255 {
            let key = SigningKey::from_slice_for(suite, &seed).unwrap();
            assert!(key.sign(&msg, &ctx).is_err());
            assert!(!valid(&t), "{}", id(&t));
            continue;
        }
        let rnd: [u8; 32] = if t["rnd"].is_null() { [0; 32] } else { bytes(&t["rnd"]).try_into().unwrap() };
        let (sk, pk) = B::from_seed(&seed);
        assert_eq!((*pk).as_ref(), &bytes(&g["publicKey"])[..], "{} {}: pk", B::NAME, id(&t));
        let sig = B::sign(&sk, &msg, &ctx, &rnd).unwrap();
        assert_eq!((*sig).as_ref(), &bytes(&t["sig"])[..], "{} {}: sig", B::NAME, id(&t));
        assert!(valid(&t));
        // And our hedged signature over the same input verifies.
        let key = SigningKey::from_slice_for(suite, &seed).unwrap();
        assert_eq!(key.verifying_key().as_bytes(), (*pk).as_ref());
        let hedged = key.sign(&msg, &ctx).unwrap();
        assert!(key.verifying_key().verify(&msg, &ctx, &hedged).unwrap());
        checked += 1;
    }
    assert!(checked >= 70 && checked == expected, "{}: {checked} of {expected} signing cases ran", B::NAME);
}

/// Each implementation verifies the other's hedged signatures, and both
/// derive the same public key and the same deterministic signature.
fn dsa_backends_agree<P: MlDsaParams>()
where
    LibcruxDsa: SignatureBackend<P>,
    RustCryptoDsa: SignatureBackend<P>,
{
    for i in 0u8..24 {
        let seed = [i.wrapping_mul(37).wrapping_add(5); 32];
        let msg = vec![i; usize::from(i) * 13];
        let ctx = vec![0xc7; usize::from(i) * 10];
        let rnd = [i ^ 0x5a; 32];
        let (lsk, lpk) = <LibcruxDsa as SignatureBackend<P>>::from_seed(&seed);
        let (rsk, rpk) = <RustCryptoDsa as SignatureBackend<P>>::from_seed(&seed);
        assert_eq!((*lpk).as_ref(), (*rpk).as_ref());
        let lsig = <LibcruxDsa as SignatureBackend<P>>::sign(&lsk, &msg, &ctx, &rnd).unwrap();
        let rsig = <RustCryptoDsa as SignatureBackend<P>>::sign(&rsk, &msg, &ctx, &rnd).unwrap();
        assert_eq!((*lsig).as_ref(), (*rsig).as_ref());
        let r_vk = <RustCryptoDsa as SignatureBackend<P>>::verifying_key(&lpk);
        let l_vk = <LibcruxDsa as SignatureBackend<P>>::verifying_key(&rpk);
        assert!(<RustCryptoDsa as SignatureBackend<P>>::verify(&r_vk, &msg, &ctx, &lsig));
        assert!(<LibcruxDsa as SignatureBackend<P>>::verify(&l_vk, &msg, &ctx, &rsig));
        let mut bad = *lsig;
        bad.as_mut()[i as usize * 7] ^= 1;
        assert!(!<RustCryptoDsa as SignatureBackend<P>>::verify(&r_vk, &msg, &ctx, &bad));
        assert!(!<LibcruxDsa as SignatureBackend<P>>::verify(&l_vk, &msg, &ctx, &bad));
    }
}

#[test]
fn mldsa_backends_agree() {
    dsa_backends_agree::<MlDsa65>();
    dsa_backends_agree::<MlDsa87>();
}

#[test]
fn chacha20poly1305() {
    use chacha20poly1305::{aead::AeadInOut, ChaCha20Poly1305, KeyInit};
    for (_, t) in load("chacha20_poly1305_test.json") {
        let (key, iv, tag) = (bytes(&t["key"]), bytes(&t["iv"]), bytes(&t["tag"]));
        let (aad, msg, ct) = (bytes(&t["aad"]), bytes(&t["msg"]), bytes(&t["ct"]));
        let (Ok(key), Ok(iv), Ok(tag)) = (
            <[u8; 32]>::try_from(&key[..]),
            <[u8; 12]>::try_from(&iv[..]),
            <[u8; 16]>::try_from(&tag[..]),
        ) else {
            assert!(!valid(&t), "{}", id(&t));
            continue;
        };
        let cipher = ChaCha20Poly1305::new(&key.into());
        let mut buf = ct.clone();
        let opened = cipher.decrypt_inout_detached(&iv.into(), &aad, buf.as_mut_slice().into(), &tag.into());
        assert_eq!(opened.is_ok() && buf == msg, valid(&t), "{}: open", id(&t));
        if valid(&t) {
            let mut buf = msg.clone();
            let got = cipher.encrypt_inout_detached(&iv.into(), &aad, buf.as_mut_slice().into()).unwrap();
            assert_eq!((buf, got.to_vec()), (ct, tag.to_vec()), "{}: seal", id(&t));
        }
    }
}

#[test]
fn hkdf_sha256() {
    for (_, t) in load("hkdf_sha256_test.json") {
        let size = t["size"].as_u64().unwrap() as usize;
        let mut okm = vec![0u8; size];
        let salt = bytes(&t["salt"]);
        let result = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &bytes(&t["ikm"])).expand(&bytes(&t["info"]), &mut okm);
        assert_eq!(result.is_ok() && okm == bytes(&t["okm"]), valid(&t), "{}", id(&t));
    }
}
