//! Every setting of the extension (DESIGN.md §5) and a typed getter for each.
//! Settings that locate key material are reloadable only (postgresql.conf
//! and SIGHUP), so a session cannot point the server at a file of its choice.
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

static MASTER_KEY_PROVIDER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"file"));
static MASTER_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KEY_CACHE_TTL: GucSetting<i32> = GucSetting::<i32>::new(300);
static REDACT_STATEMENT_LOG: GucSetting<bool> = GucSetting::<bool>::new(true);
static WORKER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));
static WORKER_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(10);

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
        c"Where the key-encryption key is held: file, pkcs11 or aws_kms.",
        c"Only 'file' is available in this version.",
        &MASTER_KEY_PROVIDER,
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
