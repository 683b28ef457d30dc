"""When a stage of the ingester fails, the ingester ends with that error (so a supervisor restarts it),
instead of hanging with /metrics still answering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from ingest.config import Settings
from ingest.ingester import Ingester
from ingest.localservices import free_port
from ingest.mqtt import Message
from ingest.quarantine import QuarantineEntry, QuarantineError

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"


def test_a_failing_commit_ends_the_ingester(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # broker and InfluxDB on closed ports: the stages under test are decode and commit
    settings = Settings(
        mqtt={"port": free_port()},
        influx={"url": f"http://127.0.0.1:{free_port()}", "flush_interval_s": 0.05},
        ingest={"state_dir": str(tmp_path), "profiles_dir": str(PROFILES)},
    )

    def disk_full(_entries: Iterable[QuarantineEntry]) -> list[int]:
        time.sleep(0.3)  # slow, then full: the decode stage has filled the batch queue meanwhile
        raise QuarantineError("database or disk is full")

    async def scenario() -> BaseException | None:
        ingester = Ingester(settings)
        monkeypatch.setattr(ingester.quarantine, "add_many", disk_full)
        run = asyncio.create_task(ingester.run())
        for n in range(100):  # rejected messages, one read each
            ingester._messages.put_nowait(
                [Message("lab/gw/tele/d/SENSOR", b"{bad", time.time_ns(), 1, n + 1, 1)]
            )
            await asyncio.sleep(0.01)
        done, _ = await asyncio.wait({run}, timeout=10)
        if run not in done:
            ingester.stop()
            await asyncio.wait({run}, timeout=5)
            run.cancel()
            return None
        return run.exception()

    error = asyncio.run(scenario())
    assert isinstance(error, QuarantineError), f"the ingester did not end with the commit's error: {error!r}"
