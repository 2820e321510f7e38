#!/usr/bin/env python3
"""Seal a value to an apg_pqcrypto tenant without apg_pqcrypto: docs/CLIENT.md's
example, tested by tests/integration/cli.sh (pq_unseal opens what it makes).

    seal_example.py PUBLIC_KEY_FILE AAD < plaintext > envelope

Needs only Python's `cryptography` (ML-KEM-768, HKDF-SHA256,
ChaCha20-Poly1305); follows docs/FORMAT.md section 3."""
import hashlib
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def seal(ek: bytes, plaintext: bytes, user_aad: bytes) -> bytes:
    shared_secret, kem_ct = MLKEM768PublicKey.from_public_bytes(ek).encapsulate()  # checks ek (FIPS 203 §7.2)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"apg-pq v1 sealed").derive(shared_secret)
    nonce = os.urandom(12)
    header = b"\x01S" + hashlib.sha256(ek).digest()[:16] + kem_ct + nonce  # 1118 bytes
    return header + ChaCha20Poly1305(key).encrypt(nonce, plaintext, header + user_aad)


if __name__ == "__main__":
    ek = open(sys.argv[1], "rb").read()
    sys.stdout.buffer.write(seal(ek, sys.stdin.buffer.read(), sys.argv[2].encode()))
