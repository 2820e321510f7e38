//! Removal of this extension's function arguments from SQL text, so that a
//! statement such as `SELECT pq_encrypt('acme', 'the secret')` reaches the
//! server log as `SELECT pq_encrypt(<redacted>)`.
//!
//! Any call to a function whose name starts with `pq_` (in any schema) or
//! that lives in schema `pq` loses its argument list. The scanner knows
//! SQL's comments, quoted identifiers, standard and escape strings and
//! dollar quoting; calls inside string literals and dollar-quoted bodies
//! (a `DO` block, a function body, a string passed to `EXECUTE`) and inside
//! comments are redacted too. Where the text cannot be parsed (an unterminated string or
//! argument list), everything from the call on is redacted: this errs on
//! the side of removing too much, never too little.

/// What replaces an argument list.
pub const REDACTED: &str = "<redacted>";

/// Cheap test: could `text` mention one of the extension's functions?
/// (Case-insensitive "pq", followed by `_`, `.` or `"`.)
pub fn mentions_functions(text: &[u8]) -> bool {
    text.windows(3).any(|w| {
        w[0].eq_ignore_ascii_case(&b'p') && w[1].eq_ignore_ascii_case(&b'q') && matches!(w[2], b'_' | b'.' | b'"')
    })
}

/// `text` with the argument lists of the extension's function calls
/// replaced by [`REDACTED`], or `None` when there was nothing to redact.
///
/// Two passes: one reads `text` as SQL (double quotes delimit identifiers),
/// one as prose that quotes SQL in double quotes, as PostgreSQL's context
/// lines do (`SQL statement "SELECT …"`). What either pass leaves is gone.
pub fn redact_calls(text: &str) -> Option<String> {
    if !mentions_functions(text.as_bytes()) {
        return None;
    }
    redact_with(text, false)
}

/// As [`redact_calls`], and the arguments of `EXECUTE name(…)` go too: for
/// the text of a statement that runs a prepared statement which calls the
/// extension's functions (`PREPARE p AS SELECT pq_encrypt($1, $2);
/// EXECUTE p('acme', 'the secret')`).
pub fn redact_calls_and_prepared(text: &str) -> Option<String> {
    redact_with(text, true)
}

fn redact_with(text: &str, prepared: bool) -> Option<String> {
    let sql = Scanner::new(text, Mode::Sql, prepared).redact();
    let out = Scanner::new(&sql, Mode::Prose, prepared).redact();
    (out != text).then_some(out)
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
    /// Also redact the arguments of `EXECUTE name(…)`.
    prepared: bool,
    out: String,
    /// An argument list did not end: everything after it was dropped.
    truncated: bool,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

impl<'a> Scanner<'a> {
    fn new(s: &'a str, mode: Mode, prepared: bool) -> Self {
        Self { s, b: s.as_bytes(), mode, prepared, out: String::with_capacity(s.len()), truncated: false }
    }

    /// A scanner for text nested in this one (a string, a body, a comment).
    fn nested<'b>(&self, s: &'b str) -> Scanner<'b> {
        Scanner::new(s, self.mode, self.prepared)
    }

    /// The byte after position `end`, looking through a `"` in prose.
    fn next_significant(&self, end: usize) -> Option<&u8> {
        match self.b.get(end) {
            Some(b'"') if self.mode == Mode::Prose => self.b.get(end + 1),
            other => other,
        }
    }

    fn redact(self) -> String {
        self.redact_flagged().0
    }


    /// The redacted text, and whether it was cut short.
    fn redact_flagged(mut self) -> (String, bool) {
        let mut i = 0;
        // Whether the last identifier (with the qualifier before it) names
        // one of our functions, and where it ended.
        let mut pending_call = false;
        let mut qualifier_pq = false;
        // The last word was EXECUTE (with `prepared`: its statement's name follows).
        let mut after_execute = false;
        while i < self.b.len() {
            let c = self.b[i];
            if c == b'(' && pending_call {
                let end = self.matching_paren(i);
                self.out.push('(');
                self.out.push_str(REDACTED);
                match end {
                    Some(close) => {
                        self.out.push(')');
                        i = close + 1;
                    }
                    None => return (self.out, true),
                }
                pending_call = false;
                qualifier_pq = false;
                continue;
            }
            if c.is_ascii_whitespace() {
                self.out.push(c as char);
                i += 1;
                continue;
            }
            if let Some(end) = self.comment_end(i) {
                self.comment(i, end);
                i = end;
                continue;
            }
            match c {
                b'\'' => {
                    i = self.string(i, i, false);
                    pending_call = false;
                }
                b'E' | b'e' if self.b.get(i + 1) == Some(&b'\'') && !self.prev_is_ident(i) => {
                    i = self.string(i, i + 1, true);
                    pending_call = false;
                }
                b'$' if !self.prev_is_ident(i) => match self.dollar_tag(i) {
                    Some(tag_end) => {
                        i = self.dollar_string(i, tag_end);
                        pending_call = false;
                    }
                    None => {
                        self.out.push('$');
                        i += 1;
                    }
                },
                b'"' if self.mode == Mode::Prose => {
                    self.out.push('"');
                    i += 1;
                }
                b'"' => {
                    let end = self.quoted_ident_end(i);
                    let closed = end - 1 > i && self.b[end - 1] == b'"';
                    let name = &self.s[i + 1..if closed { end - 1 } else { end }];
                    pending_call = name.starts_with("pq_") || qualifier_pq || after_execute;
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
                    let word = &self.b[i..end];
                    let lower_pq_ = word.len() > 3 && word[..3].eq_ignore_ascii_case(b"pq_");
                    pending_call = lower_pq_ || qualifier_pq || after_execute;
                    qualifier_pq = word.eq_ignore_ascii_case(b"pq") && self.next_significant(end) == Some(&b'.');
                    after_execute = self.prepared && word.eq_ignore_ascii_case(b"execute");
                    self.out.push_str(&self.s[i..end]);
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

    /// The end of a comment starting at `i`, if one does.
    fn comment_end(&self, i: usize) -> Option<usize> {
        let b = self.b;
        if b[i..].starts_with(b"--") {
            return Some(b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p));
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
                        return Some(j);
                    }
                } else {
                    j += 1;
                }
            }
            return Some(b.len());
        }
        None
    }

    /// Copies the comment `s[start..end)`, redacting calls written inside
    /// it (a commented-out call still carries its arguments).
    fn comment(&mut self, start: usize, end: usize) {
        let text = &self.s[start..end];
        if !mentions_functions(text.as_bytes()) {
            self.out.push_str(text);
            return;
        }
        let (marker, body) = text.split_at(2);
        let (redacted, truncated) = self.nested(body).redact_flagged();
        self.out.push_str(marker);
        self.out.push_str(&redacted);
        self.truncated |= truncated;
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
    fn string_end(&self, quote: usize, backslash_escapes: bool) -> Option<usize> {
        let mut j = quote + 1;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' if backslash_escapes => j += 2,
                b'\'' if self.b.get(j + 1) == Some(&b'\'') => j += 2,
                b'\'' => return Some(j + 1),
                _ => j += 1,
            }
        }
        None
    }

    /// Copies the string literal starting at `start` (its quote at `quote`),
    /// redacting calls inside it; returns where it ended.
    fn string(&mut self, start: usize, quote: usize, backslash_escapes: bool) -> usize {
        let end = self.string_end(quote, backslash_escapes);
        let close = end.map_or(self.b.len(), |e| e - 1);
        let body = &self.s[quote + 1..close.max(quote + 1)];
        self.out.push_str(&self.s[start..=quote]);
        if !mentions_functions(body.as_bytes()) {
            self.out.push_str(body);
        } else if backslash_escapes {
            // Escapes make the body hard to unquote: cut it at the first call.
            let (cut, truncated) = cut_at_first_call(self.nested(body));
            self.out.push_str(&cut);
            self.truncated |= truncated;
        } else {
            let inner = body.replace("''", "'");
            let (redacted, truncated) = self.nested(&inner).redact_flagged();
            self.out.push_str(&redacted.replace('\'', "''"));
            self.truncated |= truncated;
        }
        match end {
            Some(end) => {
                self.out.push('\'');
                end
            }
            None => self.b.len(),
        }
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

    /// Copies the dollar-quoted string opened by `s[start..tag_end)`,
    /// redacting calls in its body; returns where it ended.
    fn dollar_string(&mut self, start: usize, tag_end: usize) -> usize {
        let tag = &self.s[start..tag_end];
        let body_start = tag_end;
        let close = self.s[body_start..].find(tag).map(|p| body_start + p);
        let body = &self.s[body_start..close.unwrap_or(self.s.len())];
        self.out.push_str(tag);
        if mentions_functions(body.as_bytes()) {
            let (redacted, truncated) = self.nested(body).redact_flagged();
            self.out.push_str(&redacted);
            self.truncated |= truncated;
        } else {
            self.out.push_str(body);
        }
        match close {
            Some(c) => {
                self.out.push_str(tag);
                c + tag.len()
            }
            None => self.s.len(),
        }
    }

    /// The index of the `)` matching the `(` at `open`, skipping strings,
    /// comments, quoted identifiers and dollar quotes.
    fn matching_paren(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut j = open;
        while j < self.b.len() {
            if let Some(end) = self.comment_end(j) {
                j = end;
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
                b'\'' => {
                    let escapes = j > 0 && (self.b[j - 1] == b'E' || self.b[j - 1] == b'e') && !self.prev_is_ident(j - 1);
                    j = self.string_end(j, escapes)?;
                    continue;
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

/// `body` up to its first call of one of our functions, then
/// `<redacted>)`; and whether that call's argument list was unterminated.
fn cut_at_first_call(scanner: Scanner<'_>) -> (String, bool) {
    let (redacted, truncated) = scanner.redact_flagged();
    match redacted.find(REDACTED) {
        Some(p) => (format!("{}{REDACTED})", &redacted[..p]), truncated),
        None => (redacted, truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact_calls(s).unwrap_or_else(|| s.to_owned())
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
    fn other_text_is_untouched() {
        for s in [
            "select 1",
            "select encrypt('x', 'k', 'aes')",
            "insert into t values ('x'::pq_envelope)",
            "select upq_x('a')",
            "select \"pq_x",
        ] {
            assert_eq!(r(s), s);
        }
        assert_eq!(redact_calls("select 1"), None);
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
        assert_eq!(r("select E'x pq_encrypt(\\'s\\') y'"), "select E'x pq_encrypt(<redacted>)'");
    }

    #[test]
    fn prose_quoting_sql_in_double_quotes() {
        assert_eq!(
            r("SQL statement \"SELECT pq_encrypt('nope', 'secret')\"\nPL/pgSQL function inline_code_block line 1"),
            "SQL statement \"SELECT pq_encrypt(<redacted>)\"\nPL/pgSQL function inline_code_block line 1"
        );
        assert_eq!(r("x \"select \"pq\".\"rewrap\"(e, 'k')\""), "x \"select \"pq\".\"rewrap\"(<redacted>)\"");
    }

    #[test]
    fn prepared_statement_arguments() {
        let execute = "statement: EXECUTE p('acme', 'secret')";
        assert_eq!(redact_calls(execute), None);
        assert_eq!(redact_calls_and_prepared(execute).unwrap(), "statement: EXECUTE p(<redacted>)");
        assert_eq!(redact_calls_and_prepared("execute \"P\" ('s')").unwrap(), "execute \"P\" (<redacted>)");
        assert_eq!(redact_calls_and_prepared("select f('x')"), None);
    }

    #[test]
    fn unterminated_text_is_cut() {
        assert_eq!(r("select pq_encrypt('a', 'sec"), "select pq_encrypt(<redacted>");
        assert_eq!(r("select pq_encrypt('a', (1"), "select pq_encrypt(<redacted>");
        assert_eq!(r("select 'pq_encrypt(''x"), "select 'pq_encrypt(<redacted>");
    }

    #[test]
    fn comments_and_positional_parameters() {
        assert_eq!(r("-- pq_encrypt('a','s')\nselect 1"), "-- pq_encrypt(<redacted>)\nselect 1");
        assert_eq!(r("/* old: pq_seal(k, 's') */ select 1"), "/* old: pq_seal(<redacted>) */ select 1");
        assert_eq!(r("/* unterminated\nselect pq_seal(k, 's')"), "/* unterminated\nselect pq_seal(<redacted>)");
        assert_eq!(r("select pq_encrypt($1, $2)"), "select pq_encrypt(<redacted>)");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = redact_calls(&s);
        }

        #[test]
        fn secrets_in_arguments_never_survive(
            prefix in "[a-z ,()'$]{0,12}",
            quoting in 0usize..6,
            func in proptest::sample::select(vec!["pq_encrypt", "PQ_SEAL", "pq.rewrap", "public.pq_open", "\"pq_sign\""]),
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
                let out = redact_calls(&text).unwrap_or(text.clone());
                proptest::prop_assert!(!out.contains("SECRET"), "{} -> {}", text, out);
            }
        }
    }
}
