"""Certificates for TLS tests, made with ``cryptography`` (no openssl command), and a Mosquitto with a TLS
listener beside its plain one.

EC P-256 keys (milliseconds each), valid from an hour ago for two days, unencrypted PEM files.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingest.dynsec import DynsecBootstrap
from ingest.localservices import LOOPBACK, Mosquitto, free_port

SERVER_NAMES = (LOOPBACK, "localhost")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority(Issued):
    name: str


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Issued(cert_path, key_path)


def _builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def make_ca(directory: Path, name: str) -> Authority:
    """A self-signed CA: ``<name>.crt`` and ``<name>.key`` in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    issued = _write(directory, name, cert, key)
    return Authority(issued.cert, issued.key, name)


def _sign(ca: Authority, builder: x509.CertificateBuilder) -> x509.Certificate:
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def server_cert(
    ca: Authority, directory: Path, name: str = "server", *, hosts: tuple[str, ...] = SERVER_NAMES
) -> Issued:
    """A broker's certificate from ``ca`` for ``hosts`` (subject alternative names: IP addresses as such)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder = (
        _builder(hosts[0], ca.name, key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return _write(directory, name, _sign(ca, builder), key)


def client_cert(ca: Authority, directory: Path, name: str = "client") -> Issued:
    """A client certificate from ``ca`` with common name ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(name, ca.name, key).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    return _write(directory, name, _sign(ca, builder), key)


class TlsMosquitto(Mosquitto):
    """The project's broker (plain listener on ``port``, for publishers) with a TLS listener on
    ``tls_port``; ``client_ca``: that listener requires a client certificate from this CA; ``dynsec``: the
    dynamic-security plugin with these accounts (on both listeners)."""

    def __init__(
        self,
        directory: Path,
        *,
        server: Issued,
        client_ca: Path | None = None,
        dynsec: DynsecBootstrap | None = None,
    ) -> None:
        super().__init__(directory, dynsec=dynsec)
        self.server = server
        self.client_ca = client_ca
        self.tls_port = free_port()

    def command(self) -> list[str]:
        command = super().command()
        config = self.directory / "mosquitto.conf"
        tls = f"listener {self.tls_port} {LOOPBACK}\ncertfile {self.server.cert}\nkeyfile {self.server.key}\n"
        if self.client_ca is not None:
            tls += f"cafile {self.client_ca}\nrequire_certificate true\n"
        config.write_text(config.read_text() + tls)
        return command

    def is_ready(self) -> bool:
        if not super().is_ready():
            return False
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex((LOOPBACK, self.tls_port)) == 0
