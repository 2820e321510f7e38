"""Where byte strings occur in files: tests/integration/sessions.sh and
recovery.sh look for secrets the server must never write down.

    find_bytes.py ROOT[:ROOT...] HEX...

Every file under each root is read whole and searched for each needle as
raw bytes and in lower- and upper-case hex. Prints `i:path,path …` per
needle found (i counts the needles from 0), or `none`.
"""
import os
import sys

roots, needles = sys.argv[1].split(":"), [bytes.fromhex(h) for h in sys.argv[2:]]
hits = {}
for root in roots:
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            for i, n in enumerate(needles):
                if any(form in data for form in (n, n.hex().encode(), n.hex().upper().encode())):
                    hits.setdefault(i, set()).add(os.path.relpath(path, root))
print(" ".join(f"{i}:{','.join(sorted(v))}" for i, v in sorted(hits.items())) or "none")
