"""``reallabor up`` as a child process on free ports, with what its banner tells a new user."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ingest.demo.ports import DemoPorts
from ingest.localservices import LOOPBACK, free_port
from tests.helpers import InfluxQuery

REPO = Path(__file__).resolve().parents[1]
LOGIN_LINE = re.compile(r"^\s+(operator|technician|resident)\s+(\S+)\s+(\S+)")


def free_ports() -> DemoPorts:
    while True:
        ports = DemoPorts(mqtt=free_port(), influx=free_port(), api=free_port(), metrics=free_port())
        if not ports.taken():  # the InfluxDB RPC port (HTTP + 2) must be free too
            return ports


@dataclass
class Demo:
    state_dir: Path
    ports: DemoPorts
    households: int = 10
    interval_s: float = 1.0
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (username, password)
    _reader: threading.Thread = field(init=False, repr=False)

    def command(self) -> list[str]:
        p = self.ports
        return [
            sys.executable, "-m", "ingest.cli", "up",
            "--simulate", str(self.households), "--interval", f"{self.interval_s:g}",
            "--state-dir", str(self.state_dir),
            "--mqtt-port", str(p.mqtt), "--influx-port", str(p.influx),
            "--api-port", str(p.api), "--metrics-port", str(p.metrics),
        ]  # fmt: skip

    def run(self, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``up`` to its end (a refusal, say): exit code, stdout, stderr."""
        return subprocess.run(
            [*self.command(), *extra], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, *, timeout: float = 90) -> Demo:
        self.lines.clear()
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not any(line.startswith("Press Ctrl-C") for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("reallabor up did not come up:\n" + self.output())
            time.sleep(0.1)
        self.logins = {m[1]: (m[2], m[3]) for line in self.lines if (m := LOGIN_LINE.match(line))}
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 60) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # what Ctrl-C does
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise AssertionError("reallabor up did not stop in time:\n" + self.output()) from None
            return process.returncode
        finally:
            self._reader.join(10)  # it reads to the end of the output first
            if process.stdout is not None:
                process.stdout.close()

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.api}"

    @property
    def influx_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.influx}"

    def secrets(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads((self.state_dir / "demo-secrets.json").read_text())
        return found

    def influx(self) -> InfluxQuery:
        """Queries as the demo's read-only InfluxDB user."""
        return InfluxQuery(self.influx_url, "reallabor", auth=("reader", self.secrets()["influx_reader"]))

    @contextlib.contextmanager
    def login(self, role: str) -> Iterator[httpx.Client]:
        """An API client logged in with the banner's credentials for ``role``."""
        username, password = self.logins[role]
        with httpx.Client(base_url=self.api_url, timeout=30, trust_env=False) as client:
            response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
            assert response.status_code == 200, response.text
            client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
            yield client
