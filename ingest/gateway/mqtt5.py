"""The MQTT 5 packets of the gateway that :mod:`ingest.mqtt_wire` (the ingester's) lacks: for the uplink a
QoS 1 PUBLISH with the read time as a user property, PUBACK with its reason code, CONNACK's properties; for
the local forwarder a SUBSCRIBE with a Subscription Identifier and a parser that reads the identifiers of
each PUBLISH (§3.3.2.3.8: which of our subscriptions a copy of a message was sent for)."""

from __future__ import annotations

from dataclasses import dataclass

from ingest import mqtt_wire as wire
from ingest.gateway.frames import READ_NS_PROPERTY

_READ_NS_KEY = wire.USER_PROPERTY.to_bytes(1, "big") + len(READ_NS_PROPERTY).to_bytes(2, "big")
_READ_NS_KEY += READ_NS_PROPERTY.encode()
_QOS1 = 0x32
_DUP = 0x08
SUBSCRIPTION_IDENTIFIER = 0x0B  # property: a variable byte integer, 1 .. 268,435,455
SUBSCRIPTION_IDENTIFIERS_AVAILABLE = 0x29  # CONNACK property: 0 when the broker does not support them
MAX_SUBSCRIPTION_ID = wire.MAX_REMAINING_LENGTH


def publish(topic: bytes, payload: bytes, packet_id: int, read_ns: int, *, dup: bool = False) -> bytes:
    """A QoS 1 PUBLISH of ``payload`` with the user property ``read_ns`` (decimal nanoseconds)."""
    value = b"%d" % read_ns
    properties = _READ_NS_KEY + len(value).to_bytes(2, "big") + value  # < 128 bytes: one length byte
    body_length = 2 + len(topic) + 2 + 1 + len(properties) + len(payload)
    return b"".join(
        (
            bytes((_QOS1 | _DUP if dup else _QOS1,)),
            wire.varint(body_length),
            len(topic).to_bytes(2, "big"),
            topic,
            packet_id.to_bytes(2, "big"),
            bytes((len(properties),)),
            properties,
            payload,
        )
    )


def puback(body: bytes) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK; the reason is 0 when the broker left it out."""
    return wire.packet_id(body), body[2] if len(body) > 2 else 0


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    reason: int
    receive_maximum: int = 65_535  # QoS 1 messages the broker takes unacknowledged
    maximum_packet_size: int | None = None
    reason_string: str | None = None
    subscription_identifiers: bool = True  # the broker takes a Subscription Identifier in a SUBSCRIBE


def connack(body: bytes) -> Connack:
    session_present, reason = wire.connack(body)
    if len(body) < 3:  # a broker may leave out the properties of a refusal
        return Connack(session_present, reason)
    found = dict(wire.properties_at(body, 2))
    receive_maximum = found.get(wire.RECEIVE_MAXIMUM, 65_535)
    maximum_packet_size = found.get(wire.MAXIMUM_PACKET_SIZE)
    reason_string = found.get(0x1F)
    return Connack(
        session_present,
        reason,
        receive_maximum if isinstance(receive_maximum, int) else 65_535,
        maximum_packet_size if isinstance(maximum_packet_size, int) else None,
        reason_string.decode(errors="replace") if isinstance(reason_string, bytes) else None,
        found.get(SUBSCRIPTION_IDENTIFIERS_AVAILABLE, 1) != 0,
    )


def subscribe(packet_id: int, topic_filter: str, qos: int, subscription_id: int) -> bytes:
    """SUBSCRIBE of one filter with its Subscription Identifier, without retained messages at subscribe.

    The identifier is a property of the whole packet (§3.8.2.1.2): a filter of its own needs a packet
    of its own."""
    if not 1 <= subscription_id <= MAX_SUBSCRIPTION_ID:
        raise ValueError(f"subscription identifier {subscription_id} out of range")
    properties = bytes((SUBSCRIPTION_IDENTIFIER,)) + wire.varint(subscription_id)
    data = topic_filter.encode()
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65,535 bytes")
    body = b"".join(
        (
            packet_id.to_bytes(2, "big"),
            wire.varint(len(properties)),
            properties,
            len(data).to_bytes(2, "big"),
            data,
            bytes((qos | wire.RETAIN_NOT_SENT,)),
        )
    )
    return bytes((wire.SUBSCRIBE << 4 | 0x02,)) + wire.varint(len(body)) + body


def publish_with_ids(first: int, buf: bytes, pos: int, end: int) -> tuple[wire.Publish, tuple[int, ...]]:
    """The PUBLISH in ``buf[pos:end]`` (first byte ``first``) and its Subscription Identifiers (none when
    it has none, or its property block is malformed: the message itself still goes on).

    Its ``read_ns`` is not read (0): the local forwarder does not trust a device's read time."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise wire.ProtocolError("PUBLISH with QoS 3")
    try:
        topic_end = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
        packet = 0
        at = topic_end
        if qos:
            packet = buf[topic_end] << 8 | buf[topic_end + 1]
            at += 2
        length = buf[at]
        start = at + 1
        if length >= 0x80:
            length, start = _varint_at(buf, at)
    except IndexError:
        raise wire.ProtocolError("PUBLISH shorter than its header") from None
    payload_at = start + length
    if payload_at > end:
        raise wire.ProtocolError("PUBLISH header longer than the packet")
    ids: tuple[int, ...] = ()
    if length:
        # Mosquitto puts the identifier first; a lone one of one or two bytes is read here, the rest parsed
        if buf[start] == SUBSCRIPTION_IDENTIFIER and length == 2 and buf[start + 1] < 0x80:
            ids = (buf[start + 1],)
        else:
            try:
                found = wire.properties(buf, start, payload_at)
            except wire.ProtocolError:
                found = []
            ids = tuple(v for k, v in found if k == SUBSCRIPTION_IDENTIFIER and isinstance(v, int))
    publish: wire.Publish = (buf[pos + 2 : topic_end], buf[payload_at:end], qos, packet, 0, first >= 0x38)
    return publish, ids


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the variable byte integer at ``pos``; IndexError when malformed."""
    value = 0
    for count in range(4):
        byte = data[pos + count]
        value |= (byte & 0x7F) << 7 * count
        if byte < 0x80:
            return value, pos + count + 1
    raise IndexError("variable byte integer longer than 4 bytes")


class SubscriptionParser(wire.PacketParser):
    """:class:`ingest.mqtt_wire.PacketParser` that also reads the Subscription Identifiers of each PUBLISH:
    after :meth:`feed`, ``ids[i]`` are those of the i-th PUBLISH it returned (empty: the broker sent none).
    SUBACKs are kept in ``subacks`` (packet id -> reason codes) besides being returned."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[tuple[int, ...]] = []
        self.subacks: dict[int, list[int]] = {}
        self._rest = b""

    def feed(self, data: bytes) -> tuple[list[wire.Publish], list[wire.Control]]:
        buf = self._rest + data if self._rest else data
        publishes: list[wire.Publish] = []
        controls: list[wire.Control] = []
        ids: list[tuple[int, ...]] = []
        pos = 0
        end_of_data = len(buf)
        while end_of_data - pos >= 2:
            first = buf[pos]
            length = buf[pos + 1]
            start = pos + 2
            if length >= 0x80:
                try:
                    length, start = _varint_at(buf, pos + 1)
                except IndexError:
                    if end_of_data - pos > 5:  # four length bytes were there: not MQTT
                        raise wire.ProtocolError("variable byte integer longer than 4 bytes") from None
                    break
            end = start + length
            if end > end_of_data:
                break
            if first >> 4 == wire.PUBLISH:
                publish, found = publish_with_ids(first, buf, start, end)
                publishes.append(publish)
                ids.append(found)
            else:
                control = wire.Control(first >> 4, buf[start:end])
                if control.kind == wire.SUBACK:
                    packet, codes = wire.suback(control.body)
                    self.subacks[packet] = codes
                controls.append(control)
            pos = end
        self._rest = buf[pos:]
        self.ids = ids
        return publishes, controls

    @property
    def pending_bytes(self) -> int:
        return len(self._rest)
