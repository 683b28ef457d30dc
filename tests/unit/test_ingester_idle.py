"""The decode stage wakes per batch, not per read: reads that arrive while a batch is open wait in the queue
and are decoded together when the batch is full or at its deadline (a wake-up per read cost five times
the messages it brought at 1,000 msg/s: bench.live_cost, docs/performance.md). Driven in-process through
the ingester's ports, with the fakes of test_ingester_inprocess."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ingest.ingester import DECODE_CHUNK, Inbox, Ingester
from tests.unit.test_ingester_inprocess import FakeBroker, FakeInflux, reading, settings_for, stop, until


def test_reads_of_an_open_batch_are_decoded_together_at_its_deadline(tmp_path: Path) -> None:
    broker, influx = FakeBroker(), FakeInflux()
    seen: list[int] = []  # received (counted when decoded) right after each read

    async def scenario() -> tuple[float, float]:
        ingester = Ingester(settings_for(tmp_path, flush_interval_s=0.5), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(0)])  # opens a batch
        await until(lambda: ingester.stats.received == 1, "the first read decoded")
        opened = time.monotonic()
        for i in range(1, 11):
            broker.deliver([reading(i)])
            await asyncio.sleep(0.01)
            seen.append(ingester.stats.received)
        await until(lambda: ingester.stats.received == 11, "the reads decoded")
        decoded_after = time.monotonic() - opened
        await until(lambda: ingester.stats.written == 11, "written")
        await stop(ingester, run)
        return decoded_after, time.monotonic() - opened

    decoded_after, _ = asyncio.run(scenario())
    assert seen == [1] * 10, f"decoded read by read: {seen}"
    assert 0.3 < decoded_after < 2.0, decoded_after  # at the deadline (0.5 s after the batch opened)
    assert influx.writes == 1  # one batch, one write
    assert len(influx.lines) == 11


def test_a_batch_worth_waiting_is_decoded_at_once(tmp_path: Path) -> None:
    broker, influx = FakeBroker(), FakeInflux()

    async def scenario() -> float:
        settings = settings_for(tmp_path, flush_interval_s=30.0, batch_size=20)
        ingester = Ingester(settings, source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(0)])
        await until(lambda: ingester.stats.received == 1, "the first read decoded")
        started = time.monotonic()
        for i in range(1, 40):  # one message per read, as a trickle of devices sends them
            broker.deliver([reading(i)])
            await asyncio.sleep(0)
        await until(lambda: ingester.stats.written >= 20, "the full batch written")
        took = time.monotonic() - started
        await stop(ingester, run)
        return took

    assert asyncio.run(scenario()) < 5.0  # not the 30 s deadline
    assert len(influx.lines) >= 20


def test_reads_waiting_at_stop_join_the_last_batch_and_are_acked(tmp_path: Path) -> None:
    broker, influx = FakeBroker(), FakeInflux()

    async def scenario() -> Ingester:
        ingester = Ingester(settings_for(tmp_path, flush_interval_s=30.0), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(0)])
        await until(lambda: ingester.stats.received == 1, "the first read decoded")
        for i in range(1, 6):
            broker.deliver([reading(i)])
        await asyncio.sleep(0.05)
        await stop(ingester, run)
        return ingester

    ingester = asyncio.run(scenario())
    assert ingester.stats.received == 6
    assert len(broker.acked) == 6
    assert broker.unacked() == []


def test_inbox_counts_messages_and_wakes_at_the_count() -> None:
    async def scenario() -> tuple[float, float]:
        inbox = Inbox()
        start = time.monotonic()

        async def feed() -> None:
            for i in range(5):
                await asyncio.sleep(0.02)
                inbox.put_nowait([reading(2 * i), reading(2 * i + 1)])

        feeder = asyncio.create_task(feed())
        await inbox.wait_for(6, time.monotonic() + 5)  # the third read brings the 6th message
        six = time.monotonic() - start
        assert inbox.messages == 6
        assert len(inbox.get_nowait()) == 2
        assert inbox.messages == 4
        await inbox.wait_for(100, time.monotonic() + 0.1)  # never that many: the deadline
        deadline = time.monotonic() - start
        await feeder
        assert inbox.messages == 8
        while not inbox.empty():
            await inbox.get()
        assert inbox.messages == 0
        return six, deadline

    six, deadline = asyncio.run(scenario())
    assert 0.04 < six < 1.0
    assert 0.1 <= deadline - six < 1.0


def test_a_batch_size_beyond_what_the_source_holds_does_not_wait_for_the_deadline(tmp_path: Path) -> None:
    """The source stops reading at receive_maximum queued messages and reads on at half of it: waiting for
    more than that half could only end at the deadline."""
    broker, influx = FakeBroker(), FakeInflux()

    async def scenario() -> float:
        settings = settings_for(tmp_path, flush_interval_s=30.0, batch_size=1000)
        mqtt = settings.mqtt.model_copy(update={"receive_maximum": 20})
        settings = settings.model_copy(update={"mqtt": mqtt})
        ingester = Ingester(settings, source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(0)])
        await until(lambda: ingester.stats.received == 1, "the first read decoded")
        started = time.monotonic()
        for i in range(1, 12):
            broker.deliver([reading(i)])
            await asyncio.sleep(0)
        await until(lambda: ingester.stats.received >= 11, "half of receive_maximum decoded")
        took = time.monotonic() - started
        await stop(ingester, run)
        return took

    assert asyncio.run(scenario()) < 5.0


class EndlessBroker(FakeBroker):
    """Once ``endless`` is set, a broker with one more read ready whenever the ingester takes one (up to
    ``total`` messages): reads keep arriving while a batch is decoded."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.sent = 0
        self.endless = False

    def send_one(self) -> None:
        if self.sent < self.total:
            self.deliver([reading(self.sent)])
            self.sent += 1

    def taken(self, count: int) -> None:
        super().taken(count)
        if self.endless:
            self.send_one()


def test_past_its_deadline_a_batch_takes_only_the_reads_that_came_before(tmp_path: Path) -> None:
    """Else a steady stream would keep one batch open for as long as reads come while it is decoded."""
    broker, influx = EndlessBroker(total=30), FakeInflux()
    bodies: list[int] = []
    write = influx.write

    async def counting_write(body: bytes) -> None:
        bodies.append(body.count(b"\n"))
        await write(body)

    influx.write = counting_write  # type: ignore[method-assign]

    async def scenario() -> None:
        ingester = Ingester(settings_for(tmp_path, flush_interval_s=0.05), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.send_one()
        await until(lambda: ingester.stats.received == 1, "the first read decoded")  # a batch is open
        for _ in range(3):
            broker.send_one()  # fewer than a batch: they wait for its deadline
        time.sleep(0.1)  # noqa: ASYNC251 - blocking on purpose: the deadline passes, nothing else runs
        broker.endless = True  # from now on every read taken brings the next
        await until(lambda: ingester.stats.written == 30, "all written")
        await stop(ingester, run)

    asyncio.run(scenario())
    assert sum(bodies) == 30
    assert bodies[0] == 4, bodies  # the reads that came before the deadline, not the ones after


def test_an_open_batch_is_decoded_in_chunks_not_all_at_its_deadline(tmp_path: Path) -> None:
    """The deadline should find little left to decode: on a busy machine decoding a whole interval's
    messages at once delayed the batch by a few hundred ms (p50 at 5,000 msg/s 0.26-0.30 -> 0.62-0.74 s)."""
    broker, influx = FakeBroker(), FakeInflux()

    async def scenario() -> int:
        ingester = Ingester(settings_for(tmp_path, flush_interval_s=30.0), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(0)])
        await until(lambda: ingester.stats.received == 1, "the first read decoded")
        for i in range(1, DECODE_CHUNK + 50):
            broker.deliver([reading(i)])
        await until(lambda: ingester.stats.received > DECODE_CHUNK, "a chunk decoded before the deadline")
        received = ingester.stats.received
        await stop(ingester, run)
        return received

    assert asyncio.run(scenario()) >= DECODE_CHUNK
