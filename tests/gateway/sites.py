"""The two sites of the store-and-forward test, each in its network namespace (:mod:`tests.gateway.netns`).

- :class:`GatewayHost`: the Raspberry Pi in the building: its local Mosquitto (the bundle's shipped
  ``mosquitto-local.conf``, paths and port made the test's), a ``socat`` line per meter and
  ``reallabor gateway run``. :meth:`GatewayHost.power_cut` SIGKILLs every process in the namespace at once;
  :meth:`GatewayHost.boot` starts them again in a Pi's boot order.
- :class:`CentralBroker`: the central Mosquitto with the project's loss-free settings, its persistence in a
  directory it owns; :meth:`CentralBroker.restart` stops it (SIGTERM) and starts it on its persistence.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import SecretStr

from ingest.gateway.config import Central, GatewayConfig, LocalBroker, Meter, Outbox, forwarder_client_id
from ingest.localservices import LOOPBACK, LocalService, ServiceError
from tests.gateway.feeds import MeterSpec, MeterWriter, SerialLine
from tests.gateway.netns import Namespace, NamespacedMosquitto

BUNDLE_FILES = Path(__file__).resolve().parents[2] / "ingest" / "gateway" / "bundle_files"
FORWARDED_TOPICS = ["tele/#"]
READY_WAIT_S = 30.0


def _replace(text: str, old: str, new: str) -> str:
    """``old`` -> ``new`` in the shipped file; a template that no longer has ``old`` is an error, not a
    silently different broker."""
    if old not in text:
        raise ServiceError(f"mosquitto-local.conf no longer has {old!r}: update tests/gateway/sites.py")
    return text.replace(old, new)


class LocalBrokerProcess(LocalService):
    """The gateway's local Mosquitto with the bundle's configuration: its persistence and queue settings
    as shipped; listener port, paths and (in the test's own namespace) anonymous access the test's."""

    name = "mosquitto-local"

    def __init__(self, directory: Path, *, namespace: Namespace, gateway: str) -> None:
        super().__init__(directory)
        self.namespace = namespace
        self.gateway = gateway

    def command(self) -> list[str]:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        text = (BUNDLE_FILES / "mosquitto-local.conf").read_text().replace("@GATEWAY@", self.gateway)
        text = _replace(text, "\nlistener 1883\n", f"\nlistener {self.port}\n")
        text = _replace(text, "allow_anonymous false", "allow_anonymous true")
        text = re.sub(r"(?m)^(password_file|acl_file) .*$", "", text)
        text = _replace(text, "persistence_location /var/lib/mosquitto/", f"persistence_location {data}/")
        # as root it would drop to user mosquitto, who cannot write into the test's directory
        config = self.directory / "mosquitto.conf"
        config.write_text("user root\n" + text)
        return self.namespace.command(["mosquitto", "-c", str(config)])

    def is_ready(self) -> bool:
        return self.namespace.port_open(LOOPBACK, self.port)


class GatewayProcess(LocalService):
    """``reallabor gateway run --config gateway.yaml`` inside the gateway's namespace."""

    name = "gateway"

    def __init__(self, directory: Path, *, namespace: Namespace, config: Path) -> None:
        super().__init__(directory, port=0)
        self.namespace = namespace
        self.config = config

    def command(self) -> list[str]:
        return self.namespace.command(
            [sys.executable, "-m", "ingest.gateway.cli", "run", "--config", str(self.config)]
        )

    def is_ready(self) -> bool:
        return True  # GatewayHost.boot waits for its serial ports and its forwarder


def write_gateway_yaml(path: Path, config: GatewayConfig) -> None:
    data = config.model_dump(mode="json", exclude_none=True)
    data["central"]["password"] = config.central.password.get_secret_value()
    path.write_text(yaml.safe_dump(data, sort_keys=False))


class GatewayHost:
    """The gateway's Pi: local broker, serial lines and the gateway service in ``namespace``."""

    def __init__(
        self,
        directory: Path,
        *,
        namespace: Namespace,
        gateway: str,
        central: tuple[str, int],
        meters: list[MeterSpec],
        health_interval_s: float = 10.0,
    ) -> None:
        self.directory = directory
        self.namespace = namespace
        self.gateway = gateway
        self.meters = meters
        self.broker = LocalBrokerProcess(directory / "mosquitto", namespace=namespace, gateway=gateway)
        self.lines = {m.device: SerialLine(directory / "tty", m.device, namespace=namespace) for m in meters}
        self.config_path = directory / "gateway.yaml"
        self.config = GatewayConfig(
            gateway=gateway,
            central=Central(
                brokers=[f"{central[0]}:{central[1]}"],
                username=gateway,
                password=SecretStr("not-checked-by-the-test-broker"),
                client_id=gateway,
            ),
            outbox=Outbox(directory=directory / "outbox"),
            meters=[
                Meter(device=m.device, port=self.lines[m.device].gateway_end, protocol=m.protocol)
                for m in meters
            ],
            local_broker=LocalBroker(host=LOOPBACK, port=self.broker.port, topics=FORWARDED_TOPICS),
            health_interval_s=health_interval_s,
        )
        self.service = GatewayProcess(directory, namespace=namespace, config=self.config_path)
        self.writers: dict[str, MeterWriter] = {}
        self.boots = 0
        self.broker_ready_ns = 0  # when the local broker last took connections (this host's clock)

    def boot(self) -> float:
        """Start (again) in a Pi's boot order: local broker, the read heads' lines, the gateway service.

        Returns when the service holds every serial port and its forwarder is on the local broker (the
        time it took, s)."""
        started = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        write_gateway_yaml(self.config_path, self.config)
        self.broker.start()
        self.broker_ready_ns = time.time_ns()
        for line in self.lines.values():
            line.start()
        for writer in self.writers.values():
            writer.line_back()
        log_start = self.broker.log_path.stat().st_size
        self.service.start()
        self.boots += 1
        self._wait(lambda: self._ready(log_start), what="the gateway service on its ports and local broker")
        return time.monotonic() - started

    def _ready(self, log_start: int) -> bool:
        process = self.service.process
        if process is None or process.poll() is not None:
            raise ServiceError(f"the gateway service exited: {self.service.tail(30)}")
        if not all(line.held_by(process.pid) for line in self.lines.values()):
            return False
        assert self.config.local_broker is not None
        # the forwarder's client id: the configured one, else its own secret one (reallabor-<gw>-forwarder-…)
        client_id = self.config.local_broker.client_id or forwarder_client_id(self.config.gateway)
        with self.broker.log_path.open("rb") as handle:
            handle.seek(log_start)
            return f" as {client_id}".encode() in handle.read()

    def _wait(self, condition: Callable[[], bool], *, what: str) -> None:
        deadline = time.monotonic() + READY_WAIT_S
        while not condition():
            if time.monotonic() > deadline:
                raise ServiceError(f"not ready within {READY_WAIT_S} s: {what}\n{self.service.tail(30)}")
            time.sleep(0.05)

    def start_meters(self) -> None:
        for spec in self.meters:
            self.writers[spec.device] = MeterWriter(spec, self.lines[spec.device]).start()

    def stop_meters(self) -> None:
        for writer in self.writers.values():
            writer.stop()

    def power_cut(self) -> list[int]:
        """SIGKILL every process on the host at once; the meters keep sending into a dead line."""
        killed = self.namespace.kill_all(signal.SIGKILL)
        for writer in self.writers.values():
            writer.line_lost()
        for service in (self.service, *self.lines.values(), self.broker):
            service.stop()  # only reaps: each is dead already
        return killed

    def stop(self) -> None:
        self.stop_meters()
        self.service.stop()
        for line in self.lines.values():
            line.stop()
        self.broker.stop()


class CentralBroker(NamespacedMosquitto):
    """The central broker in its namespace, with the project's loss-free settings and persistence."""

    def save(self) -> None:
        """Write the persistence file now (SIGUSR1): the state a long-running broker's autosave has."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGUSR1)

    def restart(self, *, down_s: float) -> None:
        """Stop (SIGTERM: Mosquitto saves its state), stay away ``down_s``, start on the saved state.

        Not SIGKILL: a killed Mosquitto loses the QoS 1 messages it acknowledged since its last autosave and
        had not yet delivered (docs/broker.md) — a gap of the central broker, which no gateway can close."""
        self.stop()
        time.sleep(down_s)
        self.start()
