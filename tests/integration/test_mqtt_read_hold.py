"""A trickle of messages is read in few reads, not one read per message: after a short read the MQTT source
leaves the socket alone for READ_HOLD_S (what costs CPU at low rates is the pass of every stage per read:
bench.live_cost, docs/performance.md). A backlog is read without holding."""

from __future__ import annotations

import asyncio
import time
import uuid

from ingest.config import MqttSettings
from ingest.localservices import Mosquitto
from ingest.mqtt import READ_HOLD_S, Message, MqttSource
from simulators.publisher import Publisher


def test_a_trickle_comes_in_few_reads(mosquitto: Mosquitto) -> None:
    client_id, topic = f"hold-{uuid.uuid4().hex[:8]}", f"h{uuid.uuid4().hex[:6]}/#"
    settings = MqttSettings.model_validate(
        {"host": "127.0.0.1", "port": mosquitto.port, "client_id": client_id}
    )

    def trickle() -> None:  # 100 messages over ~0.5 s, each sent on its own
        with Publisher("127.0.0.1", mosquitto.port) as publisher:
            for n in range(100):
                publisher.publish(f"{topic.rstrip('#')}m{n}", b"x", qos=1)
                publisher.flush()
                time.sleep(0.005)

    async def scenario() -> tuple[list[list[Message]], float]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(settings, topics=[topic], queue=queue)
        runner = asyncio.create_task(source.run())
        reads: list[list[Message]] = []
        try:
            await asyncio.wait_for(source.connected.wait(), 10)
            started = time.monotonic()
            sender = asyncio.create_task(asyncio.to_thread(trickle))
            while sum(len(r) for r in reads) < 100:
                reads.append(await asyncio.wait_for(queue.get(), 10))
                source.ack(reads[-1])
            took = time.monotonic() - started
            await sender
            await source.disconnect()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return reads, took

    reads, took = asyncio.run(scenario())
    assert sum(len(r) for r in reads) == 100
    assert len(reads) <= took / READ_HOLD_S + 5, f"{len(reads)} reads in {took:.2f} s"
    assert len(reads) < 60  # one per message without the hold
