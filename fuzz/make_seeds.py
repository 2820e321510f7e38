#!/usr/bin/env python3
"""Seeds for the fuzz targets that open streams, bundles and escrow records:
valid inputs sealed to the targets' fixed ML-KEM-768 key (seed 0x42 * 64),
made from FORMAT.md's text by tests/pq_client_format.py. Run with the test
venv's Python (kyber-py): /var/tmp/apg_pqcrypto-venv/bin/python fuzz/make_seeds.py"""
import json, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import pq_client_format as c
from kyber_py.ml_kem import ML_KEM_768
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
ek, _ = ML_KEM_768._keygen_internal(b"\x42" * 32, b"\x42" * 32)
def put(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)
put("open_stream", "small", c.seal_stream(ek, bytes(range(256)) * 12, chunk_size=1024))
put("open_stream", "empty", c.seal_stream(ek, b"", chunk_size=1024))
doc = json.dumps({"format": 1, "backup_id": "00" * 16, "created": 0, "tenants": []}).encode()
secret = bytes([1]) + b"\x11" * 16 + (64).to_bytes(2, "big") + b"\x22" * 64
payload = b"\x01" + len(doc).to_bytes(4, "big") + doc + (1).to_bytes(4, "big") + secret
header = b"\x01D" + c.kid(ek) + b"\x33" * 16 + (1767225600).to_bytes(8, "big")
put("open_bundle", "bundle", header + c.seal(ek, payload, b"apg-pq v1 key backup" + header))
put("open_bundle", "payload", payload)
header = b"\x01E" + c.kid(ek) + b"\x44" * 16 + bytes([1, 2, 3]) + b"\x55" * 16
put("escrow_records", "share", header + c.seal(ek, b"\x66" * 32, b"apg-pq v1 escrow share" + header))
statement = c.request_statement(b"\x01" * 16, b"\x02" * 16, b"\x03" * 16, b"\x04" * 16, 1, 2, 1)
put("escrow_records", "statement", statement)
put("escrow_records", "approved", c.approved_request(statement, [(b"\x05" * 16, b"\x06" * 3309)]))
