"""MQTT 5 packets: what we send is what the spec says; the parser finds every packet, however cut.

The packets the tests feed are built here from the spec (OASIS MQTT 5.0 §2.1–2.2, §3.3), independently of
the module's own encoders; against a real broker the integration tests cover the rest.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import mqtt_wire as wire


def spec_varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value % 128
        value //= 128
        out += bytes([byte | 0x80 if value else byte])
        if not value:
            return out


def spec_publish(
    topic: bytes, payload: bytes, qos: int, packet_id: int, properties: bytes = b"", *, dup: bool = False
) -> bytes:
    """§3.3.1: fixed header 0011 DUP QoS RETAIN (DUP only with QoS > 0)."""
    variable = len(topic).to_bytes(2, "big") + topic
    if qos:
        variable += packet_id.to_bytes(2, "big")
    variable += spec_varint(len(properties)) + properties
    body = variable + payload
    return bytes([0x30 | (0x08 if dup else 0) | qos << 1]) + spec_varint(len(body)) + body


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01")],
)
def test_varint_matches_the_spec_table(value: int, encoded: bytes) -> None:
    assert wire.varint(value) == encoded
    assert wire.varint(268_435_455) == b"\xff\xff\xff\x7f"
    with pytest.raises(ValueError, match="variable byte integer"):
        wire.varint(268_435_456)


def test_connect_packet_byte_by_byte() -> None:
    packet = wire.connect(
        "ingest",
        keepalive_s=30,
        clean_start=False,
        session_expiry_s=604_800,
        receive_maximum=20_000,
        username="u",
        password="pw",
    )
    properties = b"\x11\x00\x09\x3a\x80" + b"\x21\x4e\x20"  # session expiry 604800, receive max 20000
    body = b"\x00\x04MQTT\x05" + bytes([0x80 | 0x40]) + b"\x00\x1e"
    body += bytes([len(properties)]) + properties + b"\x00\x06ingest" + b"\x00\x01u" + b"\x00\x02pw"
    assert packet == b"\x10" + bytes([len(body)]) + body


def test_subscribe_and_acks() -> None:
    assert wire.subscribe(1, [("a/#", 1), ("b", 0)]) == b"\x82\x0d\x00\x01\x00\x00\x03a/#\x01\x00\x01b\x00"
    # retain handling 2 (bits 4-5 of the options): no retained messages at subscribe
    assert wire.subscribe(1, [("a", 1)], retained=False) == b"\x82\x07\x00\x01\x00\x00\x01a\x21"
    assert wire.acks(wire.PUBACK, [1, 0x1234]) == b"\x40\x02\x00\x01\x40\x02\x12\x34"
    assert wire.acks(wire.PUBREC, [7]) == b"\x50\x02\x00\x07"
    assert wire.acks(wire.PUBCOMP, [7]) == b"\x70\x02\x00\x07"
    assert wire.acks(wire.PUBACK, []) == b""


def test_connack_suback_and_reasons() -> None:
    assert wire.connack(b"\x01\x00\x00") == (True, 0)
    assert wire.connack(b"\x00\x86\x00") == (False, 0x86)
    assert wire.suback(b"\x00\x01\x00\x01\x87") == (1, [1, 0x87])
    assert wire.suback(b"\x00\x02\x03\x1f\x00\x00\x00") == (2, [0])  # properties skipped
    assert wire.reason_text(0x87) == "not authorized (0x87)"
    with pytest.raises(wire.ProtocolError):
        wire.connack(b"\x00")


messages = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=40),
        st.binary(max_size=300),
        st.sampled_from([0, 1, 2]),
        st.integers(1, 65_535),
        st.sampled_from([b"", b"\x01\x01", b"\x02\x00\x00\x00\x3c", b"\x26" + b"\x00\x01k\x00\x01v" * 30]),
        st.booleans(),  # DUP (a redelivery), with QoS > 0
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(messages, st.lists(st.integers(0, 5000), max_size=6), st.booleans())
def test_parser_finds_every_packet_however_the_stream_is_cut(
    sent: list[tuple[bytes, bytes, int, int, bytes, bool]], cuts: list[int], with_pings: bool
) -> None:
    stream = b""
    for topic, payload, qos, packet_id, properties, dup in sent:
        stream += spec_publish(topic, payload, qos, packet_id, properties, dup=dup and qos > 0)
        if with_pings:
            stream += b"\xd0\x00"  # PINGRESP between the messages
    parser = wire.PacketParser()
    got: list[wire.Publish] = []
    controls: list[wire.Control] = []
    previous = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        publishes, other = parser.feed(stream[previous:cut])
        got += publishes
        controls += other
        previous = cut
    assert got == [(t, p, q, i if q else 0, 0, d and q > 0) for t, p, q, i, _, d in sent]
    assert [c.kind for c in controls] == ([wire.PINGRESP] * len(sent) if with_pings else [])
    assert parser.pending_bytes == 0


def test_large_message_in_many_reads() -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB: a three-byte remaining length
    stream = spec_publish(b"lab/gw-01/x", payload, 1, 9)
    parser = wire.PacketParser()
    found = [parser.feed(stream[start : start + 1000])[0] for start in range(0, len(stream), 1000)]
    assert found[:-1] == [[]] * (len(found) - 1)
    assert found[-1] == [(b"lab/gw-01/x", payload, 1, 9, 0, False)]


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (b"\x36\x03\x00\x01a", "QoS 3"),
        (b"\x32\x03\x00\x05a", "shorter than its header"),  # topic longer than the packet, nothing after
        (b"\x32\x03\x00\x05a" + b"\x00" * 8, "longer than the packet"),  # ... and another packet after
        (b"\x30\x04\x00\x01a\x09" + b"\x00" * 8, "longer than the packet"),  # properties too long
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
    ],
)
def test_malformed_packets_are_protocol_errors(stream: bytes, error: str) -> None:
    with pytest.raises(wire.ProtocolError, match=error):
        wire.PacketParser().feed(stream)


def test_publisher_packets_v311() -> None:
    assert wire.connect_v311("p", keepalive_s=60) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01p"
    assert wire.publish_v311(b"a/b", b"xyz", 7) == b"\x32\x0a\x00\x03a/b\x00\x07xyz"
    long = wire.publish_v311(b"t", b"x" * 200, 65_535)
    assert long[:3] == b"\x32" + wire.varint(2 + 1 + 2 + 200)
    assert long.endswith(b"\xff\xff" + b"x" * 200)


def test_every_message_gets_its_own_receive_time() -> None:
    """Readings without device time are stamped with it: equal times would overwrite points in InfluxDB."""
    import asyncio

    from ingest.config import MqttSettings
    from ingest.mqtt import Message, MqttSource

    async def deliver() -> list[Message]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(MqttSettings(), topics=["#"], queue=queue)
        for _ in range(3):  # reads in quick succession: the clock may not move between them
            source._deliver([(b"lab/gw-01/x", b"1", 1, n + 1, 0, False) for n in range(500)], 1)
        return [m for _ in range(3) for m in queue.get_nowait()]

    times = [m.received_ns for m in asyncio.run(deliver())]
    assert len(times) == 1500
    assert times == sorted(set(times))  # strictly increasing


def spec_user_property(key: bytes, value: bytes) -> bytes:
    return b"\x26" + len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value


READ_NS = 1_764_320_400_123_456_789


@pytest.mark.parametrize(
    ("properties", "read_ns"),
    [
        (spec_user_property(b"read_ns", str(READ_NS).encode()), READ_NS),
        (spec_user_property(b"read_ns", b"7"), 7),  # the smallest block that holds one
        # among other properties: payload format, subscription identifier, content type, other user props
        (
            b"\x01\x00\x0b\x81\x01\x03\x00\x04text"
            + spec_user_property(b"site", b"x")
            + spec_user_property(b"read_ns", str(READ_NS).encode()),
            READ_NS,
        ),
        (spec_user_property(b"read_ns", b"12.5"), 0),  # not a decimal integer: ignored
        (spec_user_property(b"read_ns", b"9" * 21), 0),
        (spec_user_property(b"readns", b"1234567"), 0),
        (b"\x0b\x01", 0),  # a subscription identifier only: never parsed
        (spec_user_property(b"k", b"v") * 40, 0),  # a block longer than 127 bytes
    ],
)
def test_publish_carries_the_read_ns_user_property(properties: bytes, read_ns: int) -> None:
    stream = spec_publish(b"lab/gw-01/sml/m1", b"\x1b\x1b\x1b\x1bframe", 1, 3, properties)
    publishes, _ = wire.PacketParser().feed(stream)
    assert publishes == [(b"lab/gw-01/sml/m1", b"\x1b\x1b\x1b\x1bframe", 1, 3, read_ns, False)]


@pytest.mark.parametrize(
    "properties",
    [
        b"\x26\x00\x07read_ns\x00\x09123",  # value cut off by the end of the block
        b"\x7f" + b"\x00" * 12,  # no such property
        spec_user_property(b"read_ns", b"1") + b"\x02\x00",  # message expiry without its four bytes
    ],
)
def test_malformed_properties_mean_no_read_time_but_the_message_arrives(properties: bytes) -> None:
    publishes, _ = wire.PacketParser().feed(spec_publish(b"t", b"payload", 1, 1, properties))
    assert publishes == [(b"t", b"payload", 1, 1, 0, False)]
    with pytest.raises(wire.ProtocolError):
        wire.properties(properties, 0, len(properties))


def test_connack_properties_are_read() -> None:
    block = b"\x21\x00\x14" + b"\x27\x00\x10\x00\x00" + b"\x1f\x00\x02ok"
    assert wire.properties(block, 0, len(block)) == [(0x21, 20), (0x27, 1_048_576), (0x1F, b"ok")]


def test_a_plausible_read_time_becomes_the_receive_time() -> None:
    """Readings without device time are stamped with the gateway's read time; an implausible one (before
    2020, or more than 5 minutes ahead of our clock) is replaced by the arrival time, and counted."""
    import asyncio
    import time

    from ingest.config import MqttSettings
    from ingest.mqtt import Message, MqttSource

    now = time.time_ns()
    sent = [READ_NS, 1_000_000_000, now + 200_000_000_000, now + 400_000_000_000, 0]

    async def deliver() -> tuple[list[Message], int]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(MqttSettings(), topics=["#"], queue=queue)
        source._deliver([(b"lab/gw-01/x", b"1", 1, n + 1, ns, False) for n, ns in enumerate(sent)], 1)
        return queue.get_nowait(), source.implausible_read_times

    messages, implausible = asyncio.run(deliver())
    times = [m.received_ns for m in messages]
    assert times[0] == READ_NS
    assert times[2] == now + 200_000_000_000
    assert implausible == 2
    for arrival in (times[1], times[3], times[4]):
        assert now <= arrival < now + 60_000_000_000


def test_a_redelivery_carries_the_dup_flag_to_the_message() -> None:
    """§3.3.1.1: DUP is bit 3 of the fixed header; a retained flag (bit 0) beside it changes nothing. The
    quarantine needs it to tell a redelivery of an unacknowledged message from a new one."""
    import asyncio

    from ingest.config import MqttSettings
    from ingest.mqtt import Message, MqttSource

    first = spec_publish(b"lab/gw-01/x", b"{bad", 1, 7)
    again = spec_publish(b"lab/gw-01/x", b"{bad", 1, 7, dup=True)
    retained_again = bytes([again[0] | 0x01]) + again[1:]
    publishes, _ = wire.PacketParser().feed(first + again + retained_again)
    assert [p[5] for p in publishes] == [False, True, True]
    assert {p[:5] for p in publishes} == {(b"lab/gw-01/x", b"{bad", 1, 7, 0)}

    async def deliver() -> list[Message]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        MqttSource(MqttSettings(), topics=["#"], queue=queue)._deliver(publishes, 1)
        return queue.get_nowait()

    assert [(m.mid, m.dup) for m in asyncio.run(deliver())] == [(7, False), (7, True), (7, True)]
