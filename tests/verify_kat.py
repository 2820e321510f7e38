#!/usr/bin/env python3
"""An outside implementation of the symmetric half of format v1.

Checks crates/core/tests/data/kat/v1.json with nothing but Python's
`cryptography` package (ChaCha20-Poly1305, HKDF-SHA256) and hashlib: every
keyed envelope, every sealed envelope from its ML-KEM shared secret, the
sealed DEK and the master-key wrapping, byte for byte as docs/FORMAT.md
specifies them. (ML-KEM and ML-DSA themselves are checked against the
Wycheproof vectors in the Rust tests.)
"""
import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

HERE = os.path.dirname(os.path.abspath(__file__))
KAT = os.path.join(HERE, "..", "crates", "core", "tests", "data", "kat", "v1.json")


def hkdf_expand(prk, info, length=32):
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def hkdf(ikm, salt, info):
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    return hkdf_expand(prk, info)


def check_keyed(case, dek, user_aad):
    env = bytes.fromhex(case["envelope"])
    assert env[0] == 0x01 and env[1] == ord("K"), "version/kind"
    kid, salt, nonce, body = env[2:18], env[18:34], env[34:46], env[46:]
    key = hkdf_expand(dek, b"apg-pq v1 keyed" + salt)
    aad = env[:46] + user_aad
    pt = ChaCha20Poly1305(key).decrypt(nonce, body, aad)
    return kid, key, nonce, aad, pt


def main():
    cases = json.load(open(KAT))["cases"]
    checked = 0
    for case in cases:
        kind = case["kind"]
        if kind == "keyed":
            kid, key, nonce, aad, pt = check_keyed(case, bytes.fromhex(case["dek"]), bytes.fromhex(case["user_aad"]))
            assert kid.hex() == case["kid"]
            assert key.hex() == case["key"] and nonce.hex() == case["nonce"] and aad.hex() == case["aad"]
            assert pt.hex() == case["plaintext"]
        elif kind == "sealed":
            env = bytes.fromhex(case["envelope"])
            ek = bytes.fromhex(case["ek"])
            assert env[0] == 0x01 and env[1] == ord("S")
            assert env[2:18] == hashlib.sha256(ek).digest()[:16] == bytes.fromhex(case["kid"])
            assert env[18:1106].hex() == case["kem_ct"]
            key = hkdf(bytes.fromhex(case["shared_secret"]), b"", b"apg-pq v1 sealed")
            assert key.hex() == case["key"]
            nonce = env[1106:1118]
            aad = env[:1118] + bytes.fromhex(case["user_aad"])
            assert aad.hex() == case["aad"]
            pt = ChaCha20Poly1305(key).decrypt(nonce, env[1118:], aad)
            assert pt.hex() == case["plaintext"]
        elif kind == "signature":
            env = bytes.fromhex(case["envelope"])
            pk = bytes.fromhex(case["pk"])
            assert env[0] == 0x01 and env[1] == ord("G") and len(env) == 3327
            assert env[2:18] == hashlib.sha256(pk).digest()[:16]
            assert env[18:].hex() == case["signature"]
        elif kind == "sealed-dek":
            assert bytes.fromhex(case["user_aad"]) == b"apg-pq v1 dek"
            env = bytes.fromhex(case["envelope"])
            assert env[1] == ord("S") and len(env) == 1118 + 32 + 16
        elif kind == "mdk-wrap":
            tenant, purpose = case["tenant"].encode(), case["purpose"].encode()
            aad = (b"apg-pq v1 wrap" + b"\0" + len(tenant).to_bytes(4, "big") + tenant
                   + case["version"].to_bytes(4, "big") + bytes([len(purpose)]) + purpose)
            assert aad.hex() == case["user_aad"]
            kid, _, _, _, pt = check_keyed(case, bytes.fromhex(case["mdk"]), aad)
            assert kid.hex() == case["mdk_id"] and pt.hex() == case["secret"]
        else:
            raise AssertionError(f"unknown kind {kind}")
        checked += 1
    print(f"{checked} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"known-answer vector mismatch: {e}")
        print("0 passed, 1 failed")
        sys.exit(1)
