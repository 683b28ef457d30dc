"""The ingester's memory of its persistent session (ingest/mqtt_session.py) against real Mosquitto.

A session the broker no longer holds (expired, or lost by the broker) is a warning naming the client id and
a count; the first start and a restart within the expiry are not. Filters an earlier configuration left in
the session (another ``mqtt.shared_group``) are unsubscribed: each message comes once, not once per filter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingest.config import MqttSettings
from ingest.localservices import Mosquitto
from ingest.mqtt import Message, MqttSource
from ingest.mqtt_session import SESSION_FILE, SessionRecord
from simulators.publisher import Publisher
from tests.helpers import Target, wait_for
from tests.scale_world import Instance, publish_readings

pytestmark = pytest.mark.integration

EXPIRY_S = 2
LOST = "holds no session for client id"  # the warning's words (ingest.mqtt_session.session_lost_message)


@dataclass
class Life:
    """One connection of a source: what it received and said."""

    source: MqttSource
    received: list[Message] = field(default_factory=list)
    lost_callbacks: int = 0


def _settings(port: int, client_id: str, **overrides: object) -> MqttSettings:
    values = {"host": "127.0.0.1", "port": port, "client_id": client_id, "session_expiry_s": EXPIRY_S}
    return MqttSettings.model_validate({**values, **overrides})


async def _live(
    settings: MqttSettings,
    topic: str,
    record: SessionRecord,
    *,
    publish: int = 0,
    end_session: bool = False,
) -> Life:
    """Connect with the record, publish ``publish`` messages on ``topic``'s level, take (and ack) what
    comes until nothing more does for a moment, then disconnect (ending the session when asked)."""
    queue: asyncio.Queue[list[Message]] = asyncio.Queue()
    life = Life(MqttSource(settings, topics=[topic], queue=queue, session_record=record))
    source = life.source

    def lost() -> None:
        life.lost_callbacks += 1

    source.on_session_lost = lost
    runner = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), 10)
        if publish:
            await asyncio.to_thread(_publish, settings.port, topic.rstrip("#"), publish)
            while len(life.received) < publish:
                life.received += await _take(source, queue, 10)
            # a copy per stale filter would follow the first ones at once
            with pytest.raises(TimeoutError):
                life.received += await _take(source, queue, 0.5)
        if end_session:
            source.end_session(delivered=source.delivered)
        await source.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return life


async def _take(source: MqttSource, queue: asyncio.Queue[list[Message]], wait_s: float) -> list[Message]:
    batch = await asyncio.wait_for(queue.get(), wait_s)
    source.ack(batch)
    source.taken(len(batch))
    return batch


def _publish(port: int, prefix: str, count: int) -> None:
    with Publisher("127.0.0.1", port) as publisher:
        for n in range(count):
            publisher.publish(f"{prefix}m{n}", f"message {n}".encode(), qos=1)
        publisher.flush()


def _lost_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and LOST in r.getMessage()]


def test_a_session_that_expired_while_away_is_reported_a_restart_within_the_expiry_is_not(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, topic = f"watch-{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:6]}/#"
    settings = _settings(mosquitto.port, client_id)
    record = SessionRecord(tmp_path / "state" / SESSION_FILE)
    caplog.set_level(logging.INFO, logger="ingest")

    first = asyncio.run(_live(settings, topic, record))  # the first start ever: nothing to miss
    remembered = json.loads(record.path.read_text())
    assert remembered["client_id"] == client_id
    assert remembered["broker"] == f"127.0.0.1:{mosquitto.port}"
    assert remembered["filters"] == [topic]
    assert remembered["last_connected"] > remembered["since"]  # brought up to date when it disconnected
    again = asyncio.run(_live(settings, topic, record))  # back within the expiry: the session is there
    assert _lost_warnings(caplog) == []
    assert first.source.sessions_lost == again.source.sessions_lost == 0

    expired = f"Expiring client {client_id} due to timeout."
    wait_for(lambda: expired in mosquitto.log_path.read_text(), timeout=EXPIRY_S + 30, what=expired)
    late = asyncio.run(_live(settings, topic, record))

    (warning,) = _lost_warnings(caplog)
    assert f"{LOST} {client_id} " in warning
    assert f"mqtt.session_expiry_s {EXPIRY_S} s" in warning
    assert "it expired" in warning
    assert "Messages the broker queued for this instance while it was away are lost" in warning
    assert "README Several ingesters" in warning
    assert late.source.sessions_lost == late.lost_callbacks == 1
    assert json.loads(record.path.read_text())["since"] > remembered["since"]  # the new session's
    asyncio.run(_live(settings, topic, record))  # and that one the broker holds again
    assert len(_lost_warnings(caplog)) == 1


def test_while_connected_the_record_says_so_every_refresh(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGKILLed ingester cannot say when it left: the record's time is at most REFRESH_S old."""
    monkeypatch.setattr("ingest.mqtt.REFRESH_S", 0.1)
    record = SessionRecord(tmp_path / "state" / SESSION_FILE)
    settings = _settings(mosquitto.port, f"watch-{uuid.uuid4().hex[:8]}")

    async def connected_for_a_while() -> list[float]:
        source = MqttSource(settings, topics=["refresh/#"], queue=asyncio.Queue(), session_record=record)
        runner = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.connected.wait(), 10)
            seen = []
            for _ in range(3):
                await asyncio.sleep(0.25)
                seen.append(json.loads(record.path.read_text())["last_connected"])
            await source.disconnect()
            return seen
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    seen = asyncio.run(connected_for_a_while())
    assert seen == sorted(set(seen)), seen  # later at every look


def test_a_session_the_broker_lost_before_it_expired_is_reported_as_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker restarted without its persistence file: the session is gone long before its expiry."""
    client_id, topic = f"watch-{uuid.uuid4().hex[:8]}", "lost/#"
    record = SessionRecord(tmp_path / "state" / SESSION_FILE)
    broker = Mosquitto(tmp_path / "broker")
    with broker:
        settings = _settings(broker.port, client_id, session_expiry_s=3600)
        asyncio.run(_live(settings, topic, record))
    shutil.rmtree(tmp_path / "broker" / "data")  # what it saved at its stop, our session with it
    with Mosquitto(tmp_path / "broker", port=broker.port):
        life = asyncio.run(_live(settings, topic, record))
    (warning,) = _lost_warnings(caplog)
    assert f"{LOST} {client_id} " in warning
    assert "it had not expired: the broker lost it" in warning
    assert life.source.sessions_lost == life.lost_callbacks == 1


def test_a_session_ended_by_a_drain_is_forgotten_and_its_next_start_does_not_warn(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, topic = f"watch-{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:6]}/#"
    settings = _settings(mosquitto.port, client_id, session_expiry_s=3600)
    record = SessionRecord(tmp_path / "state" / SESSION_FILE)
    asyncio.run(_live(settings, topic, record))
    assert record.path.exists()
    retired = asyncio.run(_live(settings, topic, record, end_session=True))
    assert retired.source.session_ended
    assert not record.path.exists()
    back = asyncio.run(_live(settings, topic, record))  # a new session, and no warning about the old
    assert _lost_warnings(caplog) == []
    assert back.source.sessions_lost == 0


def test_filters_of_another_shared_group_are_unsubscribed_so_each_message_comes_once(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client_id, topic = f"watch-{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:6]}/#"
    record = SessionRecord(tmp_path / "state" / SESSION_FILE)
    caplog.set_level(logging.INFO, logger="ingest")
    before = _settings(mosquitto.port, client_id, shared_group="group-a", session_expiry_s=3600)
    asyncio.run(_live(before, topic, record))

    after = _settings(mosquitto.port, client_id, shared_group="group-b", session_expiry_s=3600)
    life = asyncio.run(_live(after, topic, record, publish=100))

    assert life.source.unsubscribe == [f"$share/group-a/{topic}"]
    assert f"unsubscribed filters no longer wanted: $share/group-a/{topic}" in caplog.text
    payloads = [m.payload for m in life.received]
    assert len(payloads) == 100 == len(set(payloads))  # once each, not once per group
    assert json.loads(record.path.read_text())["filters"] == [f"$share/group-b/{topic}"]
    assert _lost_warnings(caplog) == []


# --- the ingester: reallabor ingest as instance 0 of 2 ----------------------------------------------------


def test_an_ingester_back_after_its_session_expired_warns_and_counts_it(
    mosquitto: Mosquitto, target: Target, tmp_path: Path
) -> None:
    # a process restart takes 2-3 s on an idle machine (the Python start): the expiry must leave room
    expiry_s = 8
    instance, _ = Instance.fleet(target, tmp_path, 2, session_expiry_s=expiry_s)
    try:
        instance.start()  # the first start ever
        assert instance.stop() == 0
        instance.start()  # back within the expiry
        assert instance.stop() == 0
        assert LOST not in instance.process.output(), instance.process.output()
        expired = f"Expiring client {instance.client_id} due to timeout."
        wait_for(lambda: expired in mosquitto.log_path.read_text(), timeout=expiry_s + 30, what=expired)
        instance.start()
        assert instance.metrics()["sessions_lost_total"] == 1
        assert instance.stop() == 0
    finally:
        instance.stop()
    (warning,) = [line for line in instance.process.log if LOST in line]
    assert "WARNING" in warning
    assert f"{LOST} {instance.client_id} " in warning
    assert "are lost; see README Several ingesters" in warning
    assert [stats["sessions_lost"] for stats in instance.final_stats()] == [0, 0, 1]


def test_an_ingester_whose_shared_group_changed_takes_each_message_once(
    mosquitto: Mosquitto, target: Target, tmp_path: Path
) -> None:
    instance, _ = Instance.fleet(target, tmp_path, 2, session_expiry_s=3600)
    old_group, count = instance.group, 200
    try:
        instance.start()
        assert instance.stop() == 0
        instance.group = f"{old_group}-new"  # as mqtt.shared_group changed in the config
        instance.start()
        publish_readings(mosquitto.port, target.topic_prefix, range(count))
        wait_for(lambda: instance.metrics()["received_total"] >= count, timeout=30, what=f"{count} messages")
        instance.wait_settled(timeout=30)
        time.sleep(0.5)  # a second copy of each, had the old group's filter stayed, came with the first
        assert instance.metrics()["received_total"] == count
        assert instance.stop() == 0
    finally:
        instance.stop()
    assert f"unsubscribed filters no longer wanted: $share/{old_group}/" in instance.process.output()
    assert LOST not in instance.process.output()
