#![no_main]
//! SQL-argument redaction of log lines: any text gives an answer, never a
//! panic; redacting again changes nothing; and a call written after any
//! prefix loses the secret in its arguments.
use libfuzzer_sys::fuzz_target;
use pqcore::redact::redact_calls;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once = redact_calls(text).unwrap_or_else(|| text.to_owned());
    let twice = redact_calls(&once).unwrap_or_else(|| once.clone());
    assert_eq!(once, twice, "redaction is idempotent");
    if !text.contains("SECRET") {
        let with_call = format!("{text}\nSELECT pq_encrypt('t', 'SECRET')");
        let out = redact_calls(&with_call).unwrap_or(with_call);
        assert!(!out.contains("SECRET"), "a call after {text:?} kept its argument: {out}");
    }
});
