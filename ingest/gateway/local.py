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
forwarder received it, whatever ``read_ns`` user property a device sent (any device on the LAN could
backdate its messages otherwise); devices that carry their own time in the payload (Tasmota "Time",
zigbee2mqtt "last_seen") keep it.

A message that cannot be forwarded (its topic too long for MQTT once under ``lab/<gateway>/``, or on one
of the gateway's own topics) is counted (``stats.skipped``, health ``local_broker.skipped``), logged at
most once a minute and acknowledged: left unacknowledged, the persistent session would send it again after
every restart and stop all forwarding. The filters of the last run are kept in the outbox directory; those
no longer in ``local_broker.topics`` are unsubscribed at connect (the session would keep them for good).
Filters may overlap: each is subscribed with a Subscription Identifier and a message matching several is
forwarded once (:mod:`ingest.gateway.local_source`); their identifiers are kept in the same file.
So is the forwarder's client id where gateway.yaml sets none: ``reallabor-<gateway>-forwarder-<random>``,
made at the first start, the same for every later one (a new bundle keeps the session and its queue).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import MqttSettings
from ingest.gateway.config import LocalBroker, forwarder_client_id
from ingest.gateway.frames import HEALTH_SUFFIX, PROFILE_SEGMENT, Frame, forwarded_topic
from ingest.gateway.local_source import IdentifiedSource, assign_ids
from ingest.gateway.outbox import Outbox
from ingest.mqtt import Message

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the local broker keeps our queue while the service is away for a week
# messages in flight to us and waiting for the outbox: with the local broker's 256 KiB message limit at
# most ~25 MB however large the devices' messages are (2,000 x 1 MB took 284 MB RSS)
RECEIVE_MAXIMUM = 100
BATCH_BYTES = 8 << 20  # payload bytes per outbox commit
MAX_TOPIC_BYTES = 0xFFFF  # an MQTT string: the central topic lab/<gateway>/<native> must fit
SKIPPED_LOG_INTERVAL_S = 60.0
STATE_FILE = "local-broker.json"  # in the outbox directory: the forwarder's client id and its filters
#: first topic levels of the gateway's own messages: never taken from a device
OWN_TOPICS = frozenset({HEALTH_SUFFIX, *PROFILE_SEGMENT.values()})


@dataclass(slots=True)
class ForwarderStats:
    forwarded: int = 0  # messages committed to the outbox and acknowledged to the local broker
    skipped: int = 0  # messages that cannot be forwarded, acknowledged and dropped (logged)


class LocalForwarder:
    """Subscribes to the local broker and moves each message into the outbox, then acknowledges it."""

    def __init__(self, settings: LocalBroker, *, gateway: str, outbox: Outbox) -> None:
        self.settings = settings
        self.gateway = gateway
        self.outbox = outbox
        self.stats = ForwarderStats()
        self._source: IdentifiedSource | None = None
        self._skipped_logged = -SKIPPED_LOG_INTERVAL_S  # monotonic time of the last warning
        self._skipped_unlogged = 0

    def _mqtt_settings(self, client_id: str) -> MqttSettings:
        s = self.settings
        return MqttSettings(
            host=s.host,
            port=s.port,
            client_id=client_id,
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
        state = self._read_state()
        client_id = self._client_id(state)
        ids = self._subscription_ids(state)
        topics = list(ids)
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = self._source = IdentifiedSource(
            self._mqtt_settings(client_id),
            subscription_ids=ids,
            queue=queue,
            max_queued=RECEIVE_MAXIMUM,
            unsubscribe=self._previous_topics(state),
        )
        connection = asyncio.create_task(source.run(), name="local-broker")
        remember = asyncio.create_task(
            self._remember_topics(source, state, topics), name="local-broker-topics"
        )
        try:
            while True:
                batch = await queue.get()
                size = sum(len(m.payload) for m in batch)
                while not queue.empty() and size < BATCH_BYTES:  # what else has arrived: the same commit
                    more = queue.get_nowait()
                    batch.extend(more)
                    size += sum(len(m.payload) for m in more)
                await self._forward(source, batch)
        finally:
            remember.cancel()
            await asyncio.shield(self._disconnect(source, connection))

    @property
    def _state_file(self) -> Path:
        return self.outbox.directory / STATE_FILE

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("local broker: cannot read %s (%s): a new session", self._state_file, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        path = self._state_file
        try:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state), encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            log.warning("local broker: cannot write %s (%s)", path, exc)

    def client_id(self) -> str:
        """The client id the forwarder logs in with (made and kept at the first call without one)."""
        return self._client_id(self._read_state())

    def _client_id(self, state: dict[str, Any]) -> str:
        """gateway.yaml's, else this gateway's own, made once and kept with the outbox: unguessable, as a
        client that logs in with it takes the session over (Mosquitto 2.0 binds no id to an account)."""
        if self.settings.client_id:
            return self.settings.client_id
        prefix = forwarder_client_id(self.gateway)
        kept = state.get("client_id")
        if isinstance(kept, str) and kept.startswith(f"{prefix}-"):
            return kept
        state["client_id"] = f"{prefix}-{secrets.token_hex(8)}"
        self._write_state(state)  # before the session exists: a crash must not leave it behind
        return str(state["client_id"])

    def _subscription_ids(self, state: dict[str, Any]) -> dict[str, int]:
        """Each configured filter's Subscription Identifier (:mod:`ingest.gateway.local_source`): kept ones
        from the last runs, new ones never used before; written down before they are subscribed."""
        kept = state.get("subscription_ids")
        next_id = state.get("next_subscription_id")
        ids, next_id = assign_ids(
            self.settings.topics,
            kept if isinstance(kept, dict) else {},
            next_id if isinstance(next_id, int) and next_id > 0 else 1,
        )
        if ids != kept or next_id != state.get("next_subscription_id"):
            state.update(subscription_ids=ids, next_subscription_id=next_id)
            self._write_state(state)
        return ids

    @staticmethod
    def _previous_topics(state: dict[str, Any]) -> list[str]:
        """The filters the last run subscribed (kept in the session), or none when unknown."""
        topics = state.get("topics")
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            return []
        return topics

    async def _remember_topics(
        self, source: IdentifiedSource, state: dict[str, Any], topics: list[str]
    ) -> None:
        """Once subscribed (and the old filters unsubscribed): these are the session's filters now."""
        await source.connected.wait()
        if source.unsubscribe:
            log.info(
                "local broker: unsubscribed filters no longer configured: %s", ", ".join(source.unsubscribe)
            )
        self._write_state({**state, "topics": topics})

    async def _forward(self, source: IdentifiedSource, batch: list[Message]) -> None:
        frames = []
        for message in batch:
            topic = forwarded_topic(self.gateway, message.topic)
            if len(topic.encode()) > MAX_TOPIC_BYTES:
                self._skip(message, "its topic is too long for MQTT under the gateway's prefix")
            elif message.topic.split("/", 1)[0] in OWN_TOPICS:
                self._skip(message, "the gateway's own topics are not taken from devices")
            else:
                frames.append(Frame(topic, message.payload, message.received_ns))
        if frames:
            await self.outbox.put_durable(frames)  # returns after the fsync: only now may the broker forget
        source.ack(batch)  # the skipped ones too: sent again, they would stop the forwarding for good
        source.taken(len(batch))
        self.stats.forwarded += len(frames)

    def _skip(self, message: Message, why: str) -> None:
        self.stats.skipped += 1
        self._skipped_unlogged += 1
        now = time.monotonic()
        if now - self._skipped_logged < SKIPPED_LOG_INTERVAL_S:
            return
        log.warning(
            "local broker: message on %.80r (%d bytes) not forwarded: %s (%d such since the last warning, "
            "%d in all)",
            message.topic,
            len(message.topic.encode()),
            why,
            self._skipped_unlogged,
            self.stats.skipped,
        )
        self._skipped_logged = now
        self._skipped_unlogged = 0

    @property
    def duplicates(self) -> int:
        """Copies of a message the local broker sent again for another matching filter, dropped."""
        source = self._source
        return 0 if source is None else source.duplicates

    @property
    def connected(self) -> bool:
        source = self._source
        return source is not None and source.connected.is_set()

    @staticmethod
    async def _disconnect(source: IdentifiedSource, connection: asyncio.Task[None]) -> None:
        try:
            await source.disconnect(wait_s=3.0)
        finally:
            connection.cancel()
            await asyncio.gather(connection, return_exceptions=True)
