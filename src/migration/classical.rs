//! Classical (pgcrypto) ciphertexts: `pq.register_classical_key`,
//! `pq.drop_classical_key`, `pq.classify`, `pq.decrypt_any`,
//! `pq.encrypt_dual_mode`, and the calls into pgcrypto that migration jobs
//! (`migration::column`) make. Over 500 lines on purpose: everything that
//! touches pgcrypto's formats and functions is here and nowhere else.
//!
//! Classical values are decrypted and written by pgcrypto's own functions,
//! found in the schema pgcrypto is installed in and called through fmgr,
//! each call in a subtransaction, so that a wrong key (pgcrypto raises
//! "Wrong key or corrupt data") is an answer, not an aborted transaction.
//! Keys are passed in buffers that are wiped when the call returns;
//! plaintexts come back into zeroizing memory and pgcrypto's copy is wiped.
use crate::{
    journal::events,
    keys::{access, secrets::{self, ClassicalSecret}, versions},
    migration::state,
    platform::{catalog, datum::{PgBytea, PgText, Varlena}, errors::{echo, PqError, PqResult}},
};
use pgrx::prelude::*;
use pqcore::classical::{classify, Class};
use pqcore::{keyed_len, sealed, Envelope};
use serde_json::json;
use zeroize::Zeroizing;

/// The kinds of classical key, as `pq.register_classical_key` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicalKind {
    /// `pgp_sym_encrypt`: the key is the passphrase.
    PgpSym,
    /// `pgp_pub_encrypt`: the key is the OpenPGP secret key (binary, as
    /// `dearmor` returns it).
    PgpPub,
    /// `encrypt` / `encrypt_iv` with aes or bf: the key is the raw key.
    Raw,
}

impl ClassicalKind {
    pub fn parse(s: &str) -> PqResult<Self> {
        match s {
            "pgp_sym" => Ok(ClassicalKind::PgpSym),
            "pgp_pub" => Ok(ClassicalKind::PgpPub),
            "raw" => Ok(ClassicalKind::Raw),
            _ => Err(PqError::InvalidParameter("a classical key's kind is pgp_sym, pgp_pub or raw".into())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClassicalKind::PgpSym => "pgp_sym",
            ClassicalKind::PgpPub => "pgp_pub",
            ClassicalKind::Raw => "raw",
        }
    }

    pub fn of(class: Class) -> Option<Self> {
        match class {
            Class::PgpSym => Some(ClassicalKind::PgpSym),
            Class::PgpPub => Some(ClassicalKind::PgpPub),
            Class::Raw => Some(ClassicalKind::Raw),
            _ => None,
        }
    }
}

/// A raw key's cipher settings, from its options `algorithm=aes|bf,
/// mode=cbc|ecb, padding=pkcs|none, iv=<hex>` (defaults: aes, cbc, pkcs,
/// no IV, which is pgcrypto's `encrypt(data, key, 'aes')`).
pub struct RawOptions {
    /// pgcrypto's type argument, e.g. `aes-cbc/pad:pkcs`.
    pub cipher_type: String,
    pub iv: Option<Vec<u8>>,
}

impl RawOptions {
    pub fn parse(options: &str) -> PqResult<Self> {
        let bad = |what: &str| PqError::InvalidParameter(format!("raw key options: {what}"));
        let (mut algorithm, mut mode, mut padding, mut iv) = ("aes", "cbc", "pkcs", None);
        for item in options.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| bad("each option is name=value"))?;
            match (name.trim(), value.trim()) {
                ("algorithm", v @ ("aes" | "bf")) => algorithm = v,
                ("mode", v @ ("cbc" | "ecb")) => mode = v,
                ("padding", v @ ("pkcs" | "none")) => padding = v,
                ("iv", v) => iv = Some(hex::decode(v.trim_start_matches("\\x")).map_err(|_| bad("iv is hexadecimal"))?),
                _ => return Err(bad("algorithm is aes or bf, mode cbc or ecb, padding pkcs or none, iv hexadecimal")),
            }
        }
        Ok(RawOptions { cipher_type: format!("{algorithm}-{mode}/pad:{padding}"), iv })
    }
}

/// A registered classical key as pgcrypto calls use it: its kind and raw
/// cipher settings parsed once when loaded, not for every value.
pub struct ClassicalKey {
    pub secret: ClassicalSecret,
    pub kind: ClassicalKind,
    /// The cipher settings of a raw key.
    raw: Option<RawOptions>,
    /// The OpenPGP key id of a pgp_pub key (pgcrypto's `pgp_key_id`),
    /// matched against a message's recipient before the key is tried: a
    /// passphrase-protected secret key costs its S2K on every attempt.
    key_id: Option<[u8; 8]>,
}

impl ClassicalKey {
    pub fn new(secret: ClassicalSecret, pgcrypto: &Pgcrypto) -> PqResult<Self> {
        let kind = ClassicalKind::parse(&secret.kind)?;
        let raw = (kind == ClassicalKind::Raw).then(|| RawOptions::parse(&secret.options)).transpose()?;
        let key_id = if kind == ClassicalKind::PgpPub {
            pgcrypto.call(pgcrypto.key_id, &[&secret.key])?.ok().and_then(|hex_id| {
                let mut id = [0u8; 8];
                hex::decode_to_slice(hex_id.as_slice(), &mut id).ok().map(|()| id)
            })
        } else {
            None
        };
        Ok(ClassicalKey { secret, kind, raw, key_id })
    }
}

/// pgcrypto's functions, in the schema it is installed in.
pub struct Pgcrypto {
    sym_decrypt: pg_sys::Oid,
    pub_decrypt: pg_sys::Oid,
    decrypt: pg_sys::Oid,
    decrypt_iv: pg_sys::Oid,
    sym_encrypt: pg_sys::Oid,
    pub_encrypt: pg_sys::Oid,
    encrypt: pg_sys::Oid,
    encrypt_iv: pg_sys::Oid,
    key_id: pg_sys::Oid,
}

/// pgcrypto's functions, with schema-qualified argument types (the
/// function's own schema is added when it is looked up).
const SIGNATURES: [&str; 9] = [
    "pgp_sym_decrypt_bytea(pg_catalog.bytea, pg_catalog.text, pg_catalog.text)",
    "pgp_pub_decrypt_bytea(pg_catalog.bytea, pg_catalog.bytea, pg_catalog.text, pg_catalog.text)",
    "decrypt(pg_catalog.bytea, pg_catalog.bytea, pg_catalog.text)",
    "decrypt_iv(pg_catalog.bytea, pg_catalog.bytea, pg_catalog.bytea, pg_catalog.text)",
    "pgp_sym_encrypt_bytea(pg_catalog.bytea, pg_catalog.text, pg_catalog.text)",
    "pgp_pub_encrypt_bytea(pg_catalog.bytea, pg_catalog.bytea, pg_catalog.text)",
    "encrypt(pg_catalog.bytea, pg_catalog.bytea, pg_catalog.text)",
    "encrypt_iv(pg_catalog.bytea, pg_catalog.bytea, pg_catalog.bytea, pg_catalog.text)",
    "pgp_key_id(pg_catalog.bytea)",
];

/// A value pgcrypto refused (wrong key, damaged, not its format).
pub struct Refused;

impl Pgcrypto {
    /// pgcrypto's functions, or 55000 with a hint when it is not installed.
    pub fn find() -> PqResult<Self> {
        // Only functions that belong to the pgcrypto extension: they run
        // with the worker's and the extension owner's rights, so a
        // same-named function of someone else must never be picked.
        let oids = catalog::one::<Vec<pg_sys::Oid>>(
            "SELECT pg_catalog.array_agg(coalesce(d.objid, 0::pg_catalog.oid) ORDER BY o)
               FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
              CROSS JOIN pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS f(s, o)
               LEFT JOIN pg_catalog.pg_depend d
                      ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                     AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                     AND d.refobjid = e.oid AND d.deptype = 'e'
                     AND d.objid = pg_catalog.to_regprocedure(pg_catalog.quote_ident(n.nspname) || '.' || f.s)::pg_catalog.oid
              WHERE e.extname = 'pgcrypto'",
            &[SIGNATURES.to_vec().into()],
        )?
        .unwrap_or_default();
        if oids.len() != SIGNATURES.len() || oids.contains(&pg_sys::Oid::INVALID) {
            return Err(PqError::Sql {
                code: b"55000",
                message: "classical ciphertexts are read and written by pgcrypto, which is not installed in this database".into(),
                hint: Some("CREATE EXTENSION pgcrypto".into()),
            });
        }
        Ok(Pgcrypto {
            sym_decrypt: oids[0],
            pub_decrypt: oids[1],
            decrypt: oids[2],
            decrypt_iv: oids[3],
            sym_encrypt: oids[4],
            pub_encrypt: oids[5],
            encrypt: oids[6],
            encrypt_iv: oids[7],
            key_id: oids[8],
        })
    }

    /// Calls `function` with `args`; its bytea result. An ERROR the
    /// function raises propagates (see [`Pgcrypto::call`]).
    fn call_raising(&self, function: pg_sys::Oid, args: &[&[u8]]) -> PqResult<Zeroizing<Vec<u8>>> {
        let args = args.iter().map(|a| Varlena::argument(a)).collect::<PqResult<Vec<_>>>()?;
        let d: Vec<pg_sys::Datum> = args.iter().map(Varlena::datum).collect();
        // SAFETY: a strict pgcrypto function of this many bytea/text
        // arguments, none NULL; it returns a palloc'd varlena. The argument
        // buffers outlive the call and are wiped when `args` drops, also
        // when the call raises.
        unsafe {
            let datum = match d.len() {
                1 => pg_sys::OidFunctionCall1Coll(function, pg_sys::InvalidOid, d[0]),
                3 => pg_sys::OidFunctionCall3Coll(function, pg_sys::InvalidOid, d[0], d[1], d[2]),
                4 => pg_sys::OidFunctionCall4Coll(function, pg_sys::InvalidOid, d[0], d[1], d[2], d[3]),
                _ => return Err(PqError::internal("a pgcrypto call with an unexpected argument count", String::new())),
            };
            Varlena::take_result(datum)
        }
    }

    /// Calls `function` with `args` in a subtransaction: an ERROR it
    /// raises (a wrong key) is `Refused`, not the end of the statement.
    fn call(&self, function: pg_sys::Oid, args: &[&[u8]]) -> PqResult<Result<Zeroizing<Vec<u8>>, Refused>> {
        match catalog::attempt(|| self.call_raising(function, args)) {
            Ok(Ok(bytes)) => Ok(Ok(bytes)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(Err(Refused)),
        }
    }

    /// Runs `call` with the pgcrypto function and arguments that decrypt
    /// `value` under `key`.
    fn decrypt_call<R>(
        &self,
        key: &ClassicalKey,
        value: &[u8],
        call: impl FnOnce(pg_sys::Oid, &[&[u8]]) -> PqResult<R>,
    ) -> PqResult<R> {
        let secret = &key.secret;
        let options = secret.options.as_bytes();
        match (key.kind, &key.raw) {
            (ClassicalKind::PgpSym, _) => call(self.sym_decrypt, &[value, &secret.key, options]),
            (ClassicalKind::PgpPub, _) => {
                let passphrase = secret.passphrase.as_deref().map(Vec::as_slice).unwrap_or_default();
                call(self.pub_decrypt, &[value, &secret.key, passphrase, options])
            }
            (ClassicalKind::Raw, Some(RawOptions { cipher_type, iv: Some(iv) })) => {
                call(self.decrypt_iv, &[value, &secret.key, iv, cipher_type.as_bytes()])
            }
            (ClassicalKind::Raw, Some(RawOptions { cipher_type, iv: None })) => {
                call(self.decrypt, &[value, &secret.key, cipher_type.as_bytes()])
            }
            (ClassicalKind::Raw, None) => Err(PqError::internal("a raw key without its options", String::new())),
        }
    }

    /// The plaintext of `value` under `key`, or `Refused`.
    pub fn decrypt(&self, key: &ClassicalKey, value: &[u8]) -> PqResult<Result<Zeroizing<Vec<u8>>, Refused>> {
        self.decrypt_call(key, value, |function, args| self.call(function, args))
    }

    /// The plaintext of `value` under `key`; pgcrypto's ERROR propagates
    /// (for callers that run many decryptions in one subtransaction).
    pub fn decrypt_raising(&self, key: &ClassicalKey, value: &[u8]) -> PqResult<Zeroizing<Vec<u8>>> {
        self.decrypt_call(key, value, |function, args| self.call_raising(function, args))
    }

    /// `plaintext` in `key`'s classical format, as the application's own
    /// pgcrypto call would have written it.
    pub fn encrypt(&self, key: &ClassicalKey, plaintext: &[u8]) -> PqResult<Vec<u8>> {
        let secret = &key.secret;
        let options = secret.options.as_bytes();
        let result = match (key.kind, &key.raw) {
            (ClassicalKind::PgpSym, _) => self.call(self.sym_encrypt, &[plaintext, &secret.key, options])?,
            (ClassicalKind::PgpPub, _) => {
                let Some(public_key) = &secret.public_key else {
                    return Err(PqError::Sql {
                        code: b"55000",
                        message: format!("classical key {} has no public key to encrypt with", secret.id),
                        hint: Some("register the key again with public_key => dearmor(…)".into()),
                    });
                };
                self.call(self.pub_encrypt, &[plaintext, public_key, options])?
            }
            (ClassicalKind::Raw, Some(RawOptions { cipher_type, iv: Some(iv) })) => {
                self.call(self.encrypt_iv, &[plaintext, &secret.key, iv, cipher_type.as_bytes()])?
            }
            (ClassicalKind::Raw, Some(RawOptions { cipher_type, iv: None })) => {
                self.call(self.encrypt, &[plaintext, &secret.key, cipher_type.as_bytes()])?
            }
            (ClassicalKind::Raw, None) => return Err(PqError::internal("a raw key without its options", String::new())),
        };
        result.map(|c| c.to_vec()).map_err(|_| PqError::Sql {
            code: b"22023",
            message: "pgcrypto refused to encrypt with this classical key and its options".into(),
            hint: Some(
                "check the options; Blowfish (bf) needs OpenSSL's legacy provider, which OpenSSL 3 does not load by default".into(),
            ),
        })
    }

    /// True if pgcrypto reads `key` as an OpenPGP key.
    fn is_pgp_key(&self, key: &[u8]) -> PqResult<bool> {
        Ok(self.call(self.key_id, &[key])?.is_ok())
    }
}

/// The classical keys of a tenant, loaded once and tried newest first.
pub struct TenantKeys {
    pub keys: Vec<ClassicalKey>,
}

impl TenantKeys {
    /// Loads `tenant`'s keys (the caller has checked access). Call as owner.
    pub fn load(tenant: &str, pgcrypto: &Pgcrypto) -> PqResult<Self> {
        let keys = secrets::classical_keys(tenant)?.into_iter().map(|s| ClassicalKey::new(s, pgcrypto)).collect::<PqResult<_>>()?;
        Ok(TenantKeys { keys })
    }

    /// The keys to try for a value read as `kind`, in order: that kind's
    /// keys, newest first, without pgp_pub keys whose id differs from the
    /// recipient the message names.
    pub fn candidates<'k>(&'k self, kind: ClassicalKind, value: &[u8]) -> impl Iterator<Item = &'k ClassicalKey> + 'k {
        let recipient = if kind == ClassicalKind::PgpPub { pqcore::classical::pgp_recipient(value) } else { None };
        self.keys.iter().filter(move |k| {
            let other = matches!((recipient, k.key_id), (Some(r), Some(id)) if r != id);
            k.kind == kind && !other
        })
    }

    /// The plaintext of a value read as `kind`: Err(reason) names what
    /// failed, never the value.
    pub fn decrypt(
        &self,
        pgcrypto: &Pgcrypto,
        kind: ClassicalKind,
        value: &[u8],
    ) -> PqResult<Result<Zeroizing<Vec<u8>>, &'static str>> {
        let mut any = false;
        for key in self.candidates(kind, value) {
            any = true;
            if let Ok(plaintext) = pgcrypto.decrypt(key, value)? {
                return Ok(Ok(plaintext));
            }
        }
        Ok(Err(match (any, kind) {
            (false, ClassicalKind::PgpSym) => "no pgp_sym key is registered for the tenant",
            (false, ClassicalKind::PgpPub) => "no pgp_pub key is registered for the tenant",
            (false, ClassicalKind::Raw) => "no raw key is registered for the tenant",
            (true, ClassicalKind::PgpSym) => "no registered pgp_sym key of the tenant decrypts it",
            (true, ClassicalKind::PgpPub) => "no registered pgp_pub key of the tenant decrypts it",
            (true, ClassicalKind::Raw) => "no registered raw key of the tenant decrypts it",
        }))
    }
}

/// What a value is, for `pq.classify`.
pub fn class_name(value: &[u8]) -> &'static str {
    classify(value).first().map_or("unknown", |c| c.name())
}

/// PQ001 saying why no classical key decrypted a value.
pub fn failed(reason: &str) -> PqError {
    PqError::Sql { code: b"PQ001", message: format!("decryption failed: {reason}"), hint: None }
}

fn unrecognised() -> PqError {
    PqError::InvalidParameter(
        "the value is neither a post-quantum envelope, an OpenPGP message from pgcrypto, nor raw cipher output".into(),
    )
}

/// Decrypts a post-quantum envelope or a classical value of `tenant`.
fn decrypt_any(value: &[u8], tenant: &str, aad: &[u8]) -> PqResult<PgBytea> {
    access::require_usable(tenant)?;
    let classes = pqcore::classical::readings(value, |_| false);
    if classes.is_empty() {
        return Err(unrecognised());
    }
    let mut first_error = None;
    let mut classical: Option<(Pgcrypto, TenantKeys)> = None;
    for class in classes {
        let attempt = match class {
            // An envelope of a stored key version is read as nothing else
            // (FORMAT.md §10): only an unknown kid leaves the other readings.
            Class::PqKeyed | Class::PqSealed => match decrypt_envelope(value, tenant, aad) {
                Err(PqError::UnknownKid) => Err(PqError::UnknownKid),
                done => return done,
            },
            Class::PqSignature => Err(PqError::WrongKind { found: pqcore::Kind::Signature, function: "pq.decrypt_any" }),
            _ => {
                let Some(kind) = ClassicalKind::of(class) else { continue };
                if classical.is_none() {
                    let pgcrypto = Pgcrypto::find()?;
                    let keys = catalog::as_owner(|| TenantKeys::load(tenant, &pgcrypto))?;
                    classical = Some((pgcrypto, keys));
                }
                let Some((pgcrypto, keys)) = &classical else { continue };
                match keys.decrypt(pgcrypto, kind, value)? {
                    Ok(plaintext) => return PgBytea::copy_of(&plaintext),
                    Err(reason) => Err(failed(reason)),
                }
            }
        };
        match attempt {
            Ok(plaintext) => return Ok(plaintext),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(unrecognised))
}

/// pq.decrypt_any as the SQL functions call it: failures counted (after
/// the access check: a refused caller attempted nothing).
fn counted_decrypt_any(value: &[u8], tenant: &str, aad: &[u8]) -> PqResult<PgBytea> {
    access::require_usable(tenant)?;
    crate::journal::monitor::decryption(decrypt_any(value, tenant, aad), tenant)
}

/// A keyed or sealed envelope made under one of `tenant`'s versions.
fn decrypt_envelope(value: &[u8], tenant: &str, aad: &[u8]) -> PqResult<PgBytea> {
    let parsed = Envelope::parse(value)?;
    let keys = versions::version_by_kid(parsed.kid())?;
    if keys.tenant != tenant {
        return Err(PqError::Core(pqcore::Error::DecryptionFailed));
    }
    match parsed {
        Envelope::Keyed(env) => PgBytea::build(env.plaintext_len(), |out| Ok(keys.cipher.decrypt_to(&env, aad, out)?)),
        Envelope::Sealed(env) => PgBytea::build(env.plaintext_len(), |out| Ok(sealed::open_to(&keys.kem, &env, aad, out)?)),
        Envelope::Signature(_) => Err(PqError::WrongKind { found: pqcore::Kind::Signature, function: "pq.decrypt_any" }),
    }
}

/// A keyed envelope of `plaintext` under `tenant`'s active version.
pub fn encrypt_pq(tenant: &str, plaintext: &[u8], aad: &[u8]) -> PqResult<Vec<u8>> {
    let keys = versions::active_version(tenant, "encrypt")?;
    let mut out = vec![0u8; keyed_len(plaintext.len())?];
    keys.cipher.encrypt_to(plaintext, aad, &mut out)?;
    Ok(out)
}

/// As the migration status says: classical (the newest registered key)
/// before the migration starts, post-quantum once it has.
fn encrypt_dual_mode(tenant: &str, value: &[u8], aad: &[u8]) -> PqResult<PgBytea> {
    access::require_usable(tenant)?;
    if state::started(tenant)? {
        let keys = versions::active_version(tenant, "encrypt")?;
        return PgBytea::build(keyed_len(value.len())?, |out| Ok(keys.cipher.encrypt_to(value, aad, out)?));
    }
    let pgcrypto = Pgcrypto::find()?;
    let keys = catalog::as_owner(|| TenantKeys::load(tenant, &pgcrypto))?;
    let Some(newest) = keys.keys.first() else {
        return Err(PqError::Sql {
            code: b"55000",
            message: format!("tenant \"{}\" has not started its migration and has no classical key to write with", echo(tenant)),
            hint: Some("register its pgcrypto key with pq.register_classical_key, or start the migration".into()),
        });
    };
    let out = pgcrypto.encrypt(newest, value)?;
    PgBytea::copy_of(&out)
}

/// Checks and stores a classical key; returns its id.
fn register(
    tenant: &str,
    kind: &str,
    key: &[u8],
    options: &str,
    passphrase: Option<&[u8]>,
    public_key: Option<&[u8]>,
) -> PqResult<i32> {
    crate::platform::roles::require_admin("register classical keys")?;
    access::require_visible(tenant)?;
    let kind = ClassicalKind::parse(kind)?;
    if key.is_empty() || key.len() > 64 * 1024 {
        return Err(PqError::InvalidParameter("a classical key is 1 byte to 64 kB".into()));
    }
    if options.len() > 1024 || options.chars().any(char::is_control) {
        return Err(PqError::InvalidParameter("options are at most 1024 characters without control characters".into()));
    }
    if (passphrase.is_some() || public_key.is_some()) && kind != ClassicalKind::PgpPub {
        return Err(PqError::InvalidParameter("passphrase and public_key belong to pgp_pub keys".into()));
    }
    let text_ok = |bytes: &[u8]| std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0);
    let pgcrypto = Pgcrypto::find()?;
    match kind {
        ClassicalKind::PgpSym if !text_ok(key) => {
            return Err(PqError::InvalidParameter("a pgp_sym passphrase is text (UTF-8, no NUL)".into()));
        }
        ClassicalKind::PgpPub => {
            // A secret-key packet (tag 5, either header format) that pgcrypto reads.
            let secret_packet = matches!(key.first(), Some(0xc5) | Some(0x94..=0x97));
            if !secret_packet || !pgcrypto.is_pgp_key(key)? {
                return Err(PqError::InvalidParameter(
                    "a pgp_pub key is an OpenPGP secret key in binary form (use dearmor() on an armored one)".into(),
                ));
            }
            if passphrase.is_some_and(|p| !text_ok(p)) {
                return Err(PqError::InvalidParameter("a pgp_pub passphrase is text (UTF-8, no NUL)".into()));
            }
            if let Some(public_key) = public_key {
                if !pgcrypto.is_pgp_key(public_key)? {
                    return Err(PqError::InvalidParameter("public_key is not an OpenPGP public key".into()));
                }
            }
        }
        ClassicalKind::Raw => {
            RawOptions::parse(options)?;
        }
        _ => {}
    }
    let actor = events::session_user();
    catalog::as_owner(|| {
        let probe = ClassicalKey::new(
            ClassicalSecret {
                id: 0,
                kind: kind.name().into(),
                options: options.into(),
                key: Zeroizing::new(key.to_vec()),
                passphrase: passphrase.map(|p| Zeroizing::new(p.to_vec())),
                public_key: public_key.map(<[u8]>::to_vec),
            },
            &pgcrypto,
        )?;
        // The options must be ones pgcrypto accepts, and a public key must
        // belong to the secret key: a round trip through pgcrypto says so.
        let sample = b"apg_pqcrypto classical key check";
        if kind != ClassicalKind::PgpPub || public_key.is_some() {
            let ciphertext = pgcrypto.encrypt(&probe, sample)?;
            match pgcrypto.decrypt(&probe, &ciphertext)? {
                Ok(p) if p.as_slice() == sample => {}
                _ => {
                    return Err(PqError::InvalidParameter(
                        "the key does not decrypt what it encrypts (a public key of another key, or a wrong passphrase)".into(),
                    ))
                }
            }
        }
        let id = secrets::insert_classical(tenant, kind.name(), options, key, passphrase, public_key)?;
        events::record(
            "classical_key_registered",
            Some(tenant),
            None,
            &actor,
            None,
            json!({ "classical_key": id, "kind": kind.name(), "options": if kind == ClassicalKind::Raw { options } else { "" } }),
        )?;
        Ok(id)
    })
}

fn drop_key(id: i32) -> PqResult<bool> {
    crate::platform::roles::require_admin("drop classical keys")?;
    let actor = events::session_user();
    let tenant = catalog::as_owner(|| catalog::one::<String>("SELECT tenant FROM pq.classical_keys WHERE id = $1", &[id.into()]))?;
    let Some(tenant) = tenant else { return Ok(false) };
    access::require_visible(&tenant)?;
    catalog::as_owner(|| {
        let (remaining, jobs) = state::still_classical(&tenant)?;
        if remaining > 0 || jobs > 0 {
            return Err(PqError::Sql {
                code: b"55000",
                message: format!(
                    "tenant \"{}\" still needs its classical keys: values not yet post-quantum: {remaining}, unfinished migration jobs: {jobs}",
                    echo(&tenant)
                ),
                hint: Some("finish the migration first (pq.migration_status, pq.job_failures)".into()),
            });
        }
        catalog::write_one::<bool>("DELETE FROM pq.classical_keys WHERE id = $1 RETURNING true", &[id.into()])?;
        events::record("classical_key_dropped", Some(&tenant), None, &actor, None, json!({ "classical_key": id }))?;
        Ok(true)
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// Stores a tenant's pgcrypto key (pgp_sym passphrase, pgp_pub secret
    /// key, raw cipher key) wrapped under the master data key, for
    /// pq.decrypt_any, dual-mode writes and migrations. It is never
    /// readable back. Returns its id.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn register_classical_key(
        tenant: Option<&str>,
        kind: Option<&str>,
        key: Option<&[u8]>,
        options: default!(Option<&str>, "''"),
        passphrase: default!(Option<&[u8]>, "NULL"),
        public_key: default!(Option<&[u8]>, "NULL"),
    ) -> i32 {
        let (Some(tenant), Some(kind), Some(key)) = (tenant, kind, key) else {
            PqError::InvalidParameter("tenant, kind and key are required".into()).raise()
        };
        register(tenant, kind, key, options.unwrap_or_default(), passphrase, public_key).or_raise()
    }

    /// Drops a classical key, once none of its tenant's values needs one.
    /// True if it existed.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn drop_classical_key(key_id: i32) -> bool {
        drop_key(key_id).or_raise()
    }

    /// What a value is, without decrypting it: pq_keyed, pq_sealed,
    /// pq_signature, pgp_sym, pgp_pub, raw, or unknown.
    #[pg_extern(immutable, strict, parallel_safe)]
    pub fn classify(value: &[u8]) -> &'static str {
        class_name(value)
    }

    /// Decrypts a post-quantum envelope of `tenant` or a pgcrypto value
    /// under one of its registered classical keys. The AAD applies to
    /// envelopes only (classical formats have none).
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn decrypt_any(value: &[u8], tenant: &str, aad: default!(&[u8], "''")) -> PgBytea {
        counted_decrypt_any(value, tenant, aad).or_raise()
    }

    /// As pq.decrypt_any, as text.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn decrypt_any_text(value: &[u8], tenant: &str, aad: default!(&str, "''")) -> PgText {
        counted_decrypt_any(value, tenant, aad.as_bytes()).and_then(PgBytea::into_text).or_raise()
    }

    /// Writes `value` for `tenant` in the format its migration calls for:
    /// classical before it starts, a keyed envelope once it has.
    #[pg_extern(volatile, strict, parallel_unsafe, name = "encrypt_dual_mode")]
    pub fn encrypt_dual_mode_bytea(tenant: &str, value: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
        super::encrypt_dual_mode(tenant, value, aad).or_raise()
    }

    /// As above, for text.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn encrypt_dual_mode(tenant: &str, value: &str, aad: default!(&str, "''")) -> PgBytea {
        super::encrypt_dual_mode(tenant, value.as_bytes(), aad.as_bytes()).or_raise()
    }
}
