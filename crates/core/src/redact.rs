//! Removal of secrets from SQL text before it reaches the server log, so
//! that a statement such as `SELECT pq_encrypt('acme', 'the secret')` is
//! logged as `SELECT pq_encrypt(<redacted>)`.
//!
//! A text *mentions* the extension's functions when any identifier in it,
//! quoted or not, once `U&"…"` escapes are decoded, starts with `pq_`, is
//! qualified by the schema `pq`, or is the name of a function of schema
//! `pq` ([`PQ_FUNCTIONS`], matched without the schema: a caller whose
//! search_path holds `pq` calls them unqualified). In such a text
//! ([`redact`] with `ours`):
//!
//! - every call of one of those functions loses its argument list;
//! - every other string literal (`'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`,
//!   `N'…'`, `$tag$…$tag$`) is replaced, since a secret may reach a call
//!   through a VALUES list, a CTE, a PL/pgSQL variable or `EXECUTE …
//!   USING`. Numeric constants stay (they are also the durations and line
//!   numbers of log lines); a literal that itself holds
//!   SQL mentioning the functions (a `DO` or function body, a string passed
//!   to `EXECUTE`) is redacted inside instead, keeping its structure;
//! - `EXECUTE name(…)` loses its arguments (the values of a prepared
//!   statement).
//!
//! In every other text only `EXECUTE name(…)` loses its arguments: the
//! prepared statement may call the functions although the EXECUTE does
//! not name them. The scanner knows SQL's comments, quoted identifiers,
//! every string form and dollar quoting. A text of ours that cannot be read
//! to its end (an unterminated string, comment or argument list) is
//! replaced whole: an odd quote earlier in it could have turned a secret
//! into a bare word. In other texts everything from the cut on is removed.
//! This errs on the side of removing too much, never too little.

/// What replaces an argument list or a literal.
pub const REDACTED: &str = "<redacted>";

/// The functions of schema `pq` (sorted; a test in the extension checks
/// this list against the installed extension). Functions of the
/// extension's own schema all start with `pq_`.
pub const PQ_FUNCTIONS: &[&str] = &[
    "audit_checkpoint",
    "audit_ddl_end",
    "audit_flush",
    "audit_sql_drop",
    "blind_index_trigger",
    "cancel_job",
    "citus_setup",
    "classical_counts",
    "classify",
    "cluster_master_key_status",
    "compliance_report",
    "config_delete",
    "config_drop_signer",
    "config_get",
    "config_head",
    "config_history",
    "config_register_signer",
    "config_set",
    "config_set_sealed",
    "config_verify",
    "configure_key_escrow",
    "create_tenant",
    "ddl_dropped",
    "ddl_ended",
    "decrypt_any",
    "decrypt_any_text",
    "destroy_key_version",
    "disable_key_version",
    "drop_classical_key",
    "enable_key_version",
    "encrypt_dual_mode",
    "enforcement_report",
    "enforcement_trigger",
    "escrow_add_approver",
    "escrow_add_custodian",
    "escrow_approve",
    "escrow_recover",
    "escrow_request_recovery",
    "escrow_split",
    "escrow_statement",
    "escrow_status",
    "export_index_key",
    "export_key_backup",
    "flush_counters",
    "grant_tenant",
    "key_usage_counts",
    "master_key_status",
    "migrate_column",
    "migrate_column_now",
    "migration_sessions",
    "migration_status",
    "migration_trigger",
    "pause_job",
    "reencrypt",
    "reencrypt_tenant",
    "refuse_change",
    "register_classical_key",
    "restore_begin",
    "restore_key_backup",
    "resume_job",
    "retire_blind_index_key",
    "retry_job",
    "revoke_tenant",
    "rewrap",
    "rewrap_master_key",
    "rotate_master_key",
    "rotate_tenant_key",
    "session_begin",
    "session_end",
    "session_list",
    "set_min_decryption_version",
    "set_policy",
    "shred_tenant",
    "sign_config_change",
    "stat_cache_rows",
    "stat_latency_rows",
    "stat_reset",
    "tenant_public_key",
    "tenant_verifying_key",
    "tenant_visible",
    "track_column",
    "untrack_column",
    "verify_audit_chain",
    "verify_cluster_audit",
    "verify_config_signature",
    "verify_keys",
];

/// True if `name` (an identifier, any case) names one of the extension's
/// functions when called unqualified.
pub fn is_extension_function(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (lower.len() > 3 && lower.starts_with("pq_")) || PQ_FUNCTIONS.binary_search(&lower.as_str()).is_ok()
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Cheap test: could `text` mention one of the extension's functions? True
/// for any identifier-like word that names one (or is `pq` before a `.`),
/// and for any `U&"` identifier (whose escapes could spell one).
pub fn mentions_functions(text: &[u8]) -> bool {
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if (c == b'U' || c == b'u') && text.get(i + 1) == Some(&b'&') && text.get(i + 2) == Some(&b'"') {
            return true;
        }
        if is_ident_start(c) && (i == 0 || !is_ident_char(text[i - 1])) {
            let mut end = i + 1;
            while end < text.len() && is_ident_char(text[end]) {
                end += 1;
            }
            let word = &text[i..end];
            if let Ok(word) = std::str::from_utf8(word) {
                let after = text.get(end..).unwrap_or_default();
                let dot = after.first() == Some(&b'.') || after.starts_with(b"\".");
                if is_extension_function(word) || (word.eq_ignore_ascii_case("pq") && dot) {
                    return true;
                }
            }
            i = end;
            continue;
        }
        i += 1;
    }
    false
}

/// `text` redacted (see the module documentation), or `None` when nothing
/// changes. `ours`: the text belongs to a statement that mentions the
/// extension's functions (the caller may know it from another part of the
/// same log line).
///
/// Two passes: one reads `text` as SQL (double quotes delimit identifiers),
/// one as prose that quotes SQL in double quotes, as PostgreSQL's context
/// lines do (`SQL statement "SELECT …"`). What either pass leaves is gone.
pub fn redact(text: &str, ours: bool) -> Option<String> {
    let ours = ours || mentions_functions(text.as_bytes());
    if !ours && !mentions_execute(text.as_bytes()) {
        return None;
    }
    // A text of ours that does not read to its end (an unterminated string,
    // comment or argument list) may have shifted which parts are literals:
    // a secret written after an odd quote would be read as a bare word. It
    // goes whole. Other texts lose what follows the cut.
    let (sql, cut) = Scanner::new(text, Mode::Sql, ours).redact_flagged();
    if cut && ours {
        return Some(REDACTED.to_owned());
    }
    let (out, cut) = Scanner::new(&sql, Mode::Prose, ours).redact_flagged();
    if cut && ours {
        return Some(REDACTED.to_owned());
    }
    (out != text).then_some(out)
}

/// Cheap test: does `text` hold the word EXECUTE (any case)?
fn mentions_execute(text: &[u8]) -> bool {
    text.windows(7).any(|w| w.eq_ignore_ascii_case(b"execute"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `"` delimits an identifier.
    Sql,
    /// `"` is punctuation that may surround SQL; it neither starts a token
    /// nor interrupts a call.
    Prose,
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    mode: Mode,
    /// Every literal goes, not only EXECUTE's arguments.
    ours: bool,
    out: String,
    /// Something did not end: everything after it was dropped.
    truncated: bool,
}

/// The kinds of string literal, by their opening.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// `'…'`, `U&'…'`, `B'…'`, `X'…'`, `N'…'`: `''` is a quote.
    Standard,
    /// `E'…'`: backslash escapes too.
    Escape,
}

impl<'a> Scanner<'a> {
    fn new(s: &'a str, mode: Mode, ours: bool) -> Self {
        Self { s, b: s.as_bytes(), mode, ours, out: String::with_capacity(s.len()), truncated: false }
    }

    /// A scanner for text nested in this one (a string, a body, a comment).
    fn nested<'b>(&self, s: &'b str) -> Scanner<'b> {
        Scanner::new(s, self.mode, self.ours)
    }

    /// The byte after position `end`, looking through a `"` in prose.
    fn next_significant(&self, end: usize) -> Option<&u8> {
        match self.b.get(end) {
            Some(b'"') if self.mode == Mode::Prose => self.b.get(end + 1),
            other => other,
        }
    }

    /// The redacted text, and whether it was cut short.
    fn redact_flagged(mut self) -> (String, bool) {
        let mut i = 0;
        // The last identifier (with the qualifier before it) names one of
        // our functions, or the statement of an EXECUTE: a `(` opens
        // arguments to remove.
        let mut pending_call = false;
        let mut qualifier_pq = false;
        // The last word was EXECUTE: the prepared statement's name follows.
        let mut after_execute = false;
        while i < self.b.len() {
            let c = self.b[i];
            if c == b'(' && pending_call {
                self.out.push('(');
                self.out.push_str(REDACTED);
                match self.matching_paren(i) {
                    Some(close) => {
                        self.out.push(')');
                        i = close + 1;
                    }
                    None => return (self.out, true),
                }
                pending_call = false;
                qualifier_pq = false;
                after_execute = false;
                continue;
            }
            if c.is_ascii_whitespace() {
                self.out.push(c as char);
                i += 1;
                continue;
            }
            if let Some((end, closed)) = self.comment_end(i) {
                self.comment(i, end);
                // A block comment that never closes: the rest of the text is
                // not read as SQL, so the text cannot be read to its end.
                if !closed {
                    self.truncated = true;
                    return (self.out, true);
                }
                i = end;
                continue;
            }
            if let Some((quote, quoting)) = self.string_start(i) {
                i = self.string(i, quote, quoting);
                pending_call = false;
                after_execute = false;
                if self.truncated {
                    return (self.out, true);
                }
                continue;
            }
            match c {
                b'$' if !self.prev_is_ident(i) => match self.dollar_tag(i) {
                    Some(tag_end) => {
                        i = self.dollar_string(i, tag_end);
                        pending_call = false;
                        after_execute = false;
                    }
                    None => {
                        // A positional parameter ($1) or a lone '$'.
                        let mut end = i + 1;
                        while end < self.b.len() && self.b[end].is_ascii_digit() {
                            end += 1;
                        }
                        self.out.push_str(&self.s[i..end]);
                        i = end;
                    }
                },
                b'U' | b'u' if self.b.get(i + 1) == Some(&b'&') && self.b.get(i + 2) == Some(&b'"') => {
                    let end = self.quoted_ident_end(i + 2);
                    if !self.ident_closed(i + 2, end) {
                        // An identifier that never closes: the rest is not SQL.
                        self.out.push_str(&self.s[i..end]);
                        return (self.out, true);
                    }
                    // A Unicode-escaped name is a call of ours if its decoding
                    // could be one: decoded with the default escape, or
                    // conservatively whenever a UESCAPE clause follows.
                    let decoded = decode_unicode_ident(&self.s[i + 3..end.saturating_sub(1).max(i + 3)]);
                    let uescape = self.s[end..].trim_start().get(..7).is_some_and(|w| w.eq_ignore_ascii_case("uescape"));
                    pending_call = uescape || decoded.as_deref().is_none_or(is_extension_function) || qualifier_pq || after_execute;
                    qualifier_pq = decoded.as_deref() == Some("pq") && self.b.get(end) == Some(&b'.');
                    after_execute = false;
                    self.out.push_str(&self.s[i..end]);
                    i = end;
                }
                b'"' if self.mode == Mode::Prose => {
                    self.out.push('"');
                    i += 1;
                }
                b'"' => {
                    let end = self.quoted_ident_end(i);
                    let closed = self.ident_closed(i, end);
                    if !closed {
                        // An identifier that never closes: the rest is not SQL.
                        self.out.push_str(&self.s[i..end]);
                        return (self.out, true);
                    }
                    let name = self.s[i + 1..if closed { end - 1 } else { end }].replace("\"\"", "\"");
                    pending_call = is_extension_function(&name) || qualifier_pq || after_execute;
                    qualifier_pq = name == "pq" && self.b.get(end) == Some(&b'.');
                    after_execute = false;
                    self.out.push_str(&self.s[i..end]);
                    i = end;
                }
                c if is_ident_start(c) => {
                    let mut end = i + 1;
                    while end < self.b.len() && is_ident_char(self.b[end]) {
                        end += 1;
                    }
                    let word = &self.s[i..end];
                    pending_call = (self.ours && is_extension_function(word)) || qualifier_pq || after_execute;
                    qualifier_pq = word.eq_ignore_ascii_case("pq") && self.next_significant(end) == Some(&b'.');
                    after_execute = word.eq_ignore_ascii_case("execute");
                    self.out.push_str(word);
                    i = end;
                }
                b'.' => {
                    self.out.push('.');
                    i += 1;
                    // `pq.` keeps qualifier_pq for the name that follows.
                    pending_call = false;
                }
                _ => {
                    // Multi-byte characters start with a byte >= 0x80 and are
                    // identifier characters, so `c` is ASCII here.
                    self.out.push(c as char);
                    i += 1;
                    pending_call = false;
                    qualifier_pq = false;
                    after_execute = false;
                }
            }
            if self.truncated {
                return (self.out, true);
            }
        }
        (self.out, false)
    }

    fn prev_is_ident(&self, i: usize) -> bool {
        i > 0 && is_ident_char(self.b[i - 1])
    }

    /// If a string literal starts at `i`: the index of its opening quote
    /// and how it quotes.
    fn string_start(&self, i: usize) -> Option<(usize, Quoting)> {
        let b = self.b;
        if self.prev_is_ident(i) && b[i] != b'\'' {
            return None;
        }
        match b[i] {
            b'\'' => Some((i, Quoting::Standard)),
            b'E' | b'e' if b.get(i + 1) == Some(&b'\'') => Some((i + 1, Quoting::Escape)),
            b'B' | b'b' | b'X' | b'x' | b'N' | b'n' if b.get(i + 1) == Some(&b'\'') => Some((i + 1, Quoting::Standard)),
            b'U' | b'u' if b.get(i + 1) == Some(&b'&') && b.get(i + 2) == Some(&b'\'') => Some((i + 2, Quoting::Standard)),
            _ => None,
        }
    }

    /// The end of a comment starting at `i`, if one does, and whether it
    /// closes (a block comment may run to the end of the text unclosed).
    fn comment_end(&self, i: usize) -> Option<(usize, bool)> {
        let b = self.b;
        if b[i..].starts_with(b"--") {
            return Some((b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p), true));
        }
        if b[i..].starts_with(b"/*") {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        return Some((j, true));
                    }
                } else {
                    j += 1;
                }
            }
            return Some((b.len(), false));
        }
        None
    }

    /// Copies the comment `s[start..end)`, redacting calls written inside
    /// it (a commented-out call still carries its arguments).
    fn comment(&mut self, start: usize, end: usize) {
        let text = &self.s[start..end];
        if !mentions_functions(text.as_bytes()) && !mentions_execute(text.as_bytes()) {
            self.out.push_str(text);
            return;
        }
        let (marker, body) = text.split_at(2);
        let (redacted, truncated) = self.nested(body).redact_flagged();
        self.out.push_str(marker);
        self.out.push_str(&redacted);
        self.truncated |= truncated;
    }

    /// Whether the quoted identifier from `i` to `end` has its closing quote.
    fn ident_closed(&self, i: usize, end: usize) -> bool {
        end > i + 1 && self.b[end - 1] == b'"' && (end < self.b.len() || !self.s[i + 1..end - 1].ends_with('"') || {
            // `""` at the very end is an escaped quote, not a closing one.
            let quotes = self.s[i + 1..end].bytes().rev().take_while(|&c| c == b'"').count();
            quotes % 2 == 1
        })
    }

    /// The end of a quoted identifier starting at `i` (`""` escapes a quote).
    fn quoted_ident_end(&self, i: usize) -> usize {
        let mut j = i + 1;
        while j < self.b.len() {
            if self.b[j] == b'"' {
                if self.b.get(j + 1) == Some(&b'"') {
                    j += 2;
                    continue;
                }
                return j + 1;
            }
            j += 1;
        }
        self.b.len()
    }

    /// Where the string literal whose opening quote is at `quote` ends (one
    /// past the closing quote), or None if it does not end.
    fn string_end(&self, quote: usize, quoting: Quoting) -> Option<usize> {
        let mut j = quote + 1;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' if quoting == Quoting::Escape => j += 2,
                b'\'' if self.b.get(j + 1) == Some(&b'\'') => j += 2,
                b'\'' => return Some(j + 1),
                _ => j += 1,
            }
        }
        None
    }

    /// Copies or redacts the string literal starting at `start` (its quote
    /// at `quote`); returns where it ended.
    fn string(&mut self, start: usize, quote: usize, quoting: Quoting) -> usize {
        let end = self.string_end(quote, quoting);
        let close = end.map_or(self.b.len(), |e| e - 1);
        let body = &self.s[quote + 1..close.max(quote + 1)];
        let holds_calls = mentions_functions(body.as_bytes()) || mentions_execute(body.as_bytes());
        if !self.ours && !holds_calls {
            self.out.push_str(&self.s[start..end.unwrap_or(self.b.len())]);
            self.truncated |= end.is_none();
            return end.unwrap_or(self.b.len());
        }
        if !holds_calls || quoting == Quoting::Escape {
            // A value (or SQL whose escapes make it hard to unquote): all of
            // it; and if a call in it does not end inside it, the quotes may
            // have been misread: nothing after it is kept either.
            self.out.push_str(REDACTED);
            if holds_calls {
                self.truncated |= self.nested(body).redact_flagged().1;
            }
        } else {
            // SQL in a string (passed to EXECUTE, say): redacted inside.
            let inner = body.replace("''", "'");
            let (redacted, truncated) = self.nested(&inner).redact_flagged();
            self.out.push_str(&self.s[start..=quote]);
            self.out.push_str(&redacted.replace('\'', "''"));
            self.out.push('\'');
            self.truncated |= truncated;
        }
        self.truncated |= end.is_none();
        end.unwrap_or(self.b.len())
    }

    /// The end of a `$tag$` opener at `i`, if `i` starts one.
    fn dollar_tag(&self, i: usize) -> Option<usize> {
        let mut j = i + 1;
        if j < self.b.len() && self.b[j].is_ascii_digit() {
            return None; // a positional parameter such as $1
        }
        while j < self.b.len() && self.b[j] != b'$' {
            if !is_ident_char(self.b[j]) || self.b[j] == b'$' {
                return None;
            }
            j += 1;
        }
        (j < self.b.len()).then_some(j + 1)
    }

    /// Copies or redacts the dollar-quoted string opened by
    /// `s[start..tag_end)`; returns where it ended.
    fn dollar_string(&mut self, start: usize, tag_end: usize) -> usize {
        let tag = &self.s[start..tag_end];
        let close = self.s[tag_end..].find(tag).map(|p| tag_end + p);
        let body = &self.s[tag_end..close.unwrap_or(self.s.len())];
        let holds_calls = mentions_functions(body.as_bytes()) || mentions_execute(body.as_bytes());
        if holds_calls {
            // Code (a DO or function body): redacted inside.
            let (redacted, truncated) = self.nested(body).redact_flagged();
            self.out.push_str(tag);
            self.out.push_str(&redacted);
            self.truncated |= truncated;
        } else if self.ours {
            self.out.push_str(REDACTED);
            self.truncated |= close.is_none();
            return close.map_or(self.s.len(), |c| c + tag.len());
        } else {
            self.out.push_str(tag);
            self.out.push_str(body);
        }
        match close {
            Some(c) => {
                self.out.push_str(tag);
                c + tag.len()
            }
            None => {
                self.truncated = true;
                self.s.len()
            }
        }
    }

    /// The index of the `)` matching the `(` at `open`, skipping strings,
    /// comments, quoted identifiers and dollar quotes.
    fn matching_paren(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut j = open;
        while j < self.b.len() {
            if let Some((end, _)) = self.comment_end(j) {
                j = end;
                continue;
            }
            if let Some((quote, quoting)) = self.string_start(j) {
                j = self.string_end(quote, quoting)?;
                continue;
            }
            match self.b[j] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j);
                    }
                }
                b'"' if self.mode == Mode::Sql => {
                    j = self.quoted_ident_end(j);
                    continue;
                }
                b'$' if !self.prev_is_ident(j) => {
                    if let Some(tag_end) = self.dollar_tag(j) {
                        let tag = &self.s[j..tag_end];
                        j = tag_end + self.s[tag_end..].find(tag)? + tag.len();
                        continue;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        None
    }
}

/// The name a `U&"…"` identifier spells with the default escape `\`
/// (`\XXXX`, `\+XXXXXX`, `\\`), or None if its escapes do not decode.
fn decode_unicode_ident(body: &str) -> Option<String> {
    let body = body.replace("\"\"", "\"");
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let digits = match chars.clone().next() {
            Some('\\') => {
                chars.next();
                out.push('\\');
                continue;
            }
            Some('+') => {
                chars.next();
                6
            }
            _ => 4,
        };
        let hex: String = chars.by_ref().take(digits).collect();
        if hex.len() != digits {
            return None;
        }
        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact(s, false).unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn the_function_list_is_sorted_and_lower_case() {
        assert!(PQ_FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(PQ_FUNCTIONS.iter().all(|f| f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn calls_lose_their_arguments() {
        assert_eq!(r("select pq_encrypt('acme', 'the secret')"), "select pq_encrypt(<redacted>)");
        assert_eq!(r("SELECT PQ_ENCRYPT ('a', 's'), 1"), "SELECT PQ_ENCRYPT (<redacted>), 1");
        assert_eq!(r("select public.pq_decrypt(e, 'k') from t"), "select public.pq_decrypt(<redacted>) from t");
        assert_eq!(r("select pq.create_tenant('x')"), "select pq.create_tenant(<redacted>)");
        assert_eq!(r(r#"select "pq"."rewrap"(e, 'k')"#), r#"select "pq"."rewrap"(<redacted>)"#);
        assert_eq!(r(r#"select "pq_seal"(k, 's')"#), r#"select "pq_seal"(<redacted>)"#);
        assert_eq!(r("select pq_decrypt(pq_encrypt('a', ')'), 'x')"), "select pq_decrypt(<redacted>)");
        assert_eq!(r("select pq_encrypt('a', $$s)$$) x"), "select pq_encrypt(<redacted>) x");
        assert_eq!(r("select pq_encrypt('a', /* ) */ 's')"), "select pq_encrypt(<redacted>)");
        assert_eq!(r("select pq_encrypt('a', E'\\') s')"), "select pq_encrypt(<redacted>)");
    }

    #[test]
    fn unqualified_functions_of_schema_pq() {
        assert_eq!(r("select config_set('acme', 'k', 'secret')"), "select config_set(<redacted>)");
        assert_eq!(r("SELECT Encrypt_Dual_Mode('acme', 'secret')"), "SELECT Encrypt_Dual_Mode(<redacted>)");
        assert_eq!(
            r("select register_classical_key('acme', 'pgp_pub', k, passphrase => 'secret')"),
            "select register_classical_key(<redacted>)"
        );
        assert!(mentions_functions(b"select config_set('a', 'b', 'c')"));
        assert!(!mentions_functions(b"select my_config_set('a')"));
    }

    #[test]
    fn every_literal_of_a_statement_that_mentions_them() {
        assert_eq!(
            r("insert into t select pq_encrypt('acme', v) from (values ('secret')) s(v)"),
            "insert into t select pq_encrypt(<redacted>) from (values (<redacted>)) s(v)"
        );
        assert_eq!(
            r("with s as (select 'secret' as v) select pq_encrypt('a', v) from s"),
            "with s as (select <redacted> as v) select pq_encrypt(<redacted>) from s"
        );
        assert_eq!(r("insert into t values ('x'::pq_envelope, 12.5e3)"), "insert into t values (<redacted>::pq_envelope, 12.5e3)");
        assert_eq!(r("select pq_sign('t', U&'d\\0061ta', B'101', X'ff')"), "select pq_sign(<redacted>)");
        assert_eq!(r("select U&'s\\0065cret', pq_sign('t', 'm')"), "select <redacted>, pq_sign(<redacted>)");
        assert_eq!(
            r("do $$ declare s text := 'secret'; begin perform pq_encrypt('a', s); end $$"),
            "do $$ declare s text := <redacted>; begin perform pq_encrypt(<redacted>); end $$"
        );
        assert_eq!(
            r("do $$ begin execute 'select pq_encrypt($1, $2)' using 'acme', 'secret'; end $$"),
            "do $$ begin execute 'select pq_encrypt(<redacted>)' using <redacted>, <redacted>; end $$"
        );
        assert_eq!(r("select pq_encrypt(x, y) from t where id = 42"), "select pq_encrypt(<redacted>) from t where id = 42");
        // Identifiers and parameters stay.
        assert_eq!(r("select pq_encrypt($1, $2) from t2"), "select pq_encrypt(<redacted>) from t2");
    }

    #[test]
    fn other_text_is_untouched() {
        for s in ["select 1", "select encrypt('x', 'k', 'aes')", "select upq_x('a')", "select \"qp_x", "select classify from t"] {
            assert_eq!(redact(s, false).unwrap_or_else(|| s.to_owned()), s);
        }
        assert_eq!(redact("select 1", false), None);
        assert_eq!(redact("select encrypt('x', 'k', 'aes')", false), None);
    }

    #[test]
    fn a_line_known_to_be_ours_loses_its_literals() {
        assert_eq!(redact("INSERT INTO v VALUES ('secret', 7)", true).unwrap(), "INSERT INTO v VALUES (<redacted>, 7)");
    }

    #[test]
    fn calls_inside_strings_and_bodies() {
        assert_eq!(
            r("select try('select pq_encrypt(''a'', ''secret'') from t')"),
            "select try('select pq_encrypt(<redacted>) from t')"
        );
        assert_eq!(
            r("select try($$ select pq_encrypt('a', 'secret') $$)"),
            "select try($$ select pq_encrypt(<redacted>) $$)"
        );
        assert_eq!(
            r("do $body$ begin perform pq_sign('t', 'secret'); end $body$"),
            "do $body$ begin perform pq_sign(<redacted>); end $body$"
        );
        assert_eq!(r("select E'x pq_encrypt(\\'s\\') y'"), "select <redacted>");
    }

    #[test]
    fn prose_quoting_sql_in_double_quotes() {
        assert_eq!(
            r("SQL statement \"SELECT pq_encrypt('nope', 'secret')\"\nPL/pgSQL function inline_code_block line 1"),
            "SQL statement \"SELECT pq_encrypt(<redacted>)\"\nPL/pgSQL function inline_code_block line 1"
        );
        assert_eq!(r("x \"select \"pq\".\"rewrap\"(e, 'k')\""), "x \"select \"pq\".\"rewrap\"(<redacted>)\"");
        assert_eq!(
            r("SQL statement \"SELECT pq_encrypt(k, v)\"\nPL/pgSQL function t() line 3 at SQL statement, 'secret'"),
            "SQL statement \"SELECT pq_encrypt(<redacted>)\"\nPL/pgSQL function t() line 3 at SQL statement, <redacted>"
        );
    }

    #[test]
    fn prepared_statement_arguments_always() {
        assert_eq!(redact("statement: EXECUTE p('acme', 'secret')", false).unwrap(), "statement: EXECUTE p(<redacted>)");
        assert_eq!(redact("execute \"P\" ('s')", false).unwrap(), "execute \"P\" (<redacted>)");
        assert_eq!(redact("EXECUTE p", false), None);
        assert_eq!(redact("select f('x')", false), None);
    }

    #[test]
    fn unicode_escaped_names() {
        assert_eq!(r("select U&\"\\0070q_encrypt\"('acme', 'secret')"), "select U&\"\\0070q_encrypt\"(<redacted>)");
        // With UESCAPE the name cannot be read here: its call is redacted
        // anyway (the clause's own literal too, the text mentioning U&").
        assert_eq!(
            r("select U&\"!0070q_encrypt\" UESCAPE '!' ('acme', 'secret')"),
            "select U&\"!0070q_encrypt\" UESCAPE <redacted> (<redacted>, <redacted>)"
        );
        assert_eq!(decode_unicode_ident("\\0070q_\\+000065ncrypt").as_deref(), Some("pq_encrypt"));
        assert_eq!(decode_unicode_ident("\\00zz"), None);
    }

    #[test]
    fn unterminated_text_is_cut() {
        // Ours: whole.
        assert_eq!(r("select pq_encrypt('a', 'sec"), "<redacted>");
        assert_eq!(r("select pq_encrypt('a', (1"), "<redacted>");
        assert_eq!(r("select 'pq_encrypt(''x"), "<redacted>");
        assert_eq!(r("select pq_sign(m) from t where v = 'sec"), "<redacted>");
        // Found by fuzzing: an odd quote before a call turns its secret
        // into a bare word of the SQL; the text goes whole.
        assert_eq!(r("select 'x\nSELECT pq_encrypt('t', 'SECRET')"), "<redacted>");
        assert_eq!(r("select pq_seal(k) from t where v = $x$sec"), "<redacted>");
        assert_eq!(r("select pq.r \"x\nSELECT pq_encrypt('t', 'SECRET')"), "<redacted>");
        assert_eq!(r("select pq.r U&\"x\nSELECT pq_encrypt('t', 'SECRET')"), "<redacted>");
        assert_eq!(r("select \"a\"\"\" from pq_encrypt('s')"), "select \"a\"\"\" from pq_encrypt(<redacted>)");
        // Found by fuzzing: redacting twice changes nothing.
        let once = r("DO 'a' pq_seal,\" 'b'$DBO$EGI");
        assert_eq!(r(&once), once);
        // Not ours: only what follows the cut.
        assert_eq!(redact("execute p('a', 'sec", false).as_deref(), Some("execute p(<redacted>"));
    }

    #[test]
    fn comments_and_positional_parameters() {
        assert_eq!(r("-- pq_encrypt('a','s')\nselect 1"), "-- pq_encrypt(<redacted>)\nselect 1");
        assert_eq!(r("/* old: pq_seal(k, 's') */ select 1"), "/* old: pq_seal(<redacted>) */ select 1");
        assert_eq!(r("/* unterminated\nselect pq_seal(k, 's')"), "<redacted>");
        assert_eq!(redact("/* unterminated execute p('s')", false).as_deref(), Some("/* unterminated execute p(<redacted>)"));
        assert_eq!(r("select pq_encrypt($1, $2)"), "select pq_encrypt(<redacted>)");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}", ours in proptest::bool::ANY) {
            let _ = redact(&s, ours);
        }

        #[test]
        fn secrets_in_arguments_never_survive(
            prefix in "[a-z ,()'$]{0,12}",
            quoting in 0usize..6,
            func in proptest::sample::select(vec!["pq_encrypt", "PQ_SEAL", "pq.rewrap", "public.pq_open", "\"pq_sign\"", "config_set",
                                                  "U&\"\\0070q_sign\""]),
        ) {
            let arg = match quoting {
                0 => "'SECRETxyz'".to_owned(),
                1 => "E'SECRET\\'xyz'".to_owned(),
                2 => "$q$SECRETxyz$q$".to_owned(),
                3 => "'a''SECRETxyz'".to_owned(),
                4 => "('SECRETxyz')".to_owned(),
                _ => "/* c */ 'SECRETxyz'".to_owned(),
            };
            for text in [
                format!("{prefix} {func}('t', {arg})"),
                format!("/* {prefix}\n{func}('t', {arg})"),
                format!("SQL statement \"SELECT {func}('t', {arg})\""),
                format!("select try('select {func}(''t'', {})')", arg.replace('\'', "''")),
                format!("do $$ begin perform {func}('t', {arg}); end $$"),
            ] {
                let out = redact(&text, false).unwrap_or(text.clone());
                proptest::prop_assert!(!out.contains("SECRET"), "{} -> {}", text, out);
            }
        }

        #[test]
        fn literals_around_a_call_never_survive(
            shape in 0usize..6,
            func in proptest::sample::select(vec!["pq_encrypt", "pq.config_set", "encrypt_dual_mode", "\"pq_seal\""]),
            quote in proptest::sample::select(vec!["'", "$$", "E'", "U&'"]),
        ) {
            let lit = match quote {
                "$$" => "$$SECRETxyz$$".to_owned(),
                q => format!("{q}SECRETxyz'"),
            };
            let text = match shape {
                0 => format!("insert into t select {func}('a', v) from (values ({lit})) s(v)"),
                1 => format!("with s as (select {lit} as v) select {func}('a', v) from s"),
                2 => format!("do $b$ declare s text := {lit}; begin perform {func}('a', s); end $b$"),
                3 => format!("do $b$ begin execute 'select {func}($1, $2)' using 'a', {lit}; end $b$"),
                4 => format!("select {func}(k, v) from t where note = {lit}"),
                _ => format!("EXECUTE p('a', {lit})"),
            };
            let out = redact(&text, false).unwrap_or(text.clone());
            proptest::prop_assert!(!out.contains("SECRET"), "{} -> {}", text, out);
        }
    }
}
