"""MQTT 5 on the wire: the packets a persistent-session subscriber sends, and a parser for what it receives.

Only what the ingester needs (OASIS MQTT 5.0, chapters 2 and 3): CONNECT, SUBSCRIBE, PUBACK / PUBREC /
PUBCOMP, PINGREQ and DISCONNECT (also one that ends the session) out; CONNACK, SUBACK, PUBLISH, PUBREL,
PINGRESP and DISCONNECT in. No topic aliases (we announce none, so the broker sends none), no AUTH exchange.

Why not paho's reader: it handles one packet per call and reads the fixed header byte by byte, so every
message cost an event-loop pass and 3–4 ``recv()`` calls (25 % of the ingester's CPU in the profile, see
docs/performance.md). :class:`PacketParser` takes whatever one ``recv()`` returned and yields every
complete packet in it; acknowledgements for a whole batch go out in one write.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

MAX_REMAINING_LENGTH = 268_435_455  # four bytes of variable-length integer
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # reason 0: normal disconnection, the broker keeps our session
SESSION_EXPIRY_INTERVAL = 0x11

_ACK = struct.Struct(">BBH")  # fixed header, remaining length 2, packet id (reason code 0 omitted)

# Reason codes a broker gives when it refuses (MQTT 5.0 §2.4), named for the log
REASONS = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA2: "wildcard subscriptions not supported",
}


class ProtocolError(Exception):
    """The broker sent something that is not MQTT 5; the connection cannot go on."""


def reason_text(code: int) -> str:
    return f"{REASONS.get(code, 'reason')} (0x{code:02X})"


# topic, payload, QoS, packet id (0 for QoS 0), read_ns user property (0 when absent), DUP flag (the
# broker sends it again: a redelivery, §3.3.1.1); a tuple: it is cheap
Publish = tuple[bytes, bytes, int, int, int, bool]

READ_NS_KEY = b"read_ns"  # the gateway's read time (ingest.gateway.frames.READ_NS_PROPERTY), decimal ns
# the smallest property block that can hold it: 0x26, key and a one-digit value with their lengths
_MIN_READ_NS_PROPERTIES = 1 + 2 + len(READ_NS_KEY) + 2 + 1

# MQTT 5.0 §2.2.2.2: how each property's value is encoded
_BYTE, _TWO, _FOUR, _VARINT, _DATA, _PAIR = range(6)
PROPERTY_TYPES = {
    **dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), _BYTE),
    **dict.fromkeys((0x13, 0x21, 0x22, 0x23), _TWO),
    **dict.fromkeys((0x02, 0x11, 0x18, 0x27), _FOUR),
    0x0B: _VARINT,
    **dict.fromkeys((0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F), _DATA),  # strings, binary
    0x26: _PAIR,
}
USER_PROPERTY, RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE = 0x26, 0x21, 0x27
PropertyValue = int | bytes | tuple[bytes, bytes]


@dataclass(slots=True)
class Control:
    """Any packet other than PUBLISH: its type and the bytes after the fixed header."""

    kind: int
    body: bytes


def varint(value: int) -> bytes:
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65,535 bytes")
    return len(data).to_bytes(2, "big") + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive_s: int,
    clean_start: bool,
    session_expiry_s: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    properties = b"\x11" + session_expiry_s.to_bytes(4, "big") + b"\x21" + receive_maximum.to_bytes(2, "big")
    body = _string("MQTT") + bytes([5, flags]) + keepalive_s.to_bytes(2, "big")
    body += varint(len(properties)) + properties + _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password.encode())
    return _packet(CONNECT << 4, body)


def disconnect(*, session_expiry_s: int) -> bytes:
    """DISCONNECT (reason 0) that sets the session's expiry anew: 0 ends it, with what it holds (§3.14.2.2.2;
    a client that connected with a non-zero expiry may send it)."""
    properties = bytes([SESSION_EXPIRY_INTERVAL]) + session_expiry_s.to_bytes(4, "big")
    return _packet(DISCONNECT << 4, b"\x00" + varint(len(properties)) + properties)


def connect_v311(client_id: str, *, keepalive_s: int) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session (a publisher: no receive-maximum limit to honour)."""
    body = _string("MQTT") + bytes([4, 0x02]) + keepalive_s.to_bytes(2, "big") + _string(client_id)
    return _packet(CONNECT << 4, body)


def publish_v311(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    """A QoS 1 PUBLISH in MQTT 3.1.1 (no properties); ``topic`` already UTF-8 encoded."""
    body_length = 4 + len(topic) + len(payload)
    head = b"\x32" + (bytes([body_length]) if body_length < 0x80 else varint(body_length))
    return b"".join((head, len(topic).to_bytes(2, "big"), topic, packet_id.to_bytes(2, "big"), payload))


RETAIN_NOT_SENT = 0x20  # subscription option "retain handling" 2: no retained messages at subscribe


def subscribe(packet_id: int, filters: Iterable[tuple[str, int]], *, retained: bool = True) -> bytes:
    """SUBSCRIBE; with ``retained=False`` the broker sends no stored retained message for the filters."""
    options = 0 if retained else RETAIN_NOT_SENT
    body = packet_id.to_bytes(2, "big") + b"\x00"  # no properties
    for topic_filter, qos in filters:
        body += _string(topic_filter) + bytes([qos | options])
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def acks(kind: int, packet_ids: Iterable[int]) -> bytes:
    """PUBACK, PUBREC or PUBCOMP for each id, concatenated (reason 0, no properties: 4 bytes each)."""
    first = kind << 4 | (0x02 if kind == PUBREL else 0)
    pack = _ACK.pack
    return b"".join([pack(first, 2, packet_id) for packet_id in packet_ids])


def connack(body: bytes) -> tuple[bool, int]:
    """(session present, reason code) of a CONNACK."""
    if len(body) < 2:
        raise ProtocolError("CONNACK shorter than 2 bytes")
    return bool(body[0] & 1), body[1]


def suback(body: bytes) -> tuple[int, list[int]]:
    """(packet id, reason code per filter) of a SUBACK."""
    if len(body) < 3:
        raise ProtocolError("SUBACK shorter than 3 bytes")
    properties, start = _varint_at(body, 2)
    return int.from_bytes(body[:2], "big"), list(body[start + properties :])


def disconnect_reason(body: bytes) -> int:
    return body[0] if body else 0


def packet_id(body: bytes) -> int:
    if len(body) < 2:
        raise ProtocolError("acknowledgement without a packet identifier")
    return int.from_bytes(body[:2], "big")


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the variable byte integer at ``pos``; IndexError when cut off."""
    value, shift = 0, 0
    for count in range(4):
        byte = data[pos + count]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + count + 1
        shift += 7
    raise ProtocolError("variable byte integer longer than 4 bytes")


def properties(data: bytes, pos: int, end: int) -> list[tuple[int, PropertyValue]]:
    """The (identifier, value) pairs of the property block ``data[pos:end]`` (without its length)."""
    out: list[tuple[int, PropertyValue]] = []
    try:
        while pos < end:
            identifier = data[pos]
            kind = PROPERTY_TYPES.get(identifier)
            pos += 1
            value: PropertyValue
            if kind == _BYTE:
                value, pos = data[pos], pos + 1
            elif kind == _TWO:
                value, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
            elif kind == _FOUR:
                value, pos = int.from_bytes(data[pos : pos + 4], "big"), pos + 4
            elif kind == _VARINT:
                value, pos = _varint_at(data, pos)
            elif kind == _DATA:
                value, pos = _data_at(data, pos)
            elif kind == _PAIR:
                key, pos = _data_at(data, pos)
                text, pos = _data_at(data, pos)
                value = (key, text)
            else:
                raise ProtocolError(f"unknown property 0x{identifier:02X}")
            out.append((identifier, value))
    except IndexError:
        raise ProtocolError("property block cut off") from None
    if pos != end:
        raise ProtocolError("property longer than its block")
    return out


def properties_at(data: bytes, pos: int) -> list[tuple[int, PropertyValue]]:
    """The properties of the block whose variable-length size starts at ``data[pos]`` (CONNACK, PUBACK)."""
    try:
        length, start = _varint_at(data, pos)
    except IndexError:
        raise ProtocolError("property length cut off") from None
    if start + length > len(data):
        raise ProtocolError("property block longer than the packet")
    return properties(data, start, start + length)


def _data_at(data: bytes, pos: int) -> tuple[bytes, int]:
    end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
    if pos + 2 > len(data) or end > len(data):
        raise IndexError
    return data[pos + 2 : end], end


def read_ns_property(data: bytes, pos: int, end: int) -> int:
    """The ``read_ns`` user property in the property block ``data[pos:end]``, 0 if none or not a number.

    A malformed block counts as none: the broker checked it already, and refusing the message would make
    the broker send it again and again (the message itself is still delivered).
    """
    try:
        found = properties(data, pos, end)
    except ProtocolError:
        return 0
    for identifier, value in found:
        if identifier == USER_PROPERTY and isinstance(value, tuple) and value[0] == READ_NS_KEY:
            text = value[1]
            return int(text) if text.isdigit() and len(text) <= 20 else 0
    return 0


class PacketParser:
    """Splits the byte stream from the broker into packets; keeps an incomplete tail for the next feed."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> tuple[list[Publish], list[Control]]:
        buf = self._tail + data if self._tail else data
        end_of_data = len(buf)
        publishes: list[Publish] = []
        controls: list[Control] = []
        pos = 0
        while end_of_data - pos >= 2:
            first = buf[pos]
            length = buf[pos + 1]
            start = pos + 2
            if length >= 0x80:
                if end_of_data - pos > 2 and buf[pos + 2] < 0x80:  # two bytes: messages of 128 B-16 KiB
                    length, start = (length & 0x7F) | buf[pos + 2] << 7, pos + 3
                else:
                    try:
                        length, start = _varint_at(buf, pos + 1)
                    except IndexError:
                        break  # the length itself is not complete yet
            end = start + length
            if end > end_of_data:
                break
            if first >> 4 == PUBLISH:
                publishes.append(_publish(first, buf, start, end))
            else:
                controls.append(Control(first >> 4, buf[start:end]))
            pos = end
        self._tail = buf[pos:]
        return publishes, controls

    @property
    def pending_bytes(self) -> int:
        return len(self._tail)


def _publish(first: int, buf: bytes, pos: int, end: int) -> Publish:
    qos = (first >> 1) & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    try:
        topic_end = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
        packet = 0
        if qos:
            packet = buf[topic_end] << 8 | buf[topic_end + 1]
            properties_at = topic_end + 2
        else:
            properties_at = topic_end
        properties = buf[properties_at]
        if properties < 0x80:
            payload_at = properties_at + 1 + properties
        else:
            properties, payload_at = _varint_at(buf, properties_at)
            payload_at += properties
    except IndexError:
        raise ProtocolError("PUBLISH shorter than its header") from None
    if payload_at > end:
        raise ProtocolError("PUBLISH header longer than the packet")
    read_ns = 0
    # only a block that can hold it is looked at: none (0) or a subscription identifier stay on the fast path
    if properties >= _MIN_READ_NS_PROPERTIES:
        read_ns = read_ns_property(buf, payload_at - properties, payload_at)
    # first is 0011 DUP QoS QoS RETAIN: DUP is set exactly when it is 0x38 or more (one comparison)
    return buf[pos + 2 : topic_end], buf[payload_at:end], qos, packet, read_ns, first >= 0x38
