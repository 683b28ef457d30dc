"""The MQTT adapter against real Mosquitto: an ack settles, no ack means redelivery; QoS 2; keep-alive."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ingest.config import MqttSettings
from ingest.localservices import Mosquitto
from ingest.mqtt import Message, MqttSource
from simulators.publisher import Publisher


def _settings(mosquitto: Mosquitto, client_id: str, **overrides: object) -> MqttSettings:
    return MqttSettings.model_validate(
        {"host": "127.0.0.1", "port": mosquitto.port, "client_id": client_id, **overrides}
    )


async def _receive(
    settings: MqttSettings,
    topic: str,
    count: int,
    *,
    ack: bool,
    publish: list[bytes] | None = None,
    port: int = 0,
    qos: int = 1,
    idle_s: float = 0.0,
) -> tuple[list[Message], MqttSource]:
    """Connect, optionally publish, take ``count`` messages (acking them or not), disconnect."""
    queue: asyncio.Queue[list[Message]] = asyncio.Queue()
    source = MqttSource(settings, topics=[topic], queue=queue)
    runner = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), 10)
        if publish:
            await asyncio.to_thread(_publish, port, topic.rstrip("#"), publish, qos)
        received: list[Message] = []
        while len(received) < count:
            batch = await asyncio.wait_for(queue.get(), 10)
            received += batch
            if ack:
                source.ack(batch)
        if idle_s:
            await asyncio.sleep(idle_s)
        await source.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return received, source


def _publish(port: int, prefix: str, payloads: list[bytes], qos: int) -> None:
    with Publisher("127.0.0.1", port) as publisher:
        for n, payload in enumerate(payloads):
            publisher.publish(f"{prefix}m{n}", payload, qos=qos)
        publisher.flush()


@pytest.mark.parametrize("qos", [1, 2])
def test_acked_messages_are_settled_and_unacked_ones_come_again(mosquitto: Mosquitto, qos: int) -> None:
    client_id, topic = f"src-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:6]}/#"
    settings = _settings(mosquitto, client_id, qos=qos)
    payloads = [f"payload {n}".encode() * (n % 7 + 1) for n in range(300)]

    # first connection: take everything, acknowledge nothing
    first, _ = asyncio.run(
        _receive(settings, topic, 300, ack=False, publish=payloads, port=mosquitto.port, qos=qos)
    )
    assert sorted(m.payload for m in first) == sorted(payloads)
    assert {m.qos for m in first} == {qos}

    # second connection: the broker sends them all again; now they are acknowledged
    second, _ = asyncio.run(_receive(settings, topic, 300, ack=True))
    assert sorted(m.payload for m in second) == sorted(payloads)
    assert {m.connection for m in second} == {1}

    # third connection: nothing is left in the session
    queue_left = asyncio.run(_leftover(settings, topic))
    assert queue_left == []


async def _leftover(settings: MqttSettings, topic: str) -> list[Message]:
    queue: asyncio.Queue[list[Message]] = asyncio.Queue()
    source = MqttSource(settings, topics=[topic], queue=queue)
    runner = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), 10)
        await asyncio.sleep(1.0)  # queued messages come right after CONNACK
        await source.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    left: list[Message] = []
    while not queue.empty():
        left += queue.get_nowait()
    return left


def test_keep_alive_holds_an_idle_connection(mosquitto: Mosquitto) -> None:
    """keepalive 5 s, idle 9 s: the broker would drop us after 7.5 s without PINGREQ."""
    client_id, topic = f"idle-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:6]}/#"
    settings = _settings(mosquitto, client_id, keepalive_s=5)
    received, source = asyncio.run(
        _receive(settings, topic, 1, ack=True, publish=[b"x"], port=mosquitto.port, idle_s=9)
    )
    assert [m.payload for m in received] == [b"x"]
    assert source._connections == 1  # never reconnected


def test_bench_publisher_burst_arrives_exactly(mosquitto: Mosquitto) -> None:
    """The bench's lean publisher (window 2,000) and the adapter: 20,000 distinct messages, all of them."""
    from bench.wire_publisher import WirePublisher

    client_id, prefix = f"burst-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:6]}/"
    settings = _settings(mosquitto, client_id)
    payloads = [f"{n}".encode() for n in range(20_000)]

    def publish() -> None:
        with WirePublisher("127.0.0.1", mosquitto.port, window=2_000) as publisher:
            for n, payload in enumerate(payloads):
                publisher.publish(f"{prefix}d{n % 440}", payload)
            publisher.flush()
            assert publisher.published == len(payloads)

    async def run() -> list[Message]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(settings, topics=[f"{prefix}#"], queue=queue)
        runner = asyncio.create_task(source.run())
        received: list[Message] = []
        try:
            await asyncio.wait_for(source.connected.wait(), 10)
            publishing = asyncio.create_task(asyncio.to_thread(publish))
            while len(received) < len(payloads):
                batch = await asyncio.wait_for(queue.get(), 20)
                received += batch
                source.ack(batch)
            await publishing
            await source.disconnect()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return received

    received = asyncio.run(run())
    assert sorted(m.payload for m in received) == sorted(payloads)
    assert {m.topic for m in received} == {f"{prefix}d{n}" for n in range(440)}


def test_a_full_queue_stops_reading_and_keeps_the_connection(mosquitto: Mosquitto) -> None:
    """The source holds at most ``max_queued`` messages (and one read) whatever the broker sends: it stops
    reading the socket, longer than the keep-alive without losing the connection, and reads on once the
    consumer took half of them. (The ingester's queue grew to 345,000 messages in a drain otherwise.)"""
    topic = f"flow-{uuid.uuid4().hex[:8]}/"
    settings = _settings(mosquitto, f"flow-{uuid.uuid4().hex[:8]}", keepalive_s=5)

    async def scenario() -> tuple[int, int, list[Message]]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(settings, topics=[topic + "#"], queue=queue, max_queued=500)
        runner = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.connected.wait(), 10)
            await asyncio.to_thread(_publish, mosquitto.port, topic, [b"x" * 50] * 5_000, 1)
            await asyncio.sleep(9)  # paused longer than 1.5 keep-alives
            waiting = [queue.get_nowait() for _ in range(queue.qsize())]
            held = sum(map(len, waiting))
            connections = source._connections
            received: list[Message] = []
            while len(received) < 5_000:
                messages = waiting.pop(0) if waiting else await asyncio.wait_for(queue.get(), 10)
                source.taken(len(messages))
                source.ack(messages)
                received += messages
            await source.disconnect()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return held, connections, received

    held, connections, received = asyncio.run(scenario())
    assert 500 <= held < 2_000  # one read beyond the bound at most (the broker may send 20,000)
    assert connections == 1
    assert len({m.topic for m in received}) == 5_000
    assert {m.connection for m in received} == {1}  # no reconnect: nothing was sent twice
