//! Known-answer vectors for every envelope kind and every stored layout,
//! with every intermediate value, committed as `tests/data/kat/v1.json`
//! and explained in docs/FORMAT.md §7. This test rebuilds them from a fixed
//! seed and compares; `APG_PQ_WRITE_KAT=1 cargo test -p apg-pqcrypto-core kat`
//! rewrites the file after an intended change (which for a released v1
//! format must never happen).
use crate::{
    backend::{ActiveKem, KemBackend, MlKem1024, MlKem768, MlKemParams},
    format::*,
    kek_id,
    keyed::KeyedCipher,
    mdk_id,
    rng::RandomSource,
    sealed,
    test_rng::{SeededRandom, ZeroRandom},
    Dek, DsaSeed, Envelope, KemSecretKey, KemSeed, Kid, MasterDataKey, MlKemSecretKey, Purpose,
    Recipient, RecipientSecret, SignatureSuite, SigningKey, Suite, WrapContext, XWingSecretKey, XWingSeed,
};
use serde_json::{json, Map, Value};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// A sealed envelope with label `info` (INFO_SEALED or INFO_DEK), to a new
/// ML-KEM key of set `P` ('S' for ML-KEM-768, 'L' for ML-KEM-1024).
fn sealed_case<P: MlKemParams>(rng: &mut SeededRandom, id: &str, info: &[u8], plaintext: &[u8], user_aad: &[u8]) -> Value
where
    ActiveKem: KemBackend<P>,
    for<'a> Recipient<'a>: From<&'a crate::MlKemPublicKey<P>>,
    for<'a> crate::Opener<'a>: From<&'a MlKemSecretKey<P>>,
{
    let seed = KemSeed::generate_from(rng).unwrap();
    let key = MlKemSecretKey::<P>::from_seed(&seed).unwrap();
    let fields = sealed_fields(rng, &key, info, plaintext, user_aad);
    merge(json!({ "id": id, "kind": "sealed", "kem_seed": hex(seed.expose()) }), fields)
}

/// The fields of sealing `plaintext` to `key` with label `info`, every
/// intermediate included; checks that it opens again.
fn sealed_fields<P: MlKemParams>(
    rng: &mut SeededRandom,
    key: &MlKemSecretKey<P>,
    info: &[u8],
    plaintext: &[u8],
    user_aad: &[u8],
) -> Value
where
    ActiveKem: KemBackend<P>,
    for<'a> Recipient<'a>: From<&'a crate::MlKemPublicKey<P>>,
    for<'a> crate::Opener<'a>: From<&'a MlKemSecretKey<P>>,
{
    let ek = key.public_key();
    let mut peek = rng.clone();
    let m: [u8; 32] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let (kem_ct, shared) = <ActiveKem as KemBackend<P>>::encapsulate(ek.parsed(), &m);
    let kem_ct: &[u8] = (*kem_ct).as_ref();
    let derived = sealed::derive_key(&shared, info).unwrap();
    let envelope = sealed::seal_from(rng, ek.into(), info, plaintext, user_aad).unwrap();
    let header_len = SEALED_KEM_CT_OFFSET + kem_ct.len() + NONCE_LEN;
    assert_eq!(&envelope[SEALED_KEM_CT_OFFSET..SEALED_KEM_CT_OFFSET + kem_ct.len()], kem_ct);
    let parsed = Envelope::parse(&envelope).unwrap().into_sealed().unwrap();
    assert_eq!(sealed::open_labeled(key.into(), &parsed, info, user_aad).unwrap().expose(), plaintext);
    json!({
        "ek": hex((*ek.as_bytes()).as_ref()),
        "kid": hex(ek.kid().as_bytes()),
        "m": hex(&m),
        "kem_ct": hex(kem_ct),
        "shared_secret": hex(shared.expose()),
        "hkdf_salt": "",
        "hkdf_info": hex(info),
        "key": hex(derived.expose()),
        "nonce": hex(&nonce),
        "plaintext": hex(plaintext),
        "user_aad": hex(user_aad),
        "aad": hex(&concat(&envelope[..header_len], user_aad)),
        "envelope": hex(&envelope),
    })
}

/// The fields of a keyed envelope made by `cipher` (whose key the caller lists).
fn keyed_fields(rng: &mut SeededRandom, cipher: &KeyedCipher, plaintext: &[u8], user_aad: &[u8]) -> Value {
    let mut peek = rng.clone();
    let salt: [u8; SALT_LEN] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let derived = cipher.derive_key(&salt).unwrap();
    let envelope = cipher.encrypt_from(rng, plaintext, user_aad).unwrap();
    let parsed = Envelope::parse(&envelope).unwrap().into_keyed().unwrap();
    assert_eq!(cipher.decrypt(&parsed, user_aad).unwrap().expose(), plaintext);
    json!({
        "kid": hex(cipher.kid().as_bytes()),
        "salt": hex(&salt),
        "hkdf_info": hex(&concat(INFO_KEYED, &salt)),
        "key": hex(derived.expose()),
        "nonce": hex(&nonce),
        "user_aad": hex(user_aad),
        "aad": hex(&concat(&envelope[..KEYED_HEADER_LEN], user_aad)),
        "envelope": hex(&envelope),
    })
}

fn keyed_case(rng: &mut SeededRandom, id: &str, plaintext: &[u8], user_aad: &[u8]) -> Value {
    let dek = Dek::generate_from(rng).unwrap();
    let kid = Kid(rng.array().unwrap());
    let cipher = KeyedCipher::new(&dek, kid);
    let fields = keyed_fields(rng, &cipher, plaintext, user_aad);
    merge(json!({ "id": id, "kind": "keyed", "dek": hex(dek.expose()), "plaintext": hex(plaintext) }), fields)
}

fn signature_case(rng: &mut SeededRandom, id: &str, message: &[u8], context: &[u8], hedged: bool) -> Value {
    signature_case_for(rng, SignatureSuite::MlDsa65, id, message, context, hedged)
}

/// A signature envelope of `suite` ('G' or, since 0.11.0, 'H').
fn signature_case_for(
    rng: &mut SeededRandom,
    suite: SignatureSuite,
    id: &str,
    message: &[u8],
    context: &[u8],
    hedged: bool,
) -> Value {
    let seed = DsaSeed::generate_from(rng).unwrap();
    let key = SigningKey::from_seed_for(suite, &seed);
    let (rnd, envelope) = if hedged {
        let rnd: [u8; 32] = rng.clone().array().unwrap();
        (rnd, key.sign_envelope_from(rng, message, context).unwrap())
    } else {
        ([0; 32], key.sign_envelope_from(&mut ZeroRandom, message, context).unwrap())
    };
    let parsed = Envelope::parse(&envelope).unwrap().into_signature().unwrap();
    assert!(key.verifying_key().verify_envelope(&parsed, message, context).unwrap());
    json!({
        "id": id,
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

/// A version's DEK sealed to its own key, exactly as `TenantKeys` makes it.
fn dek_case(rng: &mut SeededRandom) -> Value {
    let mut twin = rng.clone();
    let keys = crate::TenantKeys::generate_from(rng, Suite::MlKem768, SignatureSuite::MlDsa65).unwrap();
    assert_eq!(crate::open_dek(&keys.kem, &keys.sealed_dek).unwrap(), keys.dek);
    // Replay TenantKeys::generate_from: KEM seed, DSA seed, DEK, then the seal.
    let _ = KemSeed::generate_from(&mut twin).unwrap();
    let _ = DsaSeed::generate_from(&mut twin).unwrap();
    let _ = Dek::generate_from(&mut twin).unwrap();
    let RecipientSecret::MlKem768(kem) = &keys.kem else { unreachable!("an ML-KEM-768 version") };
    let fields = sealed_fields(&mut twin, kem, INFO_DEK, keys.dek.expose(), b"");
    assert_eq!(fields["envelope"], Value::String(hex(&keys.sealed_dek)));
    merge(
        json!({ "id": "sealed-dek", "kind": "sealed-dek", "kem_seed": hex(keys.kem_seed.expose()), "dek": hex(keys.dek.expose()) }),
        fields,
    )
}

/// An ML-KEM-1024 + ML-DSA-87 version's DEK sealed to its own key ('L',
/// label "apg-pq v1 dek"), exactly as `TenantKeys` makes it.
fn dek_1024_case(rng: &mut SeededRandom) -> Value {
    let mut twin = rng.clone();
    let keys = crate::TenantKeys::generate_from(rng, Suite::MlKem1024, SignatureSuite::MlDsa87).unwrap();
    assert_eq!(crate::open_dek(&keys.kem, &keys.sealed_dek).unwrap(), keys.dek);
    assert_eq!(crate::dek_suite(&keys.sealed_dek).unwrap(), Suite::MlKem1024);
    let _ = KemSeed::generate_from(&mut twin).unwrap();
    let _ = DsaSeed::generate_from(&mut twin).unwrap();
    let _ = Dek::generate_from(&mut twin).unwrap();
    let RecipientSecret::MlKem1024(kem) = &keys.kem else { unreachable!("an ML-KEM-1024 version") };
    let fields = sealed_fields(&mut twin, kem, INFO_DEK, keys.dek.expose(), b"");
    assert_eq!(fields["envelope"], Value::String(hex(&keys.sealed_dek)));
    merge(
        json!({ "id": "sealed-dek-ml-kem-1024", "kind": "sealed-dek", "kem_seed": hex(keys.kem_seed.expose()), "dek": hex(keys.dek.expose()) }),
        fields,
    )
}

/// The seeds of an ML-KEM-1024 and an ML-DSA-87 version wrapped under the MDK (0.11.0).
fn cnsa2_wrap_cases(rng: &mut SeededRandom) -> Vec<Value> {
    let mdk = Dek::generate_from(rng).unwrap();
    let kem = KemSeed::generate_from(rng).unwrap();
    let context = WrapContext { tenant: "acme", version: 5, purpose: Purpose::Kem1024Seed };
    let first = wrap_under_mdk(rng, "mdk-wrap-ml-kem-1024-seed", &mdk, &context, kem.expose());
    let dsa: [u8; 32] = rng.array().unwrap();
    let context = WrapContext { tenant: "acme", version: 5, purpose: Purpose::Dsa87Seed };
    vec![first, wrap_under_mdk(rng, "mdk-wrap-ml-dsa-87-seed", &mdk, &context, &dsa)]
}

/// A tenant version's ML-KEM seed wrapped under the MDK.
fn mdk_wrap_case(rng: &mut SeededRandom) -> Value {
    let mdk_bytes = Dek::generate_from(rng).unwrap();
    let secret = KemSeed::generate_from(rng).unwrap();
    let context = WrapContext { tenant: "acme", version: 1, purpose: Purpose::KemSeed };
    wrap_under_mdk(rng, "mdk-wrap-kem-seed", &mdk_bytes, &context, secret.expose())
}

/// A tenant's classical (pgcrypto) passphrase, classical key id 3, wrapped under the MDK.
fn classical_wrap_case(rng: &mut SeededRandom) -> Value {
    let mdk_bytes = Dek::generate_from(rng).unwrap();
    let context = WrapContext { tenant: "acme", version: 3, purpose: Purpose::ClassicalKey };
    wrap_under_mdk(rng, "mdk-wrap-classical-key", &mdk_bytes, &context, b"old pgcrypto passphrase")
}

/// The fields of `secret` wrapped under the MDK `mdk_bytes` for `context`.
fn wrap_under_mdk(rng: &mut SeededRandom, id: &str, mdk_bytes: &Dek, context: &WrapContext<'_>, secret: &[u8]) -> Value {
    let mdk = MasterDataKey::from_mdk(mdk_bytes);
    let mut replay = rng.clone();
    let cipher = KeyedCipher::new(mdk_bytes, mdk.id());
    let fields = keyed_fields(rng, &cipher, secret, &context.aad());
    let wrapped = mdk.wrap_from(&mut replay, secret, context).unwrap();
    assert_eq!(Value::String(hex(&wrapped)), fields["envelope"]);
    assert_eq!(mdk.unwrap(&wrapped, context).unwrap().expose(), secret);
    merge(
        json!({
            "id": id,
            "kind": "mdk-wrap",
            "mdk": hex(mdk_bytes.expose()),
            "mdk_id": hex(mdk_id(mdk_bytes).as_bytes()),
            "tenant": context.tenant,
            "version": context.version,
            "purpose": context.purpose.label(),
            "plaintext": hex(secret),
        }),
        fields,
    )
}

/// The MDK wrapped under a file provider's KEK.
fn kek_wrap_case(rng: &mut SeededRandom) -> Value {
    let kek_bytes = Dek::generate_from(rng).unwrap();
    let kek = MasterDataKey::from_kek(&kek_bytes);
    let mdk = Dek::generate_from(rng).unwrap();
    let id = mdk_id(&mdk);
    let id_hex = id.to_hex();
    let context = WrapContext::master_data_key(&id_hex);
    let mut replay = rng.clone();
    let cipher = KeyedCipher::new(&kek_bytes, kek_id(&kek_bytes));
    let fields = keyed_fields(rng, &cipher, mdk.expose(), &context.aad());
    let wrapped = kek.wrap_mdk_from(&mut replay, &mdk).unwrap();
    assert_eq!(Value::String(hex(&wrapped)), fields["envelope"]);
    assert_eq!(kek.unwrap_mdk(&wrapped, id).unwrap(), mdk);
    merge(
        json!({
            "id": "kek-wrap-mdk",
            "kind": "kek-wrap",
            "kek": hex(kek_bytes.expose()),
            "kek_id": hex(kek.id().as_bytes()),
            "mdk_id": id_hex,
            "tenant": context.tenant,
            "version": context.version,
            "purpose": context.purpose.label(),
            "plaintext": hex(mdk.expose()),
        }),
        fields,
    )
}

/// A configuration change record signed by a tenant key (§11.2), as a
/// signature envelope with a hedged `rnd`, and the config AAD (§11.1).
fn config_change_case(rng: &mut SeededRandom) -> Value {
    use crate::audit::{config_aad, sha256, ConfigChange, ConfigOp, CONFIG_CHANGE_CONTEXT};
    let seed = DsaSeed::generate_from(rng).unwrap();
    let key = SigningKey::from_seed(&seed);
    let old_envelope = b"old envelope bytes";
    let new_envelope = b"new envelope bytes";
    let prev: [u8; 32] = rng.array().unwrap();
    let change = ConfigChange {
        op: ConfigOp::Set,
        tenant: "acme",
        key: "db.password",
        version: 7,
        old_hash: Some(sha256(old_envelope)),
        new_hash: Some(sha256(new_envelope)),
        user: "alice",
        ts_micros: 1_798_761_600_123_456,
        prev_hash: Some(prev),
    };
    let rnd: [u8; 32] = rng.clone().array().unwrap();
    let envelope = key.sign_envelope_from(rng, &change.encode(), CONFIG_CHANGE_CONTEXT).unwrap();
    let parsed = Envelope::parse(&envelope).unwrap().into_signature().unwrap();
    assert!(key.verifying_key().verify_envelope(&parsed, &change.encode(), CONFIG_CHANGE_CONTEXT).unwrap());
    json!({
        "id": "config-change",
        "kind": "config-change",
        "tenant": change.tenant,
        "key": change.key,
        "aad": hex(&config_aad(change.tenant, change.key)),
        "op": change.op as u8,
        "version": change.version,
        "old_envelope": hex(old_envelope),
        "new_envelope": hex(new_envelope),
        "user": change.user,
        "ts_micros": change.ts_micros,
        "prev_hash": hex(&prev),
        "encoding": hex(&change.encode()),
        "record_hash": hex(&change.record_hash()),
        "dsa_seed": hex(seed.expose()),
        "pk": hex(key.verifying_key().as_bytes()),
        "kid": hex(key.kid().as_bytes()),
        "context": hex(CONFIG_CHANGE_CONTEXT),
        "rnd": hex(&rnd),
        "signature": hex(parsed.signature()),
        "envelope": hex(&envelope),
    })
}

/// A client's signature over a sealed value (§11.3), deterministic variant.
fn config_sealed_case(rng: &mut SeededRandom) -> Value {
    use crate::audit::{sealed_value_message, CONFIG_SEALED_CONTEXT};
    let seed = DsaSeed::generate_from(rng).unwrap();
    let key = SigningKey::from_seed(&seed);
    let envelope: Vec<u8> = (0u8..64).collect();
    let message = sealed_value_message("acme", "api.token", &envelope);
    let signature = key.sign_from(&mut ZeroRandom, &message, CONFIG_SEALED_CONTEXT).unwrap();
    json!({
        "id": "config-sealed",
        "kind": "config-sealed",
        "tenant": "acme",
        "key": "api.token",
        "sealed_envelope": hex(&envelope),
        "message": hex(&message),
        "dsa_seed": hex(seed.expose()),
        "pk": hex(key.verifying_key().as_bytes()),
        "context": hex(CONFIG_SEALED_CONTEXT),
        "rnd": hex(&[0u8; 32]),
        "signature": hex(&signature),
    })
}

/// Two chained audit rows (§11.4), the first of a log and the next.
fn audit_rows_cases() -> Vec<Value> {
    use crate::audit::AuditRow;
    let rows = [
        AuditRow { id: 1, ts_micros: 1_798_761_600_000_001, event: "tenant_created", tenant: Some("acme"), actor: "postgres", details: r#"{"kid": "00112233445566778899aabbccddeeff", "version": 1}"# },
        AuditRow { id: 2, ts_micros: 1_798_761_601_000_000, event: "master_key_rotated", tenant: None, actor: "dba", details: "{}" },
    ];
    let mut prev = [0u8; 32];
    rows.iter()
        .map(|row| {
            let hash = row.chain_hash(&prev);
            let case = json!({
                "id": format!("audit-row-{}", row.id),
                "kind": "audit-row",
                "row_id": row.id,
                "ts_micros": row.ts_micros,
                "event": row.event,
                "tenant": row.tenant,
                "actor": row.actor,
                "details": row.details,
                "prev_hash": hex(&prev),
                "encoding": hex(&row.encode()),
                "row_hash": hex(&hash),
            });
            prev = hash;
            case
        })
        .collect()
}

/// A checkpoint (§11.5) signed by an audit key: ML-DSA-65 (deterministic
/// variant, context "apg-pq audit-checkpoint v1") and Ed25519.
fn audit_checkpoint_case(rng: &mut SeededRandom) -> Value {
    let dsa_seed = DsaSeed::generate_from(rng).unwrap();
    let ed_seed: [u8; 32] = rng.array().unwrap();
    let head_hash: [u8; 32] = rng.array().unwrap();
    checkpoint_case("audit-checkpoint", &dsa_seed, &ed_seed, head_hash)
}

/// A checkpoint of head 2 with `head_hash`, signed by the audit key of
/// these seeds.
fn checkpoint_case(id: &str, dsa_seed: &DsaSeed, ed_seed: &[u8; 32], head_hash: [u8; 32]) -> Value {
    use crate::audit::{AuditKey, AuditSuite, Checkpoint, CHECKPOINT_CONTEXT};
    let cp = Checkpoint { head_id: 2, head_hash, ts_micros: 1_798_761_602_000_000 };
    let dsa = SigningKey::from_seed(dsa_seed);
    let ml_dsa = dsa.sign_from(&mut ZeroRandom, &cp.encode(), CHECKPOINT_CONTEXT).unwrap();
    let key = AuditKey::from_seeds(AuditSuite::MlDsa65Ed25519, dsa_seed, ed_seed).unwrap();
    let hedged = key.sign(&cp).unwrap();
    let vk = key.verifying_key().unwrap();
    let ed25519 = hedged.ed25519.clone().unwrap();
    assert_eq!(vk.verify(&cp, &ml_dsa, Some(&ed25519), None), (true, true));
    assert_eq!(vk.verify(&cp, &hedged.ml_dsa, Some(&ed25519), None), (true, true));
    json!({
        "id": id,
        "kind": "audit-checkpoint",
        "head_id": cp.head_id,
        "head_hash": hex(&head_hash),
        "ts_micros": cp.ts_micros,
        "encoding": hex(&cp.encode()),
        "dsa_seed": hex(dsa_seed.expose()),
        "pk": hex(vk.ml_dsa().as_bytes()),
        "kid": hex(vk.kid().as_bytes()),
        "context": hex(CHECKPOINT_CONTEXT),
        "rnd": hex(&[0u8; 32]),
        "ml_dsa_signature": hex(&ml_dsa),
        "ed25519_seed": hex(ed_seed),
        "ed25519_pk": hex(&vk.ed25519().unwrap()),
        "ed25519_message": hex(&cp.ed25519_message()),
        "ed25519_signature": hex(&ed25519),
    })
}

/// Checkpoints of the other audit suites (0.11.0), every signature in its
/// deterministic variant: ML-DSA-87 + Ed25519 (kind `audit-checkpoint`, told
/// by the key's length) and SLH-DSA-SHA2-128s + ML-DSA-65.
fn audit_suite_cases(rng: &mut SeededRandom) -> Vec<Value> {
    use crate::audit::{AuditKey, AuditSuite, Checkpoint, CHECKPOINT_CONTEXT};
    let cp = Checkpoint { head_id: 2, head_hash: rng.array().unwrap(), ts_micros: 1_798_761_602_000_000 };
    let mut out = Vec::new();
    for (id, suite) in [("audit-checkpoint-ml-dsa-87", AuditSuite::MlDsa87Ed25519), ("audit-checkpoint-slh-dsa", AuditSuite::SlhDsaMlDsa65)] {
        let (dsa_seed, hedge_seed, key) = AuditKey::generate_from(rng, suite).unwrap();
        let sigs = key.sign_from(&mut ZeroRandom, &cp).unwrap();
        let vk = key.verifying_key().unwrap();
        assert_eq!(vk.verify(&cp, &sigs.ml_dsa, sigs.ed25519.as_deref(), sigs.slh_dsa.as_deref()), (true, true));
        let mut case = json!({
            "id": id,
            "kind": if suite.slh_dsa() { "audit-checkpoint-slh-dsa" } else { "audit-checkpoint" },
            "head_id": cp.head_id,
            "head_hash": hex(&cp.head_hash),
            "ts_micros": cp.ts_micros,
            "encoding": hex(&cp.encode()),
            "dsa_seed": hex(dsa_seed.expose()),
            "pk": hex(vk.ml_dsa().as_bytes()),
            "kid": hex(vk.kid().as_bytes()),
            "context": hex(CHECKPOINT_CONTEXT),
            "rnd": hex(&[0u8; 32]),
            "ml_dsa_signature": hex(&sigs.ml_dsa),
        });
        if let Some(slh) = &sigs.slh_dsa {
            case["slh_dsa_seed"] = json!(hex(&hedge_seed));
            case["slh_dsa_pk"] = json!(hex(&vk.slh_dsa().unwrap()));
            case["slh_dsa_signature"] = json!(hex(slh));
        } else {
            case["ed25519_seed"] = json!(hex(&hedge_seed));
            case["ed25519_pk"] = json!(hex(&vk.ed25519().unwrap()));
            case["ed25519_message"] = json!(hex(&cp.ed25519_message()));
            case["ed25519_signature"] = json!(hex(sigs.ed25519.as_ref().unwrap()));
        }
        out.push(case);
    }
    let mdk = Dek::generate_from(rng).unwrap();
    let dsa: [u8; 32] = rng.array().unwrap();
    let context = WrapContext { tenant: "", version: 0, purpose: Purpose::AuditDsa87Seed };
    out.push(wrap_under_mdk(rng, "mdk-wrap-audit-ml-dsa-87-seed", &mdk, &context, &dsa));
    let slh: [u8; 48] = rng.array().unwrap();
    let context = WrapContext { tenant: "", version: 0, purpose: Purpose::AuditSlhDsaSeed };
    out.push(wrap_under_mdk(rng, "mdk-wrap-audit-slh-dsa-seed", &mdk, &context, &slh));
    out
}

/// The audit key's Ed25519 seed wrapped under the MDK (system key: no tenant, version 0).
fn audit_wrap_case(rng: &mut SeededRandom) -> Value {
    let mdk_bytes = Dek::generate_from(rng).unwrap();
    let secret: [u8; 32] = rng.array().unwrap();
    let context = WrapContext { tenant: "", version: 0, purpose: Purpose::AuditEd25519Seed };
    wrap_under_mdk(rng, "mdk-wrap-audit-ed25519-seed", &mdk_bytes, &context, &secret)
}

/// A sealed envelope to an X-Wing key ('X'), every intermediate included.
fn xwing_sealed_case(rng: &mut SeededRandom) -> Value {
    let seed = XWingSeed::generate_from(rng).unwrap();
    let key = XWingSecretKey::from_seed(&seed).unwrap();
    let pk = key.public_key();
    let (plaintext, user_aad) = (&b"api_key=sk_live_51H8"[..], &b"stripe"[..]);
    let mut peek = rng.clone();
    let eseed: [u8; 64] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let (kem_ct, shared) = Recipient::from(pk).encapsulate(&mut rng.clone()).unwrap();
    let derived = sealed::derive_key(&shared, INFO_SEALED).unwrap();
    let envelope = sealed::seal_from(rng, pk.into(), INFO_SEALED, plaintext, user_aad).unwrap();
    let parsed = Envelope::parse(&envelope).unwrap().into_sealed().unwrap();
    assert_eq!(sealed::open(&key, &parsed, user_aad).unwrap().expose(), plaintext);
    let header_len = SEALED_XWING_OVERHEAD - TAG_LEN;
    json!({
        "id": "sealed-x-wing",
        "kind": "sealed-x-wing",
        "xwing_seed": hex(seed.expose()),
        "pk": hex(pk.as_bytes()),
        "kid": hex(pk.kid().as_bytes()),
        "eseed": hex(&eseed),
        "kem_ct": hex(&kem_ct),
        "shared_secret": hex(shared.expose()),
        "hkdf_salt": "",
        "hkdf_info": hex(INFO_SEALED),
        "key": hex(derived.expose()),
        "nonce": hex(&nonce),
        "plaintext": hex(plaintext),
        "user_aad": hex(user_aad),
        "aad": hex(&concat(&envelope[..header_len], user_aad)),
        "envelope": hex(&envelope),
    })
}

/// Three items of one batch ('B' or 'W'): one encapsulation, the key with
/// label "apg-pq v1 batch", then each item's nonce, AAD and envelope.
fn batch_case(rng: &mut SeededRandom, suite: Suite, id: &str, kind: &str) -> Value {
    let seed = match suite {
        Suite::MlKem768 | Suite::MlKem1024 => KemSeed::generate_from(rng).unwrap().expose().to_vec(),
        Suite::XWing => XWingSeed::generate_from(rng).unwrap().expose().to_vec(),
    };
    let key = RecipientSecret::from_seed(suite, &seed).unwrap();
    let pk = key.public_key();
    let randomness_len = if suite == Suite::XWing { 64 } else { 32 };
    let mut peek = rng.clone();
    let mut randomness = vec![0u8; randomness_len];
    peek.fill(&mut randomness).unwrap();
    let (kem_ct, shared) = pk.encapsulate(&mut rng.clone()).unwrap();
    let derived = sealed::derive_key(&shared, INFO_BATCH).unwrap();
    let values: [(&[u8], &[u8]); 3] = [(b"alpha", b"row 1"), (b"", b""), (b"postgres://db/app", b"row 3")];
    let mut batch = sealed::BatchSealer::new_from(rng, pk, values.len()).unwrap();
    assert_eq!(batch.kem_ciphertext(), &kem_ct[..]);
    let items: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, (plaintext, user_aad))| {
            let nonce: [u8; NONCE_LEN] = rng.clone().array().unwrap();
            let envelope = batch.seal_from(rng, plaintext, user_aad).unwrap();
            let parsed = Envelope::parse(&envelope).unwrap().into_sealed().unwrap();
            assert_eq!(parsed.batch_position(), Some((i as u32, values.len() as u32)));
            assert_eq!(sealed::open(&key, &parsed, user_aad).unwrap().expose(), *plaintext);
            json!({
                "index": i,
                "count": values.len(),
                "nonce": hex(&nonce),
                "plaintext": hex(plaintext),
                "user_aad": hex(user_aad),
                "aad": hex(&[&envelope[..BATCH_KEM_CT_OFFSET], &nonce[..], user_aad].concat()),
                "envelope": hex(&envelope),
            })
        })
        .collect();
    let (seed_field, randomness_field) = match suite {
        Suite::MlKem768 | Suite::MlKem1024 => ("kem_seed", "m"),
        Suite::XWing => ("xwing_seed", "eseed"),
    };
    let mut case = json!({
        "id": id,
        "kind": kind,
        "pk": hex(pk.as_bytes()),
        "kid": hex(pk.kid().as_bytes()),
        "kem_ct": hex(&kem_ct),
        "shared_secret": hex(shared.expose()),
        "hkdf_salt": "",
        "hkdf_info": hex(INFO_BATCH),
        "key": hex(derived.expose()),
        "items": items,
    });
    case[seed_field] = json!(hex(&seed));
    case[randomness_field] = json!(hex(&randomness));
    case
}

/// A stream ('T') of 2,500 bytes in 1,024-byte chunks to an ML-KEM-768 key.
fn stream_case(rng: &mut SeededRandom) -> Value {
    let seed = KemSeed::generate_from(rng).unwrap();
    let key = KemSecretKey::from_seed(&seed).unwrap();
    let plaintext: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let user_aad = b"backup.tar";
    let mut peek = rng.clone();
    let stream_key: [u8; 32] = peek.array().unwrap();
    let m: [u8; 32] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let mut stream = Vec::new();
    crate::stream::seal_stream_from::<crate::stream::RustCryptoChunks>(rng, key.public_key().into(), 1024, user_aad, &mut &plaintext[..], &mut stream, &mut |_| {})
        .unwrap();
    let key_len = SEALED_OVERHEAD + STREAM_KEY_LEN;
    let prefix = &stream[..STREAM_PREFIX_LEN];
    let key_envelope = &stream[STREAM_PREFIX_LEN..STREAM_PREFIX_LEN + key_len];
    let mut input = &stream[..];
    let header = crate::stream::StreamHeader::read(&mut input).unwrap();
    let mut out = Vec::new();
    header.open(&key, user_aad, &mut input, &mut out, &mut |_| {}).unwrap();
    assert_eq!(out, plaintext);
    let chunks: Vec<Value> = stream[STREAM_PREFIX_LEN + key_len..]
        .chunks(1024 + TAG_LEN)
        .enumerate()
        .map(|(i, c)| {
            let mut nonce = [0u8; NONCE_LEN];
            nonce[3..11].copy_from_slice(&(i as u64).to_be_bytes());
            nonce[11] = u8::from(i == 2);
            json!({ "index": i, "nonce": hex(&nonce), "chunk": hex(c) })
        })
        .collect();
    json!({
        "id": "stream",
        "kind": "stream",
        "kem_seed": hex(seed.expose()),
        "ek": hex(key.public_key().as_bytes()),
        "kid": hex(key.kid().as_bytes()),
        "chunk_size": 1024,
        "stream_key": hex(&stream_key),
        "m": hex(&m),
        "key_envelope_nonce": hex(&nonce),
        "prefix": hex(prefix),
        "key_envelope_user_aad": hex(&[AAD_STREAM, prefix, &user_aad[..]].concat()),
        "key_envelope": hex(key_envelope),
        "plaintext": hex(&plaintext),
        "user_aad": hex(user_aad),
        "chunks": chunks,
        "stream": hex(&stream),
    })
}

/// Shamir over GF(2^8) (§14): the secret 0x00..0x1f, 2 of 3.
fn shamir_case(rng: &mut SeededRandom) -> Value {
    let secret: Vec<u8> = (0..32).collect();
    let coefficients: [u8; 32] = rng.clone().array().unwrap();
    let shares = crate::shamir::split_from(rng, &secret, 2, 3).unwrap();
    let two = [&shares[0], &shares[2]].map(|s| crate::shamir::Share { index: s.index, bytes: s.bytes.clone() });
    assert_eq!(&crate::shamir::combine(&two).unwrap()[..], &secret[..]);
    json!({
        "id": "shamir-2-of-3",
        "kind": "shamir",
        "secret": hex(&secret),
        "threshold": 2,
        "total": 3,
        "coefficients": hex(&coefficients),
        "shares": shares.iter().map(|s| json!({ "index": s.index, "bytes": hex(&s.bytes) })).collect::<Vec<_>>(),
    })
}

/// An MDK split 2 of 2 to two ML-KEM-768 custodians ('E' records, §14.1).
fn escrow_case(rng: &mut SeededRandom) -> Value {
    use crate::escrow;
    let mdk = Dek::generate_from(rng).unwrap();
    let escrow_id: [u8; 16] = rng.array().unwrap();
    let seeds: Vec<KemSeed> = (0..2).map(|_| KemSeed::generate_from(rng).unwrap()).collect();
    let keys: Vec<KemSecretKey> = seeds.iter().map(|s| KemSecretKey::from_seed(s).unwrap()).collect();
    let publics: Vec<Recipient<'_>> = keys.iter().map(|k| Recipient::from(k.public_key())).collect();
    // Replay: Shamir's 32 random bytes, then per record m (32) and nonce (12).
    let mut peek = rng.clone();
    let coefficients: [u8; 32] = peek.array().unwrap();
    let randomness: Vec<([u8; 32], [u8; 12])> = (0..2).map(|_| (peek.array().unwrap(), peek.array().unwrap())).collect();
    let records = escrow::split_mdk_from(rng, &mdk, escrow_id, 2, &publics).unwrap();
    let shares: Vec<crate::shamir::Share> = records
        .iter()
        .zip(&keys)
        .map(|(r, k)| escrow::ShareRecord::parse(r).unwrap().open(k).unwrap())
        .collect();
    assert_eq!(&crate::shamir::combine(&shares).unwrap()[..], &mdk.expose()[..]);
    json!({
        "id": "escrow-share-2-of-2",
        "kind": "escrow-share",
        "mdk": hex(mdk.expose()),
        "mdk_id": hex(mdk_id(&mdk).as_bytes()),
        "escrow_id": hex(&escrow_id),
        "threshold": 2,
        "total": 2,
        "coefficients": hex(&coefficients),
        "records": records.iter().enumerate().map(|(i, r)| json!({
            "index": i + 1,
            "kem_seed": hex(seeds[i].expose()),
            "share": hex(&shares[i].bytes),
            "m": hex(&randomness[i].0),
            "nonce": hex(&randomness[i].1),
            "header": hex(&r[..escrow::RECORD_HEADER_LEN]),
            "user_aad": hex(&[escrow::LABEL_SHARE, &r[..escrow::RECORD_HEADER_LEN]].concat()),
            "record": hex(r),
        })).collect::<Vec<_>>(),
    })
}

/// A key backup bundle (§15) of one ML-KEM-768 version, to an ML-KEM-768 officer.
fn backup_case(rng: &mut SeededRandom) -> Value {
    use crate::backup::{self, Payload, Secret, SecretKind};
    let seed = KemSeed::generate_from(rng).unwrap();
    let officer = KemSecretKey::from_seed(&seed).unwrap();
    let backup_id: [u8; 16] = rng.array().unwrap();
    let kem_seed: [u8; 64] = rng.array().unwrap();
    let dsa_seed: [u8; 32] = rng.array().unwrap();
    let version_kid = KemSecretKey::from_seed(&KemSeed::from_array(&kem_seed)).unwrap().kid();
    let doc = format!(
        r#"{{"format":1,"backup_id":"{}","tenants":[{{"name":"acme","kem":"ml-kem-768","versions":[{{"version":1,"state":"active","kid":"{}"}}]}}]}}"#,
        hex(&backup_id),
        version_kid.to_hex()
    );
    let payload = Payload {
        doc,
        secrets: vec![
            Secret { kind: SecretKind::KemSeed, reference: *version_kid.as_bytes(), bytes: kem_seed.to_vec().into() },
            Secret { kind: SecretKind::DsaSeed, reference: *version_kid.as_bytes(), bytes: dsa_seed.to_vec().into() },
        ],
    };
    let mut peek = rng.clone();
    let m: [u8; 32] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let created = 1_767_225_600u64;
    let bundle = backup::seal_from(rng, officer.public_key().into(), backup_id, created, &payload).unwrap();
    let (_, opened) = backup::open(&bundle, &officer).unwrap();
    assert_eq!(opened.doc, payload.doc);
    let header = &bundle[..backup::BUNDLE_HEADER_LEN];
    json!({
        "id": "key-backup",
        "kind": "key-backup",
        "kem_seed": hex(seed.expose()),
        "kid": hex(officer.kid().as_bytes()),
        "backup_id": hex(&backup_id),
        "created": created,
        "doc": payload.doc,
        "secrets": [
            { "kind": 1, "ref": version_kid.to_hex(), "bytes": hex(&kem_seed) },
            { "kind": 2, "ref": version_kid.to_hex(), "bytes": hex(&dsa_seed) },
        ],
        "payload": hex(&payload.encode().unwrap()),
        "m": hex(&m),
        "nonce": hex(&nonce),
        "header": hex(header),
        "user_aad": hex(&[backup::LABEL_BACKUP, header].concat()),
        "bundle": hex(&bundle),
    })
}

/// Every other purpose of §6 wrapped under the MDK (0.8.0): an X-Wing
/// seed, an ML-DSA-65 seed, the audit key's ML-DSA-65 seed, a pgp_pub key's
/// passphrase, and a one-time recovery key's seed under its random key `R`
/// (tenant = the key's kid in hex).
fn more_wrap_cases(rng: &mut SeededRandom) -> Vec<Value> {
    let mut out = Vec::new();
    let mdk = Dek::generate_from(rng).unwrap();
    let xwing: [u8; 32] = rng.array().unwrap();
    let context = WrapContext { tenant: "acme", version: 2, purpose: Purpose::XWingSeed };
    out.push(wrap_under_mdk(rng, "mdk-wrap-x-wing-seed", &mdk, &context, &xwing));
    let dsa: [u8; 32] = rng.array().unwrap();
    let context = WrapContext { tenant: "acme", version: 2, purpose: Purpose::DsaSeed };
    out.push(wrap_under_mdk(rng, "mdk-wrap-ml-dsa-seed", &mdk, &context, &dsa));
    let audit: [u8; 32] = rng.array().unwrap();
    let context = WrapContext { tenant: "", version: 0, purpose: Purpose::AuditSeed };
    out.push(wrap_under_mdk(rng, "mdk-wrap-audit-ml-dsa-seed", &mdk, &context, &audit));
    let context = WrapContext { tenant: "acme", version: 4, purpose: Purpose::ClassicalPassphrase };
    out.push(wrap_under_mdk(rng, "mdk-wrap-classical-passphrase", &mdk, &context, b"pgp key passphrase"));
    let r = Dek::generate_from(rng).unwrap();
    let seed = KemSeed::generate_from(rng).unwrap();
    let kid_hex = KemSecretKey::from_seed(&seed).unwrap().kid().to_hex();
    let context = WrapContext { tenant: &kid_hex, version: 0, purpose: Purpose::RecoveryKeySeed };
    out.push(wrap_under_mdk(rng, "mdk-wrap-recovery-key-seed", &r, &context, seed.expose()));
    out
}

/// An X-Wing version's DEK sealed to its own key ('X', label "apg-pq v1 dek").
fn xwing_dek_case(rng: &mut SeededRandom) -> Value {
    let seed = XWingSeed::generate_from(rng).unwrap();
    let key = XWingSecretKey::from_seed(&seed).unwrap();
    let pk = key.public_key();
    let dek = Dek::generate_from(rng).unwrap();
    let mut peek = rng.clone();
    let eseed: [u8; 64] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let (kem_ct, shared) = Recipient::from(pk).encapsulate(&mut rng.clone()).unwrap();
    let derived = sealed::derive_key(&shared, INFO_DEK).unwrap();
    let envelope = sealed::seal_from(rng, pk.into(), INFO_DEK, dek.expose(), b"").unwrap();
    assert_eq!(crate::open_dek(&key, &envelope).unwrap(), dek);
    let header_len = SEALED_XWING_OVERHEAD - TAG_LEN;
    json!({
        "id": "sealed-dek-x-wing",
        "kind": "sealed-dek-x-wing",
        "xwing_seed": hex(seed.expose()),
        "pk": hex(pk.as_bytes()),
        "kid": hex(pk.kid().as_bytes()),
        "eseed": hex(&eseed),
        "kem_ct": hex(&kem_ct),
        "shared_secret": hex(shared.expose()),
        "hkdf_salt": "",
        "hkdf_info": hex(INFO_DEK),
        "key": hex(derived.expose()),
        "nonce": hex(&nonce),
        "dek": hex(dek.expose()),
        "user_aad": "",
        "aad": hex(&envelope[..header_len]),
        "envelope": hex(&envelope),
    })
}

/// A custodian's 'E' record re-sealed to a recovery request's key ('R', §14.1).
fn escrow_reseal_case(rng: &mut SeededRandom) -> Value {
    use crate::escrow;
    let mdk = Dek::generate_from(rng).unwrap();
    let escrow_id: [u8; 16] = rng.array().unwrap();
    let custodian_seed = KemSeed::generate_from(rng).unwrap();
    let custodian = KemSecretKey::from_seed(&custodian_seed).unwrap();
    let request_seed = KemSeed::generate_from(rng).unwrap();
    let request = KemSecretKey::from_seed(&request_seed).unwrap();
    let other = KemSecretKey::from_seed(&KemSeed::generate_from(rng).unwrap()).unwrap();
    let publics = [Recipient::from(custodian.public_key()), Recipient::from(other.public_key())];
    let share_record = escrow::split_mdk_from(rng, &mdk, escrow_id, 2, &publics).unwrap().swap_remove(0);
    let share = escrow::ShareRecord::parse(&share_record).unwrap().open(&custodian).unwrap();
    let mut peek = rng.clone();
    let m: [u8; 32] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let record = escrow::reseal_from(rng, &share_record, &custodian, request.public_key().into()).unwrap();
    let parsed = escrow::ShareRecord::parse(&record).unwrap();
    assert_eq!(parsed.open(&request).unwrap().bytes, share.bytes);
    let header = &record[..escrow::RECORD_HEADER_LEN];
    json!({
        "id": "escrow-reseal",
        "kind": "escrow-reseal",
        "custodian_kem_seed": hex(custodian_seed.expose()),
        "share_record": hex(&share_record),
        "share": hex(&share.bytes),
        "request_kem_seed": hex(request_seed.expose()),
        "m": hex(&m),
        "nonce": hex(&nonce),
        "header": hex(header),
        "user_aad": hex(&[escrow::LABEL_RESEAL, header].concat()),
        "record": hex(&record),
    })
}

/// A checkpoint of the chain of cases audit-row-1 and audit-row-2: its
/// head is row 2 and its hash (§11.5 over §11.4).
fn audit_checkpoint_chain_case(rng: &mut SeededRandom, rows: &[Value]) -> Value {
    let dsa_seed = DsaSeed::generate_from(rng).unwrap();
    let ed_seed: [u8; 32] = rng.array().unwrap();
    let head = rows.last().and_then(|r| r["row_hash"].as_str()).unwrap_or_default();
    let head_hash: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&head[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    checkpoint_case("audit-checkpoint-chain", &dsa_seed, &ed_seed, head_hash)
}

/// A client's format-2 signature over a sealed value (§11.3, 0.8.0): the
/// message names the record the value replaces.
fn config_sealed_v2_case(rng: &mut SeededRandom) -> Value {
    use crate::audit::{sealed_value_signed, CONFIG_SEALED_CONTEXT_V2};
    let seed = DsaSeed::generate_from(rng).unwrap();
    let key = SigningKey::from_seed(&seed);
    let envelope: Vec<u8> = (64u8..128).collect();
    let replaces: [u8; 32] = rng.array().unwrap();
    let (message, context) = sealed_value_signed(2, "acme", "api.token", &envelope, Some(&replaces)).unwrap();
    assert_eq!(context, CONFIG_SEALED_CONTEXT_V2);
    let signature = key.sign_from(&mut ZeroRandom, &message, context).unwrap();
    json!({
        "id": "config-sealed-v2",
        "kind": "config-sealed-v2",
        "tenant": "acme",
        "key": "api.token",
        "sealed_envelope": hex(&envelope),
        "replaces": hex(&replaces),
        "message": hex(&message),
        "dsa_seed": hex(seed.expose()),
        "pk": hex(key.verifying_key().as_bytes()),
        "context": hex(context),
        "rnd": hex(&[0u8; 32]),
        "signature": hex(&signature),
    })
}

/// An approved recovery request statement ('A', §14.2) with two approvals
/// (deterministic ML-DSA-65).
fn escrow_statement_case(rng: &mut SeededRandom) -> Value {
    use crate::escrow::{Approval, ApprovedRequest, RequestStatement, APPROVAL_CONTEXT};
    let request_id: [u8; 16] = rng.array().unwrap();
    let escrow_id: [u8; 16] = rng.array().unwrap();
    let request_kid = Kid(rng.array().unwrap());
    let mdk_id_bytes = Kid(rng.array().unwrap());
    let statement = RequestStatement {
        request_id,
        request_kid,
        escrow_id,
        mdk_id: mdk_id_bytes,
        requested_at: 1_798_761_600_000_000,
        ready_at: 1_798_848_000_000_000,
        approvers_required: 2,
    };
    let encoded = statement.encode();
    let seeds: Vec<DsaSeed> = (0..2).map(|_| DsaSeed::generate_from(rng).unwrap()).collect();
    let mut approvers = Vec::new();
    let mut approvals = Vec::new();
    for seed in &seeds {
        let key = SigningKey::from_seed(seed);
        let signature = key.sign_from(&mut ZeroRandom, &encoded, APPROVAL_CONTEXT).unwrap();
        approvers.push(json!({
            "dsa_seed": hex(seed.expose()),
            "pk": hex(key.verifying_key().as_bytes()),
            "kid": hex(key.kid().as_bytes()),
            "rnd": hex(&[0u8; 32]),
            "signature": hex(&signature),
        }));
        approvals.push(Approval { approver_kid: key.kid(), signature });
    }
    let record = ApprovedRequest { statement, approvals }.encode().unwrap();
    json!({
        "id": "escrow-statement",
        "kind": "escrow-statement",
        "request_id": hex(&request_id),
        "request_kid": hex(request_kid.as_bytes()),
        "escrow_id": hex(&escrow_id),
        "mdk_id": hex(mdk_id_bytes.as_bytes()),
        "requested_at": statement.requested_at,
        "ready_at": statement.ready_at,
        "approvers_required": statement.approvers_required,
        "statement": hex(&encoded),
        "context": hex(APPROVAL_CONTEXT),
        "approvers": approvers,
        "record": hex(&record),
    })
}

/// A bundle (§15) whose document is what `pq.export_key_backup` writes,
/// every key of it, for one ML-KEM-768 version: its public keys, kids and
/// sealed DEK derive from the secrets, as a restore checks.
fn backup_complete_case(rng: &mut SeededRandom) -> Value {
    use crate::backup::{self, Payload, Secret, SecretKind};
    let officer_seed = KemSeed::generate_from(rng).unwrap();
    let officer = KemSecretKey::from_seed(&officer_seed).unwrap();
    let backup_id: [u8; 16] = rng.array().unwrap();
    let kem_seed = KemSeed::generate_from(rng).unwrap();
    let dsa_seed = DsaSeed::generate_from(rng).unwrap();
    let version = KemSecretKey::from_seed(&kem_seed).unwrap();
    let signing = SigningKey::from_seed(&dsa_seed);
    let dek = Dek::generate_from(rng).unwrap();
    let sealed_dek = sealed::seal_from(rng, version.public_key().into(), INFO_DEK, dek.expose(), b"").unwrap();
    let created = 1_767_225_600u64;
    let doc = json!({
        "format": 1,
        "backup_id": hex(&backup_id),
        "created": created,
        "source_system_identifier": "7412345678901234567",
        "extension_version": "0.8.0",
        "include_metadata": true,
        "tenants": [{
            "name": "acme",
            "kem": "ml-kem-768",
            "created_at": "2026-01-01T00:00:00+00:00",
            "created_by": "postgres",
            "versions": [{
                "version": 1,
                "state": "active",
                "kid": version.kid().to_hex(),
                "signing_kid": signing.kid().to_hex(),
                "public_key": hex(version.public_key().as_bytes()),
                "verifying_key": hex(signing.verifying_key().as_bytes()),
                "sealed_dek": hex(&sealed_dek),
                "created_at": "2026-01-01T00:00:00+00:00",
                "activated_at": "2026-01-01T00:00:00+00:00",
                "retired_at": null,
                "disabled_at": null,
                "destroyed_at": null,
            }],
            "classical_keys": [],
            "policy": null,
            "grants": ["app"],
        }],
    })
    .to_string();
    let reference = *version.kid().as_bytes();
    let payload = Payload {
        doc,
        secrets: vec![
            Secret { kind: SecretKind::KemSeed, reference, bytes: kem_seed.expose().to_vec().into() },
            Secret { kind: SecretKind::DsaSeed, reference, bytes: dsa_seed.expose().to_vec().into() },
        ],
    };
    let mut peek = rng.clone();
    let m: [u8; 32] = peek.array().unwrap();
    let nonce: [u8; NONCE_LEN] = peek.array().unwrap();
    let bundle = backup::seal_from(rng, officer.public_key().into(), backup_id, created, &payload).unwrap();
    assert_eq!(backup::open(&bundle, &officer).unwrap().1.doc, payload.doc);
    let header = &bundle[..backup::BUNDLE_HEADER_LEN];
    json!({
        "id": "key-backup-complete",
        "kind": "key-backup-complete",
        "kem_seed": hex(officer_seed.expose()),
        "kid": hex(officer.kid().as_bytes()),
        "backup_id": hex(&backup_id),
        "created": created,
        "doc": payload.doc,
        "secrets": [
            { "kind": 1, "ref": hex(&reference), "bytes": hex(kem_seed.expose()) },
            { "kind": 2, "ref": hex(&reference), "bytes": hex(dsa_seed.expose()) },
        ],
        "dek": hex(dek.expose()),
        "payload": hex(&payload.encode().unwrap()),
        "m": hex(&m),
        "nonce": hex(&nonce),
        "header": hex(header),
        "user_aad": hex(&[backup::LABEL_BACKUP, header].concat()),
        "bundle": hex(&bundle),
    })
}

/// Blind index terms (§16, 0.9.0): a DEK, its index key for a context,
/// and terms of text values under each normalisation and of a bytea value.
fn blind_index_cases(rng: &mut SeededRandom) -> Vec<Value> {
    use crate::blind::{self, IndexKey, Normalization};
    let dek = Dek::generate_from(rng).unwrap();
    let kid = Kid(rng.array().unwrap());
    let cipher = KeyedCipher::new(&dek, kid);
    let context = "email";
    let key = blind::derive_bytes(&cipher, context.as_bytes()).unwrap();
    let index = IndexKey::derive(&cipher, context.as_bytes()).unwrap();
    let text_terms: Vec<Value> = [
        (" Alice@Example.COM\u{a0}", "exact", 256),
        (" Alice@Example.COM\u{a0}", "trim", 256),
        (" Alice@Example.COM\u{a0}", "casefold", 256),
        (" Alice@Example.COM\u{a0}", "trim,casefold", 256),
        ("alice@example.com", "exact", 128),
        ("alice@example.com", "exact", 16),
        ("\u{3000}İSTANBUL ΟΔΟΣ\t", "trim,casefold", 64),
        ("", "exact", 256),
    ]
    .iter()
    .map(|(value, normalize, bits)| {
        let n = Normalization::parse(normalize).unwrap();
        let len = blind::term_len(*bits).unwrap();
        json!({
            "value": value,
            "normalize": normalize,
            "normalized": hex(n.apply(value).as_bytes()),
            "bits": bits,
            "term": hex(&index.text_term(value, n, len)),
        })
    })
    .collect();
    let bytes = [0x00, 0xff, 0x10, 0x20];
    // The index key exported to a client (pq.export_index_key, §16.5).
    let export = sealed_case::<MlKem768>(rng, "blind-index-export", INFO_SEALED, &key[..], &blind::export_aad(&kid, context.as_bytes()));
    let case = json!({
        "id": "blind-index",
        "kind": "blind-index",
        "dek": hex(dek.expose()),
        "kid": hex(kid.as_bytes()),
        "context": context,
        "hkdf_info": hex(&concat(INFO_BLIND_INDEX, context.as_bytes())),
        "index_key": hex(&key[..]),
        "text_terms": text_terms,
        "bytea_value": hex(&bytes),
        "bytea_term": hex(&index.term(&bytes, 32)),
    });
    vec![case, export]
}

fn build() -> Value {
    let mut rng = SeededRandom::new("apg-pq v1 known-answer vectors");
    let config = b"postgres://app:s3cret@db.internal:5432/app";
    let cases = vec![
        sealed_case::<MlKem768>(&mut rng, "sealed-empty", INFO_SEALED, b"", b""),
        sealed_case::<MlKem768>(&mut rng, "sealed-config", INFO_SEALED, config, b"database_url"),
        keyed_case(&mut rng, "keyed-empty", b"", b""),
        keyed_case(&mut rng, "keyed-config", config, b"database_url"),
        keyed_case(&mut rng, "keyed-100", &[0xA5; 100], b""),
        signature_case(&mut rng, "signature-deterministic", b"", b"", false),
        signature_case(&mut rng, "signature-hedged", config, b"config v7", true),
        dek_case(&mut rng),
        mdk_wrap_case(&mut rng),
        kek_wrap_case(&mut rng),
        classical_wrap_case(&mut rng),
        config_change_case(&mut rng),
        config_sealed_case(&mut rng),
        audit_checkpoint_case(&mut rng),
        audit_wrap_case(&mut rng),
    ];
    let mut cases = cases;
    cases.extend(audit_rows_cases());
    cases.push(xwing_sealed_case(&mut rng));
    cases.push(batch_case(&mut rng, Suite::MlKem768, "batch", "batch"));
    cases.push(batch_case(&mut rng, Suite::XWing, "batch-x-wing", "batch-x-wing"));
    cases.push(stream_case(&mut rng));
    cases.push(shamir_case(&mut rng));
    cases.push(escrow_case(&mut rng));
    cases.push(backup_case(&mut rng));
    // 0.8.0: appended, so every earlier case keeps its bytes.
    cases.extend(more_wrap_cases(&mut rng));
    cases.push(xwing_dek_case(&mut rng));
    cases.push(escrow_reseal_case(&mut rng));
    let rows = audit_rows_cases();
    cases.push(audit_checkpoint_chain_case(&mut rng, &rows));
    cases.push(config_sealed_v2_case(&mut rng));
    cases.push(escrow_statement_case(&mut rng));
    cases.push(backup_complete_case(&mut rng));
    // 0.9.0
    cases.extend(blind_index_cases(&mut rng));
    // 0.11.0: the CNSA 2.0 suites ('L', 'M', 'H') and their wrap purposes.
    cases.push(sealed_case::<MlKem1024>(&mut rng, "sealed-ml-kem-1024", INFO_SEALED, config, b"database_url"));
    cases.push(batch_case(&mut rng, Suite::MlKem1024, "batch-ml-kem-1024", "batch"));
    cases.push(dek_1024_case(&mut rng));
    cases.push(signature_case_for(&mut rng, SignatureSuite::MlDsa87, "signature-ml-dsa-87-deterministic", b"", b"", false));
    cases.push(signature_case_for(&mut rng, SignatureSuite::MlDsa87, "signature-ml-dsa-87-hedged", config, b"config v7", true));
    cases.extend(cnsa2_wrap_cases(&mut rng));
    cases.extend(audit_suite_cases(&mut rng));
    let mut top = Map::new();
    top.insert(
        "description".into(),
        json!("apg_pqcrypto format v1 known-answer vectors; byte fields in lower-case hex; schema in docs/FORMAT.md section 7"),
    );
    top.insert("case_count".into(), json!(cases.len()));
    top.insert("cases".into(), Value::Array(cases));
    Value::Object(top)
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
