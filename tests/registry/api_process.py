"""``reallabor api`` in a child process on a free port, served by uvicorn as in production, with a SQLite
registry prepared beforehand; its memory figures from ``/proc/<pid>/status``."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from ingest.localservices import LOOPBACK, free_port
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from ingest.registry.models import Role
from tests.registry import factories as f

REPO = Path(__file__).resolve().parents[2]
V1 = "/api/v1"


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    port: int
    secret_key: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def status(self, key: str) -> int:
        """A ``/proc/<pid>/status`` figure (VmRSS, VmHWM) in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key} in /proc/{self.process.pid}/status")

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measures what follows only."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")


def registry_with_users(root: Path, roles: Sequence[Role]) -> tuple[str, list[str]]:
    """A migrated SQLite registry under ``root`` with one user per role (password ``f.PASSWORD``)."""
    url = f"sqlite:///{root / 'registry.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as session:
        usernames = [f.user(session, role).username for role in roles]
    engine.dispose()
    return url, usernames


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"reallabor api exited with {process.returncode}")
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}{V1}/health", timeout=2, trust_env=False).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("reallabor api did not answer /health within 30 s")


@contextmanager
def running_api(root: Path, registry_url: str) -> Iterator[ApiProcess]:
    """``reallabor api`` (development mode, its own random secret key) until the block ends."""
    secret_key = secrets.token_urlsafe(32)
    config = root / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "api": {"secret_key": secret_key},
                "registry": {"url": registry_url},
                "ingest": {
                    "profiles_dir": str(REPO / "device_profiles"),
                    "state_dir": str(root / "state"),
                    "log_level": "WARNING",
                },
            }
        )
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "api", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(port, process)
        yield ApiProcess(process=process, port=port, secret_key=secret_key)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
