"""``reallabor gateway run`` as a real process: a socat pseudo-terminal meter and a Tasmota plug behind a
local Mosquitto reach the central InfluxDB through the real ingester, with their own times; the health
message arrives and decodes; SIGTERM stops it cleanly; a bad gateway.yaml is refused with its key path.

The helpers here (:class:`GatewayProcess`, :class:`PtyPair`, :func:`gateway_yaml`) serve test_local too.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from ingest.cli import main
from ingest.localservices import Mosquitto
from ingest.timeparse import datetime_to_ns
from simulators.formats import MeterState, sml_frame
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

REPO = Path(__file__).resolve().parents[2]


def gateway_yaml(
    directory: Path,
    *,
    gateway: str,
    central_port: int,
    meters: list[dict[str, Any]] | None = None,
    local_port: int | None = None,
    health_interval_s: float = 60.0,
) -> Path:
    config: dict[str, Any] = {
        "gateway": gateway,
        "central": {
            "brokers": [f"127.0.0.1:{central_port}"],
            "username": gateway,
            "password": "not-checked-by-this-broker",
            "client_id": f"gw-{gateway}",
            "keepalive_s": 5,
        },
        "outbox": {"directory": str(directory / "outbox"), "max_bytes": 20_000_000, "commit_interval_s": 0.2},
        "meters": meters or [],
        "health_interval_s": health_interval_s,
        "log_level": "DEBUG",
    }
    if local_port is not None:
        config["local_broker"] = {"port": local_port, "client_id": f"fwd-{gateway}", "topics": ["tele/#"]}
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayProcess:
    """``reallabor gateway run --config`` in a child process; its stderr is kept for assertions."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._started_at = 0
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> GatewayProcess:
        self._started_at = len(self.log)
        self._ready.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "gateway", "run", "--config", str(self.config_path)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        if not self._ready.wait(20):
            self.stop()
            raise AssertionError("gateway not running within 20 s:\n" + self.output())
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line.rstrip("\n"))
            if " running: " in line:
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.log)

    def wait_logged(self, text: str, *, timeout: float = 20) -> None:
        """Until this run of the service (since the last start) logged a line containing ``text``."""
        wait_for(
            lambda: any(text in line for line in self.log[self._started_at :]),
            timeout=timeout,
            what=f"{text!r} in the gateway's log:\n{self.output()}",
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, *, kill: bool = False, timeout: float = 15) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(5)
        if process.stderr is not None:
            process.stderr.close()
        self.process = None
        return process.returncode


class PtyPair:
    """A socat pseudo-terminal pair: the gateway opens ``port``, the test writes the meter's bytes to
    ``feed``."""

    def __init__(self, directory: Path) -> None:
        self.port = directory / "meter-port"
        self.feed = directory / "meter-feed"
        self.process = subprocess.Popen(
            [
                "socat",
                f"pty,raw,echo=0,link={self.port}",
                f"pty,raw,echo=0,link={self.feed}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.port.exists() and self.feed.exists(), timeout=10, what="socat's ptys")
        self._writer = os.open(self.feed, os.O_WRONLY | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        os.write(self._writer, data)

    def close(self) -> None:
        os.close(self._writer)
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Mosquitto]:
    """This test's own central broker: the gateway publishes under lab/ without a test prefix."""
    with Mosquitto(tmp_path / "central") as broker:
        yield broker


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(tmp_path)
    yield pair
    pair.close()


def publish(port: int, topic: str, payload: str) -> None:
    """One QoS 1 message from a device to the local broker, waiting for its PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tasmota-plug", protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_meter_and_local_device_reach_influxdb_with_their_times(
    target: Target,
    central: Mosquitto,
    local_broker: Mosquitto,
    pty_pair: PtyPair,
    influx: InfluxQuery,
    tmp_path: Path,
) -> None:
    gateway = f"gw-{target.database[3:].replace('_', '-')}"
    ingester = IngesterProcess(
        dataclasses.replace(target, mqtt_port=central.port, topic_prefix=""), tmp_path, env={**os.environ}
    )
    config = gateway_yaml(
        tmp_path,
        gateway=gateway,
        central_port=central.port,
        meters=[{"device": "hh-001-em", "port": str(pty_pair.port), "protocol": "sml"}],
        local_port=local_broker.port,
        health_interval_s=1.0,
    )
    service = GatewayProcess(config)
    ingester.start()
    try:
        service.start()
        # "running" is logged while the port task still opens the line, and opening flushes it
        service.wait_logged("hh-001-em: reading sml")
        meter_time_s = int(time.time()) - 30  # the meter's own clock, so the point's time is its reading's
        state = MeterState(
            meter_time_s, 1_234_567.0, 890.0, 523.0, (1.0, 0.0, 0.0), 231.0, "0a01454d4800001234ab"
        )
        frame, import_kwh, _ = sml_frame(state)
        pty_pair.write(b"\x00\xff" + frame[:50])  # line noise, then a frame split in two writes
        time.sleep(0.05)
        pty_pair.write(frame[50:])
        publish(
            local_broker.port,
            "tele/hh-001-plug/SENSOR",
            '{"Time":"2025-11-28T10:00:00","ENERGY":{"Total":123.456,"Power":45,"Voltage":231,"Current":0.195}}',
        )

        meter = wait_for(
            lambda: influx.rows(
                f"SELECT * FROM electricity WHERE gateway = '{gateway}' AND device = 'hh-001-em'"
            ),
            timeout=20,
            what="the meter's reading in InfluxDB",
        )
        assert meter[0]["time"] == meter_time_s * 1_000_000_000
        assert meter[0]["energy_import_kwh"] == pytest.approx(import_kwh)
        assert meter[0]["profile"] == "sml"

        plug = wait_for(
            lambda: influx.rows(
                f"SELECT * FROM electricity WHERE gateway = '{gateway}' AND device = 'hh-001-plug'"
            ),
            timeout=20,
            what="the plug's reading in InfluxDB",
        )
        assert plug[0]["time"] == datetime_to_ns(
            datetime.fromisoformat("2025-11-28T09:00:00+00:00")
        )  # Tasmota's local time, Europe/Berlin
        assert plug[0]["power_w"] == 45.0

        def health_rows() -> list[dict[str, Any]]:
            rows = influx.rows(f"SELECT * FROM gateway_health WHERE gateway = '{gateway}'")
            # a health message sent after the meter's frame counts it
            return [r for r in rows if r.get("port") == "hh-001-em" and r.get("frames")]

        port = wait_for(health_rows, timeout=20, what="a health message counting the meter's frame")[-1]
        assert port["frames"] == 1.0
        assert port["connected"] is True
        assert port["broken"] == 0.0
        assert port["discarded_bytes"] >= 2.0  # the noise before the frame
        gateway_point = influx.rows(
            f"SELECT * FROM gateway_health WHERE gateway = '{gateway}' AND port = '' "
            "ORDER BY time DESC LIMIT 1"
        )[0]
        assert gateway_point["uptime_s"] > 0
        assert gateway_point["outbox_depth"] >= 0
        assert gateway_point["uplink_connected"] is True
        assert gateway_point["local_connected"] is True
        assert gateway_point["local_forwarded"] >= 1.0
        assert gateway_point["disk_free_bytes"] > 0
        assert gateway_point["version"]

        assert service.stop() == 0, service.output()  # SIGTERM: a clean stop
        assert "stopped;" in service.output()
    finally:
        service.stop(kill=True)
        ingester.stop()


@dataclasses.dataclass
class Checked:
    returncode: int
    stdout: str
    stderr: str


def _check(config: Path, capsys: pytest.CaptureFixture[str]) -> Checked:
    """``reallabor gateway check --config`` in this process (the run test below starts a real one)."""
    try:
        code = main(["gateway", "check", "--config", str(config)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return Checked(code, out.out, out.err)


def test_gateway_check_names_the_bad_key_path_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = gateway_yaml(
        tmp_path,
        gateway="gw-check",
        central_port=1883,
        meters=[{"device": "hh-001-em", "port": "/dev/ttyUSB0", "protocol": "sml"}],
    )
    good = _check(config, capsys)
    assert good.returncode == 0, good.stderr
    assert "ok (gateway gw-check, 1 meter(s)" in good.stdout

    data = yaml.safe_load(config.read_text())
    data["meters"][0]["protocol"] = "smx"
    data["central"]["brokers"] = ["central.example"]
    config.write_text(yaml.safe_dump(data))
    bad = _check(config, capsys)
    assert bad.returncode == 2
    assert "meters.0.protocol" in bad.stderr
    assert "'smx'" in bad.stderr
    assert "central.brokers" in bad.stderr
    assert "central.example" in bad.stderr
    assert "not-checked-by-this-broker" not in bad.stderr + bad.stdout  # the password is never shown

    data = yaml.safe_load(config.read_text())
    data["meters"][0]["protocol"] = "sml"
    data["central"]["brokers"] = ["central.example:8883"]
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    data["central"]["tls"] = {"ca_file": "ca.crt", "cert_file": "missing.crt", "key_file": "missing.key"}
    config.write_text(yaml.safe_dump(data))
    missing = _check(config, capsys)
    assert missing.returncode == 2
    assert f"central.tls.cert_file: cannot read {tmp_path / 'missing.crt'}" in missing.stderr
    del data["central"]["tls"]["cert_file"], data["central"]["tls"]["key_file"]
    config.write_text(yaml.safe_dump(data))
    not_a_ca = _check(config, capsys)
    assert not_a_ca.returncode == 2
    assert "central.tls: TLS: cannot load" in not_a_ca.stderr


def test_gateway_run_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("gateway: GW 1\ncentral: {}\noutbox: {directory: x}\nlocal_brokers: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    assert "'GW 1'" in result.stderr
    assert "local_brokers" in result.stderr
