"""An identity is held only while its message may come again (review finding 1): after the ack (MQTT) or
the spool checkpoint (a refused line) it is released, so that a new message the broker gives the same
packet id (it reuses one every 65,535 deliveries) is stored even when it comes with DUP, in flight when a
connection dropped. In-process, fakes at the network boundary only (spool and quarantine real); the same
on the wire against Mosquitto: tests/integration/test_quarantine_redelivery.py."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sqlite3
import time
from pathlib import Path

from ingest.ingester import Ingester
from ingest.ingester_ports import Message
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry, mqtt_identity
from tests.unit.test_ingester_inprocess import FakeBroker, FakeInflux, reading, settings_for, stop, until

# an unregistered device's timestamp-less reading: the same topic and payload is a new reading each time
A = Message("lab/gw-1/room-1/state", b"{bad", 1_764_320_400_000_000_000, 1, 42, 1)


def held(tmp_path: Path) -> list[tuple[int, bool]]:
    """(entry id, identity held) per entry."""
    with sqlite3.connect(tmp_path / QUARANTINE_FILE) as conn:
        return [
            (i, bool(h))
            for i, h in conn.execute("SELECT id, identity IS NOT NULL FROM quarantine ORDER BY id")
        ]


def later(message: Message, *, dup: bool = False, connection: int = 1) -> Message:
    """``message`` received now (``dup``: again), on ``connection``."""
    return dataclasses.replace(message, received_ns=time.time_ns(), dup=dup, connection=connection)


def test_a_new_message_with_a_reused_packet_id_that_comes_with_dup_is_stored(tmp_path: Path) -> None:
    """A is quarantined and acknowledged; 65,535 deliveries later B gets A's packet id, is in flight when
    the connection drops and comes again with DUP on the next one: B is a new message."""
    broker = FakeBroker()

    async def scenario() -> tuple[int, int]:
        ingester = Ingester(settings_for(tmp_path), source=broker.bind, writer=FakeInflux())
        run = asyncio.create_task(ingester.run())
        broker.deliver([A])
        await until(lambda: len(broker.acked) == 1, "A acknowledged")
        broker.connection = 2
        broker.deliver([later(A, dup=True, connection=2), later(reading(1), connection=2)])
        await until(lambda: len(broker.acked) == 3, "B acknowledged")
        await stop(ingester, run)
        return ingester.stats.quarantined_total, ingester.stats.already_quarantined

    assert asyncio.run(scenario()) == (2, 0)
    assert [r.payload for r in Quarantine(tmp_path / QUARANTINE_FILE, read_only=True).list()] == [b"{bad"] * 2
    assert held(tmp_path) == [(1, False), (2, False)]  # both acknowledged


def test_an_identity_whose_ack_did_not_go_out_is_held_until_its_redelivery(tmp_path: Path) -> None:
    broker = FakeBroker()

    async def scenario() -> tuple[list[tuple[int, bool]], int, int]:
        ingester = Ingester(settings_for(tmp_path), source=broker.bind, writer=FakeInflux())
        run = asyncio.create_task(ingester.run())
        broker.connection = 2  # the connection that delivered A is gone: its ack cannot go out
        broker.deliver([A])
        await until(lambda: ingester.stats.quarantined_total == 1, "A committed")
        ingester.quarantine.write_releases()
        before = held(tmp_path)
        broker.deliver([later(A, dup=True, connection=2)])  # the broker sends it again
        await until(lambda: len(broker.acked) == 1, "the redelivery acknowledged")
        await stop(ingester, run)
        return before, ingester.stats.quarantined_total, ingester.stats.already_quarantined

    before, quarantined_total, already = asyncio.run(scenario())
    assert before == [(1, True)]
    assert (quarantined_total, already) == (1, 1)  # once
    assert held(tmp_path) == [(1, False)]  # acknowledged now


def test_identities_an_earlier_process_left_held_go_at_the_first_new_message(tmp_path: Path) -> None:
    """A crash between the ack and the release leaves A's identity held. After the restart the broker
    first sends again what was not acknowledged (A, if its ack was lost: once), then new messages; from
    the first new one on, A's packet id can be reused, and B with it is a new message."""
    mqtt = settings_for(tmp_path).mqtt
    session = f"{mqtt.client_id}@{mqtt.host}:{mqtt.port}"  # as the ingester names it
    with Quarantine(tmp_path / QUARANTINE_FILE) as q:
        identity = mqtt_identity(session, A.topic, A.payload, A.mid)
        q.add(QuarantineEntry(A.topic, A.payload, A.received_ns, "invalid_json", identity=identity))
    broker = FakeBroker()

    async def scenario() -> tuple[int, int]:
        ingester = Ingester(settings_for(tmp_path), source=broker.bind, writer=FakeInflux())
        run = asyncio.create_task(ingester.run())
        broker.deliver([later(A, dup=True)])  # its ack had not reached the broker: the same message
        await until(lambda: len(broker.acked) == 1, "the redelivery acknowledged")
        broker.deliver([reading(1)])  # a new message: the redeliveries are through
        await until(lambda: len(broker.acked) == 2, "the new message acknowledged")
        broker.connection = 2
        broker.deliver(
            [later(A, dup=True, connection=2), later(reading(2), connection=2)]
        )  # B, after the wrap
        await until(lambda: len(broker.acked) == 4, "B acknowledged")
        await stop(ingester, run)
        return ingester.stats.quarantined_total, ingester.stats.already_quarantined

    assert asyncio.run(scenario()) == (1, 1)
    assert [h for _, h in held(tmp_path)] == [False, False]


def test_a_refused_line_is_stored_again_after_the_spool_was_removed(tmp_path: Path) -> None:
    """The line's identity (record seq, offset, line) goes at the checkpoint: sequence numbers start at
    1 again in a new spool, and the same line refused again is a new entry (review findings 6, 8)."""

    async def run_once() -> tuple[int, int]:
        broker, influx = FakeBroker(), FakeInflux(refuse=lambda line: b"co2_ppm=" in line)
        ingester = Ingester(settings_for(tmp_path), source=broker.bind, writer=influx)
        run = asyncio.create_task(ingester.run())
        broker.deliver([reading(3, co2=True)])
        await until(lambda: ingester.stats.written == 1, "the record checkpointed")
        await stop(ingester, run)
        return ingester.stats.points_quarantined, ingester.spool.next_seq

    first = asyncio.run(run_once())
    assert held(tmp_path) == [(1, False)]
    shutil.rmtree(tmp_path / "spool")
    assert asyncio.run(run_once()) == first == (1, 2)  # the same record seq 1 again: counted again
    assert len(held(tmp_path)) == 2
