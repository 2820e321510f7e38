// In-process tests (`cargo pgrx test`): internals the SQL suite cannot see.
// Included into `mod tests` in lib.rs (pgrx needs the module inline).
use crate::platform::errors::PqError;
use crate::{keys::{cache, versions}, platform::{catalog, secure_mem}};
use pgrx::prelude::*;

fn setup_tenant(name: &str) {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    Spi::run(&format!("SELECT pq.create_tenant('{name}')")).unwrap();
}

#[pg_test]
fn sqlstates_match_postgres_encoding() {
    use pgrx::PgSqlErrorCode as C;
    assert_eq!(crate::platform::errors::sqlstate_code(b"22023"), C::ERRCODE_INVALID_PARAMETER_VALUE as i32);
    assert_eq!(crate::platform::errors::sqlstate_code(b"42501"), C::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    assert_eq!(crate::platform::errors::sqlstate_code(b"42704"), C::ERRCODE_UNDEFINED_OBJECT as i32);
    assert_eq!(crate::platform::errors::sqlstate_code(b"25006"), C::ERRCODE_READ_ONLY_SQL_TRANSACTION as i32);
    assert_eq!(crate::platform::errors::sqlstate_code(b"53200"), C::ERRCODE_OUT_OF_MEMORY as i32);
}

#[pg_test]
fn cache_serves_repeated_calls_without_reloading() {
    setup_tenant("cached");
    let first = versions::active_version("cached", "encrypt").unwrap();
    let second = versions::active_version("cached", "encrypt").unwrap();
    // The same unwrapped keys: no second unwrap or ML-KEM expansion.
    assert!(std::rc::Rc::ptr_eq(&first, &second));
    let env = first.cipher.encrypt(b"v", b"").unwrap();
    let by_kid = versions::version_by_kid(first.kid()).unwrap();
    assert!(std::rc::Rc::ptr_eq(&first, &by_kid));
    let parsed = pqcore::Envelope::parse(&env).unwrap().into_keyed().unwrap();
    assert_eq!(by_kid.cipher.decrypt(&parsed, b"").unwrap().expose(), b"v");
}

#[pg_test]
fn key_table_change_drops_cached_keys() {
    setup_tenant("stale");
    let first = versions::active_version("stale", "encrypt").unwrap();
    // Any statement on a key table marks this backend's caches stale.
    Spi::run("UPDATE pq.tenants SET created_by = created_by WHERE name = 'stale'").unwrap();
    let second = versions::active_version("stale", "encrypt").unwrap();
    assert!(!std::rc::Rc::ptr_eq(&first, &second));
    assert_eq!(first.kid(), second.kid());
}

#[pg_test]
fn every_write_of_our_functions_invalidates() {
    setup_tenant("writes");
    Spi::run("CREATE ROLE writes_role").unwrap();
    for statement in [
        "SELECT pq.grant_tenant('writes', 'writes_role')",
        "SELECT pq.revoke_tenant('writes', 'writes_role')",
        "SELECT pq.create_tenant('writes2')",
    ] {
        versions::active_version("writes", "encrypt").unwrap();
        assert!(cache::entries() > 0);
        Spi::run(statement).unwrap();
        // The statement trigger fired: the next lookup starts from nothing.
        cache::refresh();
        assert_eq!(cache::entries(), 0, "{statement} left the cache in place");
    }
}

#[pg_test]
fn ttl_zero_leaves_nothing_behind() {
    setup_tenant("nocache");
    Spi::run("SET apg_pqcrypto.key_cache_ttl = 0").unwrap();
    cache::clear();
    let first = versions::active_version("nocache", "encrypt").unwrap();
    let second = versions::active_version("nocache", "encrypt").unwrap();
    assert!(!std::rc::Rc::ptr_eq(&first, &second));
    Spi::run("SELECT pq_decrypt(pq_encrypt('nocache', 'v')), pq_verify('nocache', 'm', pq_sign('nocache', 'm'))").unwrap();
    assert_eq!(cache::entries(), 0, "no key or access decision is kept");
}

#[pg_test]
fn expired_entries_are_wiped_at_transaction_end() {
    setup_tenant("expiry");
    // Creating the tenant changed the key tables: that alone drops the
    // cache at the end of this transaction. Start after it.
    cache::end_of_transaction(cache::now());
    let keys = versions::active_version("expiry", "encrypt").unwrap();
    drop(keys);
    assert!(cache::entries() > 0);
    let ttl = crate::platform::gucs::key_cache_ttl().as_micros() as i64;
    // Not yet expired: kept.
    cache::end_of_transaction(cache::now() + ttl - 1_000_000);
    assert!(cache::entries() > 0);
    // Expired: gone, without any lookup.
    cache::end_of_transaction(cache::now() + ttl + 1);
    assert_eq!(cache::entries(), 0);
}

#[pg_test]
fn an_invalidation_during_a_transaction_drops_everything_at_its_end() {
    setup_tenant("snap");
    versions::active_version("snap", "encrypt").unwrap();
    // A lookup after an invalidation may have read an old snapshot: what it
    // cached does not survive the transaction, however fresh.
    cache::mark_changed();
    cache::refresh();
    versions::active_version("snap", "encrypt").unwrap();
    assert!(cache::entries() > 0);
    cache::end_of_transaction(cache::now());
    assert_eq!(cache::entries(), 0);
}

#[pg_test]
fn cached_keys_live_in_locked_undumpable_memory() {
    setup_tenant("locked");
    let keys = versions::active_version("locked", "encrypt").unwrap();
    let signing = versions::signing_key(&keys).unwrap();
    assert!(secure_mem::contains(std::rc::Rc::as_ptr(&keys).cast()));
    assert!(secure_mem::contains(std::rc::Rc::as_ptr(&signing).cast()));
    let (used, locked) = secure_mem::stats();
    assert!(used > 0 && locked >= used, "arena used {used}, locked {locked}");
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let base = std::rc::Rc::as_ptr(&keys) as usize;
    let region = smaps
        .lines()
        .scan(None, |current: &mut Option<(usize, usize)>, line| {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                        *current = Some((a, b));
                    }
                }
            }
            Some((*current, line.to_owned()))
        })
        .filter(|(range, _)| range.is_some_and(|(a, b)| a <= base && base < b))
        .map(|(_, line)| line)
        .collect::<Vec<_>>();
    let flags = region.iter().find(|l| l.starts_with("VmFlags:")).expect("VmFlags of the arena");
    assert!(flags.split_whitespace().any(|f| f == "dd"), "arena not excluded from core dumps: {flags}");
    let locked_kb = region.iter().find(|l| l.starts_with("Locked:")).expect("Locked of the arena");
    assert!(!locked_kb.contains(" 0 kB"), "arena not locked: {locked_kb}");
}

#[pg_test]
fn unknown_tenant_and_kid() {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    // The test runs as a superuser, who sees every tenant: 42704.
    assert!(matches!(versions::active_version("nobody", "encrypt"), Err(PqError::UnknownTenant(_))));
    assert!(matches!(versions::version_by_kid(pqcore::Kid([9; 16])), Err(PqError::UnknownKid)));
}

#[pg_test]
fn messages_echo_a_bounded_part_of_caller_strings() {
    let long = "x".repeat(10_000);
    let shown = crate::platform::errors::echo(&long);
    assert!(shown.chars().count() <= crate::platform::errors::ECHO_MAX + 1);
    assert_eq!(crate::platform::errors::echo("a\nb"), "a?b");
}

#[pg_test]
fn as_owner_restores_the_caller() {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    let before = catalog::caller();
    let path_before = Spi::get_one::<String>("SHOW search_path").unwrap();
    let inside = catalog::as_owner(|| Ok(catalog::one::<String>("SHOW search_path", &[])?)).unwrap();
    assert_eq!(inside.as_deref(), Some("pg_catalog, pq, pg_temp"));
    assert_eq!(catalog::caller(), before);
    assert_eq!(Spi::get_one::<String>("SHOW search_path").unwrap(), path_before);
}

#[pg_test]
fn reads_assign_no_transaction_id() {
    setup_tenant("noxid");
    // The test's transaction wrote (create_tenant), so it has an id; a
    // subtransaction has its own, assigned only when it writes. Looking up
    // a key from nothing (cache cleared) inside one must leave it without.
    let kid = versions::active_version("noxid", "encrypt").unwrap().kid();
    let xid_in_fresh_subtransaction = |f: &dyn Fn()| {
        // SAFETY: the sequence PL/pgSQL uses for an internal subtransaction:
        // begin, work, roll back, then restore the memory context and the
        // resource owner of the caller.
        unsafe {
            let context = pg_sys::CurrentMemoryContext;
            let owner = pg_sys::CurrentResourceOwner;
            pg_sys::BeginInternalSubTransaction(std::ptr::null());
            // A statement's snapshot, seeing what the test wrote before.
            pg_sys::CommandCounterIncrement();
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            let before = pg_sys::GetCurrentTransactionIdIfAny();
            f();
            let after = pg_sys::GetCurrentTransactionIdIfAny();
            pg_sys::PopActiveSnapshot();
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            (before, after)
        }
    };
    let (before, after) = xid_in_fresh_subtransaction(&|| {
        cache::clear();
        versions::version_by_kid(kid).unwrap();
        versions::active_version("noxid", "encrypt").unwrap();
    });
    assert_eq!(before, pg_sys::InvalidTransactionId);
    assert_eq!(after, pg_sys::InvalidTransactionId, "a key lookup assigned a transaction id");
    // Control: a write in the same kind of subtransaction gets one, so the
    // check above can fail.
    let (_, written) = xid_in_fresh_subtransaction(&|| {
        Spi::run("CREATE TEMP TABLE noxid_control (x int)").unwrap();
    });
    assert_ne!(written, pg_sys::InvalidTransactionId);
}

#[pg_test]
fn policies_merge_and_validate() {
    use serde_json::json;
    let p = crate::lifecycle::policy::parse(json!({"rotation_interval": 86400, "auto_rotation": true})).unwrap();
    assert_eq!(p.rotation_interval, Some(86400));
    assert!(p.auto_rotation);
    // Only the keys given change; null clears.
    let q = crate::lifecycle::policy::merged(&p, &json!({"max_key_age": 100, "rotation_interval": null, "auto_rotation": false}))
        .unwrap();
    assert_eq!((q.rotation_interval, q.max_key_age, q.auto_rotation), (None, Some(100), false));
    for bad in [
        json!({"rotation_interval": 0}),
        json!({"overlap_period": -1}),
        json!({"max_key_age": 1.5}),
        json!({"auto_rotation": "yes"}),
        json!({"auto_rotation": true}),
        json!({"rotation_interval": 10, "notification_before": 10}),
        json!({"interval": 10}),
        json!([]),
    ] {
        assert!(matches!(crate::lifecycle::policy::parse(bad.clone()), Err(PqError::InvalidParameter(_))), "{bad} accepted");
    }
    assert_eq!(crate::lifecycle::policy::parse(json!({"overlap_period": 0})).unwrap().overlap_period, Some(0));
}

#[pg_test]
fn log_redaction_knows_every_function_of_the_extension() {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    // Every function the extension defines is recognised by name alone, as
    // a caller whose search_path holds its schema would call it unqualified.
    let names = Spi::get_one::<Vec<String>>(
        "SELECT array_agg(DISTINCT p.proname::text ORDER BY p.proname::text)
           FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.objid
          WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e'
            AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'apg_pqcrypto')
            AND p.pronamespace::regnamespace::text <> 'tests'",
    )
    .unwrap()
    .unwrap();
    assert!(names.len() > 60, "{names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !pqcore::redact::is_extension_function(n)).collect();
    assert!(missing.is_empty(), "not known to the log redaction: {missing:?}");
}

#[pg_test]
fn catalog_statements_run_under_the_pinned_path() {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    Spi::run("SET search_path = public, pg_temp").unwrap();
    let seen = catalog::one::<String>("SHOW search_path", &[]).unwrap();
    assert_eq!(seen.as_deref(), Some("pg_catalog, pq, pg_temp"));
    // A plain SET made inside a pinned scope does not outlive it.
    catalog::pinned(|| catalog::run("SET search_path = public", &[])).unwrap();
    assert_eq!(Spi::get_one::<String>("SHOW search_path").unwrap().as_deref(), Some("public, pg_temp"));
    catalog::as_owner(|| catalog::run("SELECT pg_catalog.set_config('search_path', 'public', false)", &[])).unwrap();
    assert_eq!(Spi::get_one::<String>("SHOW search_path").unwrap().as_deref(), Some("public, pg_temp"));
}
