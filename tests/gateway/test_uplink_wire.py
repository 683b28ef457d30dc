"""The publisher's packets (ingest.gateway.mqtt5) byte by byte against MQTT 5.0 §3.3/§3.4/§3.2, and read
back by the central subscriber's parser."""

from __future__ import annotations

import pytest

from ingest import mqtt_wire as wire
from ingest.gateway import mqtt5


def test_publish_qos1_with_the_read_ns_user_property() -> None:
    packet = mqtt5.publish(b"lab/gw/sml/m1", b"\x1b\x1b", 0x0102, 1_764_320_400_123_456_789)
    value = b"1764320400123456789"
    properties = b"\x26" + b"\x00\x07read_ns" + len(value).to_bytes(2, "big") + value
    body = b"\x00\x0dlab/gw/sml/m1" + b"\x01\x02" + bytes([len(properties)]) + properties + b"\x1b\x1b"
    assert packet == b"\x32" + bytes([len(body)]) + body
    assert mqtt5.publish(b"t", b"", 1, 5, dup=True)[0] == 0x3A  # DUP flag on a re-send


@pytest.mark.parametrize("size", [0, 100, 20_000, 300_000])  # one- to three-byte remaining lengths
def test_the_central_parser_reads_what_the_gateway_sends(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    stream = b"".join(
        mqtt5.publish(b"lab/gw/dsmr/p1", payload, n, 1_700_000_000_000_000_000 + n) for n in (1, 2)
    )
    publishes, controls = wire.PacketParser().feed(stream)
    assert controls == []
    assert publishes == [
        (b"lab/gw/dsmr/p1", payload, 1, 1, 1_700_000_000_000_000_001, False),
        (b"lab/gw/dsmr/p1", payload, 1, 2, 1_700_000_000_000_000_002, False),
    ]


def test_puback_and_connack() -> None:
    assert mqtt5.puback(b"\x00\x07") == (7, 0)  # reason left out: success
    assert mqtt5.puback(b"\x00\x07\x87\x00") == (7, 0x87)
    connack = mqtt5.connack(b"\x01\x00\x08\x21\x01\xf4\x27\x00\x00\x10\x00")
    assert connack == mqtt5.Connack(True, 0, receive_maximum=500, maximum_packet_size=4096)
    refused = mqtt5.connack(b"\x00\x87\x07\x1f\x00\x04nope")
    assert (refused.reason, refused.reason_string, refused.receive_maximum) == (0x87, "nope", 65_535)
    assert mqtt5.connack(b"\x00\x86") == mqtt5.Connack(False, 0x86)
