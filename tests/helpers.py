"""Test helpers: this test's target, an ingester child process, synchronous InfluxQL queries."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from ingest.metrics import read_metrics as read_metrics  # one parser for tests and bench


@dataclass(frozen=True)
class Target:
    mqtt_port: int
    influx_url: str
    database: str
    topic_prefix: str
    client_id: str
    state_dir: Path
    profiles_dir: Path

    def config(self, **sections: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {
            "mode": "development",
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.mqtt_port,
                "client_id": self.client_id,
                "topic_prefix": self.topic_prefix,
            },
            "influx": {"url": self.influx_url, "database": self.database, "flush_interval_s": 0.1},
            "ingest": {"state_dir": str(self.state_dir), "profiles_dir": str(self.profiles_dir)},
        }
        for name, values in sections.items():
            config.setdefault(name, {}).update(values)
        return config


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll until ``condition()`` is truthy; its last value is returned, or AssertionError after timeout.

    An exception from ``condition`` counts as "not yet" (a service just restarted may answer with an
    error for a moment); the last one is named in the timeout message.
    """
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        try:
            value = condition()
        except Exception as exc:  # polling a service: any failure means "not yet"
            value, error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            last = f"{type(error).__name__}: {error}" if error is not None else repr(value)
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}: last {last}")
        time.sleep(interval)


class InfluxQuery:
    def __init__(self, url: str, database: str, *, auth: tuple[str, str] | None = None) -> None:
        self.url = url
        self.database = database
        self.auth = auth

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """The series of the first statement's result ([] when empty)."""
        response = httpx.get(
            f"{self.url}/query",
            params={"q": influxql, "db": self.database, "epoch": "ns"},
            auth=self.auth,
            timeout=30,
            trust_env=False,
        )
        response.raise_for_status()
        result = response.json()["results"][0]
        assert "error" not in result, result["error"]
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def count(self, measurement: str, field: str, *, where: str = "") -> int:
        clause = f" WHERE {where}" if where else ""
        series = self.query(f'SELECT count("{field}") FROM "{measurement}"{clause}')
        return int(series[0]["values"][0][1]) if series else 0

    def count_by_tag(self, measurement: str, field: str, tag: str) -> dict[str, int]:
        series = self.query(f'SELECT count("{field}") FROM "{measurement}" GROUP BY "{tag}"')
        return {s["tags"][tag]: int(s["values"][0][1]) for s in series}

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        """Every row of every series as a dict of column -> value, with the series' tags merged in."""
        out = []
        for series in self.query(influxql):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                out.append(row)
        return out

    def drop(self) -> None:
        httpx.post(
            f"{self.url}/query", data={"q": f'DROP DATABASE "{self.database}"'}, timeout=30, trust_env=False
        )


class IngesterProcess:
    """``reallabor ingest --config`` in a child process; its stderr is kept for assertions."""

    def __init__(self, target: Target, directory: Path, *, env: dict[str, str]) -> None:
        self.target = target
        self.config_path = directory / "ingest.yaml"
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, **sections: dict[str, Any]) -> IngesterProcess:
        return self.launch(self.target.config(**sections))

    def launch(self, config: dict[str, Any], *, wait_ready: bool = True) -> IngesterProcess:
        """Start with this whole ``config`` (``start`` builds it from the target and ``sections``)."""
        self.config_path.write_text(yaml.safe_dump(config))
        self._ready.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "ingest", "--config", str(self.config_path)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        if wait_ready and not self._ready.wait(30):
            self.stop()
            raise AssertionError("ingester not ready within 30 s:\n" + self.output())
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line.rstrip("\n"))
            if "ingester ready" in line:
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.log)

    def stop(self, *, kill: bool = False, timeout: float = 30) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
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


def settled(port: int) -> dict[str, float] | None:
    """The metrics once every received message is written or quarantined (nothing in flight), else None.

    Messages replayed from the quarantine (``replayed_total``) come in besides the received ones."""
    metrics = read_metrics(port)
    quarantined = sum(v for k, v in metrics.items() if k.startswith("quarantined_total"))
    quarantined += metrics.get("already_quarantined_total", 0)
    came_in = metrics["received_total"] + metrics.get("replayed_total", 0)
    if metrics["in_spool_messages"] or came_in != metrics["written_total"] + quarantined:
        return None
    return metrics


def assert_accounting(metrics: dict[str, float]) -> None:
    """received + replayed = written + in spool + quarantined + already quarantined (at rest), and nothing
    dropped."""
    quarantined = sum(v for k, v in metrics.items() if k.startswith("quarantined_total"))
    quarantined += metrics.get("already_quarantined_total", 0)
    assert metrics["dropped_total"] == 0
    came_in = metrics["received_total"] + metrics.get("replayed_total", 0)
    assert came_in == metrics["written_total"] + metrics["in_spool_messages"] + quarantined, metrics
