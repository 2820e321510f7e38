#!/usr/bin/env bash
# Installs what building and testing apg_pqcrypto needs, when it is missing:
# Debian packages (PostgreSQL 15 server and headers, clang for bindgen, sudo),
# cargo-pgrx 0.18.1, and `cargo pgrx init` against the system PostgreSQL 15.
# Safe to run again: it only installs what is absent.
set -euo pipefail
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

packages=(postgresql-15 postgresql-contrib postgresql-server-dev-15 postgresql-client-15 libclang-dev clang sudo gnupg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# tests/verify_kat.py checks the known-answer vectors with an independent implementation.
if ! python3 -c "import cryptography" 2>/dev/null; then
  echo "== installing the Python cryptography package"
  python3 -m pip install -q cryptography
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "0.18.1"; then
  echo "== installing cargo-pgrx 0.18.1 (takes a few minutes)"
  cargo install cargo-pgrx --version 0.18.1 --locked
fi

if ! grep -qs "^pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  echo "== cargo pgrx init --pg15 $PG_CONFIG"
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi
