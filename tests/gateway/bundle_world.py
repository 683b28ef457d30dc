"""What the bundle tests share: the central broker with dynamic security and the gateways' TLS listener,
the bundle's own local Mosquitto, a TLS client, and a registry settings file for ``reallabor gateways``."""

from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import tarfile
from pathlib import Path

import yaml

from ingest.dynsec import DynsecBootstrap, write_initial_config
from ingest.localservices import LOOPBACK, LocalService, free_port, mosquitto_config
from tests.registry.mqtt_client import TestMqttClient


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA, as the bundle's ca.crt) and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def _open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _root_user() -> str:
    # as root, Mosquitto drops to user mosquitto, who cannot write our temporary directories
    return "user root\n" if os.geteuid() == 0 else ""


class CentralBroker(LocalService):
    """Mosquitto with the dynamic-security plugin: plain MQTT on ``port`` (the admin, the ingester) and
    the gateways' TLS listener on ``tls_port``, the same accounts on both (as deploy/mosquitto.conf)."""

    name = "central"

    def __init__(self, directory: Path, *, bootstrap: DynsecBootstrap) -> None:
        super().__init__(directory)
        self.tls_port = free_port()
        self.bootstrap = bootstrap
        self.cert, self.key = certificate(directory / "certs")

    def command(self) -> list[str]:
        data, dynsec = self.directory / "data", self.directory / "dynamic-security.json"
        data.mkdir(parents=True, exist_ok=True)
        if not dynsec.exists():
            write_initial_config(dynsec, self.bootstrap)
        config = mosquitto_config(port=self.port, data_dir=data, dynsec_config=dynsec)
        config += f"listener {self.tls_port} {LOOPBACK}\ncertfile {self.cert}\nkeyfile {self.key}\n"
        path = self.directory / "mosquitto.conf"
        path.write_text(config)
        return ["mosquitto", "-c", str(path)]

    def is_ready(self) -> bool:
        return _open(self.port) and _open(self.tls_port)


class BundledLocalBroker(LocalService):
    """The bundle's ``mosquitto-local.conf`` as shipped, but for the test's port and directories: the
    listener on loopback, the password and ACL files from the unpacked bundle."""

    name = "local"

    def __init__(self, directory: Path, *, bundle: Path) -> None:
        super().__init__(directory)
        self.bundle = bundle

    def command(self) -> list[str]:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        text = (self.bundle / "mosquitto-local.conf").read_text()
        for shipped, here in (
            ("listener 1883\n", f"listener {self.port} {LOOPBACK}\n"),
            ("/etc/mosquitto/reallabor/passwd", str(self.bundle / "mosquitto-passwd")),
            ("/etc/mosquitto/reallabor/acl", str(self.bundle / "mosquitto-acl")),
            ("persistence_location /var/lib/mosquitto/", f"persistence_location {data}/"),
        ):
            assert text.count(shipped) == 1, f"mosquitto-local.conf has no single {shipped!r}"
            text = text.replace(shipped, here)
        path = self.directory / "mosquitto.conf"
        path.write_text(_root_user() + text)
        return ["mosquitto", "-c", str(path)]

    def is_ready(self) -> bool:
        return _open(self.port)


def tls_client(port: int, ca_file: Path, *, username: str, password: str, client_id: str) -> TestMqttClient:
    client = TestMqttClient(port, username=username, password=password, client_id=client_id)
    client.client.tls_set(ca_certs=str(ca_file))
    return client


def tls_login(port: int, ca_file: Path, *, username: str, password: str, client_id: str) -> str:
    """The CONNACK reason of one TLS login."""
    client = tls_client(port, ca_file, username=username, password=password, client_id=client_id)
    try:
        return client.connect()
    finally:
        client.close()


def registry_settings(directory: Path, *, central: CentralBroker, ca_file: Path | None) -> Path:
    """A settings file for ``reallabor gateways ...``: the test's SQLite registry, the central broker's
    admin, and where the bundles send the gateways."""
    settings = {
        "registry": {"url": f"sqlite:///{directory / 'registry.db'}"},
        "mqtt": {"port": central.port},
        "broker_admin": {"password": central.bootstrap.admin_password},
        "gateway_bundle": {
            "brokers": [f"{LOOPBACK}:{central.tls_port}"],
            **({"ca_file": str(ca_file)} if ca_file else {}),
        },
    }
    path = directory / "settings.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def unpack(data: bytes, directory: Path) -> dict[str, int]:
    """Unpack a bundle into ``directory``; its members' modes by name."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        modes = {member.name: member.mode for member in archive.getmembers()}
        archive.extractall(directory, filter="data")
    return modes


def new_bootstrap() -> DynsecBootstrap:
    return DynsecBootstrap(
        admin_password=secrets.token_urlsafe(16), ingester_password=secrets.token_urlsafe(16)
    )
