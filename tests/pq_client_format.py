"""X-Wing, batch items, streams, escrow share records and key backup
bundles of apg_pqcrypto, written from docs/FORMAT.md §3.2-§3.3, §12, §14
and §15 and draft-connolly-cfrg-xwing-kem-06 alone
(no code shared with the extension). ML-KEM-768 and ML-KEM-1024 are kyber-py, X25519 and
ChaCha20-Poly1305 are Python's `cryptography`, SHA3/SHAKE are hashlib.

Used by tests/verify_kat.py (known-answer vectors) and by
tests/integration/cli.sh (envelopes sealed here are opened by the server)
and tests/integration/recovery.sh (which opens what the server sealed to
custodians and officers, to search for the secrets it must never leak).
"""
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024

XWING_LABEL = b"\\.//^\\"  # the six bytes 5c 2e 2f 2f 5e 5c
INFO_SEALED = b"apg-pq v1 sealed"
INFO_BATCH = b"apg-pq v1 batch"
AAD_STREAM = b"apg-pq v1 stream"
assert XWING_LABEL.hex() == "5c2e2f2f5e5c"


def _raw(public):
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def xwing_expand(seed):
    """draft-06 §5.2: SHAKE256(seed, 96) -> ML-KEM-768 (d, z), X25519 secret."""
    expanded = hashlib.shake_256(seed).digest(96)
    ek_m, dk_m = ML_KEM_768._keygen_internal(expanded[:32], expanded[32:64])
    sk_x = expanded[64:96]
    pk_x = _raw(X25519PrivateKey.from_private_bytes(sk_x).public_key())
    return ek_m, dk_m, sk_x, pk_x


def xwing_public_key(seed):
    ek_m, _, _, pk_x = xwing_expand(seed)
    return ek_m + pk_x


def _combiner(ss_m, ss_x, ct_x, pk_x):
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def xwing_encaps(pk, eseed):
    """Encapsulate to a 1216-byte key with 64 bytes of randomness."""
    assert len(pk) == 1216 and len(eseed) == 64
    pk_m, pk_x = pk[:1184], pk[1184:]
    ss_m, ct_m = ML_KEM_768._encaps_internal(pk_m, eseed[:32])
    ek_x = X25519PrivateKey.from_private_bytes(eseed[32:])
    ct_x = _raw(ek_x.public_key())
    ss_x = ek_x.exchange(X25519PublicKey.from_public_bytes(pk_x))
    return _combiner(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x


def xwing_decaps(seed, ct):
    _, dk_m, sk_x, pk_x = xwing_expand(seed)
    ct_m, ct_x = ct[:1088], ct[1088:]
    ss_m = ML_KEM_768.decaps(dk_m, ct_m)
    ss_x = X25519PrivateKey.from_private_bytes(sk_x).exchange(X25519PublicKey.from_public_bytes(ct_x))
    return _combiner(ss_m, ss_x, ct_x, pk_x)


def kid(public_key):
    return hashlib.sha256(public_key).digest()[:16]


def hkdf(ikm, info):
    """HKDF-SHA256 with an empty salt, L = 32 (one block)."""
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


# §3.1: the suite of a public key by its length: (sealed kind, batch kind).
KINDS_BY_KEY_LEN = {1184: (b"S", b"B"), 1568: (b"L", b"M"), 1216: (b"X", b"W")}


def encapsulate(pk, randomness=None):
    """(shared_secret, kem_ct) for a 1184-byte ML-KEM-768, 1568-byte
    ML-KEM-1024 or 1216-byte X-Wing key."""
    if len(pk) == 1216:
        return xwing_encaps(pk, randomness or os.urandom(64))
    kem = ML_KEM_1024 if len(pk) == 1568 else ML_KEM_768
    return kem._encaps_internal(pk, randomness or os.urandom(32))


def seal(pk, plaintext, user_aad=b"", randomness=None, nonce=None, info=INFO_SEALED):
    """§3 / §3.2: a sealed envelope, 'S', 'L' or 'X' by the key's length
    (`info` "apg-pq v1 dek" for a version's stored DEK, §6)."""
    shared, kem_ct = encapsulate(pk, randomness)
    kind = KINDS_BY_KEY_LEN[len(pk)][0]
    nonce = nonce or os.urandom(12)
    header = b"\x01" + kind + kid(pk) + kem_ct + nonce
    key = hkdf(shared, info)
    return header + ChaCha20Poly1305(key).encrypt(nonce, plaintext, header + user_aad)


def seal_batch(pk, items, randomness=None, nonces=None):
    """§3.3: items = [(plaintext, user_aad)], one encapsulation; 'B', 'M' or 'W'."""
    shared, kem_ct = encapsulate(pk, randomness)
    kind = KINDS_BY_KEY_LEN[len(pk)][1]
    key = hkdf(shared, INFO_BATCH)
    out = []
    for i, (plaintext, user_aad) in enumerate(items):
        nonce = nonces[i] if nonces else os.urandom(12)
        prefix = b"\x01" + kind + kid(pk) + i.to_bytes(4, "big") + len(items).to_bytes(4, "big")
        # The AAD is the header without the KEM ciphertext (the key depends on it).
        aad = prefix + nonce + user_aad
        out.append(prefix + kem_ct + nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad))
    return out


def stream_prefix(pk, chunk_size):
    key_len = (1166 if len(pk) == 1216 else 1134) + 32
    return b"\x01T" + kid(pk) + chunk_size.to_bytes(4, "big") + key_len.to_bytes(4, "big")


def chunk_nonce(index, last):
    return b"\0\0\0" + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def seal_stream(pk, plaintext, user_aad=b"", chunk_size=65536, stream_key=None, randomness=None, nonce=None):
    """§12: prefix, key envelope, chunks."""
    stream_key = stream_key or os.urandom(32)
    prefix = stream_prefix(pk, chunk_size)
    key_envelope = seal(pk, stream_key, AAD_STREAM + prefix + user_aad, randomness, nonce)
    chunks = [plaintext[i:i + chunk_size] for i in range(0, len(plaintext), chunk_size)] or [b""]
    body = b"".join(
        ChaCha20Poly1305(stream_key).encrypt(chunk_nonce(i, i == len(chunks) - 1), c, b"")
        for i, c in enumerate(chunks))
    return prefix + key_envelope + body


def batch_position(item):
    """§3.3: (index, count) of a batch item; a reader MUST refuse an item
    whose index is not below its count (a count of 0 included)."""
    index, count = int.from_bytes(item[18:22], "big"), int.from_bytes(item[22:26], "big")
    if index >= count:
        raise ValueError("malformed: batch item index not below its count")
    return index, count


def open_sealed(seed, envelope, user_aad=b"", info=INFO_SEALED):
    """§3 / §3.2: opens an 'S' or 'L' (64-byte ML-KEM seed) or 'X'
    (32-byte X-Wing seed) envelope."""
    if envelope[1:2] == b"X":
        ct_end = 18 + 1120
        shared = xwing_decaps(seed, envelope[18:ct_end])
    elif envelope[1:2] == b"L":
        ct_end = 18 + 1568
        _, dk = ML_KEM_1024._keygen_internal(seed[:32], seed[32:])
        shared = ML_KEM_1024.decaps(dk, envelope[18:ct_end])
    else:
        ct_end = 18 + 1088
        _, dk = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
        shared = ML_KEM_768.decaps(dk, envelope[18:ct_end])
    nonce = envelope[ct_end:ct_end + 12]
    header = envelope[:ct_end + 12]
    return ChaCha20Poly1305(hkdf(shared, info)).decrypt(nonce, envelope[ct_end + 12:], header + user_aad)


def open_share_record(seed, record):
    """§14.1: (index, share) of an 'E' or 'R' record."""
    header = record[:53]
    label = b"apg-pq v1 escrow share" if header[1:2] == b"E" else b"apg-pq v1 escrow reseal"
    return header[34], open_sealed(seed, record[53:], label + header)


def gf_mul(a, b):
    """§14: multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1."""
    r = 0
    while b:
        if b & 1:
            r ^= a
        a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
        b >>= 1
    return r


def shamir_combine(shares):
    """§14: Lagrange interpolation at 0 of [(index, bytes)]."""
    out = bytearray(len(shares[0][1]))
    for i, (xi, yi) in enumerate(shares):
        basis = 1
        for j, (xj, _) in enumerate(shares):
            if i != j:
                inv = next(v for v in range(1, 256) if gf_mul(xi ^ xj, v) == 1)
                basis = gf_mul(basis, gf_mul(xj, inv))
        for k, y in enumerate(yi):
            out[k] ^= gf_mul(y, basis)
    return bytes(out)


def open_bundle(seed, bundle):
    """§15: (document, [(kind, ref, bytes)]) of a key backup bundle."""
    header = bundle[:42]
    payload = open_sealed(seed, bundle[42:], b"apg-pq v1 key backup" + header)
    assert payload[0] == 1
    n = int.from_bytes(payload[1:5], "big")
    doc, rest = payload[5:5 + n], payload[5 + n:]
    count, rest = int.from_bytes(rest[:4], "big"), rest[4:]
    secrets = []
    for _ in range(count):
        length = int.from_bytes(rest[17:19], "big")
        secrets.append((rest[0], rest[1:17], rest[19:19 + length]))
        rest = rest[19 + length:]
    assert not rest
    return doc.decode(), secrets


def unwrap(key, envelope, tenant, version, purpose):
    """§4 and §6: a secret wrapped under `key` (a keyed envelope whose
    user AAD names tenant, version and purpose)."""
    salt, nonce = envelope[18:34], envelope[34:46]
    prk_key = hmac.new(key, b"apg-pq v1 keyed" + salt + b"\x01", hashlib.sha256).digest()
    aad = (b"apg-pq v1 wrap\0" + len(tenant).to_bytes(4, "big") + tenant + version.to_bytes(4, "big")
           + bytes([len(purpose)]) + purpose)
    return ChaCha20Poly1305(prk_key).decrypt(nonce, envelope[46:], envelope[:46] + aad)


def recovery_seed(kek, key_id, wrapped_key, kid_, wrapped_seed):
    """§6: the seed of a one-time recovery or restore key, from the file
    provider's KEK (the random key R under the KEK, the seed under R)."""
    r = unwrap(kek, wrapped_key, key_id.hex().encode(), 0, b"master data key")
    return unwrap(r, wrapped_seed, kid_.hex().encode(), 0, b"recovery key seed")


ESCROW_APPROVAL_CONTEXT = b"apg-pq escrow-approval v1"


def request_statement(request_id, request_kid, escrow_id, mdk_id, requested_at, ready_at, approvers_required):
    """§14.2: the 83 bytes the approvers of a recovery request sign."""
    return (b"\x01A" + request_id + request_kid + escrow_id + mdk_id + requested_at.to_bytes(8, "big", signed=True)
            + ready_at.to_bytes(8, "big", signed=True) + bytes([approvers_required]))


def approved_request(statement, approvals):
    """§14.2: the approved statement: statement, u8 n, n x (approver kid, signature)."""
    return statement + bytes([len(approvals)]) + b"".join(k + s for k, s in approvals)
