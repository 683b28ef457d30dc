"""The MQTT 5 packets of the gateway's publisher that :mod:`ingest.mqtt_wire` (a subscriber's) lacks:
QoS 1 PUBLISH with the read time as a user property, PUBACK with its reason code, CONNACK's properties."""

from __future__ import annotations

from dataclasses import dataclass

from ingest import mqtt_wire as wire
from ingest.gateway.frames import READ_NS_PROPERTY

_READ_NS_KEY = wire.USER_PROPERTY.to_bytes(1, "big") + len(READ_NS_PROPERTY).to_bytes(2, "big")
_READ_NS_KEY += READ_NS_PROPERTY.encode()
_QOS1 = 0x32
_DUP = 0x08


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
    )
