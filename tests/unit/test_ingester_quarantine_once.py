"""The ingester's crash windows around the quarantine, in-process (fakes at the network boundary only, as
in test_ingester_inprocess.py; spool and quarantine real): a message or a refused line that comes back
after a crash is quarantined, and counted, once.

- decode rejects: committed to the quarantine, then the crash before the ack; the broker sends the message
  again with DUP set. The same bad payload sent again later (its packet id reused) is a new entry.
- a line InfluxDB refused: quarantined, then the crash before the spool checkpoint; the next start reads
  the record again and InfluxDB refuses the line again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from ingest.ingester import Ingester
from ingest.ingester_ports import Message
from ingest.spool import Spool, SpoolError
from tests.unit.test_ingester_inprocess import (
    TIMEOUT_S,
    FakeBroker,
    FakeInflux,
    quarantined,
    reading,
    settings_for,
    stop,
    until,
)

BAD = Message("lab/gw-1/room-1/state", b"{bad", 1_764_320_400_000_000_000, 1, 42, 1)


class Crash(Exception):
    """The process dies here."""


def test_a_reject_redelivered_after_a_crash_before_its_ack_is_quarantined_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def crash_after_the_commit() -> None:
        broker = FakeBroker()

        def die(messages: list[Message]) -> None:
            raise Crash("killed between the quarantine commit and the ack")

        broker.on_ack = die
        ingester = Ingester(settings, source=broker.bind, writer=FakeInflux())
        run = asyncio.create_task(ingester.run())
        broker.deliver([BAD])
        with pytest.raises(Crash):
            await asyncio.wait_for(run, TIMEOUT_S)
        assert broker.unacked() == [BAD]

    async def restart() -> tuple[int, int, int]:
        broker = FakeBroker()
        ingester = Ingester(settings, source=broker.bind, writer=FakeInflux())
        run = asyncio.create_task(ingester.run())
        await until(lambda: broker.queue is not None and broker.connected.is_set(), "connected")
        redelivery = dataclasses.replace(BAD, received_ns=time.time_ns(), dup=True)
        broker.deliver([redelivery, reading(1)])  # with a good one: the batch goes on as ever
        await until(lambda: len(broker.acked) == 2, "both acknowledged")
        after_redelivery = ingester.stats.quarantined_total
        broker.deliver([dataclasses.replace(BAD, received_ns=time.time_ns())])  # sent again: new message
        await until(lambda: len(broker.acked) == 3, "the new one acknowledged")
        await stop(ingester, run)
        return after_redelivery, ingester.stats.quarantined_total, ingester.stats.already_quarantined

    asyncio.run(crash_after_the_commit())
    assert quarantined(tmp_path) == [(BAD.topic, BAD.payload, "invalid_json")]
    after_redelivery, at_the_end, already = asyncio.run(restart())
    assert after_redelivery == 0  # received, acknowledged, already in the quarantine: not counted again
    assert quarantined(tmp_path) == [(BAD.topic, BAD.payload, "invalid_json")] * 2
    assert at_the_end == 1
    assert already == 1  # the redelivery has its own outcome, so received = written + quarantined + already


class CrashingSpool(Spool):
    """The real spool, but the process dies when the sink would checkpoint what InfluxDB took."""

    def confirm_many(self, seqs: Iterable[int]) -> int:
        raise SpoolError("killed before the checkpoint")


def test_a_refused_line_read_again_after_a_crash_before_the_checkpoint_is_quarantined_once(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, batch_size=4)
    spool_dir = tmp_path / "spool"

    def influx() -> FakeInflux:
        return FakeInflux(refuse=lambda line: b"co2_ppm=" in line)

    async def crash_before_the_checkpoint() -> int:
        broker = FakeBroker()
        spool = CrashingSpool(spool_dir, max_bytes=settings.ingest.spool_max_bytes)
        ingester = Ingester(settings, source=broker.bind, writer=influx(), spool=spool)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(i, co2=i == 2) for i in range(4)])
        with pytest.raises(SpoolError, match="killed"):
            await asyncio.wait_for(run, TIMEOUT_S)
        return ingester.stats.points_quarantined

    async def restart() -> tuple[int, int, list[bytes]]:
        broker = FakeBroker()
        writer = influx()
        ingester = Ingester(settings, source=broker.bind, writer=writer)
        run = asyncio.create_task(ingester.run())
        await until(lambda: len(writer.points) == 3, "the three good lines written")
        await until(lambda: ingester.spool.pending_count == 0, "the record confirmed")
        await stop(ingester, run)
        return (
            ingester.stats.points_quarantined,
            ingester.stats.quarantined_total,
            list(writer.points.values()),
        )

    assert asyncio.run(crash_before_the_checkpoint()) == 1
    first = quarantined(tmp_path)
    assert [(topic, reason) for topic, _, reason in first] == [("influx:environment", "influx_rejected")]
    points_quarantined, quarantined_total, written = asyncio.run(restart())
    assert quarantined(tmp_path) == first
    assert (points_quarantined, quarantined_total) == (0, 0)
    assert len(written) == 3
