"""The forwarder from the gateway's local Mosquitto: Wi-Fi and Zigbee devices into the outbox.

Devices (Tasmota, Shelly, ESPHome, zigbee2mqtt) publish to the local broker under their native topics;
this forwards every message on ``config.local_broker.topics`` as ``lab/<gateway>/<native topic>`` through
the outbox, with the meters' durability. It subscribes with a persistent session (clean start off, a week's
session expiry, QoS 1) and acknowledges a message to the local broker only after
:meth:`Outbox.put_durable` returned, i.e. after the outbox's fsync: until then the local broker keeps the
message for our session and sends it again after a crash.

Why not a Mosquitto bridge: a bridge keeps its outgoing QoS 1 queue in the broker's memory and writes it
to disk only on autosave (and on a clean stop), so a power cut loses what was queued since the last save;
its queue is also bounded by ``max_queued_messages`` and cannot be sized by disk. Through the outbox a
device's message is on the SD card before the local broker forgets it, and the uplink, its backlog order
and its health counters are the same for meters and devices (docs/gateway.md, "Local devices").

Retained messages are not sent at (re)subscribe (MQTT 5 retain handling 2, as the central ingester does):
the persistent session already got each message when it was published; sending the stored state again at
every reconnect would forward it again each time. The read time of a forwarded message is when the
forwarder received it; devices that carry their own time (Tasmota "Time", zigbee2mqtt "last_seen") keep it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ingest.config import MqttSettings
from ingest.gateway.config import LocalBroker
from ingest.gateway.frames import Frame, forwarded_topic
from ingest.gateway.outbox import Outbox
from ingest.mqtt import Message, MqttSource

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the local broker keeps our queue while the service is away for a week
RECEIVE_MAXIMUM = 2000  # messages in flight to us: one outbox commit's worth, bounded memory on a Pi


@dataclass(slots=True)
class ForwarderStats:
    forwarded: int = 0  # messages committed to the outbox and acknowledged to the local broker


class LocalForwarder:
    """Subscribes to the local broker and moves each message into the outbox, then acknowledges it."""

    def __init__(self, settings: LocalBroker, *, gateway: str, outbox: Outbox) -> None:
        self.settings = settings
        self.gateway = gateway
        self.outbox = outbox
        self.stats = ForwarderStats()
        self._source: MqttSource | None = None

    def _mqtt_settings(self) -> MqttSettings:
        s = self.settings
        return MqttSettings(
            host=s.host,
            port=s.port,
            client_id=s.client_id,
            username=s.username,
            password=s.password,
            qos=1,
            session_expiry_s=SESSION_EXPIRY_S,
            receive_maximum=RECEIVE_MAXIMUM,
            reconnect_min_s=0.5,
            reconnect_max_s=10.0,
        )

    async def run(self) -> None:
        """Forward until cancelled; then disconnect cleanly (the local broker keeps our session)."""
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = self._source = MqttSource(
            self._mqtt_settings(), topics=list(self.settings.topics), queue=queue
        )
        connection = asyncio.create_task(source.run(), name="local-broker")
        try:
            while True:
                batch = await queue.get()
                while not queue.empty():  # what else has arrived goes into the same commit
                    batch.extend(queue.get_nowait())
                await self._forward(source, batch)
        finally:
            await asyncio.shield(self._disconnect(source, connection))

    async def _forward(self, source: MqttSource, batch: list[Message]) -> None:
        frames = [Frame(forwarded_topic(self.gateway, m.topic), m.payload, m.received_ns) for m in batch]
        await self.outbox.put_durable(frames)  # returns after the fsync: only now may the broker forget
        source.ack(batch)
        source.taken(len(batch))
        self.stats.forwarded += len(batch)

    @property
    def connected(self) -> bool:
        source = self._source
        return source is not None and source.connected.is_set()

    @staticmethod
    async def _disconnect(source: MqttSource, connection: asyncio.Task[None]) -> None:
        try:
            await source.disconnect(wait_s=3.0)
        finally:
            connection.cancel()
            await asyncio.gather(connection, return_exceptions=True)
