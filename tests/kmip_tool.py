#!/usr/bin/env python3
"""A real KMIP server for the kmip provider's tests: PyKMIP's server on a
loopback port, with certificates made here, and a client to make keys.

  kmip_tool.py certs DIR           a CA, a server certificate (127.0.0.1,
                                   localhost) and two client certificates:
                                   client (CN apg-pq) and other (CN intruder)
  kmip_tool.py serve DIR PORT      runs PyKMIP's server (foreground)
  kmip_tool.py create DIR PORT NAME [CLIENT]
                                   an active AES-256 key named NAME that
                                   CLIENT (default client) owns; prints its
                                   unique identifier
  kmip_tool.py register DIR PORT NAME HEX
                                   an active AES-256 key of the given value
                                   (docs/FORMAT.md §6.5's vector KEK)
  kmip_tool.py revoke DIR PORT UID   revokes (deactivates) the key
  kmip_tool.py destroy DIR PORT UID  revokes and destroys it

PyKMIP's server checks that a client certificate allows client
authentication, and lets only the client that made a key use it.
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _issue(ca_key, ca_cert, cn, usage, sans=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def certs(d):
    os.makedirs(d, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (x509.CertificateBuilder().subject_name(_name("apg-pq test CA")).issuer_name(_name("apg-pq test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(d, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    for name, cn, usage, san in [("server", "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, sans),
                                 ("client", "apg-pq", ExtendedKeyUsageOID.CLIENT_AUTH, None),
                                 ("other", "intruder", ExtendedKeyUsageOID.CLIENT_AUTH, None)]:
        key, cert = _issue(ca_key, ca, cn, usage, san)
        _write_key(os.path.join(d, name + ".key"), key)
        with open(os.path.join(d, name + ".pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(d, "policy.json"), "w") as f:
        f.write("{}")


def serve(d, port):
    from kmip.services.server import KmipServer
    server = KmipServer(
        hostname="127.0.0.1", port=int(port),
        certificate_path=os.path.join(d, "server.pem"), key_path=os.path.join(d, "server.key"),
        ca_path=os.path.join(d, "ca.pem"), auth_suite="TLS1.2",
        config_path=None, log_path=os.path.join(d, "server.log"),
        policy_path=d, enable_tls_client_auth=True,
        logging_level="INFO", database_path=os.path.join(d, "kmip.db"))
    with server:
        server.serve()


def _client(d, port, who="client"):
    from kmip.pie.client import ProxyKmipClient
    return ProxyKmipClient(hostname="127.0.0.1", port=int(port), cert=os.path.join(d, who + ".pem"),
                           key=os.path.join(d, who + ".key"), ca=os.path.join(d, "ca.pem"), config_file=os.devnull)


def main(argv):
    cmd, d = argv[1], argv[2]
    if cmd == "certs":
        return certs(d)
    if cmd == "serve":
        return serve(d, argv[3])
    from kmip import enums
    port = argv[3]
    with _client(d, port, argv[5] if cmd == "create" and len(argv) > 5 else "client") as c:
        if cmd == "create":
            uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=argv[4],
                           cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                                     enums.CryptographicUsageMask.DECRYPT])
            c.activate(uid)
            print(uid)
        elif cmd == "register":
            from kmip.pie import objects
            key = objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, bytes.fromhex(argv[5]),
                                       masks=[enums.CryptographicUsageMask.ENCRYPT,
                                              enums.CryptographicUsageMask.DECRYPT], name=argv[4])
            uid = c.register(key)
            c.activate(uid)
            print(uid)
        elif cmd == "revoke":
            c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, argv[4])
        elif cmd == "destroy":
            # An active key must be revoked first; a revoked one may not be again.
            try:
                c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, argv[4])
            except Exception:
                pass
            c.destroy(argv[4])
        else:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
