"""The systems under test as child processes: the ingester, Node-RED (two flows) and the naive bridge.

Each one consumes the same topics from the same broker through a persistent session and writes points to
its own InfluxDB database; :class:`Influx` counts them. CPU time and peak RSS come from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.workload import subscription
from ingest.localservices import free_port
from ingest.metrics import read_metrics

REPO = Path(__file__).resolve().parent.parent
NODERED_DIR = REPO / "bench" / "nodered"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


# /proc ------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# InfluxDB ---------------------------------------------------------------------------------------------


class Influx:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30, trust_env=False)

    def create(self, database: str) -> None:
        self.http.post("/query", data={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()

    def query(self, database: str, influxql: str) -> list[dict[str, Any]]:
        response = self.http.get("/query", params={"q": influxql, "db": database, "epoch": "ns"})
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise BenchError(f"InfluxQL error: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def count(self, database: str, where: str = "") -> int:
        clause = f" WHERE {where}" if where else ""
        try:
            series = self.query(database, f'SELECT count("power_w") FROM "electricity"{clause}')
        except httpx.HTTPError:
            return -1  # InfluxDB away (outage phase)
        return int(series[0]["values"][0][1]) if series else 0

    def close(self) -> None:
        self.http.close()


def discard_session(port: int, client_id: str) -> None:
    """Connect with a clean session and leave: the broker forgets the session and its queued messages."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    with contextlib.suppress(OSError):
        client.connect("127.0.0.1", port, clean_start=True)
        client.loop_start()
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        client.disconnect()
        client.loop_stop()


def precreate_session(port: int, client_id: str, topic: str) -> None:
    """An MQTT 3.1.1 persistent session (clean_session false) subscribed at QoS 1, then left."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while not client.is_connected() or info[0] != paho.MQTT_ERR_SUCCESS:
            if time.monotonic() > deadline:
                raise BenchError("could not create the persistent session")
            time.sleep(0.05)
            info = client.subscribe(topic, qos=1)
        time.sleep(0.3)  # SUBACK
    finally:
        client.disconnect()
        client.loop_stop()


# child processes ----------------------------------------------------------------------------------------


class System:
    """A consumer under test: start(), pid, stop(); its output goes to a log file."""

    label = "system"

    def __init__(self, directory: Path, *, mqtt_port: int, influx_url: str, database: str, prefix: str):
        self.directory = directory
        self.mqtt_port = mqtt_port
        self.influx_url = influx_url
        self.database = database
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path = directory / f"{self.label}.log"
        self.client_id = f"{self.label}-{database}"  # fixed: the broker keeps the session under it
        self.launched_at = 0.0
        self.started_at = 0.0  # when it was ready (connected): drains are timed from here
        self.cpu_at_exit = 0.0
        self.rss_at_exit = 0.0

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def ready_marker(self) -> str | None:
        return None

    def start(self, *, wait_ready: bool = True, timeout: float = 60) -> System:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size
        self.launched_at = self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.directory
        )
        marker = self.ready_marker()
        if wait_ready and marker:
            deadline = time.monotonic() + timeout
            while marker not in self.log_path.read_text(errors="replace")[offset:]:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace")[offset:][-3000:]
                    self.stop()
                    raise BenchError(f"{self.label} did not become ready:\n{tail}")
                time.sleep(0.02)
            self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError(f"{self.label} is not running")
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid) if self.process is not None else self.cpu_at_exit

    def peak_rss(self) -> float:
        return peak_rss_mb(self.pid) if self.process is not None else self.rss_at_exit

    def stop(self, timeout: float = 60) -> None:
        process = self.process
        if process is not None:
            self.cpu_at_exit, self.rss_at_exit = cpu_seconds(process.pid), peak_rss_mb(process.pid)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def setting_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set SECTION.KEY=VALUE`` items (VALUE read as YAML) as {section: {key: value}}."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        key, equals, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not (equals and dot and section and name):
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    return overrides


class IngesterSystem(System):
    label = "ingester"

    def __init__(
        self,
        directory: Path,
        *,
        registry_url: str | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
        tree: Path = REPO,
        **kwargs: Any,
    ) -> None:
        super().__init__(directory, **kwargs)
        self.tree = tree  # the checkout whose ingest/ and device_profiles/ run (another revision: A/B)
        self.metrics_port = free_port()
        self.registry_url = registry_url  # enrichment with household/building tags when set
        self.overrides = overrides or {}  # section -> key -> value, over the bench's settings

    def command(self) -> list[str]:
        config: dict[str, Any] = {
            "mode": "development",
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.mqtt_port,
                "client_id": self.client_id,
                "topic_prefix": self.prefix,
            },
            "influx": {"url": self.influx_url, "database": self.database},
            "ingest": {
                "state_dir": str(self.directory / "state"),
                "profiles_dir": str(self.tree / "device_profiles"),
                "metrics_port": self.metrics_port,
                "metrics_host": "127.0.0.1",
            },
        }
        if self.registry_url is not None:
            config["registry"] = {"enrich": True, "url": self.registry_url}
        for section, values in self.overrides.items():
            config.setdefault(section, {}).update(values)
        path = self.directory / "ingest.yaml"
        path.write_text(yaml.safe_dump(config))
        return [sys.executable, "-m", "ingest.cli", "ingest", "--config", str(path)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in [n for n in env if n.startswith("REALLABOR_")]:
            del env[name]  # the config file is the whole truth here
        env["PYTHONPATH"] = str(self.tree)
        return env

    def ready_marker(self) -> str:
        return "ingester ready"

    def metrics(self) -> dict[str, float]:
        return read_metrics(self.metrics_port)


class NaiveBridge(System):
    label = "naive"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.naive_bridge",
            "--port",
            str(self.mqtt_port),
            "--influx",
            self.influx_url,
            "--database",
            self.database,
            "--topic",
            subscription(self.prefix),
            "--client-id",
            self.client_id,
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def ready_marker(self) -> str:
        return "naive bridge subscribed"


# Node-RED -----------------------------------------------------------------------------------------------

# The function node people write for Tasmota SML: parse, map the keys, tags from the topic.
_FUNCTION_MAP = """\
const KEYS = {
  total_in: "energy_import_kwh", total_out: "energy_export_kwh", power_curr: "power_w", power_cur: "power_w",
  volt_p1: "voltage_l1_v", volt_p2: "voltage_l2_v", volt_p3: "voltage_l3_v",
  amperage_p1: "current_l1_a", amperage_p2: "current_l2_a", amperage_p3: "current_l3_a",
  power_p1: "power_l1_w", power_p2: "power_l2_w", power_p3: "power_l3_w"
};
const p = msg.payload;
const parts = msg.topic.split("/");
const n = parts.length;
const fields = {};
for (const group of Object.values(p)) {
  if (group === null || typeof group !== "object") continue;
  for (const [key, raw] of Object.entries(group)) {
    const name = KEYS[key.toLowerCase()];
    if (!name || name in fields) continue;
    const value = typeof raw === "string" ? parseFloat(raw.replace(",", ".")) : raw;
    if (Number.isFinite(value)) fields[name] = value;
  }
}
const timestamp = String(new Date(p.Time).getTime()) + "000000";  // TZ=Europe/Berlin: local time
const tags = {gateway: parts[n - 4], device: parts[n - 2], profile: "tasmota-sml"};
"""
_FUNCTION_OUT = _FUNCTION_MAP + (
    'fields.time = timestamp;\nmsg.measurement = "electricity";\nmsg.payload = [fields, tags];\nreturn msg;\n'
)
_FUNCTION_BATCH = _FUNCTION_MAP + (
    'msg.payload = {measurement: "electricity", fields: fields, tags: tags, timestamp: timestamp};\n'
    "return msg;\n"
)

NODERED_READY = "Started flows"


def nodered_flows(
    *, mqtt_port: int, client_id: str, influx_port: int, database: str, topic: str, batch: bool
) -> str:
    """flows.json: mqtt in (QoS 1, persistent session) -> function -> influxdb out, or -> join -> batch."""
    tab = "node-tab"
    nodes: list[dict[str, Any]] = [
        {"id": tab, "type": "tab", "label": "bench"},
        {
            "id": "broker-config",
            "type": "mqtt-broker",
            "name": "mosquitto",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": client_id,
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": False,
        },
        {
            "id": "influx-config",
            "type": "influxdb",
            "hostname": "127.0.0.1",
            "port": str(influx_port),
            "protocol": "http",
            "database": database,
            "name": "influx",
            "usetls": False,
            "influxdbVersion": "1.x",
        },
        {
            "id": "node-in",
            "type": "mqtt in",
            "z": tab,
            "topic": topic,
            "qos": "1",
            "datatype": "json",
            "broker": "broker-config",
            "nl": False,
            "rap": True,
            "inputs": 0,
            "wires": [["node-map"]],
        },
        {
            "id": "node-map",
            "type": "function",
            "z": tab,
            "name": "tasmota-sml",
            "func": _FUNCTION_BATCH if batch else _FUNCTION_OUT,
            "outputs": 1,
            "wires": [["node-join" if batch else "node-out"]],
        },
    ]
    if batch:
        nodes += [
            {
                "id": "node-join",
                "type": "join",
                "z": tab,
                "mode": "custom",
                "build": "array",
                "property": "payload",
                "propertyType": "msg",
                "key": "topic",
                "joiner": "\\n",
                "joinerType": "str",
                "accumulate": False,
                "timeout": "1",
                "count": "500",
                "reduceRight": False,
                "wires": [["node-out"]],
            },
            {
                "id": "node-out",
                "type": "influxdb batch",
                "z": tab,
                "influxdb": "influx-config",
                "precision": "",
                "wires": [],
            },
        ]
    else:
        nodes.append(
            {
                "id": "node-out",
                "type": "influxdb out",
                "z": tab,
                "influxdb": "influx-config",
                "measurement": "electricity",
                "precision": "",
                "retentionPolicy": "",
                "wires": [],
            }
        )
    return json.dumps(nodes, indent=1)


NODERED_SETTINGS = """\
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: %d,
  httpAdminRoot: false,
  httpNodeRoot: false,
  flowFile: "flows.json",
  credentialSecret: false,
  telemetry: {enabled: false},
  externalModules: {autoInstall: false, palette: {allowInstall: false}},
  logging: {console: {level: "info", metrics: false, audit: false}},
};
"""


def install_nodered(directory: Path) -> Path:
    """``npm ci`` of the committed lock file into ``directory`` (no global installs); returns it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise BenchError("node and npm are needed for the Node-RED baseline")
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NODERED_DIR / name, directory / name)
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"npm ci failed: {result.stderr[-2000:]}")
    return directory


class NodeRed(System):
    """Node-RED with its user directory in the npm ci directory (so it finds node-red-contrib-influxdb)."""

    def __init__(self, directory: Path, *, install: Path, batch: bool, **kwargs: Any) -> None:
        self.label = "nodered-batch" if batch else "nodered"
        super().__init__(directory, **kwargs)
        self.install = install
        self.batch = batch

    def command(self) -> list[str]:
        user_dir = self.install
        influx_port = int(self.influx_url.rsplit(":", 1)[1])
        (user_dir / "flows.json").write_text(
            nodered_flows(
                mqtt_port=self.mqtt_port,
                client_id=self.client_id,
                influx_port=influx_port,
                database=self.database,
                topic=subscription(self.prefix),
                batch=self.batch,
            )
        )
        (user_dir / "settings.js").write_text(NODERED_SETTINGS % free_port())
        red = user_dir / "node_modules" / "node-red" / "red.js"
        return ["node", str(red), "--settings", str(user_dir / "settings.js"), "--userDir", str(user_dir)]

    def env(self) -> dict[str, str]:
        # the function node reads Tasmota's zone-less local time with JavaScript's Date: local = Berlin
        return {**os.environ, "TZ": "Europe/Berlin", "NODE_RED_ENABLE_PROJECTS": "false"}

    def ready_marker(self) -> str:
        return NODERED_READY
