"""Settings: one model, read from a YAML file and ``REALLABOR_*`` environment variables (env wins).

Nested sections use ``__`` in the environment: ``REALLABOR_INFLUX__URL=http://127.0.0.1:8086``.
Unknown keys and bad values are refused with the key path and the value (:class:`ConfigError`).

Secrets (rules in :mod:`ingest.security.strength`): a placeholder (``changeme``, ``<your secret>``,
``${TOKEN}``, ``xxxx``...), surrounding whitespace and characters outside printable ASCII are refused in
every mode. ``mode: development`` (the demo, ``reallabor up``) may leave them unset: the API then signs
with a random key of its own that dies with the process. ``mode: production`` refuses a weak one wherever
it is given: ``api.secret_key`` 32 random bytes (43 URL-safe base64 characters or 64 hex digits), the others
16 characters; no placeholder word inside, no repetition, run or too few different characters. Each
long-running part requires its own secrets at its start (:meth:`Settings.check_production`: the ingester
its broker account and InfluxDB write credential, the API its session key and InfluxDB reader, the energy
ledger its InfluxDB user), so no part has to hold another's (docker-compose.yml).
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ingest.gateway.config import check_host_ports
from ingest.opendata.settings import OpenDataSettings
from ingest.security.strength import (
    API_KEY_CHARS,
    API_KEY_HEX_DIGITS,
    MIN_SECRET_CHARS,
    PLACEHOLDER_SECRETS,
    is_placeholder,
    placeholder_problem,
    weakness,
)
from ingest.tls import TlsError, TlsFiles, ca_context, check_certificate, load_client_certificate
from ingest.validation import describe_errors

__all__ = ["PLACEHOLDER_SECRETS", "ConfigError", "Settings", "is_placeholder", "load_settings"]

#: the long-running parts, each started with its own settings (docker-compose.yml)
Component = Literal["ingest", "api", "energy"]
COMPONENTS: tuple[Component, ...] = ("ingest", "api", "energy")

DEFAULT_SHARED_GROUP = "reallabor-ingest"  # the $share group of several instances without mqtt.shared_group
MAX_INSTANCES = 1000
INSTANCE_DIR = "instance-{instance}"  # an instance's state under ingest.state_dir
CLIENT_ID_MAX_CHARS = 64  # mqtt.client_id's bound, for the instances' ids as well

MAKE_API_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
MAKE_PASSWORD = 'python -c "import secrets; print(secrets.token_urlsafe(16))"'


class ConfigError(Exception):
    """Configuration that cannot be used; the message names each key path and value."""


def instance_name(base: str, instance: int) -> str:
    """``base`` as instance ``instance`` of several has it: its client id, its broker account."""
    return f"{base}-{instance}"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttTls(TlsFiles):
    """``mqtt.tls``: every file is loaded at start, so a bad one is refused with its key, not at connect."""

    server_name: str | None = Field(
        None,
        min_length=1,
        description="the name the broker's certificate must carry (default: the host of each address)",
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_loads(cls, value: Path) -> Path:
        try:
            ca_context(value)
        except TlsError as exc:
            raise ValueError(exc.problem) from None
        return value

    @field_validator("cert_file")
    @classmethod
    def _certificate_loads(cls, value: Path | None) -> Path | None:
        try:
            if value is not None:
                check_certificate(value)
        except TlsError as exc:
            raise ValueError(exc.problem) from None
        return value

    @field_validator("key_file")
    @classmethod
    def _key_loads(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        cert_file = info.data.get("cert_file")  # absent when it was refused itself
        if value is not None and cert_file is not None:
            try:
                load_client_certificate(ssl.create_default_context(), cert_file, value)
            except TlsError as exc:
                raise ValueError(exc.problem) from None
        return value


class MqttSettings(Section):
    host: str = Field("127.0.0.1", description="broker host (or brokers)")
    port: int = Field(1883, ge=1, le=65535)
    brokers: list[str] = Field(
        default_factory=list,
        description="host:port of the broker's nodes (a cluster, a managed broker), tried in turn until one "
        "answers; instead of host and port, which then name the first",
    )
    tls: MqttTls | None = Field(None, description="TLS to the broker (None: plain MQTT, a lab network only)")
    client_id: str = Field(
        "reallabor-ingest",
        min_length=1,
        max_length=CLIENT_ID_MAX_CHARS,
        description="fixed id: the broker keeps its session (several instances: <client_id>-<K>)",
    )
    username: str | None = None
    password: SecretStr | None = None
    topic_prefix: str = Field("", description="prepended to every profile topic, e.g. 'reallabor/'")
    shared_group: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[^/+#]+$",
        description="subscribe as $share/<group>/... to spread load (with ingest.instances > 1: default "
        "reallabor-ingest)",
    )
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(30, ge=5, le=3600)
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, description="how long the broker keeps our session and its queued messages"
    )
    # at most half the packet ids: the quarantine releases an earlier process' identities at its first new
    # message, exact while 2 × receive_maximum ids < 65,535 (ingest/quarantine.py IdentityHolds)
    receive_maximum: int = Field(
        20000, ge=1, le=32767, description="unacknowledged messages the broker may send us at once"
    )
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    _host_port = field_validator("brokers")(check_host_ports)

    @model_validator(mode="before")
    @classmethod
    def _brokers_or_host(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("brokers"):
            given = [key for key in ("host", "port") if key in data]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} and brokers both set: give the broker's addresses either as "
                    "brokers: [host:port, ...] or as host and port, not both"
                )
        return data

    @model_validator(mode="after")
    def _first_broker(self) -> Self:
        # host and port name the first broker, for what addresses one node (the session's name in the
        # quarantine, the broker admin); not marked as set, so the model still reads back
        if self.brokers:
            host, port = self.addresses()[0]
            object.__setattr__(self, "host", host)
            object.__setattr__(self, "port", port)
        return self

    def addresses(self) -> list[tuple[str, int]]:
        """Where the broker is, in the order tried: ``brokers``, or ``host``:``port``."""
        if not self.brokers:
            return [(self.host, self.port)]
        return [(host.strip("[]"), int(port)) for host, _, port in (b.rpartition(":") for b in self.brokers)]


class InfluxSettings(Section):
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://")
    api: Literal["v1", "v2"] = Field("v1", description="v1: /write (InfluxDB 1.x); v2: /api/v2/write")
    database: str = Field("reallabor", min_length=1, description="v1 database")
    retention_policy: str | None = Field(None, description="v1 retention policy (default: the database's)")
    username: str | None = None
    password: SecretStr | None = None
    org: str | None = Field(None, description="v2 organisation")
    bucket: str | None = Field(None, description="v2 bucket")
    token: SecretStr | None = Field(None, description="v2 API token")
    read_username: str | None = Field(
        None, description="v1 user the web app's /ops charts query as (default: username)"
    )
    read_password: SecretStr | None = Field(None, description="password of read_username")
    create_database: bool = Field(True, description="v1: CREATE DATABASE on start")
    raw_retention: str = Field(
        "90d",
        description="v1: how long raw readings are kept (retention policy 'raw', the database's default, "
        "made by `reallabor influx init`); the 15-minute and daily rollups are kept for good. "
        "Whole hours, days or weeks, e.g. 90d, 26w, 2160h; from 7d to 520w (docs/lifecycle.md)",
    )
    batch_size: int = Field(5000, ge=1, le=1_000_000, description="lines per write")
    max_in_flight: int = Field(2, ge=1, le=16, description="write requests at once (spool records)")
    flush_interval_s: float = Field(0.25, gt=0, le=60, description="longest a reading waits for its batch")
    gzip: bool | None = Field(
        None, description="compress write bodies (default: only when InfluxDB is not on this machine)"
    )
    timeout_s: float = Field(10.0, gt=0)
    retry_min_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(30.0, gt=0)

    @field_validator("raw_retention")
    @classmethod
    def _raw_retention_bounds(cls, value: str) -> str:
        from ingest.lifecycle import parse_duration

        parse_duration(value)  # ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _v2_needs_target(self) -> Self:
        if self.api == "v2":
            missing = [name for name in ("org", "bucket") if not getattr(self, name)]
            if missing:
                raise ValueError(f"api v2 needs {' and '.join(missing)}")
        return self


class IngestSettings(Section):
    profiles_dir: Path = Field(Path("device_profiles"), description="directory of device profile YAML files")
    state_dir: Path = Field(Path("state"), description="spool, quarantine and runtime files")
    timezone: str = Field("Europe/Berlin", description="zone of device clocks that send local time")
    max_payload_bytes: int = Field(256 * 1024, ge=64)
    max_series_per_gateway: int = Field(
        10_000,
        ge=1,
        description="distinct series one gateway may add (then too_many_series); see docs/security.md",
    )
    spool_max_bytes: int = Field(
        1024**3, ge=1024**2, description="disk the spool may use while InfluxDB is away; then backpressure"
    )
    metrics_host: str = Field("127.0.0.1", description="where /metrics listens")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics port (0: any free)"
    )
    stats_interval_s: float = Field(
        10.0, gt=0, description="how often counters go to measurement ingest_stats"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    instance: int = Field(
        0, ge=0, description="which of ingest.instances this process is, 0 to instances - 1 (--instance)"
    )
    instances: int = Field(
        1,
        ge=1,
        le=MAX_INSTANCES,
        description="ingesters sharing the broker's stream (--of); above 1 each has its own client id, "
        "session, state directory and metrics port (Settings.as_instance, README 'Several ingesters')",
    )


class RegistrySettings(Section):
    url: str = Field("sqlite:///state/registry.db", description="SQLAlchemy URL (SQLite or PostgreSQL)")
    enrich: bool = Field(False, description="tag readings with household/building from the registry")
    unknown_devices: Literal["quarantine", "accept"] = Field(
        "quarantine",
        description="a device not in the registry: quarantine it, or accept it tagged unregistered",
    )
    refresh_s: float = Field(10.0, gt=0, description="how often the ingester reloads its registry snapshot")


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    secret_key: SecretStr | None = Field(None, description="signs sessions; required outside development")
    public_url: str | None = Field(
        None,
        description="the address residents open (https://… in production), printed on invitations; "
        "without it the CLI uses http://host:port (development only) and the pages the request's host",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks (CIDR) of the reverse proxies in front of the API: only a "
        "request from one of them may name its client in X-Forwarded-For (rate limits, login throttle); "
        "empty: the TCP peer is the client",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 172.18.0.1, 10.0.0.0/8)"
                ) from None
        return networks

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// address with a host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{value!r}: no query, fragment or user name, only scheme, host, port, path")
        return value.strip().rstrip("/")


class BrokerAdminSettings(Section):
    """The broker's dynamic-security admin account; the broker's address is ``mqtt.host``/``mqtt.port``."""

    username: str = Field("admin", min_length=1)
    password: SecretStr | None = Field(None, description="None: gateway provisioning is off (503)")
    timeout_s: float = Field(10.0, gt=0)
    gateway_topic: str = Field("lab/{gateway}/#", description="the ACL pattern of a gateway's role")


class GatewayBundleSettings(Section):
    """What ``reallabor gateways bundle`` puts into a gateway's bundle besides the registry's data."""

    brokers: list[str] = Field(
        default_factory=list,
        description="host:port where the gateways reach the central broker (its TLS listener, e.g. "
        "broker.example.org:8883), tried in turn; empty: mqtt.host:mqtt.port (a lab network only)",
    )
    ca_file: Path | None = Field(
        None,
        description="the CA certificate (PEM) the broker's TLS certificate chains to, copied into each "
        "bundle; None: the gateways speak plain MQTT (a lab network only)",
    )

    _host_port = field_validator("brokers")(check_host_ports)


class CommissioningSettings(Section):
    default_timeout_s: float = Field(120.0, ge=5.0, le=600.0, description="how long a check waits")
    max_active: int = Field(8, ge=1, le=100, description="checks running at once in the API process")
    max_clock_offset_s: float = Field(300.0, gt=0, description="a device clock further off fails the check")


class EnergySettings(Section):
    """The energy ledger (``reallabor energy run``, docs/dashboards.md): it reads raw counters and writes
    ``rollups.energy``/``energy_1d``, so its InfluxDB user needs READ and WRITE on the database."""

    interval_s: float = Field(
        300.0, ge=5, le=86400, description="how often the loop recomputes its window (seconds)"
    )
    window: str = Field(
        "1d",
        description="the trailing window the loop recomputes, widened to whole local days: late data "
        "older than this needs `reallabor energy rollup --since`. Whole hours or days, 1h to 31d",
    )
    username: str | None = Field(None, description="v1 user with READ and WRITE (default: influx.username)")
    password: SecretStr | None = Field(None, description="password of username")

    @field_validator("window")
    @classmethod
    def _window_bounds(cls, value: str) -> str:
        from ingest.energy.settings import parse_window

        parse_window(value)  # ValueError names what is wrong
        return value


class LettersSettings(Section):
    """The monthly letter for residents without a smartphone (``reallabor letters``, docs/letters.md)."""

    sender: str = Field(
        "Reallabor Quartier · Quartiersbüro",
        min_length=1,
        max_length=80,  # two lines in the envelope's window
        description="sender line above the address (the window envelope's return address) and the closing",
    )
    help_text: str = Field(
        "Haben Sie Fragen zu diesem Brief? Das Quartiersbüro hilft Ihnen gern. "
        "Die Telefonnummer und die Sprechzeiten stehen am Aushang in Ihrem Hauseingang.",
        min_length=1,
        max_length=400,  # with the longest privacy_text, page 2 of the letter is full
        description="the letter's help box: put the office's phone number and hours here",
    )
    privacy_text: str = Field(
        "Wir speichern die Zählerstände Ihres Haushalts mit Datum und Uhrzeit: Strom und, wo vorhanden, "
        "Solaranlage, Wärme und Ladestation. Wir nutzen sie für diesen Brief, für Ihre Übersicht und für "
        "Zahlen über das ganze Quartier, in denen Ihr Haushalt nicht einzeln zu sehen ist. Sie können "
        "jederzeit eine Kopie Ihrer Daten bekommen oder sie löschen lassen: Fragen Sie im Quartiersbüro.",
        min_length=1,
        max_length=700,
        description="the letter's note on what data is kept and the right to a copy and to deletion",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REALLABOR_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mode: Literal["development", "production"] = "development"
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    ingest: IngestSettings = IngestSettings()
    registry: RegistrySettings = RegistrySettings()
    api: ApiSettings = ApiSettings()
    broker_admin: BrokerAdminSettings = BrokerAdminSettings()
    commissioning: CommissioningSettings = CommissioningSettings()
    energy: EnergySettings = EnergySettings()
    letters: LettersSettings = LettersSettings()
    opendata: OpenDataSettings = OpenDataSettings()
    gateway_bundle: GatewayBundleSettings = GatewayBundleSettings()

    _as_instance: bool = PrivateAttr(False)  # as_instance() made these: the instance's identity applied

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    def _secret_values(self) -> dict[str, SecretStr | None]:
        return {
            "api.secret_key": self.api.secret_key,
            "mqtt.password": self.mqtt.password,
            "influx.password": self.influx.password,
            "influx.token": self.influx.token,
            "influx.read_password": self.influx.read_password,
            "broker_admin.password": self.broker_admin.password,
            "energy.password": self.energy.password,
        }

    @model_validator(mode="after")
    def _check_public_url(self) -> Self:
        url = self.api.public_url
        if self.mode == "production" and url is not None and not url.startswith("https://"):
            raise ValueError(f"api.public_url: {url!r}: mode 'production' needs an https:// address")
        return self

    @model_validator(mode="after")
    def _check_instances(self) -> Self:
        ingest, mqtt = self.ingest, self.mqtt
        last = ingest.instances - 1
        if ingest.instance > last:
            raise ValueError(
                f"ingest.instance: {ingest.instance} is not below ingest.instances ({ingest.instances}): "
                f"the instances are numbered 0 to {last}"
            )
        if last:
            client_id = instance_name(mqtt.client_id, last)
            if len(client_id) > CLIENT_ID_MAX_CHARS:
                raise ValueError(
                    f"mqtt.client_id: {mqtt.client_id!r} is too long for {ingest.instances} instances: "
                    f"{client_id!r} has more than {CLIENT_ID_MAX_CHARS} characters"
                )
            port = ingest.metrics_port
            if port and port + last > 65535:
                raise ValueError(
                    f"ingest.metrics_port: {port} + instance {last} is beyond 65535 "
                    f"(instance K listens on metrics_port + K)"
                )
        return self

    def as_instance(self) -> Settings:
        """The settings this ingester runs with as instance ``ingest.instance`` of ``ingest.instances``.

        With one instance: these settings. With several, each has a stable identity, derived here and only
        here, so that its source, spool, quarantine, metrics and stats all agree: client id and broker
        account ``<mqtt.client_id>-<K>`` and ``<mqtt.username>-<K>`` (each account bound to its client id,
        ingest/dynsec.py), its persistent session, subscriptions ``$share/<mqtt.shared_group>/...``
        (default group ``reallabor-ingest``), state ``<ingest.state_dir>/instance-<K>`` (its own spool
        and quarantine), metrics on ``ingest.metrics_port + K`` when a fixed port is set.
        """
        ingest, mqtt = self.ingest, self.mqtt
        if ingest.instances == 1 or self._as_instance:
            return self
        k = ingest.instance
        port = ingest.metrics_port
        identity = self.model_copy(
            update={
                "mqtt": mqtt.model_copy(
                    update={
                        "client_id": instance_name(mqtt.client_id, k),
                        "username": None if mqtt.username is None else instance_name(mqtt.username, k),
                        "shared_group": mqtt.shared_group or DEFAULT_SHARED_GROUP,
                    }
                ),
                "ingest": ingest.model_copy(
                    update={
                        "state_dir": ingest.state_dir / INSTANCE_DIR.format(instance=k),
                        "metrics_port": port + k if port else port,  # 0 (any free) and None stay
                    }
                ),
            }
        )
        identity._as_instance = True
        return identity

    def for_instance(self, instance: int) -> Settings:
        """:meth:`as_instance` of instance ``instance`` (0 to ``ingest.instances`` - 1) of these settings."""
        if self._as_instance:
            raise ValueError("for_instance: these are one instance's settings already")
        if not 0 <= instance < self.ingest.instances:
            raise ConfigError(
                f"ingest.instance: {instance} is not one of the {self.ingest.instances} instances "
                f"(0 to {self.ingest.instances - 1})"
            )
        ingest = self.ingest.model_copy(update={"instance": instance})
        return self.model_copy(update={"ingest": ingest}).as_instance()

    def state_dirs(self) -> list[Path]:
        """Where the quarantines are: ``ingest.state_dir`` (one instance's, or what it kept from before
        there were several) and ``<state_dir>/instance-K`` of each instance configured or found there
        (a retired one's quarantine stays with it)."""
        base = self.ingest.state_dir.parent if self._as_instance else self.ingest.state_dir
        numbers = set(range(self.ingest.instances)) if self.ingest.instances > 1 else set()
        with contextlib.suppress(OSError):  # no state directory yet
            numbers |= {
                int(number)
                for found in base.iterdir()
                if (number := found.name.removeprefix(INSTANCE_DIR.format(instance=""))).isdigit()
                and found.is_dir()
            }
        return [base, *(base / INSTANCE_DIR.format(instance=k) for k in sorted(numbers))]

    @model_validator(mode="after")
    def _check_secrets(self) -> Self:
        problems = []
        for path, secret in self._secret_values().items():
            if secret is None:
                continue
            problem = placeholder_problem(secret.get_secret_value())
            if problem is not None:
                problems.append(f"{path}: {problem} refused in mode {self.mode!r}")
            elif self.mode == "production":  # a secret given must be random, whoever uses it
                problems += _weakness(path, secret)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def required_secrets(self, component: Component) -> dict[str, SecretStr | None]:
        """The secrets ``component`` cannot start without in mode production: its own, not the others'
        (the API never holds the ingester's broker password, the ledger no session key)."""
        influx_write = "influx.token" if self.influx.api == "v2" else "influx.password"
        influx = {influx_write: getattr(self.influx, influx_write.partition(".")[2])}
        if component == "ingest":
            if self.mqtt.username is None:
                return {"mqtt.username": None, **influx}
            return {"mqtt.password": self.mqtt.password, **influx}
        if component == "api":  # reads InfluxDB for /ops and the portal, as the reader when there is one
            required: dict[str, SecretStr | None] = {"api.secret_key": self.api.secret_key}
            if self.influx.read_username is not None:
                required["influx.read_password"] = self.influx.read_password
            else:
                required.update(influx)
            if self.broker_admin.password is not None:  # optional: without it gateway provisioning is off
                required["broker_admin.password"] = self.broker_admin.password
            return required
        if self.energy.username is not None:
            return {"energy.password": self.energy.password}
        return influx

    def check_production(self, *components: Component) -> None:
        """Refuse (ConfigError) to start ``components`` in mode production without their secrets."""
        if self.mode != "production":
            return
        missing = sorted(
            {
                path
                for component in components
                for path, secret in self.required_secrets(component).items()
                if secret is None
            }
        )
        if missing:
            names = ", ".join(components)
            raise ConfigError(
                "\n  ".join(
                    [f"invalid configuration for {names}:"]
                    + [
                        f"{path}: required in mode 'production' (no default outside development)"
                        for path in missing
                    ]
                )
            )


def _weakness(path: str, secret: SecretStr) -> list[str]:
    api_key = path == "api.secret_key"
    problem = weakness(secret.get_secret_value(), api_key=api_key)
    if problem is None:
        return []
    if api_key:
        return [
            f"{path}: {problem}: mode 'production' needs 32 random bytes, at least "
            f"{API_KEY_CHARS} URL-safe base64 characters or {API_KEY_HEX_DIGITS} hex digits; "
            f"make one with: {MAKE_API_KEY}"
        ]
    return [
        f"{path}: {problem}: mode 'production' needs at least {MIN_SECRET_CHARS} characters, "
        f"random ones; make some with: {MAKE_PASSWORD}"
    ]


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``path`` (YAML) and the environment; raise ConfigError with key paths."""
    source = str(path) if path is not None else "environment"
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=path)

    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        lines = "\n  ".join(describe_errors(exc))
        raise ConfigError(f"invalid configuration ({source}):\n  {lines}") from None
