#!/usr/bin/env python3
"""Offline verification of apg_pqcrypto's audit trail and configuration store.

    verify_audit.py export --port P [--host H] [--user U] [--dbname D] [--node-group G] --tenant T --out FILE
    verify_audit.py verify FILE
    verify_audit.py check --port P ... --tenant T      (export to a temporary file, then verify)

`export` reads, with psql, what an auditor needs (a pq_admin member may run
it): the tenant's configuration records and key versions' verifying keys,
the whole audit log, the checkpoints and the audit verifying keys, into
one JSON file. `verify` then needs no database and no apg_pqcrypto code: it
rebuilds every canonical encoding from docs/FORMAT.md section 11
(tests/pq_audit_format.py), and checks every hash, chain and signature with
Python's `cryptography` package (ML-DSA-65 and ML-DSA-87 with their FIPS
204 context strings, Ed25519), the `slhdsa` package (SLH-DSA-SHA2-128s,
FIPS 205, for audit keys of the slh-dsa+ml-dsa-65 suite) and hashlib. It
prints the first problem and exits 1, or prints what it checked and exits 0.
Each audit key's `algorithm` says which signatures its checkpoints carry:
every one of them must verify.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey, MLDSA87PublicKey
from slhdsa import PublicKey as SlhPublicKey, sha2_128s as SLH_DSA_SHA2_128S

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pq_audit_format as fmt  # noqa: E402

MICROS = "(extract(epoch FROM {0}) * 1000000)::bigint"

EXPORT_SQL = """
SELECT json_build_object(
  'tenant', :'tenant',
  'key_versions', (SELECT coalesce(json_agg(json_build_object(
        'version', version, 'verifying_key', encode(verifying_key, 'hex')) ORDER BY version), '[]')
      FROM pq.tenant_keys WHERE tenant = :'tenant'),
  'config_records', (SELECT coalesce(json_agg(json_build_object(
        'key', key, 'version', version, 'op', op, 'envelope', encode(envelope, 'hex'), 'user_id', user_id,
        'ts_micros', {ts}, 'old_hash', encode(old_hash, 'hex'), 'new_hash', encode(new_hash, 'hex'),
        'prev_hash', encode(prev_hash, 'hex'), 'record_hash', encode(record_hash, 'hex'),
        'signature', encode(signature, 'hex'), 'signer', signer,
        'signer_public_key', encode(signer_public_key, 'hex'),
        'client_signature', encode(client_signature, 'hex'),
        'client_signature_format', client_signature_format) ORDER BY key, version), '[]')
      FROM pq.config_records WHERE tenant = :'tenant'),
  'audit_log', (SELECT coalesce(json_agg(json_build_object(
        'id', id, 'ts_micros', {ts}, 'event', event, 'tenant', tenant, 'actor', actor,
        'details', details::text, 'prev_hash', encode(prev_hash, 'hex'), 'row_hash', encode(row_hash, 'hex'))
        ORDER BY id), '[]') FROM pq.audit_log),
  'checkpoints', (SELECT coalesce(json_agg(json_build_object(
        'id', id, 'head_id', head_id, 'head_hash', encode(head_hash, 'hex'), 'ts_micros', {ts},
        'key_kid', encode(key_kid, 'hex'), 'ml_dsa_signature', encode(ml_dsa_signature, 'hex'),
        'ed25519_signature', encode(ed25519_signature, 'hex'),
        -- to_jsonb: the column is 0.11.0's; its bytea is text '\\x' followed by hex.
        'slh_dsa_signature', substr(to_jsonb(c)->>'slh_dsa_signature', 3))
        ORDER BY id), '[]') FROM pq.audit_checkpoints c
      -- to_jsonb again: node_group is 0.11.0's (the Citus group whose chain a checkpoint signs).
      WHERE coalesce((to_jsonb(c)->>'node_group')::int, 0) = :node_group),
  'audit_keys', (SELECT coalesce(json_agg(json_build_object(
        'kid', encode(kid, 'hex'), 'ml_dsa_public_key', encode(ml_dsa_public_key, 'hex'),
        'ed25519_public_key', encode(ed25519_public_key, 'hex'),
        'algorithm', coalesce(to_jsonb(k)->>'algorithm', 'ml-dsa-65+ed25519'),
        'slh_dsa_public_key', substr(to_jsonb(k)->>'slh_dsa_public_key', 3))), '[]') FROM pq.audit_verifying_keys k))
""".format(ts=MICROS.format("ts"))

CONFIG_EVENTS = ("config_set", "config_set_sealed", "config_deleted")


class Problem(Exception):
    pass


def export(args, out):
    cmd = ["psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"tenant={args.tenant}",
           "-v", f"node_group={int(args.node_group)}",
           "-h", args.host, "-p", str(args.port), "-U", args.user, "-d", args.dbname]
    result = subprocess.run(cmd, input=EXPORT_SQL, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"export failed: {result.stderr.strip()}")
    data = json.loads(result.stdout)
    with open(out, "w") as f:
        json.dump(data, f)
    print(f"exported {len(data['audit_log'])} audit rows, {len(data['checkpoints'])} checkpoints, "
          f"{len(data['config_records'])} config records of tenant {args.tenant!r} to {out}")


def unhex(value):
    return None if value is None else bytes.fromhex(value)


def ml_dsa_valid(public_key, signature, message, context):
    """FIPS 204 verification; the key's length names the set (1952: ML-DSA-65, 2592: ML-DSA-87)."""
    cls = MLDSA87PublicKey if len(public_key) == 2592 else MLDSA65PublicKey
    try:
        cls.from_public_bytes(public_key).verify(signature, message, context)
        return True
    except (InvalidSignature, ValueError):
        return False


def slh_dsa_valid(public_key, signature, message, context):
    """FIPS 205 pure SLH-DSA-SHA2-128s verification with a context string."""
    if public_key is None or signature is None or len(public_key) != 32:
        return False
    try:
        return SlhPublicKey((public_key[:16], public_key[16:]), SLH_DSA_SHA2_128S).verify_pure(message, signature, context)
    except Exception:  # a malformed signature is simply not valid
        return False


def verify_audit_log(rows):
    """Ids 1..n without gaps, each row chained to the previous one, each hash
    recomputed. Returns {id: row_hash}."""
    prev, hashes = fmt.ZERO, {}
    for expected, row in enumerate(rows, start=1):
        if row["id"] != expected:
            raise Problem(f"audit row {expected} is missing")
        if unhex(row["prev_hash"]) != prev:
            raise Problem(f"audit row {row['id']} does not chain to row {row['id'] - 1}")
        encoding = fmt.audit_row(row["id"], row["ts_micros"], row["event"], row["tenant"], row["actor"], row["details"])
        digest = fmt.audit_row_hash(prev, encoding)
        if unhex(row["row_hash"]) != digest:
            raise Problem(f"audit row {row['id']} was changed: its hash does not match its contents")
        hashes[row["id"]] = prev = digest
    return hashes


# §11.5: the audit suites, (ML-DSA public key length, hedge).
AUDIT_SUITES = {"ml-dsa-65+ed25519": (1952, "ed25519"), "ml-dsa-87+ed25519": (2592, "ed25519"),
                "slh-dsa+ml-dsa-65": (1952, "slh-dsa")}


def verify_checkpoints(checkpoints, keys, hashes):
    by_kid = {}
    for k in keys:
        ml_dsa = unhex(k["ml_dsa_public_key"])
        if k["algorithm"] not in AUDIT_SUITES or len(ml_dsa) != AUDIT_SUITES[k["algorithm"]][0]:
            raise Problem(f"audit key {k['kid']}: unknown algorithm {k['algorithm']!r} or a key of the wrong length")
        if hashlib.sha256(ml_dsa).digest()[:16].hex() != k["kid"]:
            raise Problem(f"audit key {k['kid']}: the kid is not the hash of its ML-DSA key")
        by_kid[k["kid"]] = (ml_dsa, AUDIT_SUITES[k["algorithm"]][1], unhex(k["ed25519_public_key"]), unhex(k["slh_dsa_public_key"]))
    head = max(hashes) if hashes else 0
    for c in checkpoints:
        if c["key_kid"] not in by_kid:
            raise Problem(f"checkpoint {c['id']} names an unknown audit key")
        ml_dsa, hedge, ed, slh = by_kid[c["key_kid"]]
        encoding = fmt.checkpoint(c["head_id"], unhex(c["head_hash"]), c["ts_micros"])
        if not ml_dsa_valid(ml_dsa, unhex(c["ml_dsa_signature"]), encoding, fmt.CHECKPOINT_CONTEXT):
            raise Problem(f"checkpoint {c['id']}: the ML-DSA signature does not verify")
        if hedge == "slh-dsa":
            if c["ed25519_signature"] is not None or not slh_dsa_valid(slh, unhex(c["slh_dsa_signature"]), encoding, fmt.CHECKPOINT_CONTEXT):
                raise Problem(f"checkpoint {c['id']}: the SLH-DSA signature does not verify")
        else:
            try:
                if ed is None or c["ed25519_signature"] is None or c["slh_dsa_signature"] is not None:
                    raise InvalidSignature()
                Ed25519PublicKey.from_public_bytes(ed).verify(unhex(c["ed25519_signature"]), fmt.CHECKPOINT_CONTEXT + encoding)
            except InvalidSignature:
                raise Problem(f"checkpoint {c['id']}: the Ed25519 signature does not verify")
        if c["head_id"] > head:
            raise Problem(f"audit rows {head + 1} to {c['head_id']} were removed: checkpoint {c['id']} covers them")
        signed = fmt.ZERO if c["head_id"] == 0 else hashes.get(c["head_id"])
        if signed != unhex(c["head_hash"]):
            raise Problem(f"audit row {c['head_id']} differs from what checkpoint {c['id']} signed")


def verify_config(tenant, records, versions, audit_rows):
    keys = {}
    for v in versions:
        vk = unhex(v["verifying_key"])
        keys[hashlib.sha256(vk).digest()[:16]] = vk
    previous = None
    for r in records:
        name = f"config record {r['key']!r} version {r['version']}"
        same = previous if previous and previous["key"] == r["key"] else None
        if r["version"] != (same["version"] + 1 if same else 1):
            raise Problem(f"{name}: version {(same['version'] + 1) if same else 1} is missing")
        prev_hash, old_hash, new_hash = unhex(r["prev_hash"]), unhex(r["old_hash"]), unhex(r["new_hash"])
        if prev_hash != (unhex(same["record_hash"]) if same else None):
            raise Problem(f"{name}: does not chain to the previous record")
        if old_hash != (unhex(same["new_hash"]) if same else None):
            raise Problem(f"{name}: old_hash is not the previous value's hash")
        envelope = unhex(r["envelope"])
        if new_hash != (None if envelope is None else hashlib.sha256(envelope).digest()):
            raise Problem(f"{name}: the stored value does not match new_hash")
        encoding = fmt.config_change(fmt.OPS[r["op"]], tenant, r["key"], r["version"], old_hash, new_hash,
                                     r["user_id"], r["ts_micros"], prev_hash)
        if hashlib.sha256(encoding).digest() != unhex(r["record_hash"]):
            raise Problem(f"{name}: record_hash does not match the record")
        kid, signature = fmt.signature_envelope_parts(unhex(r["signature"]))
        if kid not in keys or not ml_dsa_valid(keys[kid], signature, encoding, fmt.CONFIG_CHANGE_CONTEXT):
            raise Problem(f"{name}: the tenant's signature does not verify")
        if r["op"] == "set_sealed":
            message, context = fmt.sealed_value_signed(r.get("client_signature_format") or 1, tenant, r["key"],
                                                      envelope, prev_hash)
            if not ml_dsa_valid(unhex(r["signer_public_key"]), unhex(r["client_signature"]), message, context):
                raise Problem(f"{name}: the client's signature does not verify")
        previous = r
    # Every change is in the audit trail with its record hash, and nothing more.
    audited = {}
    for row in audit_rows:
        if row["tenant"] == tenant and row["event"] in CONFIG_EVENTS:
            d = json.loads(row["details"])
            audited[(d["key"], d["version"])] = d["record_hash"]
    stored = {(r["key"], r["version"]): r["record_hash"] for r in records}
    for k in sorted(set(audited) | set(stored)):
        if k not in stored:
            raise Problem(f"config record {k[0]!r} version {k[1]}: named by the audit trail, missing")
        if k not in audited:
            raise Problem(f"config record {k[0]!r} version {k[1]}: not in the audit trail")
        if audited[k] != stored[k]:
            raise Problem(f"config record {k[0]!r} version {k[1]}: differs from the audit trail")


def verify(path):
    data = json.load(open(path))
    try:
        hashes = verify_audit_log(data["audit_log"])
        verify_checkpoints(data["checkpoints"], data["audit_keys"], hashes)
        verify_config(data["tenant"], data["config_records"], data["key_versions"], data["audit_log"])
    except Problem as p:
        print(f"FAILED: {p}")
        return 1
    print(f"verified: {len(data['audit_log'])} audit rows, {len(data['checkpoints'])} checkpoints "
          f"(ML-DSA-65 and Ed25519), {len(data['config_records'])} config records of tenant {data['tenant']!r}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("export", "check"):
        p = sub.add_parser(name)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=5432)
        p.add_argument("--user", default="postgres")
        p.add_argument("--dbname", default="postgres")
        p.add_argument("--tenant", required=True)
        # On Citus, export from each node with its group (pg_dist_local_group):
        # its chain, and the checkpoints the coordinator signed for it.
        p.add_argument("--node-group", type=int, default=0)
        if name == "export":
            p.add_argument("--out", required=True)
    sub.add_parser("verify").add_argument("file")
    args = parser.parse_args()
    if args.command == "export":
        export(args, args.out)
        return 0
    if args.command == "verify":
        return verify(args.file)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "export.json")
        export(args, path)
        return verify(path)


if __name__ == "__main__":
    sys.exit(main())
