"""The provisioning bundle of one gateway: everything its Raspberry Pi needs, as one ``.tar.gz``.

Made by ``reallabor gateways bundle NAME`` and the technician page's download button from the registry
and the settings (``gateway_bundle.brokers``, ``gateway_bundle.ca_file``). Making a bundle rotates the
gateway's broker password (:func:`ingest.registry.fleet.rotate_gateway`): the credentials exist only
inside the bundle, it is shown once, and a new bundle makes every older one useless. The archive is never
logged; written to a file, it is created with mode 0600 and never overwrites one.

Contents, in the folder ``reallabor-gateway-<name>/`` (templates in ``bundle_files/``, ``@KEY@`` filled in):

- ``gateway.yaml``: dumped from :class:`ingest.gateway.config.GatewayConfig` and checked by loading it
  back, so it cannot drift from what ``reallabor gateway run`` reads; the registry's serial meters of the
  gateway (profiles ``sml``, ``dsmr``) follow as commented entries for the technician to complete
- ``ca.crt`` when ``gateway_bundle.ca_file`` is set (else plain MQTT, said in the README)
- ``mosquitto-local.conf``, ``mosquitto-passwd`` (hashed), ``mosquitto-acl``, ``local-devices.txt``:
  the local broker for Wi-Fi and Zigbee devices, with fresh passwords
- ``reallabor-gateway.service``, ``mosquitto-reallabor.conf`` (a drop-in for Debian's unit),
  ``install.sh`` (Raspberry Pi OS bookworm) and ``README.txt`` (the five steps)

Errors: :class:`BundleError` (the registry or settings cannot give a bundle; nothing was rotated).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import os
import re
import ssl
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest import __version__
from ingest.config import GatewayBundleSettings
from ingest.dynsec import hashed_password
from ingest.gateway.config import Central, GatewayConfig, LocalBroker, Meter, Outbox
from ingest.gateway.frames import MeterProtocol
from ingest.registry.fleet import BrokerAccounts, gateway_client_id, rotate_gateway
from ingest.registry.models import Device, DeviceStatus, Gateway, GatewayStatus
from ingest.registry.passwords import generate_password
from ingest.security.audit import audit
from ingest.tls import TlsFiles
from ingest.validation import describe_errors

log = logging.getLogger(__name__)

OUTBOX_DIRECTORY = Path("/var/lib/reallabor-gateway/outbox")
FORWARDER_USER = "reallabor-forwarder"
DEVICES_USER = "devices"
CA_NAME = "ca.crt"
#: registry device profiles read by the gateway on a serial port, and the protocol they usually speak
SERIAL_PROFILES: dict[str, MeterProtocol] = {"sml": "sml", "dsmr": "dsmr"}
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")
GATEWAY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # as gateway.yaml's
GATEWAY_NAME_RULE = "letters a-z, digits, '-', '_', at most 63"


class BundleError(Exception):
    """No bundle can be made for this gateway or with these settings; the message says why."""


@dataclass(frozen=True, slots=True)
class BundleSettings:
    """What the central settings put into every bundle."""

    brokers: list[str]
    ca_pem: str | None  # None: plain MQTT
    brokers_set: bool = True  # False: the ingester's own broker address, which buildings may not reach

    @classmethod
    def load(cls, section: GatewayBundleSettings, *, mqtt_host: str, mqtt_port: int) -> BundleSettings:
        """``gateway_bundle``; without brokers, ``mqtt.host:mqtt.port`` (a lab network only)."""
        return cls(
            brokers=list(section.brokers) or [f"{mqtt_host}:{mqtt_port}"],
            ca_pem=None if section.ca_file is None else read_ca(section.ca_file),
            brokers_set=bool(section.brokers),
        )

    def warnings(self) -> list[str]:
        notes = []
        if self.ca_pem is None:
            notes.append(
                "no gateway_bundle.ca_file: the gateway speaks plain MQTT, its password readable on the "
                "way (a lab network only)"
            )
        if not self.brokers_set:
            notes.append(
                f"no gateway_bundle.brokers: the gateway is told to reach the broker at {self.brokers[0]} "
                "(mqtt.host and mqtt.port); set the address the buildings reach"
            )
        return notes


def read_ca(path: Path) -> str:
    """The CA certificate(s) as PEM text, refused when unreadable or not a certificate."""
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"gateway_bundle.ca_file {path}: cannot read it ({exc})") from exc
    if "PRIVATE KEY" in pem:
        raise BundleError(f"gateway_bundle.ca_file {path}: holds a private key; give the certificate only")
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise BundleError(f"gateway_bundle.ca_file {path}: not a PEM certificate ({exc})") from exc
    return pem


@dataclass(frozen=True, slots=True)
class Bundle:
    gateway: str
    data: bytes = field(repr=False)
    warnings: list[str]

    @property
    def filename(self) -> str:
        return f"reallabor-gateway-{self.gateway}.tar.gz"


def make_bundle(
    session: Session,
    broker: BrokerAccounts,
    gateway: Gateway,
    *,
    settings: BundleSettings,
    actor: str | None = None,
) -> Bundle:
    """Rotate ``gateway``'s broker password and pack it with everything else into a bundle.

    Everything that can refuse is checked before the rotation, so a refusal leaves the old password.
    ``actor``: who asked for it (the page's user, the CLI's OS user), for the audit line.
    """
    if gateway.status is not GatewayStatus.active:
        raise BundleError(f"gateway {gateway.name} is {gateway.status.value}: register a new one")
    meters = registry_meters(session, gateway)
    name = gateway.name
    draft = gateway_config(name, username=gateway.broker_username, password="unset", settings=settings)
    gateway_yaml(draft, meters=meters)  # refuses what would not load, before the rotation
    password = rotate_gateway(session, broker, gateway)
    config = gateway_config(name, username=gateway.broker_username, password=password, settings=settings)
    data = pack(config, meters=meters, settings=settings)
    log.info("bundle made for gateway %s (broker password rotated)", name)
    audit("gateway.bundled", gateway=name, broker_user=gateway.broker_username, actor=actor)
    return Bundle(gateway=name, data=data, warnings=settings.warnings())


def gateway_config(name: str, *, username: str, password: str, settings: BundleSettings) -> GatewayConfig:
    """The gateway's ``gateway.yaml`` as the model."""
    if not GATEWAY_NAME.match(name):
        raise BundleError(
            f"gateway {name!r}: a gateway on a Pi needs a lower-case name ({GATEWAY_NAME_RULE})"
        )
    try:
        return GatewayConfig(
            gateway=name,
            central=Central(
                brokers=settings.brokers,
                username=username,
                password=SecretStr(password),
                client_id=gateway_client_id(name),
                tls=TlsFiles(ca_file=Path(CA_NAME)) if settings.ca_pem is not None else None,
            ),
            outbox=Outbox(directory=OUTBOX_DIRECTORY),
            # no client_id: the forwarder makes an unguessable one at its first start and keeps it with the
            # outbox, so a new bundle keeps the session (ingest/gateway/local.py, docs/gateway.md)
            local_broker=LocalBroker(username=FORWARDER_USER, password=SecretStr(generate_password())),
        )
    except ValidationError as exc:
        raise BundleError(f"gateway {name}: {'; '.join(describe_errors(exc))}") from None


def registry_meters(session: Session, gateway: Gateway) -> list[Meter]:
    """The gateway's serial meters in the registry, each with a port for the technician to set."""
    devices = session.scalars(
        select(Device)
        .where(
            Device.gateway_id == gateway.id,
            Device.profile_id.in_(SERIAL_PROFILES),
            Device.status != DeviceStatus.retired,
        )
        .order_by(Device.native_id)
        .limit(200)
    )
    meters = []
    for device in devices:
        try:
            meters.append(
                Meter(
                    device=device.native_id,
                    port=Path(f"/dev/serial/by-id/CHANGE-ME-{device.native_id}"),
                    protocol=SERIAL_PROFILES[device.profile_id],
                )
            )
        except ValidationError:
            log.info("gateway %s: device %s is no serial meter name, left out", gateway.name, device.id)
    return meters


_EXAMPLE_METER = Meter(
    device="meter-1", port=Path("/dev/serial/by-id/usb-CHANGE-ME-if00-port0"), protocol="sml"
)


def gateway_yaml(config: GatewayConfig, *, meters: list[Meter]) -> str:
    """``gateway.yaml`` with its secrets, ``meters: []`` and ``meters`` commented out below; loaded back."""
    data: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
    data["central"]["password"] = config.central.password.get_secret_value()
    if config.local_broker is not None and config.local_broker.password is not None:
        data["local_broker"]["password"] = config.local_broker.password.get_secret_value()
    data.pop("meters")
    examples = [m.model_dump(mode="json", exclude_defaults=True) for m in meters or [_EXAMPLE_METER]]
    source = "the registry's serial meters of this gateway" if meters else "an example"
    text = "\n".join(
        [
            f"# gateway.yaml of gateway {config.gateway}, made by the registry (reallabor gateways bundle).",
            "# central.password is this gateway's broker password: a new bundle replaces it.",
            "# Edit only the meters at the end (README.txt, step 2) and, if need be, local_broker.",
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(),
            "",
            "# Serial meters: replace 'meters: []' with the entries below without their '# ', each with the",
            "# port of its read head (ls -l /dev/serial/by-id/). protocol: sml, d0 (IEC 62056-21, asked",
            f"# every 10 s) or dsmr (P1). Below: {source}.",
            "meters: []",
            *_commented(yaml.safe_dump({"meters": examples}, sort_keys=False).splitlines()),
            "",
        ]
    )
    loaded = GatewayConfig.model_validate(yaml.safe_load(text))
    if loaded != config.model_copy(update={"meters": []}):
        raise BundleError("gateway.yaml does not load back as written")  # a bug, never a technician's
    return text


def _commented(lines: Iterable[str]) -> Iterator[str]:
    return (f"# {line}" for line in lines)


def uncommented_meters(text: str) -> str:
    """``gateway.yaml`` with its commented meters taken in (the technician's step 2; for tests)."""
    head, _, tail = text.partition("\nmeters: []\n")
    lines = [line.removeprefix("# ") for line in tail.splitlines() if line.startswith("# ")]
    return head + "\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the archive


def _template(name: str, values: dict[str, str]) -> str:
    text = (resources.files("ingest.gateway") / "bundle_files" / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = _PLACEHOLDER.search(text)
    if left is not None:
        raise BundleError(f"bundle_files/{name}: {left.group()} not filled in")  # a bug
    return text


def _passwd_line(username: str, password: str) -> str:
    """A line of Mosquitto's password file (``$7$``: salted PBKDF2-SHA512, as mosquitto_passwd writes)."""
    stored = hashed_password(password)
    return f"{username}:$7${stored['iterations']}${stored['salt']}${stored['password']}"


def _local_files(config: GatewayConfig) -> dict[str, tuple[str, int]]:
    local = config.local_broker
    assert local is not None
    assert local.password is not None
    assert local.username is not None
    devices_password = generate_password(nbytes=12)  # typed into device web pages by hand
    passwd = _passwd_line(local.username, local.password.get_secret_value())
    acl = "\n".join(
        [
            "# The local broker's accounts (README.txt): the gateway service reads, the devices write.",
            f"user {local.username}",
            "topic read #",
            "",
            f"user {DEVICES_USER}",
            "topic readwrite #",
            "",
        ]
    )
    devices = "\n".join(
        [
            f"The Wi-Fi and Zigbee devices of gateway {config.gateway} log in to its local broker with:",
            "",
            "  server    the Pi's address in the building's network, port 1883",
            f"  user      {DEVICES_USER}",
            f"  password  {devices_password}",
            "",
            "A gateway installed again with a newer bundle keeps the devices' password of its first",
            "installation: this file applies to the first installation only.",
            "",
        ]
    )
    return {
        "mosquitto-passwd": (f"{passwd}\n{_passwd_line(DEVICES_USER, devices_password)}\n", 0o600),
        "mosquitto-acl": (acl, 0o644),
        "local-devices.txt": (devices, 0o600),
    }


#: what the gateway service imports besides the standard library (the Pi installs the wheel without the
#: central side's dependencies: pandas, pvlib, typst ... would cost it minutes, disk and no benefit);
#: tests/gateway/test_gateway_footprint.py keeps this list and the service's imports in step
GATEWAY_REQUIREMENTS = ("pydantic>=2.7,<3", "pydantic-settings[yaml]>=2.4,<3", "pyyaml>=6")


def pack(config: GatewayConfig, *, meters: list[Meter], settings: BundleSettings) -> bytes:
    """The ``.tar.gz`` of the bundle, every member owned by root with its own mode."""
    now = dt.datetime.now(dt.UTC)
    if settings.ca_pem is not None:
        tls = f"TLS: its certificate is checked against {CA_NAME} in this folder."
    else:
        tls = (
            "WARNING: no CA certificate in the registry: the gateway speaks plain MQTT and its password\n"
            "travels readable. Use this only in a lab network, never over the internet."
        )
    values = {
        "GATEWAY": config.gateway,
        "VERSION": __version__,
        "MADE": now.strftime("%Y-%m-%d %H:%M UTC"),
        "BROKERS": ", ".join(config.central.brokers),
        "TLS": tls,
        "FORWARDER_USER": FORWARDER_USER,
    }
    files: dict[str, tuple[str, int]] = {"gateway.yaml": (gateway_yaml(config, meters=meters), 0o600)}
    if settings.ca_pem is not None:
        files[CA_NAME] = (settings.ca_pem, 0o644)
    files.update(_local_files(config))
    files["requirements-gateway.txt"] = ("".join(f"{r}\n" for r in GATEWAY_REQUIREMENTS), 0o644)
    for name, mode in (
        ("mosquitto-local.conf", 0o644),
        ("reallabor-gateway.service", 0o644),
        ("mosquitto-reallabor.conf", 0o644),
        ("install.sh", 0o755),
        ("README.txt", 0o644),
    ):
        files[name] = (_template(name, values), mode)
    folder = f"reallabor-gateway-{config.gateway}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        _add_dir(archive, folder, now)
        for name, (text, mode) in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, int(now.timestamp())
            info.uname = info.gname = "root"
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _add_dir(archive: tarfile.TarFile, name: str, now: dt.datetime) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, int(now.timestamp())
    info.uname = info.gname = "root"
    archive.addfile(info)


@contextlib.contextmanager
def new_bundle_file(path: Path) -> Iterator[BinaryIO]:
    """A new file for a bundle, mode 0600, opened before the password is rotated; never an existing one
    (FileExistsError). Removed again when the block fails."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
