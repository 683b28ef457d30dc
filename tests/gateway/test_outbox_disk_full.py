"""A really full disk (ENOSPC before ``max_bytes``) on a small tmpfs (review H2): the outbox drops its
oldest segment, counts it, logs once a minute, and keeps the newest frames; with nothing of its own left
to drop it counts the new frame as dropped; the health task keeps running and reports the count."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.gateway.config import Central
from ingest.gateway.frames import Frame
from ingest.gateway.health import Health, HealthSources
from ingest.gateway.outbox import DROPPED, Outbox
from ingest.gateway.uplink import Uplink

DISK_BYTES = 1 << 20
SEGMENT = 64 << 10
RESERVE = 1 << 20  # as in production: capped at 1/64 of the disk, 16 KiB here


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10, check=False)


def frame(n: int) -> Frame:
    return Frame("lab/gw-d/sml/hh-001-em", n.to_bytes(4, "big") * 50, 1_764_320_400_000_000_000 + n)


def disk_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "the disk is full" in r.getMessage()]


def test_a_full_disk_drops_the_oldest_counted_and_keeps_the_newest(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.gateway")
    count = 12_000  # 210 bytes each with the header: 2.5 MB through a 1 MB disk
    with Outbox(
        small_disk / "outbox", max_bytes=2_000_000_000, segment_bytes=SEGMENT, reserve_bytes=RESERVE
    ) as outbox:
        seqs = [outbox.put(frame(n)) for n in range(count)]  # never raises into the reader
        stats = outbox.stats()
        assert DROPPED not in seqs[-100:]  # the newest were written
        assert stats.dropped_disk > 0
        assert stats.dropped_full == stats.dropped_disk  # the same counter the central side charts
        assert stats.depth + stats.dropped_disk == count  # every frame is kept or counted
        assert stats.bytes < DISK_BYTES
        taken = [f for _, f in outbox.take(count)]
        # what is kept is the newest, without a gap: exactly the oldest were dropped
        assert sorted(taken, key=lambda f: f.read_ns) == [frame(n) for n in range(count - len(taken), count)]
    assert "is more than its file system can hold" in caplog.text  # said at the start already
    warned = disk_warnings(caplog)
    assert len(warned) == 1  # one WARNING per minute, with counts, no traceback
    assert warned[0].levelno == logging.WARNING
    assert warned[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_with_nothing_to_drop_the_new_frame_is_counted_and_health_goes_on(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.gateway")
    filler = small_disk / "journal"  # someone else filled the disk
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()

    async def scenario() -> dict[str, int]:
        with Outbox(
            small_disk / "outbox", max_bytes=2_000_000_000, segment_bytes=SEGMENT, reserve_bytes=RESERVE
        ) as outbox:
            uplink = Uplink(
                Central(brokers=["127.0.0.1:1"], username="u", password="x", client_id="c"), outbox
            )
            health = Health(
                HealthSources(
                    gateway="gw-d",
                    outbox_directory=small_disk / "outbox",
                    outbox=outbox.stats,
                    uplink=uplink.stats,
                    ports={},
                ),
                interval_s=0.01,
            )
            assert outbox.put(frame(1)) == DROPPED
            task = asyncio.create_task(health.run(outbox.put))
            await asyncio.sleep(0.3)
            assert not task.done()  # no crash, no restart loop
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            stats = outbox.stats()
            assert health.message()["outbox"]["dropped_disk"] == stats.dropped_disk
            return {"dropped_disk": stats.dropped_disk, "depth": stats.depth, "health_runs": health.sent}

    found = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert found["depth"] == 0
    assert found["dropped_disk"] >= 1 + found["health_runs"]
    assert len(disk_warnings(caplog)) == 1

    filler.unlink()  # space again: writing resumes without a restart
    with Outbox(
        small_disk / "outbox", max_bytes=2_000_000_000, segment_bytes=SEGMENT, reserve_bytes=RESERVE
    ) as outbox:
        assert outbox.put(frame(2)) != DROPPED
        assert [f for _, f in outbox.take(10)] == [frame(2)]
