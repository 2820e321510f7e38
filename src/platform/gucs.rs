//! Every setting of the extension (DESIGN.md §5) and a typed getter for each.
//! Settings that locate key material are reloadable only (postgresql.conf
//! and SIGHUP), so a session cannot point the server at a file of its choice.
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

static MASTER_KEY_PROVIDER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"file"));
static MASTER_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static PKCS11_MODULE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static PKCS11_TOKEN_LABEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static PKCS11_PIN_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static PKCS11_KEY_LABEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMS_KEY_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMS_REGION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMS_ENDPOINT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_ADDR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_TOKEN_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_MOUNT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"transit"));
static VAULT_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_NAMESPACE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_APPROLE_ROLE_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static VAULT_APPROLE_SECRET_ID_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMIP_HOST: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMIP_PORT: GucSetting<i32> = GucSetting::<i32>::new(5696);
static KMIP_CLIENT_CERT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMIP_CLIENT_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMIP_CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KMIP_KEY_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static PROVIDER_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5000);
static KEY_CACHE_TTL: GucSetting<i32> = GucSetting::<i32>::new(300);
static REDACT_STATEMENT_LOG: GucSetting<bool> = GucSetting::<bool>::new(true);
static AUDIT_SIGNATURE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"ml-dsa-65+ed25519"));
static WORKER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));
static WORKER_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(10);
static MIGRATION_BATCH_DELAY: GucSetting<i32> = GucSetting::<i32>::new(20);
static AUDIT_LEVEL: GucSetting<AuditLevelSetting> = GucSetting::<AuditLevelSetting>::new(AuditLevelSetting::keys);
static AUDIT_CHECKPOINT_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(3600);
static ALERT_FAILED_DECRYPTS: GucSetting<i32> = GucSetting::<i32>::new(100);
static MAX_SESSIONS_PER_TENANT: GucSetting<i32> = GucSetting::<i32>::new(16);
static VERIFY_KEYS_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(86_400);
static ENFORCE_ENCRYPTION: GucSetting<EnforceSetting> = GucSetting::<EnforceSetting>::new(EnforceSetting::off);
static ALERT_RATE_FACTOR: GucSetting<f64> = GucSetting::<f64>::new(10.0);
static ALERT_RATE_MIN_DECRYPTS: GucSetting<i32> = GucSetting::<i32>::new(100);
static TRACK_LATENCY: GucSetting<TrackLatencySetting> = GucSetting::<TrackLatencySetting>::new(TrackLatencySetting::sampled);

/// apg_pqcrypto.track_latency as SQL spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, pgrx::PostgresGucEnum)]
#[allow(non_camel_case_types)]
enum TrackLatencySetting {
    off,
    sampled,
    all,
}

/// What `pq.stat_latency` times (`journal::latency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackLatency {
    /// Nothing is counted or timed.
    Off,
    /// Every call counted; one per-row call in 16 timed.
    Sampled,
    /// Every call counted and timed.
    All,
}

/// apg_pqcrypto.enforce_encryption as SQL spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, pgrx::PostgresGucEnum)]
#[allow(non_camel_case_types)]
enum EnforceSetting {
    off,
    tracked,
}

/// apg_pqcrypto.audit_level as SQL spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, pgrx::PostgresGucEnum)]
#[allow(non_camel_case_types)]
enum AuditLevelSetting {
    none,
    keys,
    all,
}

/// What is counted per call (docs/AUDIT.md). Key, tenant, grant, config,
/// provider and master key events are chained at every level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditLevel {
    /// No per-call counts.
    None,
    /// Counts per tenant, operation and minute.
    Keys,
    /// Counts per tenant, role, operation and minute.
    All,
}

/// Registers every setting. `worker_database` is a postmaster setting, which
/// PostgreSQL accepts only while preloading (a library loaded later by a
/// backend would fail the session), so it exists only when preloaded; the
/// worker that reads it exists only then too.
pub fn init(preloading: bool) {
    if preloading {
        GucRegistry::define_string_guc(
            c"apg_pqcrypto.worker_database",
            c"Database the background worker connects to (rotation policies, re-encryption jobs).",
            c"Read when the worker starts; it needs apg_pqcrypto installed there.",
            &WORKER_DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_string_guc(
        c"apg_pqcrypto.master_key_provider",
        c"Where the key-encryption key is held: file, pkcs11, aws_kms, vault_transit or kmip.",
        c"New master data keys are wrapped by this provider (pq.rotate_master_key's default); each existing one is unwrapped by the provider recorded beside it in pq.master_keys.",
        &MASTER_KEY_PROVIDER,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"apg_pqcrypto.audit_signature",
        c"Algorithms of new audit keys: ml-dsa-65+ed25519, ml-dsa-87+ed25519 or slh-dsa+ml-dsa-65.",
        c"The next checkpoint after a change retires the active audit key and signs with a new key of these algorithms; older checkpoints keep verifying under their own key.",
        &AUDIT_SIGNATURE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"apg_pqcrypto.master_key_file",
        c"Path of the 32-byte key-encryption key file (mode 0600).",
        c"When unset, a development key is created under the data directory on first use.",
        &MASTER_KEY_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    // Settings that point at key material or credentials' locations are
    // reloadable only and superuser-only, like master_key_file.
    let location = |name: &'static std::ffi::CStr, short: &'static std::ffi::CStr, long: &'static std::ffi::CStr, setting| {
        GucRegistry::define_string_guc(name, short, long, setting, GucContext::Sighup, GucFlags::SUPERUSER_ONLY);
    };
    location(
        c"apg_pqcrypto.pkcs11_module",
        c"Path of the PKCS#11 library of the token holding the key-encryption key.",
        c"For SoftHSM2: /usr/lib/softhsm/libsofthsm2.so.",
        &PKCS11_MODULE,
    );
    location(c"apg_pqcrypto.pkcs11_token_label", c"Label of the PKCS#11 token.", c"", &PKCS11_TOKEN_LABEL);
    location(
        c"apg_pqcrypto.pkcs11_pin_file",
        c"File holding the PKCS#11 user PIN (mode 0600, owned by the server's user).",
        c"The PIN itself is never a setting.",
        &PKCS11_PIN_FILE,
    );
    location(
        c"apg_pqcrypto.pkcs11_key_label",
        c"Label of the AES-256 key-encryption key in the token (sensitive, not extractable).",
        c"",
        &PKCS11_KEY_LABEL,
    );
    location(
        c"apg_pqcrypto.kms_key_id",
        c"AWS KMS key (id, ARN or alias) that wraps the master data key.",
        c"Credentials come from the server's standard AWS chain, never from a setting.",
        &KMS_KEY_ID,
    );
    location(c"apg_pqcrypto.kms_region", c"AWS region of the KMS key.", c"When unset, the AWS chain's region (AWS_REGION).", &KMS_REGION);
    location(
        c"apg_pqcrypto.kms_endpoint",
        c"URL of a KMS-compatible endpoint.",
        c"When unset, AWS's own endpoint for the region (or AWS_ENDPOINT_URL_KMS).",
        &KMS_ENDPOINT,
    );
    location(
        c"apg_pqcrypto.vault_addr",
        c"Address of the HashiCorp Vault or OpenBao server holding the Transit key.",
        c"https://HOST:PORT; plain http only to a loopback address.",
        &VAULT_ADDR,
    );
    location(
        c"apg_pqcrypto.vault_token_file",
        c"File holding a Vault token (mode 0600, owned by the server's user), read at each call.",
        c"The token itself is never a setting; a Vault agent may renew the file.",
        &VAULT_TOKEN_FILE,
    );
    location(c"apg_pqcrypto.vault_mount", c"Mount path of the Transit secrets engine.", c"", &VAULT_MOUNT);
    location(
        c"apg_pqcrypto.vault_key",
        c"Name of the Transit key (aes256-gcm96, derived=true) that wraps the master data key.",
        c"",
        &VAULT_KEY,
    );
    location(c"apg_pqcrypto.vault_namespace", c"Vault or OpenBao namespace of the Transit mount.", c"", &VAULT_NAMESPACE);
    location(
        c"apg_pqcrypto.vault_ca_file",
        c"PEM file of the certificates that sign the Vault server's certificate.",
        c"When unset, the operating system's roots.",
        &VAULT_CA_FILE,
    );
    location(
        c"apg_pqcrypto.vault_approle_role_id",
        c"AppRole role id, when the server logs in with AppRole instead of a token file.",
        c"",
        &VAULT_APPROLE_ROLE_ID,
    );
    location(
        c"apg_pqcrypto.vault_approle_secret_id_file",
        c"File holding the AppRole secret id (mode 0600, owned by the server's user).",
        c"",
        &VAULT_APPROLE_SECRET_ID_FILE,
    );
    location(c"apg_pqcrypto.kmip_host", c"Host name or address of the KMIP server.", c"", &KMIP_HOST);
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.kmip_port",
        c"TCP port of the KMIP server.",
        c"",
        &KMIP_PORT,
        1,
        65_535,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    location(
        c"apg_pqcrypto.kmip_client_cert",
        c"PEM file of the client certificate (and its chain) presented to the KMIP server.",
        c"",
        &KMIP_CLIENT_CERT,
    );
    location(
        c"apg_pqcrypto.kmip_client_key",
        c"PEM file of the client certificate's private key (mode 0600, owned by the server's user).",
        c"",
        &KMIP_CLIENT_KEY,
    );
    location(
        c"apg_pqcrypto.kmip_ca_file",
        c"PEM file of the certificates that sign the KMIP server's certificate.",
        c"When unset, the operating system's roots.",
        &KMIP_CA_FILE,
    );
    location(
        c"apg_pqcrypto.kmip_key_id",
        c"Unique identifier or name of the AES-256 key in the KMIP server that wraps the master data key.",
        c"A name is looked up (Locate) and the unique identifier it names is recorded.",
        &KMIP_KEY_ID,
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.provider_timeout",
        c"Longest a call to the master key provider may take.",
        c"A statement cancel also ends the wait.",
        &PROVIDER_TIMEOUT,
        100,
        600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.key_cache_ttl",
        c"Seconds an unwrapped key stays cached in a backend.",
        c"0 disables caching: every call unwraps its keys again.",
        &KEY_CACHE_TTL,
        0,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.worker_naptime",
        c"Seconds the background worker sleeps when it has nothing to do.",
        c"Jobs with work run batch after batch without sleeping.",
        &WORKER_NAPTIME,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.migration_batch_delay",
        c"Milliseconds the background worker pauses between two batches of a migration job.",
        c"Leaves room for production load while a column migrates; pq.migrate_column_now does not pause.",
        &MIGRATION_BATCH_DELAY,
        0,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_enum_guc(
        c"apg_pqcrypto.audit_level",
        c"Per-call accounting of encrypt, decrypt, sign and verify: none, keys (per tenant and minute) or all (also per role).",
        c"Key, tenant, grant, config, provider and master key events are always chained in pq.audit_log; failed decryptions are always counted.",
        &AUDIT_LEVEL,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.audit_checkpoint_interval",
        c"Seconds between the background worker's signed checkpoints of the audit chain.",
        c"0 disables the worker's checkpoints (pq.audit_checkpoint() still works).",
        &AUDIT_CHECKPOINT_INTERVAL,
        0,
        31_536_000,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.verify_keys_interval",
        c"Seconds between the background worker's end-to-end checks of every stored key version (pq.verify_keys).",
        c"The first check runs when the worker starts; failures are logged as WARNINGs. 0 disables the worker's checks.",
        &VERIFY_KEYS_INTERVAL,
        0,
        31_536_000,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.alert_failed_decrypts_per_minute",
        c"Failed decryptions of one tenant in one minute above which the worker logs a WARNING and sends NOTIFY pq_security_event.",
        c"0 disables the alert; the counts are kept in pq.security_counts either way.",
        &ALERT_FAILED_DECRYPTS,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.max_sessions_per_tenant",
        c"Live forward-secure sessions one tenant may hold at once.",
        c"The server has 64 session slots; this cap keeps one tenant from taking them all.",
        &MAX_SESSIONS_PER_TENANT,
        1,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"apg_pqcrypto.enforce_encryption",
        c"off, or tracked: writes to tracked columns must be envelopes of the column's tenant (22023 otherwise).",
        c"Superuser only; set it per database or role with ALTER DATABASE / ALTER ROLE ... SET. pq.enforcement_report() lists values still in plaintext.",
        &ENFORCE_ENCRYPTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"apg_pqcrypto.alert_rate_factor",
        c"A role's decryptions of one tenant in one minute above this factor times its trailing 7-day baseline raise an unusual-access alert.",
        c"The baseline is the role's 99th percentile of busy minutes over 7 days (pq.usage_counts, audit_level = all); 0 disables the alert.",
        &ALERT_RATE_FACTOR,
        0.0,
        1_000_000.0,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"apg_pqcrypto.alert_rate_min_decrypts",
        c"Decryptions in one minute below which no unusual-access alert is raised, whatever the baseline.",
        c"Keeps a role with almost no history from alerting on a handful of reads.",
        &ALERT_RATE_MIN_DECRYPTS,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"apg_pqcrypto.track_latency",
        c"Latency histograms of pq.stat_latency and key cache counts of pq.stat_cache: off, sampled (one per-row call in 16 timed) or all.",
        c"Key unwraps, provider calls and job batches are timed whenever it is not off.",
        &TRACK_LATENCY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"apg_pqcrypto.redact_statement_log",
        c"Removes the arguments of this extension's functions from statements in the server log.",
        c"Covers STATEMENT lines, log_statement, duration logs, bind parameters and PL/pgSQL context.",
        &REDACT_STATEMENT_LOG,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// `apg_pqcrypto.master_key_provider`.
pub fn master_key_provider() -> String {
    MASTER_KEY_PROVIDER
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

/// `apg_pqcrypto.audit_signature` (as set; checked where it is used).
pub fn audit_signature() -> String {
    AUDIT_SIGNATURE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ml-dsa-65+ed25519".into())
}

/// `apg_pqcrypto.master_key_file`, if set.
pub fn master_key_file() -> Option<String> {
    MASTER_KEY_FILE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// `apg_pqcrypto.worker_database`.
pub fn worker_database() -> String {
    WORKER_DATABASE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postgres".into())
}

/// `apg_pqcrypto.worker_naptime`.
pub fn worker_naptime() -> std::time::Duration {
    std::time::Duration::from_secs(WORKER_NAPTIME.get().max(1) as u64)
}

/// `apg_pqcrypto.redact_statement_log`.
pub fn redact_statement_log() -> bool {
    REDACT_STATEMENT_LOG.get()
}

/// `apg_pqcrypto.key_cache_ttl`.
pub fn key_cache_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(KEY_CACHE_TTL.get().max(0) as u64)
}

fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// The pkcs11 settings, in order: module, token label, PIN file, key label.
pub fn pkcs11() -> [Option<String>; 4] {
    [string(&PKCS11_MODULE), string(&PKCS11_TOKEN_LABEL), string(&PKCS11_PIN_FILE), string(&PKCS11_KEY_LABEL)]
}

/// The aws_kms settings, in order: key id, region, endpoint.
pub fn kms() -> [Option<String>; 3] {
    [string(&KMS_KEY_ID), string(&KMS_REGION), string(&KMS_ENDPOINT)]
}

/// The vault_transit settings, in order: address, mount, key, namespace,
/// token file, CA file, AppRole role id, AppRole secret id file.
pub fn vault() -> [Option<String>; 8] {
    [
        string(&VAULT_ADDR),
        string(&VAULT_MOUNT),
        string(&VAULT_KEY),
        string(&VAULT_NAMESPACE),
        string(&VAULT_TOKEN_FILE),
        string(&VAULT_CA_FILE),
        string(&VAULT_APPROLE_ROLE_ID),
        string(&VAULT_APPROLE_SECRET_ID_FILE),
    ]
}

/// The kmip settings, in order: host, port, client certificate, client
/// key, CA file, key id.
pub fn kmip() -> [Option<String>; 6] {
    [
        string(&KMIP_HOST),
        Some(KMIP_PORT.get().to_string()),
        string(&KMIP_CLIENT_CERT),
        string(&KMIP_CLIENT_KEY),
        string(&KMIP_CA_FILE),
        string(&KMIP_KEY_ID),
    ]
}

/// `apg_pqcrypto.provider_timeout`.
pub fn provider_timeout() -> std::time::Duration {
    std::time::Duration::from_millis(PROVIDER_TIMEOUT.get().max(100) as u64)
}

/// The worker's pause between two batches of a migration job.
pub fn migration_batch_delay() -> std::time::Duration {
    std::time::Duration::from_millis(MIGRATION_BATCH_DELAY.get().max(0) as u64)
}

/// apg_pqcrypto.audit_level.
pub fn audit_level() -> AuditLevel {
    match AUDIT_LEVEL.get() {
        AuditLevelSetting::none => AuditLevel::None,
        AuditLevelSetting::keys => AuditLevel::Keys,
        AuditLevelSetting::all => AuditLevel::All,
    }
}

/// apg_pqcrypto.audit_checkpoint_interval (None: disabled).
pub fn audit_checkpoint_interval() -> Option<std::time::Duration> {
    let secs = AUDIT_CHECKPOINT_INTERVAL.get();
    (secs > 0).then(|| std::time::Duration::from_secs(secs as u64))
}

/// apg_pqcrypto.verify_keys_interval (None: disabled).
pub fn verify_keys_interval() -> Option<std::time::Duration> {
    let secs = VERIFY_KEYS_INTERVAL.get();
    (secs > 0).then(|| std::time::Duration::from_secs(secs as u64))
}

/// apg_pqcrypto.max_sessions_per_tenant.
pub fn max_sessions_per_tenant() -> usize {
    MAX_SESSIONS_PER_TENANT.get().clamp(1, 64) as usize
}

/// apg_pqcrypto.alert_failed_decrypts_per_minute (0: disabled).
pub fn alert_failed_decrypts_per_minute() -> i32 {
    ALERT_FAILED_DECRYPTS.get()
}

/// apg_pqcrypto.enforce_encryption = tracked.
pub fn enforce_tracked() -> bool {
    ENFORCE_ENCRYPTION.get() == EnforceSetting::tracked
}

/// apg_pqcrypto.alert_rate_factor (0: disabled) and
/// apg_pqcrypto.alert_rate_min_decrypts.
pub fn alert_rate() -> (f64, i32) {
    (ALERT_RATE_FACTOR.get(), ALERT_RATE_MIN_DECRYPTS.get())
}

/// apg_pqcrypto.track_latency.
#[inline]
pub fn track_latency() -> TrackLatency {
    match TRACK_LATENCY.get() {
        TrackLatencySetting::off => TrackLatency::Off,
        TrackLatencySetting::sampled => TrackLatency::Sampled,
        TrackLatencySetting::all => TrackLatency::All,
    }
}
