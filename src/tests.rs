// In-process tests (`cargo pgrx test`): internals the SQL suite cannot see.
// Included into `mod tests` in lib.rs (pgrx needs the module inline).
use crate::errors::PqError;
use crate::{catalog, keystore, provider};
use pgrx::prelude::*;

fn setup_tenant(name: &str) {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    Spi::run(&format!("SELECT pq.create_tenant('{name}')")).unwrap();
}

#[pg_test]
fn sqlstates_match_postgres_encoding() {
    use pgrx::PgSqlErrorCode as C;
    assert_eq!(crate::errors::sqlstate_code(b"22023"), C::ERRCODE_INVALID_PARAMETER_VALUE as i32);
    assert_eq!(crate::errors::sqlstate_code(b"42501"), C::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    assert_eq!(crate::errors::sqlstate_code(b"42704"), C::ERRCODE_UNDEFINED_OBJECT as i32);
}

#[pg_test]
fn cache_serves_repeated_calls_without_reloading() {
    setup_tenant("cached");
    let first = keystore::active_version("cached").unwrap();
    let second = keystore::active_version("cached").unwrap();
    // The same unwrapped keys: no second unwrap or ML-KEM expansion.
    assert!(std::rc::Rc::ptr_eq(&first, &second));
    let env = first.cipher.encrypt(b"v", b"").unwrap();
    let by_kid = keystore::version_by_kid(first.kid()).unwrap();
    assert!(std::rc::Rc::ptr_eq(&first, &by_kid));
    let parsed = pqcore::Envelope::parse(&env).unwrap().into_keyed().unwrap();
    assert_eq!(by_kid.cipher.decrypt(&parsed, b"").unwrap().expose(), b"v");
}

#[pg_test]
fn key_table_change_drops_cached_keys() {
    setup_tenant("stale");
    let first = keystore::active_version("stale").unwrap();
    // Any statement on a key table marks this backend's caches stale.
    Spi::run("UPDATE pq.tenants SET created_by = created_by WHERE name = 'stale'").unwrap();
    let second = keystore::active_version("stale").unwrap();
    assert!(!std::rc::Rc::ptr_eq(&first, &second));
    assert_eq!(first.kid(), second.kid());
}

#[pg_test]
fn ttl_zero_disables_caching() {
    setup_tenant("nocache");
    Spi::run("SET apg_pqcrypto.key_cache_ttl = 0").unwrap();
    let first = keystore::active_version("nocache").unwrap();
    let second = keystore::active_version("nocache").unwrap();
    assert!(!std::rc::Rc::ptr_eq(&first, &second));
}

#[pg_test]
fn unknown_tenant_and_kid() {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    assert!(matches!(keystore::active_version("nobody"), Err(PqError::UnknownTenant(_))));
    assert!(matches!(keystore::version_by_kid(pqcore::Kid([9; 16])), Err(PqError::UnknownKid)));
}

#[pg_test]
fn as_owner_restores_the_caller() {
    Spi::run("CREATE EXTENSION IF NOT EXISTS apg_pqcrypto").unwrap();
    let before = catalog::caller();
    let path_before = Spi::get_one::<String>("SHOW search_path").unwrap();
    let inside = catalog::as_owner(|| {
        Ok(catalog::one::<String>("SHOW search_path", &[])?)
    })
    .unwrap();
    assert_eq!(inside.as_deref(), Some("pg_catalog, pq, pg_temp"));
    assert_eq!(catalog::caller(), before);
    assert_eq!(Spi::get_one::<String>("SHOW search_path").unwrap(), path_before);
}

#[pg_test]
fn key_file_contents() {
    assert!(provider::parse_key(&[7u8; 32]).is_some());
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    assert_eq!(provider::parse_key(hex.as_bytes()).unwrap().expose()[1], 0x11);
    assert!(provider::parse_key(b"short").is_none());
    assert!(provider::parse_key(&[7u8; 33]).is_none());
    assert!(provider::parse_key("zz".repeat(32).as_bytes()).is_none());
}
