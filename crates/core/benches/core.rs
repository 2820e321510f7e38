//! Criterion benches of the core: `cargo bench -p apg-pqcrypto-core`.
//! Results and the machine are recorded in docs/PERFORMANCE.md.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use pqcore::backend::{
    KemBackend, LibcruxDsa, LibcruxKem, MlDsa65, MlDsa87, MlDsaParams, MlKem1024, MlKem768, MlKemParams, RustCryptoDsa,
    RustCryptoKem, SignatureBackend,
};
use pqcore::{sealed, Dek, Envelope, KemSecretKey, KeyedCipher, Kid, RecipientSecret, SigningKey, Suite};

const SIZES: [(&str, usize); 2] = [("40B", 40), ("4KiB", 4096)];

/// Every ML-KEM set's primitives per implementation (the sizes are in docs/FORMAT.md §1).
fn kem_backend<P: MlKemParams, B: KemBackend<P>>(c: &mut Criterion) {
    let seed = [3u8; 64];
    let (dk, ek_bytes) = B::from_seed(&seed);
    let ek = B::encapsulation_key(&ek_bytes).unwrap();
    let (ct, _) = B::encapsulate(&ek, &[5u8; 32]);
    let mut g = c.benchmark_group(format!("{}/{}", P::NAME, B::NAME));
    g.bench_function("keygen_from_seed", |b| b.iter(|| B::from_seed(black_box(&seed))));
    g.bench_function("parse_ek", |b| b.iter(|| B::encapsulation_key(black_box(&ek_bytes))));
    g.bench_function("encapsulate", |b| b.iter(|| B::encapsulate(&ek, black_box(&[5u8; 32]))));
    g.bench_function("decapsulate", |b| b.iter(|| B::decapsulate(&dk, black_box(&ct))));
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    let (_, kem) = KemSecretKey::generate().unwrap();
    let dek = Dek::generate().unwrap();
    let cipher = KeyedCipher::new(&dek, Kid([1; 16]));
    let mut g = c.benchmark_group("envelope");
    for (name, size) in SIZES {
        let pt = vec![0x61u8; size];
        let keyed = cipher.encrypt(&pt, b"database_url").unwrap();
        let sealed_env = sealed::seal(kem.public_key(), &pt, b"database_url").unwrap();
        g.bench_with_input(BenchmarkId::new("keyed_encrypt", name), &pt, |b, pt| {
            b.iter(|| cipher.encrypt(black_box(pt), b"database_url").unwrap())
        });
        g.bench_with_input(BenchmarkId::new("keyed_decrypt", name), &keyed, |b, env| {
            b.iter(|| {
                let env = Envelope::parse(black_box(env)).unwrap().into_keyed().unwrap();
                cipher.decrypt(&env, b"database_url").unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("seal", name), &pt, |b, pt| {
            b.iter(|| sealed::seal(kem.public_key(), black_box(pt), b"database_url").unwrap())
        });
        g.bench_with_input(BenchmarkId::new("open", name), &sealed_env, |b, env| {
            b.iter(|| {
                let env = Envelope::parse(black_box(env)).unwrap().into_sealed().unwrap();
                sealed::open(&kem, &env, b"database_url").unwrap()
            })
        });
    }
    g.bench_function("keyed_cipher_setup", |b| b.iter(|| KeyedCipher::new(black_box(&dek), Kid([1; 16]))));
    g.finish();
}

/// X-Wing against ML-KEM-768, and a batch of 1,000 values against 1,000
/// single seals (40-byte values).
fn suites_and_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("client");
    let values: Vec<Vec<u8>> = (0..1000).map(|i| format!("a configuration value of 40 bytes {i:05}").into_bytes()).collect();
    let aads: Vec<Vec<u8>> = (0..1000).map(|i| format!("row {i}").into_bytes()).collect();
    for suite in Suite::ALL {
        let (_, key) = RecipientSecret::generate(suite).unwrap();
        let env = sealed::seal(key.public_key(), &values[0], b"k").unwrap();
        g.bench_function(format!("{}/seal_40B", suite.name()), |b| {
            b.iter(|| sealed::seal(key.public_key(), black_box(&values[0]), b"k").unwrap())
        });
        g.bench_function(format!("{}/open_40B", suite.name()), |b| {
            b.iter(|| {
                let env = Envelope::parse(black_box(&env)).unwrap().into_sealed().unwrap();
                sealed::open(&key, &env, b"k").unwrap()
            })
        });
        g.sample_size(10);
        g.bench_function(format!("{}/1000_single_seals", suite.name()), |b| {
            b.iter(|| values.iter().zip(&aads).map(|(v, a)| sealed::seal(key.public_key(), v, a).unwrap()).collect::<Vec<_>>())
        });
        g.bench_function(format!("{}/seal_batch_1000", suite.name()), |b| {
            b.iter(|| sealed::seal_batch(key.public_key(), black_box(&values), &aads).unwrap())
        });
        g.sample_size(30);
    }
    g.finish();
}

/// X-Wing's parts and the `x-wing` crate the composition replaced (its
/// test oracle): the crate expands the decapsulation key from its seed at
/// every call; ours keeps the expanded key.
fn xwing_parts(c: &mut Criterion) {
    use x_wing::{Decapsulate, Decapsulator, KeyInit};
    let mut g = c.benchmark_group("x-wing");
    let sk = x25519_dalek::StaticSecret::from([7u8; 32]);
    let pk = x25519_dalek::PublicKey::from([9u8; 32]);
    g.bench_function("x25519_base_mult", |b| b.iter(|| x25519_dalek::PublicKey::from(black_box(&sk))));
    g.bench_function("x25519_dh", |b| b.iter(|| black_box(&sk).diffie_hellman(&pk)));
    let crate_dk = x_wing::DecapsulationKey::new(&[11u8; 32].into());
    let (ct, _) = crate_dk.encapsulation_key().encapsulate_deterministic(&[13u8; 64].into());
    g.bench_function("x-wing_crate/encapsulate", |b| {
        b.iter(|| crate_dk.encapsulation_key().encapsulate_deterministic(black_box(&[13u8; 64].into())))
    });
    g.bench_function("x-wing_crate/decapsulate", |b| b.iter(|| crate_dk.decapsulate(black_box(&ct))));
    g.finish();
}

fn keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("keys");
    g.bench_function("ml-kem-768_generate", |b| b.iter(|| KemSecretKey::generate().unwrap()));
    g.bench_function("ml-dsa-65_generate", |b| b.iter(|| SigningKey::generate().unwrap()));
    g.bench_function("ml-kem-768_parse_public", |b| {
        let (_, k) = KemSecretKey::generate().unwrap();
        let bytes = k.public_key().as_bytes().to_vec();
        b.iter(|| pqcore::KemPublicKey::from_slice(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn signatures(c: &mut Criterion) {
    for suite in pqcore::SignatureSuite::ALL {
        signatures_of(c, suite);
    }
}

/// The key type's sign and verify (what pq_sign and pq_verify call).
fn signatures_of(c: &mut Criterion, suite: pqcore::SignatureSuite) {
    let (_, key) = SigningKey::generate_for(suite).unwrap();
    let msg = vec![0x61u8; 40];
    let sig = key.sign(&msg, b"").unwrap();
    let mut g = c.benchmark_group(suite.name());
    g.bench_function("sign_40B", |b| b.iter(|| key.sign(black_box(&msg), b"").unwrap()));
    g.bench_function("verify_40B", |b| {
        b.iter(|| key.verifying_key().verify(black_box(&msg), b"", &sig).unwrap())
    });
    g.bench_function("parse_verifying_key", |b| {
        let pk = key.verifying_key().as_bytes().to_vec();
        b.iter(|| pqcore::VerifyingKey::from_slice(black_box(&pk)).unwrap())
    });
    g.finish();
}

/// ML-DSA sign and verify of a 200-byte message (a config change record) per set and implementation.
fn dsa_backend<P: MlDsaParams, B: SignatureBackend<P>>(c: &mut Criterion) {
    let (sk, pk) = B::from_seed(&[7u8; 32]);
    let vk = B::verifying_key(&pk);
    let msg = vec![0x42u8; 200];
    let ctx = b"apg-pq config-change v1";
    let sig = B::sign(&sk, &msg, ctx, &[1u8; 32]).unwrap();
    let mut g = c.benchmark_group(format!("{}/{}", P::NAME, B::NAME));
    g.bench_function("keygen_from_seed", |b| b.iter(|| B::from_seed(black_box(&[7u8; 32]))));
    g.bench_function("sign_200B", |b| b.iter(|| B::sign(&sk, black_box(&msg), ctx, &[1u8; 32]).unwrap()));
    g.bench_function("verify_200B", |b| b.iter(|| B::verify(&vk, black_box(&msg), ctx, &sig)));
    g.bench_function("parse_verifying_key", |b| b.iter(|| B::verifying_key(black_box(&pk))));
    g.finish();
}

/// SLH-DSA-SHA2-128s, the audit key's hash-based hedge: keygen from its
/// seed, a checkpoint's signature (hedged) and its verification.
fn slh_dsa(c: &mut Criterion) {
    use pqcore::slh::{self, SlhSigningKey};
    let seed = [9u8; slh::SEED_LEN];
    let key = SlhSigningKey::from_seed(&seed).unwrap();
    let pk = key.public_key();
    let msg = [0x42u8; 48];
    let sig = key.sign(&msg, b"apg-pq audit-checkpoint v1", Some(&[3; slh::N])).unwrap();
    let mut g = c.benchmark_group("slh-dsa-sha2-128s/rustcrypto");
    g.sample_size(10);
    g.bench_function("keygen_from_seed", |b| b.iter(|| SlhSigningKey::from_seed(black_box(&seed)).unwrap()));
    g.bench_function("sign_checkpoint", |b| {
        b.iter(|| key.sign(black_box(&msg), b"apg-pq audit-checkpoint v1", Some(&[3; slh::N])).unwrap())
    });
    g.bench_function("verify_checkpoint", |b| b.iter(|| slh::verify(&pk, black_box(&msg), b"apg-pq audit-checkpoint v1", &sig)));
    g.finish();
}

fn all(c: &mut Criterion) {
    kem_backend::<MlKem768, LibcruxKem>(c);
    kem_backend::<MlKem768, RustCryptoKem>(c);
    kem_backend::<MlKem1024, LibcruxKem>(c);
    kem_backend::<MlKem1024, RustCryptoKem>(c);
    dsa_backend::<MlDsa65, LibcruxDsa>(c);
    dsa_backend::<MlDsa65, RustCryptoDsa>(c);
    dsa_backend::<MlDsa87, LibcruxDsa>(c);
    dsa_backend::<MlDsa87, RustCryptoDsa>(c);
    envelopes(c);
    suites_and_batches(c);
    xwing_parts(c);
    keys(c);
    signatures(c);
    slh_dsa(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = all
}
criterion_main!(benches);
