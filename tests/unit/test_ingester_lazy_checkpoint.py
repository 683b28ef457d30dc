"""The sink's cheap path (docs/performance.md, "An idle ingester that idles"): the records this process
appended reach the sink in memory, and the spool's checkpoint is written once per interval, not per
batch. Neither may lose anything: a crash between a write and its checkpoint replays the records from the
spool (InfluxDB overwrites the same points), and the identity of a line InfluxDB refused is released only
once the checkpoint that covers its record is durable, so a replay finds its quarantine entry.

In-process, fakes at the network boundary only (spool and quarantine real, on tmp_path); a "crash" is a
copy of the state directory taken while the checkpoint is held up, as a process killed then leaves it.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from ingest import ingester as ingester_module
from ingest.ingester import Ingester
from ingest.spool import Spool, SpoolRecord
from tests.unit.test_ingester_inprocess import (
    TIMEOUT_S,
    FakeBroker,
    FakeInflux,
    reading,
    settings_for,
    stamps,
    stop,
    timestamp,
    until,
)
from tests.unit.test_quarantine_identity_release import held


class WatchedSpool(Spool):
    """The real spool; its checkpoint can be held up (``gate``), and its confirms and reads are counted."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, max_bytes=1 << 20)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # a checkpoint has begun
        self.checkpoints: list[list[int]] = []  # the sequence numbers of each confirm_many
        self.reads = 0  # calls of pending(): records read back from disk

    def confirm_many(self, seqs: Iterable[int]) -> int:
        seqs = list(seqs)
        self.entered.set()
        assert self.gate.wait(TIMEOUT_S), "the checkpoint was held up too long"
        self.checkpoints.append(seqs)
        return super().confirm_many(seqs)

    def pending(self, *, limit: int | None = None, after: int = 0) -> list[SpoolRecord]:
        self.reads += 1
        return super().pending(limit=limit, after=after)


async def entered(spool: WatchedSpool) -> None:
    await until(spool.entered.is_set, "a checkpoint begun")


def lines_are(influx: FakeInflux, count: int) -> bool:
    return len(influx.lines) == count


def crash_image(state: Path, into: Path) -> Path:
    """The state directory as a process killed now leaves it (what is written is written)."""
    shutil.copytree(state, into)
    return into


def test_a_crash_between_the_writes_and_their_checkpoint_replays_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingester_module, "CHECKPOINT_INTERVAL_S", 0.3)
    state, crashed = tmp_path / "state", tmp_path / "crashed"
    messages = [reading(i) for i in range(30)]
    influx = FakeInflux()

    async def before_the_crash() -> WatchedSpool:
        spool = WatchedSpool(state / "spool")
        spool.gate.clear()
        broker = FakeBroker()
        ingester = Ingester(
            settings_for(state, batch_size=10), source=broker.bind, writer=influx, spool=spool
        )
        run = asyncio.create_task(ingester.run())
        for record in range(3):  # a record each, written one after the other
            broker.deliver(messages[10 * record : 10 * record + 10])
            await until(functools.partial(lines_are, influx, 10 * record + 10), "the record written")
        await entered(spool)  # the interval is over: now the three records' checkpoint
        crash_image(state, crashed)
        spool.gate.set()
        await stop(ingester, run)
        return spool

    spool = asyncio.run(before_the_crash())
    assert spool.checkpoints[0] == [1, 2, 3], "one checkpoint for the three records"
    with Spool(crashed / "spool", max_bytes=1 << 20) as image:
        assert [r.seq for r in image.pending()] == [1, 2, 3]  # written, not checkpointed: replayed
    with Spool(state / "spool", max_bytes=1 << 20) as done:
        assert done.pending_count == 0  # the checkpoint at stop

    replayed = FakeInflux()

    async def after_the_crash() -> int:
        broker = FakeBroker()
        ingester = Ingester(settings_for(crashed), source=broker.bind, writer=replayed)
        run = asyncio.create_task(ingester.run())
        await until(lambda: len(replayed.lines) == 30, "the spool replayed")
        await stop(ingester, run)
        return ingester.spool.pending_count

    assert asyncio.run(after_the_crash()) == 0
    assert sorted(stamps(replayed.lines)) == sorted(timestamp(m) for m in messages), "nothing lost"


def test_a_refused_lines_identity_waits_for_the_durable_checkpoint(tmp_path: Path) -> None:
    state, crashed = tmp_path / "state", tmp_path / "crashed"
    messages = [reading(i, co2=i == 4) for i in range(10)]

    async def before_the_crash() -> list[tuple[int, bool]]:
        spool = WatchedSpool(state / "spool")
        spool.gate.clear()
        broker, influx = FakeBroker(), FakeInflux(refuse=lambda line: b"co2_ppm=" in line)
        ingester = Ingester(settings_for(state), source=broker.bind, writer=influx, spool=spool)
        run = asyncio.create_task(ingester.run())
        broker.deliver(messages)
        await entered(spool)  # the line refused and quarantined; its record's checkpoint held up
        ingester.quarantine.write_releases()  # whatever was released so far, on disk
        during = held(state)
        crash_image(state, crashed)
        spool.gate.set()

        def released() -> bool:
            ingester.quarantine.write_releases()
            return held(state) == [(1, False)]

        await until(released, "the identity released once the checkpoint is written")
        await stop(ingester, run)
        return during

    during = asyncio.run(before_the_crash())
    assert during == [(1, True)], "released before the checkpoint that covers its record"

    replayed = FakeInflux(refuse=lambda line: b"co2_ppm=" in line)

    async def after_the_crash() -> tuple[int, int]:
        broker = FakeBroker()
        ingester = Ingester(settings_for(crashed), source=broker.bind, writer=replayed)
        run = asyncio.create_task(ingester.run())
        await until(lambda: ingester.spool.pending_count == 0, "the spool replayed")
        await stop(ingester, run)
        return ingester.stats.quarantined_total, ingester.stats.points_quarantined

    # the replayed record's line refused again found its entry (counted by the process that stored it)
    assert asyncio.run(after_the_crash()) == (0, 0)
    assert replayed.refused, "the record was not replayed"
    assert held(crashed) == [(1, False)]  # one entry, released at the replay's checkpoint
    good = sorted(timestamp(m) for i, m in enumerate(messages) if i != 4)
    assert sorted(set(stamps(replayed.lines))) == good


def start_in_batches_of_ten(
    state: Path, influx: FakeInflux
) -> tuple[WatchedSpool, FakeBroker, Ingester, asyncio.Task[None]]:
    """An ingester on a watched spool in ``state``, batches of 10, running (call inside the event loop)."""
    spool = WatchedSpool(state / "spool")
    broker = FakeBroker()
    ingester = Ingester(settings_for(state, batch_size=10), source=broker.bind, writer=influx, spool=spool)
    return spool, broker, ingester, asyncio.create_task(ingester.run())


def test_the_sink_takes_this_process_records_from_memory(tmp_path: Path) -> None:
    messages = [reading(i) for i in range(50)]
    influx = FakeInflux()

    async def scenario() -> WatchedSpool:
        spool, broker, ingester, run = start_in_batches_of_ten(tmp_path, influx)
        for start in range(0, 50, 10):
            broker.deliver(messages[start : start + 10])
            await asyncio.sleep(0.01)
        await until(lambda: ingester.stats.written == 50, "all written")
        await stop(ingester, run)
        return spool

    spool = asyncio.run(scenario())
    assert spool.reads == 0, "read back from disk what this process had just appended"
    assert stamps(influx.lines) == [timestamp(m) for m in messages]


def test_records_past_the_memory_bound_are_read_from_disk_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingester_module, "FRESH_MAX_BYTES", 2_000)  # about two records of 10 lines
    messages = [reading(i) for i in range(80)]
    influx = FakeInflux()
    influx.up = False  # the records pile up in the spool meanwhile

    async def scenario() -> WatchedSpool:
        spool, broker, ingester, run = start_in_batches_of_ten(tmp_path, influx)
        for start in range(0, 40, 10):
            broker.deliver(messages[start : start + 10])
        await until(lambda: ingester.stats.spooled == 40, "the first half spooled")
        influx.up = True
        await until(lambda: ingester.stats.written == 40, "the first half written")
        for start in range(40, 80, 10):  # memory again, once the sink has caught up
            broker.deliver(messages[start : start + 10])
        await until(lambda: ingester.stats.written == 80, "all written")
        await stop(ingester, run)
        return spool

    spool = asyncio.run(scenario())
    assert spool.reads > 0
    assert stamps(influx.lines) == [timestamp(m) for m in messages], "in order, each once"
