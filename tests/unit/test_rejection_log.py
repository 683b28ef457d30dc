"""The ingester's warning per rejected message is limited per gateway and reason: a gateway flooding bad
messages writes a few lines and a sum, not one line per message; the quarantine keeps every message."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from ingest.config import Settings
from ingest.ingester import Ingester, RejectionLog
from ingest.localservices import free_port
from ingest.mqtt import Message
from ingest.quarantine import Quarantine

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
LOGGER = "ingest.ingester"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_few_lines_per_gateway_and_reason_then_one_sum(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = RejectionLog(topic_prefix="p/", burst=3, interval_s=60, clock=clock)
    caplog.set_level(logging.INFO, LOGGER)
    for n in range(1000):
        limiter.rejected(f"p/lab/gw-02/flood-{n}/state", "invalid_json", "bad")
    limiter.rejected("p/lab/gw-02/x/state", "no_readings", "none")  # another reason: its own lines
    limiter.rejected("p/lab/gw-05/legit/state", "invalid_json", "bad")  # another gateway: its own lines
    limiter.rejected("p/lab/gw-02/tasmota/discovery/AA/config", "announcement", "device AA")  # INFO, always
    lines = _lines(caplog)
    assert len(lines) == 3 + 1 + 1 + 1
    assert sum("gw-05" in line for line in lines) == 1
    assert [r.levelno for r in caplog.records if "announcement" in r.getMessage()] == [logging.INFO]

    caplog.clear()
    clock.now += 30
    limiter.flush()  # the interval is not over: nothing yet
    assert _lines(caplog) == []
    clock.now += 31
    limiter.flush()
    assert _lines(caplog) == [
        "... and 997 more rejected messages from gw-02 (invalid_json) in the last 61 s"
        " (all in the quarantine)"
    ]

    caplog.clear()  # a new interval: its first lines again; a sum at the end for the rest
    for n in range(5):
        limiter.rejected(f"p/lab/gw-02/flood-{n}/state", "invalid_json", "bad")
    limiter.flush(everything=True)
    assert len(_lines(caplog)) == 4
    assert "2 more rejected messages from gw-02 (invalid_json)" in _lines(caplog)[-1]


def test_the_next_rejection_after_the_interval_sums_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = RejectionLog(burst=1, interval_s=10, clock=clock)
    caplog.set_level(logging.INFO, LOGGER)
    for _ in range(4):
        limiter.rejected("lab/gw-01/d/state", "invalid_json", "bad")
    clock.now += 10
    limiter.rejected("lab/gw-01/d/state", "invalid_json", "bad")
    assert _lines(caplog)[1:] == [
        "... and 3 more rejected messages from gw-01 (invalid_json) in the last 10 s (all in the quarantine)",
        "rejected message on 'lab/gw-01/d/state': invalid_json: bad",
    ]


def _flood(tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: int, *, burst: int | None = None) -> int:
    """Log lines of an ingester taking ``bad`` rejected messages from gw-02 and 3 from gw-05."""
    settings = Settings(
        mqtt={"port": free_port()},  # no broker: messages go straight into the decode stage's queue
        influx={"url": f"http://127.0.0.1:{free_port()}", "flush_interval_s": 0.05},
        ingest={"state_dir": str(tmp_path), "profiles_dir": str(PROFILES)},
    )
    caplog.set_level(logging.WARNING, LOGGER)

    async def scenario() -> None:
        ingester = Ingester(settings)
        if burst is not None:
            ingester.rejection_log.burst = burst
        run = asyncio.create_task(ingester.run())
        now = time.time_ns()
        flood = [Message(f"lab/gw-02/tele/flood-{n}/SENSOR", b"{bad", now, 1, n + 1, 1) for n in range(bad)]
        legit = [Message("lab/gw-05/tele/legit/SENSOR", b"{bad", now, 1, bad + n + 1, 1) for n in range(3)]
        for start in range(0, bad, 500):
            ingester._messages.put_nowait(flood[start : start + 500])
        ingester._messages.put_nowait(legit)
        deadline = time.monotonic() + 60
        while ingester.stats.quarantined_total < bad + 3 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the counter has no event to wait for
        ingester.stop()
        await asyncio.wait_for(run, 20)

    asyncio.run(scenario())
    with Quarantine(tmp_path / "quarantine.sqlite3", read_only=True) as q:
        assert q.count() == bad + 3  # every message kept
    return len([r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING])


def test_a_flooding_gateway_writes_a_few_lines_and_a_sum(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _flood(tmp_path, caplog, 5000)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    rejected = [m for m in messages if m.startswith("rejected message on")]
    assert sum("gw-02" in m for m in rejected) == 5
    assert sum("gw-05" in m for m in rejected) == 3
    summed = "... and 4995 more rejected messages from gw-02 (invalid_json)"
    assert any(m.startswith(summed) for m in messages)
    print(f"log lines for 5,003 rejected messages: {lines}")
    assert lines < 20
