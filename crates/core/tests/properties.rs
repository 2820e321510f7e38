//! Round trips, tampering, truncation, wrong keys and wrong AAD for every
//! envelope kind. The sweeps over single-bit flips and truncations are
//! exhaustive for one envelope of each kind; proptest covers random sizes
//! (0..64 KiB) and random AAD.

use pqcore::{
    keyed_len, mdk_id, open_dek, sealed, Dek, Envelope, Error, KemSecretKey, KeyedCipher, Kid,
    Malformed, MasterDataKey, Purpose, RecipientSecret, SignatureSuite, SigningKey, Suite, TenantKeys, WrapContext,
};
use proptest::prelude::*;
use std::sync::OnceLock;

struct Fixture {
    xwing: RecipientSecret,
    other_xwing: RecipientSecret,
    kem: KemSecretKey,
    other_kem: KemSecretKey,
    cipher: KeyedCipher,
    other_cipher: KeyedCipher,
    signing: SigningKey,
    other_signing: SigningKey,
    kem1024: RecipientSecret,
    signing87: SigningKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let kid = Kid([7; 16]);
        Fixture {
            xwing: RecipientSecret::generate(Suite::XWing).unwrap().1,
            other_xwing: RecipientSecret::generate(Suite::XWing).unwrap().1,
            kem: KemSecretKey::generate().unwrap().1,
            other_kem: KemSecretKey::generate().unwrap().1,
            cipher: KeyedCipher::new(&Dek::generate().unwrap(), kid),
            // Same kid, different DEK: only the authentication can tell.
            other_cipher: KeyedCipher::new(&Dek::generate().unwrap(), kid),
            signing: SigningKey::generate().unwrap().1,
            other_signing: SigningKey::generate().unwrap().1,
            kem1024: RecipientSecret::generate(Suite::MlKem1024).unwrap().1,
            signing87: SigningKey::generate_for(SignatureSuite::MlDsa87).unwrap().1,
        }
    })
}

fn open_sealed<'k>(key: impl Into<pqcore::Opener<'k>>, bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let env = Envelope::parse(bytes)?.into_sealed()?;
    Ok(sealed::open(key, &env, aad)?.expose().to_vec())
}

fn open_keyed(cipher: &KeyedCipher, bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let env = Envelope::parse(bytes)?.into_keyed()?;
    Ok(cipher.decrypt(&env, aad)?.expose().to_vec())
}

fn verify_sig(signing: &SigningKey, bytes: &[u8], msg: &[u8], ctx: &[u8]) -> Result<bool, Error> {
    let env = Envelope::parse(bytes)?.into_signature()?;
    signing.verifying_key().verify_envelope(&env, msg, ctx)
}

/// Every single-bit flip of `good` must be rejected by `open`.
fn assert_every_flip_rejected(good: &[u8], open: impl Fn(&[u8]) -> bool) {
    let mut bytes = good.to_vec();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            bytes[i] ^= 1 << bit;
            assert!(!open(&bytes), "flip of byte {i} bit {bit} accepted");
            bytes[i] ^= 1 << bit;
        }
    }
    assert!(open(&bytes));
}

/// Every proper prefix of `good` must be rejected by `open`.
fn assert_every_truncation_rejected(good: &[u8], open: impl Fn(&[u8]) -> bool) {
    for len in 0..good.len() {
        assert!(!open(&good[..len]), "truncation to {len} accepted");
    }
}

#[test]
fn sealed_flips_and_truncations() {
    let f = fixture();
    let env = sealed::seal(f.kem.public_key(), b"db password", b"key").unwrap();
    let ok = |b: &[u8]| open_sealed(&f.kem, b, b"key").is_ok();
    assert_every_flip_rejected(&env, ok);
    assert_every_truncation_rejected(&env, ok);
}

#[test]
fn xwing_sealed_flips_and_truncations() {
    let f = fixture();
    let env = sealed::seal(f.xwing.public_key(), b"db password", b"key").unwrap();
    assert_eq!((env[1], env.len()), (b'X', 11 + 1166));
    let ok = |b: &[u8]| open_sealed(&f.xwing, b, b"key").is_ok();
    assert_every_flip_rejected(&env, ok);
    assert_every_truncation_rejected(&env, ok);
}

#[test]
fn ml_kem_1024_sealed_flips_and_truncations() {
    let f = fixture();
    let env = sealed::seal(f.kem1024.public_key(), b"db password", b"key").unwrap();
    assert_eq!((env[1], env.len()), (b'L', 11 + 1614));
    let ok = |b: &[u8]| open_sealed(&f.kem1024, b, b"key").is_ok();
    assert_every_flip_rejected(&env, ok);
    assert_every_truncation_rejected(&env, ok);
}

#[test]
fn batch_items_flips_and_truncations() {
    let f = fixture();
    let kem768 = RecipientSecret::MlKem768(KemSecretKey::from_slice(&[3u8; 64]).unwrap());
    for (key, kind, overhead) in [(&kem768, b'B', 1142), (&f.kem1024, b'M', 1622), (&f.xwing, b'W', 1174)] {
        let values: Vec<&[u8]> = vec![b"one", b"", b"three"];
        let aads: Vec<&[u8]> = vec![b"r1", b"r2", b"r3"];
        let items = sealed::seal_batch(key.public_key(), &values, &aads).unwrap();
        assert_eq!(items.len(), 3);
        for (i, item) in items.iter().enumerate() {
            assert_eq!((item[1], item.len()), (kind, values[i].len() + overhead));
            let env = Envelope::parse(item).unwrap().into_sealed().unwrap();
            assert_eq!(env.batch_position(), Some((i as u32, 3)));
            assert_eq!(open_sealed(key, item, aads[i]).unwrap(), values[i]);
            // Each item binds its own AAD: another item's does not open it.
            assert_eq!(open_sealed(key, item, aads[(i + 1) % 3]).unwrap_err(), Error::DecryptionFailed);
        }
        // One encapsulation: every item carries the same KEM ciphertext.
        let ct_len = key.suite().ciphertext_len();
        assert_eq!(items[0][26..26 + ct_len], items[2][26..26 + ct_len]);
        let ok = |b: &[u8]| open_sealed(key, b, b"r3").is_ok();
        assert_every_flip_rejected(&items[2], ok);
        assert_every_truncation_rejected(&items[2], ok);
        // FORMAT.md §3.3: 0 <= index < count. An item naming index 3 of 3,
        // or any index of a batch of 0, is malformed before any key is used.
        for (index, count) in [(3u32, 3u32), (7, 3), (0, 0), (u32::MAX, 1)] {
            let mut bad = items[2].clone();
            bad[18..22].copy_from_slice(&index.to_be_bytes());
            bad[22..26].copy_from_slice(&count.to_be_bytes());
            assert_eq!(Envelope::parse(&bad).unwrap_err(), Error::Malformed(Malformed::BatchPosition), "{index} of {count}");
        }
    }
}

#[test]
fn suites_do_not_mix() {
    let f = fixture();
    let x = sealed::seal(f.xwing.public_key(), b"v", b"").unwrap();
    let m = sealed::seal(f.kem.public_key(), b"v", b"").unwrap();
    assert_eq!(open_sealed(&f.other_xwing, &x, b"").unwrap_err(), Error::DecryptionFailed);
    assert_eq!(open_sealed(&f.kem, &x, b"").unwrap_err(), Error::DecryptionFailed);
    assert_eq!(open_sealed(&f.xwing, &m, b"").unwrap_err(), Error::DecryptionFailed);
    // Relabelling an 'S' envelope as 'X' (or a single as a batch item) is malformed or fails.
    let mut relabelled = m.clone();
    relabelled[1] = b'X';
    assert!(open_sealed(&f.xwing, &relabelled, b"").is_err());
    relabelled[1] = b'B';
    assert!(open_sealed(&f.kem, &relabelled, b"").is_err());
    // ML-KEM-1024 ('L') and ML-KEM-768 ('S') never open each other's envelopes.
    let l = sealed::seal(f.kem1024.public_key(), b"v", b"").unwrap();
    assert_eq!(open_sealed(&f.kem, &l, b"").unwrap_err(), Error::DecryptionFailed);
    assert_eq!(open_sealed(&f.kem1024, &m, b"").unwrap_err(), Error::DecryptionFailed);
    relabelled[1] = b'L';
    assert_eq!(Envelope::parse(&relabelled).unwrap_err(), Error::Malformed(Malformed::Truncated));
    let mut relabelled = l.clone();
    relabelled[1] = b'S';
    assert!(open_sealed(&f.kem1024, &relabelled, b"").is_err());
    assert!(open_sealed(&f.kem, &relabelled, b"").is_err());
    // A batch larger than its count refuses a further item.
    let mut batch = sealed::BatchSealer::new(f.xwing.public_key(), 1).unwrap();
    batch.seal(b"a", b"").unwrap();
    assert_eq!(batch.seal(b"b", b"").unwrap_err(), Error::OutputLength);
}

#[test]
fn xwing_tenant_keys() {
    let keys = TenantKeys::generate(Suite::XWing, pqcore::SignatureSuite::MlDsa65).unwrap();
    assert_eq!(keys.kem_seed.expose().len(), 32);
    assert_eq!(pqcore::dek_suite(&keys.sealed_dek).unwrap(), Suite::XWing);
    assert_eq!(keys.sealed_dek[1], b'X');
    assert_eq!(open_dek(&keys.kem, &keys.sealed_dek).unwrap(), keys.dek);
    let again = RecipientSecret::from_seed(Suite::XWing, keys.kem_seed.expose()).unwrap();
    assert_eq!(again.kid(), keys.kem.kid());
    assert!(!format!("{:?} {:?}", keys.kem_seed, keys.kem).contains(&hex::encode(keys.kem_seed.expose())));
}

#[test]
fn cnsa2_tenant_keys() {
    let keys = TenantKeys::generate(Suite::MlKem1024, SignatureSuite::MlDsa87).unwrap();
    assert_eq!(keys.kem_seed.expose().len(), 64);
    assert_eq!(keys.sealed_dek[1], b'L');
    assert_eq!(pqcore::dek_suite(&keys.sealed_dek).unwrap(), Suite::MlKem1024);
    assert_eq!(open_dek(&keys.kem, &keys.sealed_dek).unwrap(), keys.dek);
    assert_eq!(keys.signing.suite(), SignatureSuite::MlDsa87);
    assert_eq!(keys.signing.verifying_key().as_bytes().len(), 2592);
    let again = RecipientSecret::from_seed(Suite::MlKem1024, keys.kem_seed.expose()).unwrap();
    assert_eq!(again.kid(), keys.kem.kid());
    // The same 64-byte seed read as ML-KEM-768 is another key.
    assert_ne!(RecipientSecret::from_seed(Suite::MlKem768, keys.kem_seed.expose()).unwrap().kid(), keys.kem.kid());
    assert_eq!(Purpose::dsa_seed(SignatureSuite::MlDsa87).label(), "ml-dsa-87 seed");
    assert_eq!(Purpose::kem_seed(Suite::MlKem1024).label(), "ml-kem-1024 seed");
}

#[test]
fn ml_dsa_87_signature_flips_and_truncations() {
    let f = fixture();
    let env = f.signing87.sign_envelope(b"config", b"ctx").unwrap();
    assert_eq!((env[1], env.len()), (b'H', 4645));
    let ok = |b: &[u8]| verify_sig(&f.signing87, b, b"config", b"ctx").unwrap_or(false);
    assert_every_flip_rejected(&env, ok);
    assert_every_truncation_rejected(&env, ok);
    // A 'G' envelope relabelled 'H' (or the reverse) has the wrong length.
    let mut g = f.signing.sign_envelope(b"config", b"ctx").unwrap();
    g[1] = b'H';
    assert_eq!(Envelope::parse(&g).unwrap_err(), Error::Malformed(Malformed::WrongLength));
    let mut h = env.clone();
    h[1] = b'G';
    assert_eq!(Envelope::parse(&h).unwrap_err(), Error::Malformed(Malformed::WrongLength));
    // An ML-DSA-65 key does not take an ML-DSA-87 envelope, even naming its kid.
    let mut renamed = env.clone();
    renamed[2..18].copy_from_slice(f.signing.kid().as_bytes());
    assert!(!verify_sig(&f.signing, &renamed, b"config", b"ctx").unwrap());
}

#[test]
fn keyed_flips_and_truncations() {
    let f = fixture();
    let env = f.cipher.encrypt(b"db password", b"key").unwrap();
    let ok = |b: &[u8]| open_keyed(&f.cipher, b, b"key").is_ok();
    assert_every_flip_rejected(&env, ok);
    assert_every_truncation_rejected(&env, ok);
}

#[test]
fn signature_flips_and_truncations() {
    let f = fixture();
    let env = f.signing.sign_envelope(b"config", b"ctx").unwrap();
    let ok = |b: &[u8]| verify_sig(&f.signing, b, b"config", b"ctx").unwrap_or(false);
    assert_every_flip_rejected(&env, ok);
    assert_every_truncation_rejected(&env, ok);
}

#[test]
fn errors_are_malformed_or_opaque() {
    let f = fixture();
    let env = f.cipher.encrypt(b"v", b"").unwrap();
    assert_eq!(open_keyed(&f.cipher, &[], b""), Err(Error::Malformed(Malformed::Truncated)));
    let mut v2 = env.clone();
    v2[0] = 2;
    assert_eq!(open_keyed(&f.cipher, &v2, b""), Err(Error::Malformed(Malformed::UnknownVersion(2))));
    let mut kind = env.clone();
    kind[1] = b'Z';
    assert_eq!(open_keyed(&f.cipher, &kind, b""), Err(Error::Malformed(Malformed::UnknownKind(b'Z'))));
    assert_eq!(open_keyed(&f.cipher, &env[..61], b""), Err(Error::Malformed(Malformed::Truncated)));
    // Wrong key, wrong AAD, a flipped tag: one and the same error.
    assert_eq!(open_keyed(&f.other_cipher, &env, b""), Err(Error::DecryptionFailed));
    assert_eq!(open_keyed(&f.cipher, &env, b"x"), Err(Error::DecryptionFailed));
    let mut tag = env.clone();
    *tag.last_mut().unwrap() ^= 1;
    assert_eq!(open_keyed(&f.cipher, &tag, b""), Err(Error::DecryptionFailed));
    // A keyed envelope is not a sealed one.
    assert_eq!(open_sealed(&f.kem, &env, b""), Err(Error::Malformed(Malformed::WrongKind)));
    let sig = f.signing.sign_envelope(b"m", b"").unwrap();
    assert_eq!(Envelope::parse(&sig[..3326]).unwrap_err(), Error::Malformed(Malformed::WrongLength));
    assert_eq!(
        Envelope::parse(&[sig.clone(), vec![0]].concat()).unwrap_err(),
        Error::Malformed(Malformed::WrongLength)
    );
}

#[test]
fn raw_key_inputs() {
    let (seed, key) = KemSecretKey::generate().unwrap();
    assert_eq!(KemSecretKey::from_slice(seed.expose()).unwrap().kid(), key.kid());
    for len in [0, 32, 63, 65, 1184, 2399, 2401] {
        assert_eq!(KemSecretKey::from_slice(&vec![1u8; len]).unwrap_err(), Error::InvalidKey);
    }
    // A random 2400-byte string is not a valid expanded key (hash check).
    assert_eq!(KemSecretKey::from_slice(&[1u8; 2400]).unwrap_err(), Error::InvalidKey);
    assert_eq!(SigningKey::from_slice(&[0u8; 31]).unwrap_err(), Error::InvalidKey);
    let signing = SigningKey::from_slice(&[9u8; 32]).unwrap();
    assert_eq!(signing.sign(b"m", &[0u8; 256]).unwrap_err(), Error::ContextTooLong);
    assert!(signing.sign(b"m", &[0u8; 255]).is_ok());
    assert!(!signing.verifying_key().verify(b"m", b"", &[0u8; 12]).unwrap());
}

#[test]
fn tenant_keys_and_wrapping() {
    let keys = TenantKeys::generate(Suite::MlKem768, pqcore::SignatureSuite::MlDsa65).unwrap();
    assert_eq!(open_dek(&keys.kem, &keys.sealed_dek).unwrap(), keys.dek);
    let other = TenantKeys::generate(Suite::MlKem768, pqcore::SignatureSuite::MlDsa65).unwrap();
    assert_eq!(open_dek(&other.kem, &keys.sealed_dek).unwrap_err(), Error::DecryptionFailed);
    // The DEK is sealed under its own HKDF label; a plain sealed envelope is
    // not a DEK, and no AAD opens a stored DEK as a plain sealed envelope.
    let plain = sealed::seal(keys.kem.public_key(), keys.dek.expose(), b"").unwrap();
    assert_eq!(open_dek(&keys.kem, &plain).unwrap_err(), Error::DecryptionFailed);
    for aad in [&b""[..], b"apg-pq v1 dek", b"apg-pq v1 sealed"] {
        assert_eq!(open_sealed(&keys.kem, &keys.sealed_dek, aad).unwrap_err(), Error::DecryptionFailed);
    }

    let mdk = MasterDataKey::new(Kid([1; 16]), &Dek::generate().unwrap());
    let here = WrapContext { tenant: "acme", version: 3, purpose: Purpose::KemSeed };
    let wrapped = mdk.wrap(keys.kem_seed.expose(), &here).unwrap();
    assert_eq!(mdk.unwrap(&wrapped, &here).unwrap().expose(), keys.kem_seed.expose());
    for elsewhere in [
        WrapContext { tenant: "acme2", ..here },
        WrapContext { version: 4, ..here },
        WrapContext { purpose: Purpose::DsaSeed, ..here },
    ] {
        assert_eq!(mdk.unwrap(&wrapped, &elsewhere).unwrap_err(), Error::DecryptionFailed);
    }
    let other_mdk = MasterDataKey::new(Kid([1; 16]), &Dek::generate().unwrap());
    assert_eq!(other_mdk.unwrap(&wrapped, &here).unwrap_err(), Error::DecryptionFailed);
}

#[test]
fn master_data_key_under_a_kek_checks_its_id() {
    let kek = MasterDataKey::from_kek(&Dek::generate().unwrap());
    let mdk = Dek::generate().unwrap();
    let wrapped = kek.wrap_mdk(&mdk).unwrap();
    assert_eq!(kek.unwrap_mdk(&wrapped, mdk_id(&mdk)).unwrap(), mdk);
    assert_eq!(MasterDataKey::from_mdk(&mdk).id(), mdk_id(&mdk));
    // Another id: another AAD, and the recovered key would not match it.
    assert_eq!(kek.unwrap_mdk(&wrapped, Kid([0; 16])).unwrap_err(), Error::DecryptionFailed);
    let other = MasterDataKey::from_kek(&Dek::generate().unwrap());
    assert_eq!(other.unwrap_mdk(&wrapped, mdk_id(&mdk)).unwrap_err(), Error::DecryptionFailed);
}

#[test]
fn in_place_apis_check_lengths_and_wipe_on_failure() {
    let f = fixture();
    let mut out = vec![0u8; keyed_len(3).unwrap()];
    f.cipher.encrypt_to(b"abc", b"k", &mut out).unwrap();
    assert_eq!(open_keyed(&f.cipher, &out, b"k").unwrap(), b"abc");
    let mut short = vec![0u8; 64];
    assert_eq!(f.cipher.encrypt_to(b"abc", b"k", &mut short).unwrap_err(), Error::OutputLength);
    let env = Envelope::parse(&out).unwrap().into_keyed().unwrap();
    let mut plain = [0xEEu8; 3];
    assert_eq!(f.cipher.decrypt_to(&env, b"wrong", &mut plain).unwrap_err(), Error::DecryptionFailed);
    assert_eq!(plain, [0; 3], "a failed decryption leaves no unauthenticated bytes");
    assert_eq!(f.cipher.decrypt_to(&env, b"k", &mut [0u8; 4]).unwrap_err(), Error::OutputLength);

    let mut sealed_out = vec![0u8; sealed::sealed_len(2).unwrap()];
    sealed::seal_to(f.kem.public_key(), b"xy", b"", &mut sealed_out).unwrap();
    let env = Envelope::parse(&sealed_out).unwrap().into_sealed().unwrap();
    let mut plain = [0u8; 2];
    sealed::open_to(&f.kem, &env, b"", &mut plain).unwrap();
    assert_eq!(&plain, b"xy");
    assert_eq!(sealed::open_to(&f.kem, &env, b"a", &mut plain).unwrap_err(), Error::DecryptionFailed);
    assert_eq!(plain, [0; 2]);
    assert_eq!(keyed_len(usize::MAX).unwrap_err(), Error::OutOfMemory);
}

#[test]
fn debug_output_has_no_secret_bytes() {
    let keys = TenantKeys::generate(Suite::MlKem768, pqcore::SignatureSuite::MlDsa65).unwrap();
    let mdk_key = Dek::generate().unwrap();
    let mdk = MasterDataKey::new(Kid([1; 16]), &mdk_key);
    let plaintext = keys.keyed_cipher().decrypt(
        &Envelope::parse(&keys.keyed_cipher().encrypt(b"hunter2-hunter2", b"").unwrap())
            .unwrap()
            .into_keyed()
            .unwrap(),
        b"",
    );
    let plaintext = plaintext.unwrap();
    let secrets: Vec<&[u8]> = vec![
        keys.kem_seed.expose(),
        keys.dsa_seed.expose(),
        keys.dek.expose(),
        mdk_key.expose(),
        plaintext.expose(),
    ];
    let outputs = [
        format!("{:?}", keys.kem_seed),
        format!("{:?}", keys.dsa_seed),
        format!("{:?}", keys.dek),
        format!("{:?}", keys.kem),
        format!("{:?}", keys.signing),
        format!("{:?}", keys.keyed_cipher()),
        format!("{:?}", keys),
        format!("{:?}", mdk),
        format!("{:?}", mdk_key),
        format!("{:?}", plaintext),
        format!("{:#?}", keys.kem_seed),
    ];
    for out in &outputs {
        assert!(out.contains("redacted"), "{out}");
        for secret in &secrets {
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            let upper = hex.to_uppercase();
            let list = format!("{:?}", secret);
            let inner = list.trim_matches(|c| c == '[' || c == ']');
            assert!(!out.contains(&hex[..8]), "hex of a secret in {out}");
            assert!(!out.contains(&upper[..8]), "HEX of a secret in {out}");
            assert!(!out.contains(inner), "bytes of a secret in {out}");
            assert!(!out.contains("hunter2"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn keyed_round_trip(pt in prop::collection::vec(any::<u8>(), 0..65536), aad in prop::collection::vec(any::<u8>(), 0..300)) {
        let f = fixture();
        let env = f.cipher.encrypt(&pt, &aad).unwrap();
        prop_assert_eq!(env.len(), pt.len() + 62);
        prop_assert_eq!(open_keyed(&f.cipher, &env, &aad).unwrap(), pt.clone());
        prop_assert_eq!(open_keyed(&f.other_cipher, &env, &aad), Err(Error::DecryptionFailed));
        let mut wrong = aad.clone();
        wrong.push(0);
        prop_assert_eq!(open_keyed(&f.cipher, &env, &wrong), Err(Error::DecryptionFailed));
    }

    #[test]
    fn sealed_round_trip(pt in prop::collection::vec(any::<u8>(), 0..65536), aad in prop::collection::vec(any::<u8>(), 0..300)) {
        let f = fixture();
        let env = sealed::seal(f.kem.public_key(), &pt, &aad).unwrap();
        prop_assert_eq!(env.len(), pt.len() + 1134);
        prop_assert_eq!(open_sealed(&f.kem, &env, &aad).unwrap(), pt.clone());
        prop_assert_eq!(open_sealed(&f.other_kem, &env, &aad), Err(Error::DecryptionFailed));
        let mut wrong = aad.clone();
        wrong.push(0);
        prop_assert_eq!(open_sealed(&f.kem, &env, &wrong), Err(Error::DecryptionFailed));
    }

    #[test]
    fn signature_round_trip(msg in prop::collection::vec(any::<u8>(), 0..65536), ctx in prop::collection::vec(any::<u8>(), 0..=255)) {
        let f = fixture();
        let env = f.signing.sign_envelope(&msg, &ctx).unwrap();
        prop_assert!(verify_sig(&f.signing, &env, &msg, &ctx).unwrap());
        prop_assert!(!verify_sig(&f.other_signing, &env, &msg, &ctx).unwrap());
        let mut other = ctx.clone();
        other.push(1);
        prop_assert!(!verify_sig(&f.signing, &env, &msg, &other).unwrap_or(false));
    }

    #[test]
    fn random_flip_rejected(pt in prop::collection::vec(any::<u8>(), 0..2048), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let f = fixture();
        let mut env = f.cipher.encrypt(&pt, b"a").unwrap();
        let i = pos.index(env.len());
        env[i] ^= 1 << bit;
        prop_assert!(open_keyed(&f.cipher, &env, b"a").is_err());
        let mut env = sealed::seal(f.kem.public_key(), &pt, b"a").unwrap();
        let i = pos.index(env.len());
        env[i] ^= 1 << bit;
        prop_assert!(open_sealed(&f.kem, &env, b"a").is_err());
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4000), prefix in 0usize..3) {
        let mut bytes = bytes;
        let heads: [&[u8]; 3] = [b"\x01S", b"\x01K", b"\x01G"];
        if bytes.len() >= 2 { bytes[..2].copy_from_slice(heads[prefix]); }
        if let Ok(env) = Envelope::parse(&bytes) {
            let f = fixture();
            let _ = env.kid();
            let _ = env.plaintext_len();
            let _ = open_sealed(&f.kem, &bytes, b"");
            let _ = open_keyed(&f.cipher, &bytes, b"");
            let _ = verify_sig(&f.signing, &bytes, b"", b"");
        }
    }
}
