"""The ingester's three promises, driven in-process through its ports (:mod:`ingest.ingester_ports`):
ack-after-commit, the bisection of a write InfluxDB refuses in part, and backpressure from a full spool.

The fakes stand at the network boundary only (a broker's persistent session, InfluxDB's /write); decoding,
batching, the spool and the quarantine are the real ones, on tmp_path. The same behaviours run against
Mosquitto and InfluxDB in tests/integration/test_lossless.py; these take a fraction of a second each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.config import Settings
from ingest.ingester import Ingester
from ingest.ingester_ports import InfluxRejected, InfluxUnavailable, LineWriter, Message, MessageSource
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.spool import Spool, SpoolError

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
START_NS = 1_764_320_400_000_000_000
TIMEOUT_S = 10.0  # for each wait; the tests take well under a second when the behaviour is right


class FakeBroker:
    """The broker's side of our persistent session, in memory: it hands the ingester reads of messages and
    remembers which were acknowledged (the rest it would deliver again after a restart)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Message]] | None = None
        self.connected = asyncio.Event()
        self.implausible_read_times = 0
        self.delivered: list[Message] = []
        self.acked: list[Message] = []
        self.taken_count = 0
        self.on_ack: Callable[[list[Message]], None] = lambda messages: None
        self.connection = 1  # the current one: acks of messages another connection delivered are lost

    def bind(
        self,
        *,
        topics: list[str],
        queue: asyncio.Queue[list[Message]],
        on_broker_drops: Callable[[int], None],
    ) -> FakeBroker:
        self.queue = queue
        return self

    async def run(self) -> None:
        self.connected.set()
        await asyncio.Event().wait()  # until cancelled

    def taken(self, count: int) -> None:
        self.taken_count += count

    def ack(self, messages: Iterable[Message]) -> int:
        acked = [m for m in messages if m.qos and m.connection == self.connection]
        self.on_ack(acked)
        self.acked += acked
        return len(acked)

    async def disconnect(self) -> None:
        self.connected.clear()

    def deliver(self, messages: list[Message]) -> None:
        """One read of the socket."""
        assert self.queue is not None
        self.queue.put_nowait(messages)
        self.delivered += messages

    def unacked(self) -> list[Message]:
        acked = {m.mid for m in self.acked}
        return [m for m in self.delivered if m.mid not in acked]


class FakeInflux:
    """InfluxDB 1.x's /write, in memory: keeps the lines of every body it accepts; refuses for good (HTTP
    400 "partial write") a body holding a line ``refuse`` matches, and then, like InfluxDB 1.x, keeps that
    body's other lines (checked against influxd 1.6.7: a body with one bad line of three stores the two,
    and the same body again changes nothing); does not answer at all while ``up`` is False."""

    def __init__(self, refuse: Callable[[bytes], bool] = lambda line: False) -> None:
        self.refuse = refuse
        self.up = True
        self.lines: list[bytes] = []  # every line stored, in order: a line written again is here again
        self.points: dict[tuple[bytes, bytes], bytes] = {}  # (series, time) -> line: what a query finds
        self.refused: list[list[bytes]] = []  # the bodies refused, as lines
        self.writes = 0  # bodies it was sent while up
        self.closed = False

    def _answer(self, what: str) -> None:
        if not self.up:
            raise InfluxUnavailable(f"{what}: ConnectError: connection refused")

    async def write(self, body: bytes) -> None:
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        self._answer("POST /write")
        self.writes += 1
        lines = body.splitlines()
        good = [line for line in lines if not self.refuse(line)]
        self.lines += good
        for line in good:  # the same series and time: one point (a rewrite overwrites)
            self.points[(line.split(b" ", 1)[0], line.rsplit(b" ", 1)[1])] = line
        if len(good) < len(lines):
            self.refused.append(lines)
            raise InfluxRejected(
                'partial write: field type conflict: input field "co2_ppm" is type float dropped='
                f"{len(lines) - len(good)}"
            )

    async def ping(self) -> None:
        self._answer("GET /ping")

    async def ensure_database(self) -> None:
        self._answer("POST /query")

    async def close(self) -> None:
        self.closed = True


def _fakes_implement_the_ports(broker: FakeBroker, influx: FakeInflux) -> tuple[MessageSource, LineWriter]:
    return broker, influx  # mypy checks it


def settings_for(tmp_path: Path, **influx: Any) -> Settings:
    return Settings(
        influx={"flush_interval_s": 0.02, "retry_min_s": 0.02, "retry_max_s": 0.05, **influx},
        ingest={"state_dir": str(tmp_path), "profiles_dir": str(PROFILES)},
    )


def reading(index: int, *, co2: bool = False) -> Message:
    """A generic-json room reading (one line of ``environment``), its time and value telling it apart."""
    document: dict[str, object] = {
        "ts": (START_NS + index * 10**9) // 10**6,
        "temperature_c": 20 + index / 100,
    }
    if co2:
        document["co2_ppm"] = 400 + index
    received = time.time_ns()
    return Message(f"lab/gw-1/room-{index % 7}/state", orjson.dumps(document), received, 1, index + 1, 1)


def timestamp(message: Message) -> bytes:
    """The line's timestamp (ns) of a message from :func:`reading`."""
    return str(orjson.loads(message.payload)["ts"] * 10**6).encode()


def stamps(lines: Iterable[bytes]) -> list[bytes]:
    return [line.rsplit(b" ", 1)[1] for line in lines if line.startswith(b"environment,")]


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def steady(value: Callable[[], int], for_s: float) -> int:
    """Wait until ``value`` has not changed for ``for_s`` seconds; that value."""
    deadline = time.monotonic() + TIMEOUT_S
    last, since = value(), time.monotonic()
    while time.monotonic() - since < for_s:
        if time.monotonic() > deadline:
            raise AssertionError("never steady")
        await asyncio.sleep(0.01)
        if (now := value()) != last:
            last, since = now, time.monotonic()
    return last


async def stop(ingester: Ingester, run: asyncio.Task[None]) -> None:
    ingester.stop()
    await asyncio.wait_for(run, TIMEOUT_S)


def quarantined(tmp_path: Path) -> list[tuple[str, bytes, str]]:
    with Quarantine(tmp_path / QUARANTINE_FILE, read_only=True) as q:
        return [(r.topic, r.payload, r.reason) for r in q.list(limit=10_000)]


# ack after commit -------------------------------------------------------------------------------------


def test_a_message_is_acked_only_once_its_line_is_in_the_spool(tmp_path: Path) -> None:
    influx = FakeInflux()
    influx.up = False  # nothing leaves the spool meanwhile: what is acked must be found there
    broker = FakeBroker()
    spooled_at_ack: list[bool] = []

    async def scenario() -> Ingester:
        ingester = Ingester(settings_for(tmp_path, batch_size=10), source=broker.bind, writer=influx)

        def check(messages: list[Message]) -> None:
            in_spool = set(stamps(b"".join(r.payload for r in ingester.spool.pending()).splitlines()))
            spooled_at_ack.extend(timestamp(m) in in_spool for m in messages)

        broker.on_ack = check
        run = asyncio.create_task(ingester.run())
        for start in range(0, 95, 19):  # reads of 19: batches of 10 lines cut across them
            broker.deliver([reading(i) for i in range(start, start + 19)])
            await asyncio.sleep(0.001)
        await until(lambda: len(broker.acked) == 95, "all acked")
        influx.up = True
        await until(lambda: ingester.stats.written == 95, "all written")
        await stop(ingester, run)
        return ingester

    ingester = asyncio.run(scenario())
    assert len(spooled_at_ack) == 95
    assert all(spooled_at_ack), "acked before its line was in the spool"
    assert sorted(stamps(influx.lines)) == sorted(timestamp(m) for m in broker.delivered)
    assert (ingester.stats.received, ingester.stats.spooled) == (95, 95)
    assert influx.closed


def test_a_crash_before_the_commit_acks_nothing_and_the_redelivery_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = FakeBroker()
    messages = [reading(i) for i in range(30)]

    async def crash() -> BaseException | None:
        ingester = Ingester(settings_for(tmp_path), source=broker.bind, writer=FakeInflux())

        def disk_gone(payloads: object, **kwargs: object) -> list[int]:
            raise SpoolError("cannot write segment: [Errno 5] Input/output error")

        monkeypatch.setattr(ingester.spool, "append_many", disk_gone)
        run = asyncio.create_task(ingester.run())
        broker.deliver(messages)
        done, _ = await asyncio.wait({run}, timeout=TIMEOUT_S)
        assert run in done, "the ingester went on after its commit failed"
        return run.exception()

    error = asyncio.run(crash())
    assert isinstance(error, SpoolError)
    assert broker.acked == [], "acked though never stored: the broker will not send them again"
    monkeypatch.undo()

    # the restart: the broker sends what was not acknowledged again, and now it is stored
    influx = FakeInflux()
    redelivered = broker.unacked()
    assert redelivered == messages
    broker = FakeBroker()

    async def restart() -> None:
        ingester = Ingester(settings_for(tmp_path), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver(redelivered)
        await until(lambda: ingester.stats.written == 30, "the redelivered messages written")
        await stop(ingester, run)

    asyncio.run(restart())
    assert len(broker.acked) == 30
    assert sorted(stamps(influx.lines)) == sorted(timestamp(m) for m in messages)


# InfluxDB refuses part of a write (HTTP 400) -----------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 37, 99])
def test_a_refused_line_is_found_by_bisection_and_quarantined_alone(tmp_path: Path, bad: int) -> None:
    influx = FakeInflux(refuse=lambda line: b"co2_ppm=" in line)
    broker = FakeBroker()
    messages = [reading(i, co2=i == bad) for i in range(100)]

    async def scenario() -> Ingester:
        ingester = Ingester(settings_for(tmp_path, batch_size=1000), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver(messages)  # one read, one batch, one write of 100 lines
        await until(lambda: ingester.stats.written == 100, "the batch written")
        await stop(ingester, run)
        return ingester

    stats = asyncio.run(scenario()).stats
    (entry,) = quarantined(tmp_path)
    topic, line, reason = entry
    assert (topic, reason) == ("influx:environment", "influx_rejected")
    assert b"co2_ppm=" in line
    assert line.endswith(b" " + timestamp(messages[bad]))
    good = sorted(timestamp(m) for i, m in enumerate(messages) if i != bad)
    assert sorted(stamps(influx.points.values())) == good, "every other line written: one point each"
    assert set(stamps(influx.lines)) == set(good)  # a partly refused body's good lines may come again
    assert not any(b"co2_ppm=" in line for line in influx.lines)
    assert len(influx.refused[0]) == 100  # the whole batch first, then halves of what was refused
    multi_line = [body for body in influx.refused if len(body) > 1]
    assert stats.influx_rejected_batches == len(multi_line)
    # bisection: a refused and an accepted half per level, log2(100) levels, not 100 writes line by line
    assert influx.writes <= 1 + 2 * math.ceil(math.log2(100))
    assert stats.points_quarantined == 1
    assert stats.quarantined == {"influx_rejected": 1}
    assert (stats.received, stats.decoded, stats.points_written) == (100, 100, 99)


# backpressure ----------------------------------------------------------------------------------------


def test_a_full_spool_stops_taking_messages_until_influx_is_back(tmp_path: Path) -> None:
    influx = FakeInflux()
    influx.up = False
    broker = FakeBroker()
    messages = [reading(i) for i in range(600)]  # ~55 kB of lines against a spool of 16 KiB

    async def scenario() -> Ingester:
        spool = Spool(tmp_path / "spool", max_bytes=16 * 1024, segment_bytes=2048)
        ingester = Ingester(
            settings_for(tmp_path, batch_size=10), source=broker.bind, writer=influx, spool=spool
        )
        run = asyncio.create_task(ingester.run())
        for start in range(0, 600, 20):
            broker.deliver(messages[start : start + 20])
        taken = await steady(lambda: broker.taken_count, 0.3)  # InfluxDB still away: nothing more taken
        assert taken < 600, "took every message though the spool is full"
        assert broker.queue is not None
        assert broker.queue.qsize() > 0, "source drained"
        assert spool.max_bytes - 4096 < spool.size_bytes <= spool.max_bytes  # the spool is what stops it
        assert len(broker.acked) == ingester.stats.spooled < taken  # acked = stored, the rest waits
        assert influx.lines == []

        influx.up = True
        await until(lambda: ingester.stats.written == 600, "all written after InfluxDB came back")
        assert broker.queue.qsize() == 0
        assert broker.taken_count == 600
        await stop(ingester, run)
        return ingester

    ingester = asyncio.run(scenario())
    assert sorted(stamps(influx.lines)) == sorted(timestamp(m) for m in messages), "nothing lost"
    assert len(broker.acked) == 600
    assert broker.unacked() == []
    assert quarantined(tmp_path) == []
    assert ingester.stats.dropped == 0
