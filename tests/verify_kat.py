#!/usr/bin/env python3
"""An outside implementation of format v1, checked against the known-answer vectors.

Re-derives every field of every case of crates/core/tests/data/kat/v1.json,
byte for byte, as docs/FORMAT.md specifies them, with implementations that
share no code with the extension:

- ML-KEM-768 and ML-KEM-1024 (key generation from the seed, encapsulation
  with the recorded randomness `m`, decapsulation): kyber-py, a pure-Python
  FIPS 203.
- ML-DSA-65 and ML-DSA-87 (key generation from the seed, signing with the
  recorded `rnd`, verification): dilithium-py, a pure-Python FIPS 204.
- SLH-DSA-SHA2-128s (key generation from the seed, deterministic signing,
  verification): `slhdsa` (PyPI SLH-DSA), a pure-Python FIPS 205.

The envelope's kind byte names the suite (FORMAT.md §2): 'S', 'B' are
ML-KEM-768, 'L', 'M' ML-KEM-1024, 'G' ML-DSA-65, 'H' ML-DSA-87.
- HKDF-SHA256 and SHA-256: hashlib and hmac, written out per RFC 5869.
- ChaCha20-Poly1305: the `cryptography` package; every envelope is rebuilt
  by encrypting again and compared whole, then opened.

Every field of a case must be checked (a field this script does not know
fails the run), and the number of cases checked must equal the number the
file holds and its `case_count`.
"""
import hashlib
import hmac
import json
import os
import re
import sys

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from dilithium_py.ml_dsa import ML_DSA_65, ML_DSA_87
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024
from slhdsa import PublicKey as SlhPublicKey, sha2_128s as SLH_PAR
from slhdsa.lowlevel.addresses import Address as SlhAddress
from slhdsa.lowlevel.slhdsa import sign as slh_sign_internal
from slhdsa.lowlevel.xmss import XMSS
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import pq_audit_format as fmt
import pq_client_format as client

HERE = os.path.dirname(os.path.abspath(__file__))
KAT = os.path.join(HERE, "..", "crates", "core", "tests", "data", "kat", "v1.json")

INFO_SEALED = b"apg-pq v1 sealed"
INFO_DEK = b"apg-pq v1 dek"
INFO_KEYED = b"apg-pq v1 keyed"
AAD_WRAP = b"apg-pq v1 wrap"
LABEL_MDK = b"apg-pq v1 mdk"
LABEL_KEK = b"apg-pq v1 kek"
INFO_BLIND_INDEX = b"apg-pq v1 blind index"
AAD_INDEX_KEY = b"apg-pq v1 index key"
# Unicode's White_Space property (FORMAT.md §16.2); not Python's str.strip(),
# which also strips U+001C..U+001F.
WHITE_SPACE = "".join(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                                0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))


class Case:
    """A case whose fields are marked as they are checked."""

    def __init__(self, raw):
        self.raw = raw
        self.seen = set()

    def text(self, name):
        self.seen.add(name)
        return self.raw[name]

    def hex(self, name):
        return bytes.fromhex(self.text(name))

    def expect(self, name, value):
        """The field `name` must equal `value` (bytes: compared as hex)."""
        got = self.text(name)
        want = value.hex() if isinstance(value, (bytes, bytearray)) else value
        if got != want:
            raise AssertionError(f"{self.raw['id']}: field {name}: file has {got!r}, derived {want!r}")

    def unchecked(self):
        return set(self.raw) - self.seen


def kid(public_key):
    return hashlib.sha256(public_key).digest()[:16]


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


def wrap_aad(tenant, version, purpose):
    return (AAD_WRAP + b"\0" + len(tenant).to_bytes(4, "big") + tenant
            + version.to_bytes(4, "big") + bytes([len(purpose)]) + purpose)


def check_aead(c, key, nonce, header, plaintext):
    """aad, and the envelope rebuilt by encrypting again, then opened."""
    aad = header + c.hex("user_aad")
    c.expect("aad", aad)
    envelope = header + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
    c.expect("envelope", envelope)
    assert ChaCha20Poly1305(key).decrypt(nonce, envelope[len(header):], aad) == plaintext


# FORMAT.md §3.1: the kind byte fixes the suite, and with it the header's length.
SEALED_KINDS = {b"S": (ML_KEM_768, 1118), b"L": (ML_KEM_1024, 1598)}
BATCH_KINDS = {b"B": ML_KEM_768, b"M": ML_KEM_1024}
SIGNATURE_KINDS = {b"G": (ML_DSA_65, 3309), b"H": (ML_DSA_87, 4627)}


def kind_byte(envelope_hex):
    """Byte 1 of an envelope given in hex (the whole envelope is checked later)."""
    return bytes.fromhex(envelope_hex[2:4])


def check_sealed(c, label):
    kind = kind_byte(c.raw["envelope"])
    kem, header_len = SEALED_KINDS[kind]
    seed = c.hex("kem_seed")
    ek, dk = kem._keygen_internal(seed[:32], seed[32:])
    c.expect("ek", ek)
    c.expect("kid", kid(ek))
    shared, kem_ct = kem._encaps_internal(ek, c.hex("m"))
    c.expect("kem_ct", kem_ct)
    c.expect("shared_secret", shared)
    assert kem.decaps(dk, kem_ct) == shared, "decapsulation"
    c.expect("hkdf_salt", "")
    c.expect("hkdf_info", label)
    key = hkdf(shared, b"", label)
    c.expect("key", key)
    nonce = c.hex("nonce")
    header = b"\x01" + kind + kid(ek) + kem_ct + nonce
    assert len(header) == header_len
    check_aead(c, key, nonce, header, c.hex("plaintext"))


def check_keyed(c, dek, kid_bytes, plaintext):
    c.expect("kid", kid_bytes)
    salt = c.hex("salt")
    c.expect("hkdf_info", INFO_KEYED + salt)
    key = hkdf_expand(dek, INFO_KEYED + salt)
    c.expect("key", key)
    nonce = c.hex("nonce")
    header = b"\x01K" + kid_bytes + salt + nonce
    assert len(header) == 46
    check_aead(c, key, nonce, header, plaintext)


def check_signature(c):
    kind = kind_byte(c.raw["envelope"])
    dsa, signature_len = SIGNATURE_KINDS[kind]
    pk, sk = dsa._keygen_internal(c.hex("dsa_seed"))
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    message, context = c.hex("message"), c.hex("context")
    formatted = bytes([0, len(context)]) + context + message  # FIPS 204 Algorithm 2, pure ML-DSA
    signature = dsa._sign_internal(sk, formatted, c.hex("rnd"))
    assert len(signature) == signature_len
    c.expect("signature", signature)
    assert dsa.verify(pk, message, signature, context), "verification"
    c.expect("envelope", b"\x01" + kind + kid(pk) + signature)


def dsa_sign(seed, message, context, rnd, dsa=ML_DSA_65):
    """(pk, signature): FIPS 204 keygen from the seed, pure ML-DSA signing."""
    pk, sk = dsa._keygen_internal(seed)
    signature = dsa._sign_internal(sk, bytes([0, len(context)]) + context + message, rnd)
    assert dsa.verify(pk, message, signature, context), "verification"
    return pk, signature


def slh_dsa_keygen(seed):
    """FIPS 205 slh_keygen_internal(SK.seed, SK.prf, PK.seed) of SLH-DSA-SHA2-128s,
    with the `slhdsa` package (pure Python): (secret key tuple, public key bytes)."""
    sk_seed, sk_prf, pk_seed = seed[:16], seed[16:32], seed[32:48]
    root = XMSS(SLH_PAR).node(sk_seed, 0, SLH_PAR.h_m, pk_seed, SlhAddress(SLH_PAR.d - 1, 0))
    return (sk_seed, sk_prf, pk_seed, root), pk_seed + root


def check_config_change(c):
    tenant, key = c.text("tenant"), c.text("key")
    c.expect("aad", fmt.config_aad(tenant, key))
    encoding = fmt.config_change(c.text("op"), tenant, key, c.text("version"),
                                 hashlib.sha256(c.hex("old_envelope")).digest(),
                                 hashlib.sha256(c.hex("new_envelope")).digest(),
                                 c.text("user"), c.text("ts_micros"), c.hex("prev_hash"))
    c.expect("encoding", encoding)
    c.expect("record_hash", hashlib.sha256(encoding).digest())
    c.expect("context", fmt.CONFIG_CHANGE_CONTEXT)
    pk, signature = dsa_sign(c.hex("dsa_seed"), encoding, fmt.CONFIG_CHANGE_CONTEXT, c.hex("rnd"))
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    c.expect("signature", signature)
    c.expect("envelope", b"\x01G" + kid(pk) + signature)


def check_config_sealed(c):
    message = fmt.sealed_value_message(c.text("tenant"), c.text("key"), c.hex("sealed_envelope"))
    c.expect("message", message)
    c.expect("context", fmt.CONFIG_SEALED_CONTEXT)
    pk, signature = dsa_sign(c.hex("dsa_seed"), message, fmt.CONFIG_SEALED_CONTEXT, c.hex("rnd"))
    c.expect("pk", pk)
    c.expect("signature", signature)


def check_audit_row(c):
    encoding = fmt.audit_row(c.text("row_id"), c.text("ts_micros"), c.text("event"), c.text("tenant"),
                             c.text("actor"), c.text("details"))
    c.expect("encoding", encoding)
    c.expect("row_hash", fmt.audit_row_hash(c.hex("prev_hash"), encoding))
    if c.text("row_id") == 1:
        c.expect("prev_hash", fmt.ZERO)


def check_audit_checkpoint(c):
    encoding = fmt.checkpoint(c.text("head_id"), c.hex("head_hash"), c.text("ts_micros"))
    c.expect("encoding", encoding)
    c.expect("context", fmt.CHECKPOINT_CONTEXT)
    # §11.5: the ML-DSA set of an audit key is told by its public key's length.
    dsa = ML_DSA_87 if len(c.raw["pk"]) == 2 * 2592 else ML_DSA_65
    pk, signature = dsa_sign(c.hex("dsa_seed"), encoding, fmt.CHECKPOINT_CONTEXT, c.hex("rnd"), dsa)
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    c.expect("ml_dsa_signature", signature)
    ed = Ed25519PrivateKey.from_private_bytes(c.hex("ed25519_seed"))
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    c.expect("ed25519_pk", ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    c.expect("ed25519_message", fmt.CHECKPOINT_CONTEXT + encoding)
    c.expect("ed25519_signature", ed.sign(fmt.CHECKPOINT_CONTEXT + encoding))


def check_audit_checkpoint_slh_dsa(c):
    """§11.5, suite slh-dsa+ml-dsa-65: ML-DSA-65 and SLH-DSA-SHA2-128s, both
    deterministic, over the same encoding with the same context."""
    encoding = fmt.checkpoint(c.text("head_id"), c.hex("head_hash"), c.text("ts_micros"))
    c.expect("encoding", encoding)
    c.expect("context", fmt.CHECKPOINT_CONTEXT)
    pk, signature = dsa_sign(c.hex("dsa_seed"), encoding, fmt.CHECKPOINT_CONTEXT, c.hex("rnd"))
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    c.expect("ml_dsa_signature", signature)
    sk, slh_pk = slh_dsa_keygen(c.hex("slh_dsa_seed"))
    c.expect("slh_dsa_pk", slh_pk)
    message = bytes([0, len(fmt.CHECKPOINT_CONTEXT)]) + fmt.CHECKPOINT_CONTEXT + encoding  # FIPS 205 Algorithm 22
    c.expect("slh_dsa_signature", slh_sign_internal(message, sk, SLH_PAR, False))  # deterministic: opt_rand = PK.seed
    assert SlhPublicKey((slh_pk[:16], slh_pk[16:]), SLH_PAR).verify_pure(encoding, c.hex("slh_dsa_signature"), fmt.CHECKPOINT_CONTEXT)


def check_xwing_sealed(c):
    """§3.2: X-Wing key from its seed, encapsulation with `eseed`, 'X' envelope."""
    seed = c.hex("xwing_seed")
    pk = client.xwing_public_key(seed)
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    shared, kem_ct = client.xwing_encaps(pk, c.hex("eseed"))
    c.expect("kem_ct", kem_ct)
    c.expect("shared_secret", shared)
    assert client.xwing_decaps(seed, kem_ct) == shared, "decapsulation"
    c.expect("hkdf_salt", "")
    c.expect("hkdf_info", INFO_SEALED)
    key = hkdf(shared, b"", INFO_SEALED)
    c.expect("key", key)
    nonce = c.hex("nonce")
    header = b"\x01X" + kid(pk) + kem_ct + nonce
    assert len(header) == 1150
    check_aead(c, key, nonce, header, c.hex("plaintext"))
    env = client.seal(pk, c.hex("plaintext"), c.hex("user_aad"), c.hex("eseed"), nonce)
    assert env.hex() == c.raw["envelope"], "pq_client_format.seal"


def check_batch(c, xwing):
    """§3.3: one encapsulation, key with "apg-pq v1 batch", one item per value."""
    if xwing:
        seed = c.hex("xwing_seed")
        pk = client.xwing_public_key(seed)
        randomness = c.hex("eseed")
        shared, kem_ct = client.xwing_encaps(pk, randomness)
        assert client.xwing_decaps(seed, kem_ct) == shared
    else:
        kem = BATCH_KINDS[kind_byte(c.raw["items"][0]["envelope"])]
        seed = c.hex("kem_seed")
        pk, dk = kem._keygen_internal(seed[:32], seed[32:])
        randomness = c.hex("m")
        shared, kem_ct = kem._encaps_internal(pk, randomness)
        assert kem.decaps(dk, kem_ct) == shared
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    c.expect("kem_ct", kem_ct)
    c.expect("shared_secret", shared)
    c.expect("hkdf_salt", "")
    c.expect("hkdf_info", b"apg-pq v1 batch")
    key = hkdf(shared, b"", b"apg-pq v1 batch")
    c.expect("key", key)
    items = c.text("items")
    kind = b"W" if xwing else kind_byte(items[0]["envelope"])
    rebuilt = client.seal_batch(pk, [(bytes.fromhex(i["plaintext"]), bytes.fromhex(i["user_aad"])) for i in items],
                                randomness, [bytes.fromhex(i["nonce"]) for i in items])
    for n, item in enumerate(items):
        ic = Case(dict(item, id=f"{c.raw['id']}[{n}]"))
        ic.expect("index", n)
        ic.expect("count", len(items))
        nonce = ic.hex("nonce")
        prefix = b"\x01" + kind + kid(pk) + n.to_bytes(4, "big") + len(items).to_bytes(4, "big")
        # §3.3: the AAD is the header without kem_ct, then user_aad.
        aad = prefix + nonce + ic.hex("user_aad")
        ic.expect("aad", aad)
        envelope = prefix + kem_ct + nonce + ChaCha20Poly1305(key).encrypt(nonce, ic.hex("plaintext"), aad)
        ic.expect("envelope", envelope)
        assert ChaCha20Poly1305(key).decrypt(nonce, envelope[len(prefix + kem_ct + nonce):], aad) == ic.hex("plaintext")
        assert rebuilt[n].hex() == item["envelope"], "pq_client_format.seal_batch"
        left = ic.unchecked() - {"id"}
        if left:
            raise AssertionError(f"{ic.raw['id']}: fields not checked: {sorted(left)}")


def check_stream(c):
    """§12: prefix, key envelope of the stream key, chunks with counter nonces."""
    seed = c.hex("kem_seed")
    ek, dk = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
    c.expect("ek", ek)
    c.expect("kid", kid(ek))
    size = c.text("chunk_size")
    prefix = b"\x01T" + kid(ek) + size.to_bytes(4, "big") + (1134 + 32).to_bytes(4, "big")
    c.expect("prefix", prefix)
    key_aad = b"apg-pq v1 stream" + prefix + c.hex("user_aad")
    c.expect("key_envelope_user_aad", key_aad)
    stream_key, m, nonce = c.hex("stream_key"), c.hex("m"), c.hex("key_envelope_nonce")
    key_env = client.seal(ek, stream_key, key_aad, m, nonce)
    c.expect("key_envelope", key_env)
    shared = ML_KEM_768.decaps(dk, key_env[18:18 + 1088])
    header = key_env[:1118]
    opened = ChaCha20Poly1305(hkdf(shared, b"", INFO_SEALED)).decrypt(nonce, key_env[1118:], header + key_aad)
    assert opened == stream_key, "key envelope opens to the stream key"
    plaintext = c.hex("plaintext")
    chunks = c.text("chunks")
    pieces = [plaintext[i:i + size] for i in range(0, len(plaintext), size)]
    assert len(pieces) == len(chunks)
    for n, chunk in enumerate(chunks):
        want_nonce = client.chunk_nonce(n, n == len(chunks) - 1)
        assert chunk["index"] == n and chunk["nonce"] == want_nonce.hex(), f"chunk {n} nonce"
        assert ChaCha20Poly1305(stream_key).encrypt(want_nonce, pieces[n], b"").hex() == chunk["chunk"], f"chunk {n}"
    stream = client.seal_stream(ek, plaintext, c.hex("user_aad"), size, stream_key, m, nonce)
    c.expect("stream", stream)


gf_mul = client.gf_mul


def shamir_share(secret, coeffs, t, x):
    """§14: share x of `secret`, coefficients of degree 1 .. t-1 in `coeffs`."""
    out = bytearray()
    for i in range(len(secret)):
        y = 0
        for coef in reversed([secret[i]] + [coeffs[k * len(secret) + i] for k in range(t - 1)]):
            y = gf_mul(y, x) ^ coef
        out.append(y)
    return bytes(out)


def check_shamir(c):
    """§14: share x = the polynomials at x, coefficients of degree >= 1 in order."""
    secret, t, n = c.hex("secret"), c.text("threshold"), c.text("total")
    coeffs = c.hex("coefficients")
    assert len(coeffs) == (t - 1) * len(secret)
    shares = c.text("shares")
    assert [s["index"] for s in shares] == list(range(1, n + 1))
    for s in shares:
        assert s["bytes"] == shamir_share(secret, coeffs, t, s["index"]).hex(), f"share {s['index']}"
    # Any t shares give the secret back (Lagrange at 0).
    from itertools import combinations
    inv = {a: next(b for b in range(1, 256) if gf_mul(a, b) == 1) for a in range(1, 256)}
    for pick in combinations(shares, t):
        out = bytearray(len(secret))
        for s in pick:
            basis = 1
            for o in pick:
                if o is not s:
                    basis = gf_mul(basis, gf_mul(o["index"], inv[o["index"] ^ s["index"]]))
            for i, y in enumerate(bytes.fromhex(s["bytes"])):
                out[i] ^= gf_mul(y, basis)
        assert bytes(out) == secret, "recombined"


def check_escrow(c):
    """§14.1: shares of the MDK (§14) in 'E' records sealed to custodians."""
    mdk = c.hex("mdk")
    c.expect("mdk_id", hashlib.sha256(LABEL_MDK + mdk).digest()[:16])
    t, n = c.text("threshold"), c.text("total")
    coeffs = c.hex("coefficients")
    escrow_id = c.hex("escrow_id")
    records = c.text("records")
    assert len(records) == n
    for r in records:
        x = r["index"]
        share = shamir_share(mdk, coeffs, t, x)
        assert r["share"] == share.hex(), f"share {x}"
        seed = bytes.fromhex(r["kem_seed"])
        ek, dk = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
        header = b"\x01E" + kid(ek) + escrow_id + bytes([x, t, n]) + c.hex("mdk_id")
        assert r["header"] == header.hex(), "header"
        aad = b"apg-pq v1 escrow share" + header
        assert r["user_aad"] == aad.hex()
        envelope = client.seal(ek, bytes(share), aad, bytes.fromhex(r["m"]), bytes.fromhex(r["nonce"]))
        assert r["record"] == (header + envelope).hex(), f"record {x}"
        opened = ChaCha20Poly1305(hkdf(ML_KEM_768.decaps(dk, envelope[18:1106]), b"", INFO_SEALED)).decrypt(
            envelope[1106:1118], envelope[1118:], envelope[:1118] + aad)
        assert opened == bytes(share)


def check_backup(c):
    """§15: a key backup bundle: payload, header, AAD, the sealed envelope."""
    seed = c.hex("kem_seed")
    ek, dk = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
    c.expect("kid", kid(ek))
    doc = c.text("doc").encode()
    payload = b"\x01" + len(doc).to_bytes(4, "big") + doc + len(c.text("secrets")).to_bytes(4, "big")
    for s in c.text("secrets"):
        secret = bytes.fromhex(s["bytes"])
        payload += bytes([s["kind"]]) + bytes.fromhex(s["ref"]) + len(secret).to_bytes(2, "big") + secret
    c.expect("payload", payload)
    header = b"\x01D" + kid(ek) + c.hex("backup_id") + c.text("created").to_bytes(8, "big")
    c.expect("header", header)
    aad = b"apg-pq v1 key backup" + header
    c.expect("user_aad", aad)
    envelope = client.seal(ek, payload, aad, c.hex("m"), c.hex("nonce"))
    c.expect("bundle", header + envelope)
    opened = ChaCha20Poly1305(hkdf(ML_KEM_768.decaps(dk, envelope[18:1106]), b"", INFO_SEALED)).decrypt(
        envelope[1106:1118], envelope[1118:], envelope[:1118] + aad)
    assert opened == payload


def check_xwing_dek(c):
    """§6: an X-Wing version's DEK, an 'X' envelope with label "apg-pq v1 dek"."""
    seed = c.hex("xwing_seed")
    pk = client.xwing_public_key(seed)
    c.expect("pk", pk)
    c.expect("kid", kid(pk))
    shared, kem_ct = client.xwing_encaps(pk, c.hex("eseed"))
    c.expect("kem_ct", kem_ct)
    c.expect("shared_secret", shared)
    c.expect("hkdf_salt", "")
    c.expect("hkdf_info", INFO_DEK)
    key = hkdf(shared, b"", INFO_DEK)
    c.expect("key", key)
    nonce = c.hex("nonce")
    header = b"\x01X" + kid(pk) + kem_ct + nonce
    c.expect("user_aad", "")
    check_aead(c, key, nonce, header, c.hex("dek"))
    env = client.seal(pk, c.hex("dek"), b"", c.hex("eseed"), nonce, info=INFO_DEK)
    assert env.hex() == c.raw["envelope"], "pq_client_format.seal with the DEK label"
    assert client.open_sealed(seed, env, b"", info=INFO_DEK) == c.hex("dek")


def check_escrow_reseal(c):
    """§14.1: the share of an 'E' record, opened with the custodian's key,
    re-sealed to the request's key in an 'R' record with the same fields."""
    index, share = client.open_share_record(c.hex("custodian_kem_seed"), c.hex("share_record"))
    c.expect("share", share)
    seed = c.hex("request_kem_seed")
    ek, _ = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
    e_header = c.hex("share_record")[:53]
    header = b"\x01R" + kid(ek) + e_header[18:53]
    assert header[34] == index
    c.expect("header", header)
    aad = b"apg-pq v1 escrow reseal" + header
    c.expect("user_aad", aad)
    record = header + client.seal(ek, share, aad, c.hex("m"), c.hex("nonce"))
    c.expect("record", record)
    assert client.open_share_record(seed, record) == (index, share)


def check_config_sealed_v2(c):
    message, context = fmt.sealed_value_signed(2, c.text("tenant"), c.text("key"), c.hex("sealed_envelope"),
                                               c.hex("replaces"))
    c.expect("message", message)
    c.expect("context", context)
    pk, signature = dsa_sign(c.hex("dsa_seed"), message, context, c.hex("rnd"))
    c.expect("pk", pk)
    c.expect("signature", signature)


def check_escrow_statement(c):
    """§14.2: the statement, each approver's ML-DSA-65 signature over it, the record."""
    statement = client.request_statement(c.hex("request_id"), c.hex("request_kid"), c.hex("escrow_id"), c.hex("mdk_id"),
                                         c.text("requested_at"), c.text("ready_at"), c.text("approvers_required"))
    assert len(statement) == 83
    c.expect("statement", statement)
    c.expect("context", client.ESCROW_APPROVAL_CONTEXT)
    approvals = []
    for n, a in enumerate(c.text("approvers")):
        ac = Case(dict(a, id=f"{c.raw['id']}[{n}]"))
        pk, signature = dsa_sign(ac.hex("dsa_seed"), statement, client.ESCROW_APPROVAL_CONTEXT, ac.hex("rnd"))
        ac.expect("pk", pk)
        ac.expect("kid", kid(pk))
        ac.expect("signature", signature)
        approvals.append((kid(pk), signature))
        left = ac.unchecked() - {"id"}
        if left:
            raise AssertionError(f"{ac.raw['id']}: fields not checked: {sorted(left)}")
    c.expect("record", client.approved_request(statement, approvals))


def check_backup_complete(c):
    """§15 as a restore reads it: the bundle, then every version of the
    document against its secrets (kids, public keys, the sealed DEK)."""
    check_backup(c)
    doc = json.loads(c.text("doc"))
    for key in ("format", "backup_id", "created", "source_system_identifier", "extension_version",
                "include_metadata", "tenants"):
        assert key in doc, f"document key {key}"
    assert doc["format"] == 1 and doc["backup_id"] == c.raw["backup_id"] and doc["created"] == c.raw["created"]
    secrets = {(s["kind"], s["ref"]): bytes.fromhex(s["bytes"]) for s in c.raw["secrets"]}
    for tenant in doc["tenants"]:
        assert tenant["kem"] == "ml-kem-768"
        for v in tenant["versions"]:
            kem_seed, dsa_seed = secrets[(1, v["kid"])], secrets[(2, v["kid"])]
            ek, dk = ML_KEM_768._keygen_internal(kem_seed[:32], kem_seed[32:])
            assert v["public_key"] == ek.hex() and v["kid"] == kid(ek).hex(), "version kid and public key"
            pk, _ = ML_DSA_65._keygen_internal(dsa_seed)
            assert v["verifying_key"] == pk.hex() and v["signing_kid"] == kid(pk).hex(), "version signing key"
            assert client.open_sealed(kem_seed, bytes.fromhex(v["sealed_dek"]), b"", info=INFO_DEK) == c.hex("dek"), \
                "the sealed DEK opens with the version's key"


def blind_normalize(value, normalize):
    words = [] if normalize == "exact" else normalize.split(",")
    assert set(words) <= {"trim", "casefold"} and len(set(words)) == len(words), normalize
    if "trim" in words:
        value = value.strip(WHITE_SPACE)
    if "casefold" in words:
        # Each character's full lowercase mapping, without context rules.
        value = "".join(ch.lower() for ch in value)
    return value.encode("utf-8")


def check_blind_index(c):
    dek = c.hex("dek")
    context = c.text("context").encode("utf-8")
    c.expect("hkdf_info", INFO_BLIND_INDEX + context)
    key = hkdf_expand(dek, INFO_BLIND_INDEX + context)
    c.expect("index_key", key)
    for t in c.text("text_terms"):
        normalized = blind_normalize(t["value"], t["normalize"])
        assert normalized.hex() == t["normalized"], f"normalized {t['value']!r} {t['normalize']}"
        assert t["bits"] % 8 == 0 and 16 <= t["bits"] <= 256
        term = hmac.new(key, normalized, hashlib.sha256).digest()[: t["bits"] // 8]
        assert term.hex() == t["term"], f"term of {t['value']!r} {t['normalize']} {t['bits']}"
        assert set(t) == {"value", "normalize", "normalized", "bits", "term"}
    c.expect("bytea_term", hmac.new(key, c.hex("bytea_value"), hashlib.sha256).digest())
    c.hex("kid")  # the version's kid: checked with the export case below


def check(c):
    kind = c.text("kind")
    c.text("id")
    if kind == "sealed":
        check_sealed(c, INFO_SEALED)
    elif kind == "sealed-dek":
        check_sealed(c, INFO_DEK)
        c.expect("plaintext", c.hex("dek"))
        c.expect("user_aad", "")
    elif kind == "keyed":
        check_keyed(c, c.hex("dek"), c.hex("kid"), c.hex("plaintext"))
    elif kind == "signature":
        check_signature(c)
    elif kind == "mdk-wrap":
        mdk = c.hex("mdk")
        c.expect("mdk_id", hashlib.sha256(LABEL_MDK + mdk).digest()[:16])
        if c.raw["purpose"] == "recovery key seed":
            # §6: tenant = the one-time key's kid, in hex.
            seed = c.hex("plaintext")
            ek, _ = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
            c.expect("tenant", kid(ek).hex())
        aad = wrap_aad(c.text("tenant").encode(), c.text("version"), c.text("purpose").encode())
        c.expect("user_aad", aad)
        check_keyed(c, mdk, c.hex("mdk_id"), c.hex("plaintext"))
    elif kind == "kek-wrap":
        kek, mdk = c.hex("kek"), c.hex("plaintext")
        c.expect("kek_id", hashlib.sha256(LABEL_KEK + kek).digest()[:16])
        c.expect("mdk_id", hashlib.sha256(LABEL_MDK + mdk).digest()[:16])
        c.expect("tenant", c.text("mdk_id"))
        c.expect("version", 0)
        c.expect("purpose", "master data key")
        c.expect("user_aad", wrap_aad(c.text("tenant").encode(), 0, b"master data key"))
        check_keyed(c, kek, c.hex("kek_id"), mdk)
    elif kind == "config-change":
        check_config_change(c)
    elif kind == "config-sealed":
        check_config_sealed(c)
    elif kind == "audit-row":
        check_audit_row(c)
    elif kind == "audit-checkpoint":
        check_audit_checkpoint(c)
    elif kind == "audit-checkpoint-slh-dsa":
        check_audit_checkpoint_slh_dsa(c)
    elif kind == "sealed-x-wing":
        check_xwing_sealed(c)
    elif kind in ("batch", "batch-x-wing"):
        check_batch(c, kind == "batch-x-wing")
    elif kind == "stream":
        check_stream(c)
    elif kind == "shamir":
        check_shamir(c)
    elif kind == "escrow-share":
        check_escrow(c)
    elif kind == "key-backup":
        check_backup(c)
    elif kind == "key-backup-complete":
        check_backup_complete(c)
    elif kind == "sealed-dek-x-wing":
        check_xwing_dek(c)
    elif kind == "escrow-reseal":
        check_escrow_reseal(c)
    elif kind == "config-sealed-v2":
        check_config_sealed_v2(c)
    elif kind == "escrow-statement":
        check_escrow_statement(c)
    elif kind == "blind-index":
        check_blind_index(c)
    else:
        raise AssertionError(f"{c.raw.get('id')}: unknown kind {kind}")
    left = c.unchecked()
    if left:
        raise AssertionError(f"{c.raw['id']}: fields not checked: {sorted(left)}")


def check_xwing_draft_vectors():
    """pq_client_format's X-Wing against the draft's own vectors."""
    path = os.path.join(HERE, "..", "crates", "core", "tests", "data", "xwing", "test-vectors.json")
    with open(path) as f:
        vectors = json.load(f)
    for v in vectors:
        seed = bytes.fromhex(v["sk"])
        assert client.xwing_public_key(seed).hex() == v["pk"], "X-Wing public key"
        ss, ct = client.xwing_encaps(bytes.fromhex(v["pk"]), bytes.fromhex(v["eseed"]))
        assert (ss.hex(), ct.hex()) == (v["ss"], v["ct"]), "X-Wing encapsulation"
        assert client.xwing_decaps(seed, ct).hex() == v["ss"], "X-Wing decapsulation"
    print(f"ok - {len(vectors)} X-Wing draft vectors")


def check_format_md_vectors(data):
    """Every value FORMAT.md quotes from v1.json (§9 on, in code blocks) is
    in the file: a quoted vector cannot drift from the one checked above."""
    path = os.path.join(HERE, "..", "docs", "FORMAT.md")
    with open(path) as f:
        text = f.read()
    text = text[text.index("## 9. Test vectors"):]
    values = []

    def walk(x):
        if isinstance(x, str):
            values.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data)
    blob = "\n".join(values)
    quoted = [h for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for h in re.findall(r"\b[0-9a-f]{32,}\b", block)]
    for h in quoted:
        assert h in blob, f"FORMAT.md quotes {h[:32]}..., which is in no case of v1.json"
    assert len(quoted) >= 20, f"only {len(quoted)} values quoted from FORMAT.md"
    print(f"ok - {len(quoted)} values FORMAT.md quotes are in v1.json")


def main():
    check_xwing_draft_vectors()
    data = json.load(open(sys.argv[1] if len(sys.argv) > 1 else KAT))
    cases = data["cases"]
    checked = 0
    for raw in cases:
        check(Case(raw))
        checked += 1
        print(f"ok - {raw['id']}")
    # The chained checkpoint signs the head of the audit rows' chain.
    by_id = {raw["id"]: raw for raw in cases}
    if "audit-checkpoint-chain" in by_id:
        assert by_id["audit-checkpoint-chain"]["head_hash"] == by_id["audit-row-2"]["row_hash"], "checkpoint of the chain"
        assert by_id["audit-row-2"]["prev_hash"] == by_id["audit-row-1"]["row_hash"], "rows chained"
    # The exported index key (§16.5) is the blind-index case's key, sealed
    # with user_aad = "apg-pq v1 index key" || kid || context.
    if "blind-index-export" in by_id:
        b, e = by_id["blind-index"], by_id["blind-index-export"]
        assert e["plaintext"] == b["index_key"], "the export seals the index key"
        assert e["user_aad"] == (AAD_INDEX_KEY + bytes.fromhex(b["kid"]) + b["context"].encode()).hex(), "export user_aad"
    # A batch item whose index is not below its count is refused (§3.3).
    item = bytes.fromhex(by_id["batch"]["items"][2]["envelope"])
    for index, count in ((3, 3), (0, 0)):
        try:
            client.batch_position(item[:18] + index.to_bytes(4, "big") + count.to_bytes(4, "big") + item[26:])
            raise AssertionError(f"batch item {index} of {count} accepted")
        except ValueError:
            pass
    if len(sys.argv) <= 1:
        check_format_md_vectors(data)
    if checked != len(cases) or checked != data["case_count"] or checked == 0:
        raise AssertionError(f"checked {checked} cases; the file holds {len(cases)}, case_count {data['case_count']}")
    print(f"{checked} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, KeyError, ValueError) as e:
        print(f"not ok - known-answer vector mismatch: {e!r}")
        sys.exit(1)
