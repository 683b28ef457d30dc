"""Shared by the quarter page's tests: its API in a process of its own, and the figures by quarter hour."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ingest.localservices import LOOPBACK, free_port
from ingest.opendata.public import PublicFigures, QuarterHour

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def quarter_server(influx_url: str, database: str, *, cache_s: int, directory: Path) -> Iterator[str]:
    """The API (tests/portal/quarter_server.py, as ``reallabor api`` runs it) on a free loopback port,
    reading ``database`` at ``influx_url``; its URL once its health check answers. Its output goes to
    ``directory / "server.log"``."""
    port = free_port()
    command = [sys.executable, "-m", "tests.portal.quarter_server", "--influx", influx_url]
    command += [
        "--database",
        database,
        "--port",
        str(port),
        "--cache-s",
        str(cache_s),
        "--dir",
        str(directory),
    ]
    log_path = directory / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/v1/health", trust_env=False, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the quarter server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(15)


def by_start(figures: PublicFigures) -> dict[dt.datetime, QuarterHour]:
    """Today's shown quarter hours by their start."""
    return {quarter.start: quarter for quarter in figures.today}
