#!/usr/bin/env bash
# Rules of the source tree that a compiler does not check (docs/THREAT-MODEL.md,
# "The worker and the caller's search_path"):
#   1. SPI is reached only through src/catalog.rs, whose entry points pin
#      search_path (and src/tests.rs, the #[pg_test]s);
#   2. the extension's SQL text names PostgreSQL functions it calls inside
#      format!-built or literal statements with their schema where the
#      review found them unqualified (quote_ident, make_interval,
#      to_regprocedure, pg_notify, pg_advisory_*, to_char). Multi-argument
#      unnest in FROM is syntax that only works unqualified; the pinned
#      path resolves it to pg_catalog.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
spi=$(grep -rln 'Spi::' src crates | grep -v -x -e src/catalog.rs -e src/tests.rs || true)
if [ -n "$spi" ]; then
  echo "not ok - SPI outside src/catalog.rs: $spi"
  status=1
else
  echo "ok - SPI only through src/catalog.rs"
fi
# An unqualified call inside a Rust string literal (plain or raw): the
# name, not preceded by "." or an identifier character, followed by "(".
if ! python3 - <<'PY'
import glob, re, sys
literal = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)
call = re.compile(r'(?<![.\w])(quote_ident|make_interval|to_regprocedure|pg_notify|pg_advisory_\w+|to_char)\s*\(')
bad = []
for path in sorted(glob.glob("src/*.rs")):
    text = open(path).read()
    for m in literal.finditer(text):
        body = m.group(2) if m.group(2) is not None else m.group(3)
        for c in call.finditer(body):
            line = text.count("\n", 0, m.start()) + 1 + body.count("\n", 0, c.start())
            bad.append(f"{path}:{line}: {c.group(1)}(")
if bad:
    print("not ok - unqualified calls in the extension's SQL:")
    print("\n".join(bad))
    sys.exit(1)
print("ok - the functions the review named are schema-qualified in the extension's SQL")
PY
then
  status=1
fi
exit $status
