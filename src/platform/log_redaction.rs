//! Keeps plaintexts out of the server log. PostgreSQL logs statement text
//! on its own: the STATEMENT line of every failing query
//! (log_min_error_statement = error, the default), every statement under
//! log_statement = 'all', slow ones under log_min_duration_statement, bind
//! parameters under the extended protocol, and PL/pgSQL context lines. A
//! call such as `pq_encrypt('acme', 'the secret')` would put the secret in
//! the log. This `emit_log_hook` rewrites every line that goes to the
//! server log (`pqcore::redact`): when any part of the line (the statement,
//! its context, its detail) mentions one of the extension's functions, the
//! statement, the context and a statement echo lose every string literal
//! and the functions' argument lists, and bind parameters are dropped; in
//! every line, `EXECUTE name(…)` loses its arguments (the prepared
//! statement may call the functions). On by default
//! (`apg_pqcrypto.redact_statement_log`); it covers every process only when
//! the library is in shared_preload_libraries (a backend that has not
//! loaded it yet logs its first statement unredacted). What stays out of
//! reach is listed in docs/THREAT-MODEL.md.
use crate::platform::gucs;
use pgrx::pg_sys;
use pqcore::redact::{mentions_functions, redact};
use std::ffi::{c_char, CStr};
use std::ptr;

/// Texts longer than this that mention the extension's functions are
/// replaced whole instead of parsed (bounded work inside error reporting).
const MAX_PARSED: usize = 1 << 20;
const WHOLE: &str = "<statement redacted by apg_pqcrypto>";
const PARAMETERS: &str = "parameters: <redacted by apg_pqcrypto>";

static mut PREVIOUS: pg_sys::emit_log_hook_type = None;

/// Our copy of the current statement's redacted text, which
/// `debug_query_string` points to (malloc'd; replaced, never shared).
static mut STATEMENT_COPY: *mut c_char = ptr::null_mut();

/// Installs the hook; once per process, from _PG_init.
pub fn install() {
    // SAFETY: hook chaining as PostgreSQL documents it, on the main thread
    // during library load.
    unsafe {
        PREVIOUS = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(emit_log);
    }
}

unsafe extern "C-unwind" fn emit_log(edata: *mut pg_sys::ErrorData) {
    // SAFETY: PostgreSQL passes the error being reported; it lives until
    // the hook returns. A panic here must not become an ERROR inside error
    // reporting, so it is caught and the line is left as it was.
    unsafe {
        if !edata.is_null() && (*edata).output_to_server && gucs::redact_statement_log() {
            let _ = std::panic::catch_unwind(|| redact_error(edata));
        }
        if let Some(previous) = PREVIOUS {
            previous(edata);
        }
    }
}

/// The redacted form of a text, if it changes (`ours`: the line belongs to
/// a statement that mentions the extension's functions). A text too long
/// to parse, or not UTF-8, is replaced whole when it is ours.
fn redacted(text: &[u8], ours: bool) -> Option<String> {
    match std::str::from_utf8(text) {
        Ok(s) if s.len() <= MAX_PARSED => redact(s, ours),
        _ if ours => Some(WHOLE.to_owned()),
        _ => None,
    }
}

unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller passes a NUL-terminated string or null.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

unsafe fn redact_error(edata: *mut pg_sys::ErrorData) {
    // SAFETY: `edata` is valid (see emit_log); its strings are NUL-terminated
    // palloc'd copies in `assoc_context`, owned by the error data.
    unsafe {
        let e = &mut *edata;
        let mentions = |p: *const c_char| bytes(p).is_some_and(mentions_functions);
        // Does this line belong to a statement that calls our functions
        // (directly, or through a prepared statement named in the detail)?
        let ours = mentions(pg_sys::debug_query_string)
            || [e.message, e.detail, e.detail_log, e.context, e.internalquery].into_iter().any(|p| mentions(p));
        // Statement echoes (log_statement, durations, bind and execute
        // lines) are LOG messages, and so is the postmaster's report of a
        // backend that crashed or was killed, whose DETAIL quotes the
        // statement it was running ("Failed process was running: …"); an
        // error's own message and detail go to the client too and name no
        // argument values of ours, so they stay.
        if e.elevel < pg_sys::PGERROR as i32 {
            for field in [&mut e.message, &mut e.detail] {
                if let Some(new) = bytes(*field).and_then(|t| redacted(t, ours)) {
                    replace(field, &new, e.assoc_context);
                }
            }
        }
        for field in [&mut e.context, &mut e.internalquery] {
            if let Some(new) = bytes(*field).and_then(|t| redacted(t, ours)) {
                replace(field, &new, e.assoc_context);
            }
        }
        if ours {
            for field in [&mut e.detail, &mut e.detail_log, &mut e.context] {
                if let Some(new) = bytes(*field).and_then(without_parameters) {
                    replace(field, &new, e.assoc_context);
                }
            }
        }
        redact_statement(ours);
    }
}

/// Bind parameter values logged with a statement ("parameters: $1 = …",
/// "portal with parameters: …") are dropped from that point on.
fn without_parameters(text: &[u8]) -> Option<String> {
    let at = text.windows(b"parameters:".len()).position(|w| w == b"parameters:")?;
    let head = String::from_utf8_lossy(&text[..at]);
    Some(format!("{head}{PARAMETERS}"))
}

/// Points `debug_query_string` (the STATEMENT line) at a redacted copy.
unsafe fn redact_statement(ours: bool) {
    // SAFETY: debug_query_string is the backend's current statement text or
    // our previous copy; we replace our copy only after repointing it.
    unsafe {
        let Some(new) = bytes(pg_sys::debug_query_string).and_then(|t| redacted(t, ours)) else { return };
        let copy = libc::malloc(new.len() + 1).cast::<c_char>();
        if copy.is_null() {
            return;
        }
        ptr::copy_nonoverlapping(new.as_ptr().cast::<c_char>(), copy, new.len());
        *copy.add(new.len()) = 0;
        pg_sys::debug_query_string = copy;
        if !STATEMENT_COPY.is_null() {
            libc::free(STATEMENT_COPY.cast());
        }
        STATEMENT_COPY = copy;
    }
}

/// Replaces a palloc'd field of the error data; if no memory is left, the
/// field is overwritten in place with a shorter marker (or emptied).
unsafe fn replace(field: &mut *mut c_char, new: &str, context: pg_sys::MemoryContext) {
    // SAFETY: `*field` is a NUL-terminated palloc'd string we may free or
    // overwrite; the new one is allocated in the same context.
    unsafe {
        let old = *field;
        let p = pg_sys::MemoryContextAllocExtended(context, new.len() + 1, pg_sys::MCXT_ALLOC_NO_OOM as i32)
            .cast::<c_char>();
        if !p.is_null() {
            ptr::copy_nonoverlapping(new.as_ptr().cast::<c_char>(), p, new.len());
            *p.add(new.len()) = 0;
            *field = p;
            pg_sys::pfree(old.cast());
            return;
        }
        let old_len = CStr::from_ptr(old).to_bytes().len();
        let marker = if old_len >= WHOLE.len() { WHOLE } else { "" };
        ptr::copy_nonoverlapping(marker.as_ptr().cast::<c_char>(), old, marker.len());
        *old.add(marker.len()) = 0;
    }
}
