"""The local forwarder's subscriber: each filter with a Subscription Identifier, each message once.

Mosquitto sends an MQTT 5 client one copy of a message per matching subscription (MQTT 5.0 §3.3.4
allows it), so with overlapping filters (``+/+/status/+`` and ``+/sensor/+/state`` both match
``node/sensor/status/state``) a device's reading would be forwarded twice. Each filter is subscribed with
its own identifier, which every copy carries; a copy is forwarded only if its smallest identifier is not
above the smallest identifier of the configured filters that match its topic, the others are acknowledged
and dropped. With the same filters subscribed when the message was published, exactly one copy passes.

Identifiers are given to filter *strings* and kept with the outbox (``local-broker.json``): a filter keeps
its identifier while it stays configured, a new one gets a number never used before. So a message queued
in the session before a change of ``local_broker.topics`` is still forwarded: its copies carry identifiers
of filters subscribed at its publication, and a configured filter with a smaller identifier than one of
them was subscribed then too (it is older), so the smallest copy always passes. A filter removed meanwhile
can let a queued message through twice, never lose it. A copy without identifier (queued before this
version, or a broker that sends none) is forwarded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from ingest import mqtt_wire as wire
from ingest.config import MqttSettings
from ingest.gateway import mqtt5
from ingest.mqtt import _UNSUBSCRIPTION_ID, Message, MqttError, MqttSource, _Connection, _unsubscribe_packet

log = logging.getLogger(__name__)

_FIRST_PACKET_ID = 16  # SUBSCRIBE packet ids from here on (MqttSource's own use 1 to 3)
_TOPIC_CACHE = 4096  # topics whose smallest matching identifier is kept (a gateway's devices: a few hundred)
_NO_FILTER = 1 << 62  # no configured filter matches: every copy is forwarded


def assign_ids(topics: Iterable[str], kept: Mapping[str, int], next_id: int) -> tuple[dict[str, int], int]:
    """Identifiers of ``topics``: a filter in ``kept`` keeps its own, any other gets the next unused one;
    and the next unused one after them."""
    ids: dict[str, int] = {}
    for topic in topics:
        if topic in ids:
            continue
        kept_id = kept.get(topic)
        if isinstance(kept_id, int) and 0 < kept_id < next_id:
            ids[topic] = kept_id
        else:
            ids[topic] = next_id
            next_id += 1
    if next_id > mqtt5.MAX_SUBSCRIPTION_ID:
        raise ValueError("subscription identifiers used up")
    return ids, next_id


def matches(topic_filter: str, topic: str) -> bool:
    """The MQTT filter matches the topic (``+`` one level, ``#`` the rest; ``$`` topics by neither)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    wanted = topic_filter.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(wanted) == len(levels)


class IdentifiedSource(MqttSource):
    """An :class:`MqttSource` whose filters carry identifiers (``subscription_ids``) and which hands on one
    copy of each message; the other copies are acknowledged at once (counted in ``duplicates``).

    Acknowledging a dropped copy before the forwarded one is in the outbox loses nothing: each copy is a
    message of its own in the broker's session, the forwarded one is still held until its own ack.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        subscription_ids: Mapping[str, int],
        queue: asyncio.Queue[list[Message]],
        max_queued: int | None = None,
        unsubscribe: Iterable[str] = (),
    ) -> None:
        """``subscription_ids``: filter -> its identifier (:func:`assign_ids`); messages are stamped with
        their arrival time (a device's ``read_ns`` property is not trusted)."""
        topics = list(subscription_ids)
        super().__init__(
            settings,
            topics=topics,
            queue=queue,
            max_queued=max_queued,
            read_times=False,
            unsubscribe=unsubscribe,
        )
        self.subscription_ids = dict(subscription_ids)
        self._ordered = sorted(self.subscription_ids.items(), key=lambda item: item[1])
        self._smallest: dict[bytes, int] = {}  # topic -> smallest identifier of a filter matching it
        self._parser: mqtt5.SubscriptionParser | None = None
        self.duplicates = 0  # copies acknowledged and dropped: another copy of the message was forwarded
        self.identified = True  # False: the broker takes no identifiers (every copy is forwarded)

    def _smallest_id(self, topic: bytes) -> int:
        found = self._smallest.get(topic)
        if found is None:
            text = topic.decode("utf-8", "replace")
            found = next((i for f, i in self._ordered if matches(f, text)), _NO_FILTER)
            if len(self._smallest) >= _TOPIC_CACHE:
                self._smallest.clear()
            self._smallest[topic] = found
        return found

    def _deliver(self, publishes: list[wire.Publish], connection: int) -> None:
        parser = self._parser
        if parser is None or len(parser.ids) != len(publishes):  # not our parser's read: all go on
            super()._deliver(publishes, connection)
            return
        keep: list[wire.Publish] = []
        dropped: list[Message] = []
        for publish, ids in zip(publishes, parser.ids, strict=True):
            if not ids or min(ids) <= self._smallest_id(publish[0]):
                keep.append(publish)
            else:
                dropped.append(Message("", b"", 0, publish[2], publish[3], connection))
        if dropped:
            self.duplicates += len(dropped)
            self.ack(dropped)
        if keep:
            super()._deliver(keep, connection)

    async def _handshake(self, connection: _Connection) -> None:
        parser = self._parser = mqtt5.SubscriptionParser()
        connection._parser = parser  # before CONNECT: every packet of this connection goes through it
        settings = self.settings
        connection.send(self._connect_packet())
        body = await connection.expect(connection.connack, "CONNACK", settings.keepalive_s)
        connack = mqtt5.connack(body)
        if connack.reason >= 0x80:
            raise MqttError(f"broker refused the connection: {wire.reason_text(connack.reason)}")
        if self.unsubscribe:  # filters the session kept from an earlier configuration
            connection.send(_unsubscribe_packet(_UNSUBSCRIPTION_ID, self.unsubscribe))
            await connection.expect(connection.unsuback, "UNSUBACK", settings.keepalive_s)
        self.identified = connack.subscription_identifiers
        if not self.identified:
            log.warning(
                "local broker takes no subscription identifiers: a message matching two filters of "
                "local_broker.topics may be forwarded twice"
            )
        await self._subscribe(connection, parser)

    async def _subscribe(self, connection: _Connection, parser: mqtt5.SubscriptionParser) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        packets = {}
        for number, (topic, subscription_id) in enumerate(self._ordered):
            packet_id = _FIRST_PACKET_ID + number
            packets[packet_id] = topic
            if self.identified:
                connection.send(mqtt5.subscribe(packet_id, topic, settings.qos, subscription_id))
            else:
                connection.send(wire.subscribe(packet_id, [(topic, settings.qos)], retained=False))
        deadline = loop.time() + settings.keepalive_s
        while not all(p in parser.subacks for p in packets):
            if connection.closed.done():
                raise MqttError(f"connection closed before SUBACK ({connection.closed.result()})")
            if loop.time() > deadline:
                raise MqttError(f"no SUBACK within {settings.keepalive_s} s")
            await asyncio.sleep(0.01)
        refused = [
            f"{packets[p]}: {wire.reason_text(parser.subacks[p][0] if parser.subacks[p] else 0x80)}"
            for p in packets
            if not parser.subacks[p] or parser.subacks[p][0] >= 0x80
        ]
        if refused:
            raise MqttError(f"subscription refused: {'; '.join(refused)}")
