"""docs/FORMAT.md section 11, written from the text alone: the encodings of
the configuration store and the audit trail, shared by tests/verify_kat.py
(the known-answer vectors) and tests/verify_audit.py (an exported database).
No code of apg_pqcrypto is used."""
import hashlib

CONFIG_CHANGE_CONTEXT = b"apg-pq config-change v1"
CONFIG_SEALED_CONTEXT = b"apg-pq config-sealed v1"
CONFIG_SEALED_CONTEXT_V2 = b"apg-pq config-sealed v2"
CHECKPOINT_CONTEXT = b"apg-pq audit-checkpoint v1"
AUDIT_ROW_LABEL = b"apg-pq audit v1"
CONFIG_AAD_LABEL = b"apg-pq config v1"
OPS = {"set": 1, "set_sealed": 2, "delete": 3}
ZERO = b"\0" * 32


def s(text):
    """str(s) = u32be(len) || UTF-8 bytes."""
    raw = text.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def opt_s(text):
    return b"\0" if text is None else b"\1" + s(text)


def h(value):
    """hash(x): SHA-256, or 32 zero bytes for no value."""
    return ZERO if value is None else hashlib.sha256(value).digest()


def config_aad(tenant, key):
    return CONFIG_AAD_LABEL + s(tenant) + s(key)


def config_change(op, tenant, key, version, old_hash, new_hash, user, ts_micros, prev_hash):
    """The signed message of a change; hashes are 32 bytes or None."""
    return (bytes([op]) + s(tenant) + s(key) + version.to_bytes(8, "big")
            + (old_hash or ZERO) + (new_hash or ZERO) + s(user)
            + ts_micros.to_bytes(8, "big", signed=True) + (prev_hash or ZERO))


def sealed_value_message(tenant, key, envelope):
    return s(tenant) + s(key) + hashlib.sha256(envelope).digest()


def sealed_value_signed(fmt_version, tenant, key, envelope, replaces):
    """(message, context) of a client's signature over a sealed value: format
    1 (records before 0.8.0), or 2, which appends the record_hash of the
    record the value replaces (32 zero bytes for none)."""
    message = sealed_value_message(tenant, key, envelope)
    if fmt_version == 1:
        return message, CONFIG_SEALED_CONTEXT
    if fmt_version == 2:
        return message + (replaces or ZERO), CONFIG_SEALED_CONTEXT_V2
    raise ValueError(f"unknown sealed value format {fmt_version}")


def audit_row(row_id, ts_micros, event, tenant, actor, details):
    return (row_id.to_bytes(8, "big") + ts_micros.to_bytes(8, "big", signed=True)
            + s(event) + opt_s(tenant) + s(actor) + s(details))


def audit_row_hash(prev_hash, encoding):
    return hashlib.sha256(AUDIT_ROW_LABEL + prev_hash + encoding).digest()


def checkpoint(head_id, head_hash, ts_micros):
    return head_id.to_bytes(8, "big") + head_hash + ts_micros.to_bytes(8, "big", signed=True)


def signature_envelope_parts(envelope):
    """(kid, signature) of a v1 signature envelope: 0x01 'G' kid[16] sig[3309]."""
    if len(envelope) != 2 + 16 + 3309 or envelope[:2] != b"\x01G":
        raise ValueError("not a v1 signature envelope")
    return envelope[2:18], envelope[18:]
