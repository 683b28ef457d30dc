"""``gateway.yaml``: what one gateway reads, where it keeps it, and how it reaches the central broker.

Strict: unknown keys and bad values are refused at start with the key path and the value (the password
hidden), as the central settings are. The bundle (:mod:`ingest.gateway.bundle`) writes this file from the
registry; a technician edits only the ``meters`` (which head sits on which port) and ``local_broker``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingest.gateway.frames import MeterProtocol
from ingest.tls import TlsFiles
from ingest.validation import describe_errors

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DEFAULT_BAUD: dict[MeterProtocol, int] = {"sml": 9600, "d0": 300, "dsmr": 115200}
# the rates a serial port and a read head really run at; P1 heads (dsmr) also come faster
STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_FAST_BAUDS = (230400, 460800)
# what the bundle writes where only the technician knows the value (gateway.yaml's meters)
PLACEHOLDER = "CHANGE-ME"


def check_host_ports(cls: type, value: list[str]) -> list[str]:  # noqa: ARG001  a pydantic validator
    """Every entry is ``host:port`` (a validator shared with the central settings' gateway_bundle)."""
    for entry in value:
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{entry!r} is not host:port")
    return value


class GatewayConfigError(Exception):
    """gateway.yaml cannot be used; the message names each key path and value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Central(_Section):
    brokers: list[str] = Field(
        min_length=1, description="host:port of the central broker(s), tried in turn until one answers"
    )
    username: str = Field(min_length=1)
    password: SecretStr
    client_id: str = Field(min_length=1, description="the client id the broker account is bound to")
    tls: TlsFiles | None = None  # the same files as the ingester's mqtt.tls
    keepalive_s: int = Field(30, ge=5, le=600)
    window: int = Field(1000, ge=1, le=60000, description="QoS 1 messages in flight before a PUBACK")
    window_bytes: int = Field(
        4 << 20, ge=64 << 10, description="bytes in flight before a PUBACK (large messages: bounded memory)"
    )

    _host_port = field_validator("brokers")(check_host_ports)

    def addresses(self) -> list[tuple[str, int]]:
        return [(host.strip("[]"), int(port)) for host, _, port in (b.rpartition(":") for b in self.brokers)]


class Outbox(_Section):
    directory: Path = Field(description="on the SD card or a USB stick; the service's user only")
    max_bytes: int = Field(
        2_000_000_000,
        ge=1_000_000,
        description="disk bound; when full, the oldest segment goes (counted)",
    )
    commit_interval_s: float = Field(
        1.0, gt=0, le=60, description="group commit: one fsync per interval, not per reading (SD cards)"
    )


class Meter(_Section):
    device: str = Field(description="the device name in the registry; the topic's last segment")
    port: Path = Field(description="serial device, best a stable /dev/serial/by-id/... path")
    protocol: MeterProtocol
    baud: int | None = Field(None, description="sml 9600, dsmr 115200; d0: the request's 300 (mode C)")
    d0_max_baud: int = Field(9600, description="d0: the highest rate accepted when the meter offers a switch")
    d0_interval_s: float = Field(10.0, ge=1, description="d0: seconds between readout requests")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("lower-case letters, digits, '-' and '_' only, at most 63")
        return value

    @field_validator("d0_max_baud")
    @classmethod
    def _d0_rate(cls, value: int) -> int:
        if value not in STANDARD_BAUDS:
            raise ValueError(f"not a serial rate: one of {', '.join(map(str, STANDARD_BAUDS))}")
        return value

    @field_validator("baud")
    @classmethod
    def _rate(cls, value: int | None, info: ValidationInfo) -> int | None:
        rates = STANDARD_BAUDS + _FAST_BAUDS if info.data.get("protocol") == "dsmr" else STANDARD_BAUDS
        if value is not None and value not in rates:
            raise ValueError(f"not a serial rate: one of {', '.join(map(str, rates))}")
        return value

    @property
    def line_baud(self) -> int:
        return self.baud or _DEFAULT_BAUD[self.protocol]


#: the native topics of every device profile that reaches the central side through a gateway's local
#: broker: the profiles' templates without ``lab/{gateway}/``, ``{x}`` as ``+`` (``{x:path}`` as 1 to 3 levels
#: of ``+``). Not the gateway's own
#: topics (health, sml/, dsmr/: a device publishing there would pose as the gateway or a serial meter).
#: tests/gateway/test_local_topics.py keeps this list and device_profiles/*.yaml in step.
LOCAL_DEVICE_TOPICS: tuple[str, ...] = (
    "tele/+/SENSOR",  # tasmota, tasmota-sml
    "tele/+/STATE",
    "tele/+/ENERGY",
    "stat/+/STATUS10",  # tasmota, tasmota-sml: answers to Status 10
    "shellies/+/emeter/+/power",  # shelly-gen1
    "shellies/+/emeter/+/voltage",
    "shellies/+/emeter/+/current",
    "shellies/+/emeter/+/pf",
    "shellies/+/emeter/+/total",
    "shellies/+/emeter/+/total_returned",
    "shellies/+/relay/+/power",
    "shellies/+/relay/+/energy",
    "+/status/+",  # shelly-gen2: its topic prefix (the device id unless set) of one level,
    "+/events/rpc",
    "+/+/status/+",  # two levels (shellies/plus1pm),
    "+/+/events/rpc",
    "+/+/+/status/+",  # three (home/floor1/pm); deeper prefixes: add filters in gateway.yaml
    "+/+/+/events/rpc",
    "+/sensor/+/state",  # esphome (its topic prefix: the node name)
    "+/state",  # generic-json
    "obis/+",  # obis-json
    "+/obis/+/255/value",
    "zigbee2mqtt/bridge/state",  # zigbee2mqtt
    "zigbee2mqtt/+",
    "v3/+/devices/+/up",  # ttn-v3, where a local bridge brings it
    "tasmota/discovery/+/config",  # announcements (the technicians' discovery list)
    "zigbee2mqtt/bridge/devices",
    "shellies/announce",
    "+/online",
)


def forwarder_client_id(gateway: str) -> str:
    """The local forwarder's default client id: one per gateway (a bundle writes an unguessable one)."""
    return f"reallabor-{gateway}-forwarder"


class LocalBroker(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(
        None, min_length=1, description="the forwarder's session; default reallabor-<gateway>-forwarder"
    )
    username: str | None = None
    password: SecretStr | None = None
    topics: list[str] = Field(
        default_factory=lambda: list(LOCAL_DEVICE_TOPICS),
        min_length=1,
        description="native topic filters forwarded under lab/<gateway>/",
    )

    @field_validator("topics")
    @classmethod
    def _each_filter_once(cls, value: list[str]) -> list[str]:
        # Overlapping filters are fine (each is subscribed with its own identifier and a message matching
        # several is forwarded once, ingest.gateway.local_source); the same filter twice is a typo.
        seen: set[str] = set()
        for topic_filter in value:
            if topic_filter in seen:
                raise ValueError(f"{topic_filter!r} is listed twice")
            seen.add(topic_filter)
        return value


class GatewayConfig(_Section):
    gateway: str = Field(description="the gateway's name in the registry: topics go under lab/<gateway>/")
    central: Central
    outbox: Outbox
    meters: list[Meter] = Field(default_factory=list)
    local_broker: LocalBroker | None = None
    health_interval_s: float = Field(60.0, gt=0, le=3600)
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("gateway")
    @classmethod
    def _gateway_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("lower-case letters, digits, '-' and '_' only, at most 63")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        ports = [str(m.port) for m in self.meters]
        if len(set(ports)) != len(ports):
            raise ValueError("two meters on the same port")
        devices = [m.device for m in self.meters]
        if len(set(devices)) != len(devices):
            raise ValueError("two meters with the same device name")
        return self


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and check ``gateway.yaml``; relative paths in it are relative to the file's directory."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GatewayConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise GatewayConfigError(_yaml_problem(path, exc)) from None
    if not isinstance(data, dict):
        raise GatewayConfigError(f"{path}: the top level must be a mapping")
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(describe_errors(exc))
        raise GatewayConfigError(f"invalid gateway configuration ({path}):\n  {lines}") from None
    return _relative_to(config, path.parent)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """The YAML error with the file's name, line and column (not PyYAML's "<unicode string>") and a hint."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    what = f"{context}: {problem}" if context else problem
    if "\\t" in problem or "\t" in problem:
        hint = "indent with spaces, never with tabs"
    else:
        hint = (
            "the keys of one entry line up exactly under each other (e.g. port: and protocol: under "
            "device:), each list entry starts with '- ', and every key ends with ':'"
        )
    return f"{where}: not valid YAML: {what}\n  hint: {hint}"


def _relative_to(config: GatewayConfig, base: Path) -> GatewayConfig:
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    outbox = config.outbox.model_copy(update={"directory": fix(config.outbox.directory)})
    central = config.central
    if central.tls is not None:
        tls = central.tls
        central = central.model_copy(
            update={
                "tls": tls.model_copy(
                    update={
                        "ca_file": fix(tls.ca_file),
                        "cert_file": tls.cert_file and fix(tls.cert_file),
                        "key_file": tls.key_file and fix(tls.key_file),
                    }
                )
            }
        )
    return config.model_copy(update={"outbox": outbox, "central": central})
