"""A receiver behind TLS with a certificate made for the test, for HTTPS delivery tests."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.receiver import Receiver


def self_signed_certificate(directory, dns_names: tuple[str, ...] = ("localhost",),
                            addresses: tuple[str, ...] = ("127.0.0.1",)) -> tuple[str, str]:
    """A certificate for `addresses` and `dns_names` (127.0.0.1 and localhost unless
    told) signed by its own key, made now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (*addresses, *dns_names)[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
            + [x509.DNSName(dns_name) for dns_name in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "receiver.pem", directory / "receiver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_receiver(tmp_path):
    """The test receiver behind TLS with a self-signed certificate; a client that does not
    trust it fails the handshake and its request never reaches the receiver."""
    cert_path, key_path = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    receiver = Receiver()
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.start()
    receiver.cert_path = cert_path
    yield receiver
    receiver.stop()
