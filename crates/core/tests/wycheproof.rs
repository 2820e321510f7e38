//! Wycheproof vectors (tests/data/wycheproof, Apache-2.0) against both ML-KEM
//! backends, the ML-DSA backend, and the AEAD and KDF exactly as built here
//! (including the Poly1305 backend chosen in .cargo/config.toml).
//!
//! Every test case must come out as the file says: "valid" cases reproduce the
//! expected outputs, "invalid" cases are rejected at our input checks or by
//! the primitive. Cases are counted so that a silently skipped file fails.

use pqcore::backend::{KemBackend, LibcruxDsa, LibcruxKem, RustCryptoDsa, RustCryptoKem, SignatureBackend};
use pqcore::{KemPublicKey, KemSecretKey, SigningKey, VerifyingKey};
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

/// Keygen from seed, then decapsulation (mlkem_768_test.json).
fn kem_decaps<B: KemBackend>() {
    for (_, t) in load("mlkem_768_test.json") {
        let seed = bytes(&t["seed"]);
        let c = bytes(&t["c"]);
        let (Ok(seed), Ok(c)) = (<[u8; 64]>::try_from(&seed[..]), <[u8; 1088]>::try_from(&c[..]))
        else {
            assert!(!valid(&t), "{}: valid case rejected by length checks", id(&t));
            continue;
        };
        let (dk, ek) = B::from_seed(&seed);
        if !t["ek"].is_null() {
            assert_eq!(&ek[..], &bytes(&t["ek"])[..], "{}: ek", id(&t));
        }
        let k = B::decapsulate(&dk, &c);
        assert_eq!(k.expose()[..] == bytes(&t["K"])[..], valid(&t), "{}: K", id(&t));
    }
}

/// Deterministic encapsulation and encapsulation-key validation.
fn kem_encaps<B: KemBackend>() {
    for (_, t) in load("mlkem_768_encaps_test.json") {
        let ek = bytes(&t["ek"]);
        let m = bytes(&t["m"]);
        let parsed = <[u8; 1184]>::try_from(&ek[..]).ok().and_then(|ek| B::encapsulation_key(&ek));
        let (Some(ek), Ok(m)) = (parsed, <[u8; 32]>::try_from(&m[..])) else {
            assert!(!valid(&t), "{}: valid case rejected", id(&t));
            continue;
        };
        let (c, k) = B::encapsulate(&ek, &m);
        let matches = c[..] == bytes(&t["c"])[..] && k.expose()[..] == bytes(&t["K"])[..];
        assert_eq!(matches, valid(&t), "{}", id(&t));
    }
}

/// Seed → (ek, expanded dk); the expanded key must load and agree.
fn kem_keygen<B: KemBackend>() {
    for (_, t) in load("mlkem_768_keygen_seed_test.json") {
        assert!(valid(&t));
        let seed: [u8; 64] = bytes(&t["seed"]).try_into().unwrap();
        let dk_bytes: [u8; 2400] = bytes(&t["dk"]).try_into().unwrap();
        let (dk, ek) = B::from_seed(&seed);
        assert_eq!(&ek[..], &bytes(&t["ek"])[..], "{}: ek", id(&t));
        let (expanded, ek2) = B::from_expanded(&dk_bytes).expect("expanded key loads");
        assert_eq!(ek, ek2);
        let (c, k) = B::encapsulate(&B::encapsulation_key(&ek).unwrap(), &[7u8; 32]);
        assert_eq!(B::decapsulate(&dk, &c).expose(), k.expose());
        assert_eq!(B::decapsulate(&expanded, &c).expose(), k.expose());
    }
}

/// Expanded decapsulation keys, including malformed ones.
fn kem_expanded<B: KemBackend>() {
    for (_, t) in load("mlkem_768_semi_expanded_decaps_test.json") {
        let dk = bytes(&t["dk"]);
        let c = bytes(&t["c"]);
        let key = <[u8; 2400]>::try_from(&dk[..]).ok().and_then(|dk| B::from_expanded(&dk));
        let (Some((dk, _)), Ok(c)) = (key, <[u8; 1088]>::try_from(&c[..])) else {
            assert!(!valid(&t), "{}: valid case rejected", id(&t));
            continue;
        };
        let k = B::decapsulate(&dk, &c);
        assert_eq!(k.expose()[..] == bytes(&t["K"])[..], valid(&t), "{}", id(&t));
    }
}

#[test]
fn mlkem768_libcrux() {
    kem_decaps::<LibcruxKem>();
    kem_encaps::<LibcruxKem>();
    kem_keygen::<LibcruxKem>();
    kem_expanded::<LibcruxKem>();
}

#[test]
fn mlkem768_rustcrypto() {
    kem_decaps::<RustCryptoKem>();
    kem_encaps::<RustCryptoKem>();
    kem_keygen::<RustCryptoKem>();
    kem_expanded::<RustCryptoKem>();
}

/// The public key types agree with the vectors too (whichever backend serves).
#[test]
fn mlkem768_key_types() {
    for (_, t) in load("mlkem_768_semi_expanded_decaps_test.json") {
        let sk = KemSecretKey::from_slice(&bytes(&t["dk"]));
        if !valid(&t) && t["flags"].to_string().contains("DecapsulationKey") {
            assert!(sk.is_err(), "{}", id(&t));
        }
        if let Ok(sk) = sk {
            assert_eq!(&sk.public_key().as_bytes()[..], &bytes(&t["ek"])[..]);
        }
    }
    let mut rejected = 0;
    for (_, t) in load("mlkem_768_encaps_test.json") {
        let flags = t["flags"].to_string();
        if flags.contains("ModulusOverflow") || bytes(&t["ek"]).len() != 1184 {
            assert!(KemPublicKey::from_slice(&bytes(&t["ek"])).is_err(), "{}", id(&t));
            rejected += 1;
        }
    }
    assert!(rejected >= 12);
}

/// Both ML-DSA-65 implementations, directly, and the key types (whichever serves).
#[test]
fn mldsa65_verify() {
    dsa_verify::<LibcruxDsa>();
    dsa_verify::<RustCryptoDsa>();
    for (g, t) in load("mldsa_65_verify_test.json") {
        let msg = bytes(&t["msg"]);
        let ctx = bytes(&t["ctx"]);
        let sig = bytes(&t["sig"]);
        let ok = VerifyingKey::from_slice(&bytes(&g["publicKey"]))
            .and_then(|vk| vk.verify(&msg, &ctx, &sig))
            .unwrap_or(false);
        assert_eq!(ok, valid(&t), "{}: {}", id(&t), t["comment"]);
    }
}

fn dsa_verify<B: SignatureBackend>() {
    let mut checked = 0;
    for (g, t) in load("mldsa_65_verify_test.json") {
        let (msg, ctx, sig, pk) = (bytes(&t["msg"]), bytes(&t["ctx"]), bytes(&t["sig"]), bytes(&g["publicKey"]));
        let (Ok(pk), Ok(sig), true) = (<[u8; 1952]>::try_from(&pk[..]), <[u8; 3309]>::try_from(&sig[..]), ctx.len() <= 255)
        else {
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
    dsa_sign::<LibcruxDsa>();
    dsa_sign::<RustCryptoDsa>();
}

fn dsa_sign<B: SignatureBackend>() {
    let mut checked = 0;
    for (g, t) in load("mldsa_65_sign_seed_test.json") {
        if t["msg"].is_null() {
            continue; // external-mu cases: the format never signs a bare mu
        }
        let seed = bytes(&g["privateSeed"]);
        let msg = bytes(&t["msg"]);
        let ctx = bytes(&t["ctx"]);
        let Ok(seed) = <[u8; 32]>::try_from(&seed[..]) else {
            assert!(SigningKey::from_slice(&seed).is_err());
            assert!(!valid(&t), "{}", id(&t));
            continue;
        };
        if ctx.len() > 255 {
            let key = SigningKey::from_slice(&seed).unwrap();
            assert!(key.sign(&msg, &ctx).is_err());
            assert!(!valid(&t), "{}", id(&t));
            continue;
        }
        let rnd: [u8; 32] = if t["rnd"].is_null() { [0; 32] } else { bytes(&t["rnd"]).try_into().unwrap() };
        let (sk, pk) = B::from_seed(&seed);
        assert_eq!(&pk[..], &bytes(&g["publicKey"])[..], "{} {}: pk", B::NAME, id(&t));
        let sig = B::sign(&sk, &msg, &ctx, &rnd).unwrap();
        assert_eq!(&sig[..], &bytes(&t["sig"])[..], "{} {}: sig", B::NAME, id(&t));
        assert!(valid(&t));
        // And our hedged signature over the same input verifies.
        let key = SigningKey::from_slice(&seed).unwrap();
        let hedged = key.sign(&msg, &ctx).unwrap();
        assert!(key.verifying_key().verify(&msg, &ctx, &hedged).unwrap());
        checked += 1;
    }
    assert!(checked >= 80, "{}: only {checked} signing cases ran", B::NAME);
}

/// Each implementation verifies the other's hedged signatures, and both
/// derive the same public key and the same deterministic signature.
#[test]
fn mldsa65_backends_agree() {
    for i in 0u8..24 {
        let seed = [i.wrapping_mul(37).wrapping_add(5); 32];
        let msg = vec![i; usize::from(i) * 13];
        let ctx = vec![0xc7; usize::from(i) * 10];
        let rnd = [i ^ 0x5a; 32];
        let (lsk, lpk) = LibcruxDsa::from_seed(&seed);
        let (rsk, rpk) = RustCryptoDsa::from_seed(&seed);
        assert_eq!(lpk, rpk);
        let lsig = LibcruxDsa::sign(&lsk, &msg, &ctx, &rnd).unwrap();
        let rsig = RustCryptoDsa::sign(&rsk, &msg, &ctx, &rnd).unwrap();
        assert_eq!(lsig, rsig);
        assert!(RustCryptoDsa::verify(&RustCryptoDsa::verifying_key(&lpk), &msg, &ctx, &lsig));
        assert!(LibcruxDsa::verify(&LibcruxDsa::verifying_key(&rpk), &msg, &ctx, &rsig));
        let mut bad = *lsig;
        bad[i as usize * 7] ^= 1;
        assert!(!RustCryptoDsa::verify(&RustCryptoDsa::verifying_key(&lpk), &msg, &ctx, &bad));
        assert!(!LibcruxDsa::verify(&LibcruxDsa::verifying_key(&rpk), &msg, &ctx, &bad));
    }
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
