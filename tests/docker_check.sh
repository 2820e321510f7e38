#!/usr/bin/env bash
# docker/ has no container engine to run it here, so this checks it the way
# the issue asks: every command the Dockerfile RUNs is one the README's
# install steps run (scripts/setup.sh and scripts/demo.sh, with env.sh's
# variables expanded), the image's server starts as the tests' clusters
# start (scripts/cluster.sh's cluster_start), and the files parse.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash -n docker/start.sh
python3 - "$root" <<'PY'
import os, re, shlex, subprocess, sys
root = sys.argv[1]
env = dict(PG_CONFIG=subprocess.run(["bash", "-c", "source scripts/env.sh >/dev/null 2>&1; echo $PG_CONFIG"],
                                    capture_output=True, text=True, cwd=root).stdout.strip())
assert env["PG_CONFIG"], "scripts/env.sh sets PG_CONFIG"

def commands(text):
    """Shell commands of a script, one list of words each, variables of env.sh expanded."""
    out = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for var, value in env.items():
            line = line.replace('"$%s"' % var, value).replace("${%s}" % var, value).replace("$" + var, value)
        for part in re.split(r"&&|;|\|\|", line):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            words = [w for w in words if not re.match(r"^\d*[<>]", w)]  # redirections are not the command
            if words:
                out.append(words)
    return out

readme = open(os.path.join(root, "README.md")).read()
install = []
for script in ["scripts/setup.sh", "scripts/demo.sh"]:
    assert script in readme, f"the README names {script}"
    install += commands(open(os.path.join(root, script)).read())

dockerfile = open(os.path.join(root, "docker/Dockerfile")).read()
runs = re.findall(r"^RUN (.+)$", dockerfile, re.M)
assert runs, "the Dockerfile runs something"
checked = 0
for run in runs:
    words = shlex.split(run)
    if words[:2] == ["bash", "-c"]:
        inner = commands(words[2])
    else:
        inner = commands(run)
    for cmd in inner:
        # softhsm_setup takes the token's directory: only that may differ.
        same = [c for c in install if c == cmd or (cmd[0] == "softhsm_setup" and c[0] == "softhsm_setup" and len(c) == len(cmd))]
        if not same:
            sys.exit(f"docker/Dockerfile runs `{' '.join(cmd)}`, which the README's install steps (scripts/setup.sh, scripts/demo.sh) do not")
        checked += 1
for forbidden in ["curl ", "wget ", "ADD http", "apt-get"]:
    assert forbidden not in dockerfile, f"docker/Dockerfile uses {forbidden.strip()}: install through scripts/setup.sh"
start = open(os.path.join(root, "docker/start.sh")).read()
assert "cluster_start" in start and "source scripts/cluster.sh" in start, "the image starts its server with cluster_start"
compose = open(os.path.join(root, "docker/compose.yaml")).read()
assert "dockerfile: docker/Dockerfile" in compose and "context: .." in compose
assert "CMD [\"docker/start.sh\"]" in dockerfile
print(f"docker/: {checked} commands, each one the README's install steps run")
PY
