#!/usr/bin/env bash
# Rules of the source tree that a compiler does not check (docs/THREAT-MODEL.md,
# "The worker and the caller's search_path"):
#   1. SPI is reached only through src/platform/catalog.rs, whose entry points pin
#      search_path (and src/tests.rs, the #[pg_test]s);
#   2. the extension's SQL text names PostgreSQL functions it calls inside
#      format!-built or literal statements with their schema where the
#      review found them unqualified (quote_ident, make_interval,
#      to_regprocedure, pg_notify, pg_advisory_*, to_char). Multi-argument
#      unnest in FROM is syntax that only works unqualified; the pinned
#      path resolves it to pg_catalog.
#   3. the floors of src/ (docs/ARCHITECTURE.md): no area names a higher
#      one, and no files of an area name each other in a circle.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
spi=$(grep -rln 'Spi::' src crates | grep -v -x -e src/platform/catalog.rs -e src/tests.rs || true)
if [ -n "$spi" ]; then
  echo "not ok - SPI outside src/platform/catalog.rs: $spi"
  status=1
else
  echo "ok - SPI only through src/platform/catalog.rs"
fi
# An unqualified call inside a Rust string literal (plain or raw): the
# name, not preceded by "." or an identifier character, followed by "(".
if ! python3 - <<'PY'
import glob, re, sys
literal = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)
call = re.compile(r'(?<![.\w])(quote_ident|make_interval|to_regprocedure|pg_notify|pg_advisory_\w+|to_char)\s*\(')
bad = []
for path in sorted(glob.glob("src/**/*.rs", recursive=True)):
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
# 3. The floors of src/ (docs/ARCHITECTURE.md): an area names only areas
#    below it, and no files name each other in a circle.
if ! python3 - <<'PY'
import glob, os, re, sys
floors = ["platform", "journal", "keys", "data", "lifecycle", "migration", "recovery", "audit", "scale", "worker"]
modules = {}
for path in glob.glob("src/**/*.rs", recursive=True):
    rel = os.path.relpath(path, "src")[:-3]
    if "/" not in rel:
        continue
    rel = rel.replace("/mod", "")
    modules["::".join(rel.split("/"))] = path

def named(text):
    """Every module of ours that `text` names through crate:: paths."""
    text = re.sub(r"//[^\n]*", "", text)
    out = set()
    for m in re.finditer(r"use crate::\{(.*?)\};", text, re.S):
        body, depth, cur, items = m.group(1), 0, "", []
        def walk(prefix, body):
            depth, cur = 0, ""
            for ch in body + ",":
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    item = cur.strip()
                    cur = ""
                    if not item:
                        continue
                    if "::{" in item:
                        head, rest = item.split("::{", 1)
                        yield from walk(prefix + [p for p in head.split("::") if p], rest.rsplit("}", 1)[0])
                    else:
                        yield prefix + [p for p in re.split(r"::|\s", item) if p]
                else:
                    cur += ch
        for parts in walk([], body):
            yield_path(parts, out)
    for m in re.finditer(r"crate::((?:\w+::)*\w+)", text):
        yield_path(m.group(1).split("::"), out)
    return out

def yield_path(parts, out):
    for k in range(len(parts), 0, -1):
        name = "::".join(parts[:k])
        if name in modules:
            out.add(name)
            return
        if k == 1 and parts[0] in floors:
            out.add(parts[0])

bad = []
edges = {}
for mod, path in modules.items():
    area = mod.split("::")[0]
    if area not in floors:
        bad.append(f"{path}: area {area} is not in the floor plan")
        continue
    deps = {d for d in named(open(path).read()) if d != mod}
    edges[mod] = {d for d in deps if d in modules and d.split("::")[0] == area and d != area}
    for d in deps:
        other = d.split("::")[0]
        if floors.index(other) > floors.index(area):
            bad.append(f"{path} names {d}, on a higher floor than {area}")
# circles among the files of one area
state = {}
def visit(m, stack):
    state[m] = 1
    for d in edges.get(m, ()):
        if state.get(d) == 1:
            bad.append("files name each other in a circle: " + " -> ".join(stack[stack.index(d):] + [d]))
        elif d not in state:
            visit(d, stack + [d])
    state[m] = 2
for m in sorted(edges):
    if m not in state:
        visit(m, [m])
if bad:
    print("not ok - the floors of src/:")
    print("\n".join(sorted(set(bad))))
    sys.exit(1)
print(f"ok - {len(modules)} files on {len(floors)} floors: no area names a higher one, no circle of files")
PY
then
  status=1
fi
exit $status
