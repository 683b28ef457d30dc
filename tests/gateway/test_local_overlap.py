"""Overlapping forwarder filters: every message forwarded exactly once (real Mosquitto, real forwarder).

Mosquitto sends an MQTT 5 subscriber one copy of a message per matching subscription; the forwarder tells
them apart by their Subscription Identifiers (ingest/gateway/local_source.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import mqtt_wire as wire
from ingest.gateway import mqtt5
from ingest.gateway.config import LOCAL_DEVICE_TOPICS
from ingest.gateway.local_source import assign_ids, matches
from ingest.localservices import Mosquitto
from tests.gateway.test_local_forwarder import GATEWAY, RunningForwarder, device, forwarded_frames, publish
from tests.helpers import wait_for


def _forward(port: int, outbox: Path, topics: list[str], messages: list[tuple[str, bytes]]) -> int:
    """Publish ``messages`` (QoS 1, in order) to a running forwarder; its duplicates count."""
    forwarder = RunningForwarder(port, outbox, topics=topics)
    plug = device(port)
    try:
        for topic, payload in messages:
            publish(plug, topic, payload)
        publish(plug, "zz/end", b"end")  # in order behind the others on the same session
        wait_for(lambda: forwarder.forwarded >= 1 + len(messages), timeout=15, what="every message")
        assert forwarder.forwarder is not None
        return forwarder.forwarder.duplicates
    finally:
        forwarder.stop()
        plug.disconnect()
        plug.loop_stop()


def _forwarded(outbox: Path) -> list[tuple[str, bytes]]:
    prefix = f"lab/{GATEWAY}/"
    return [(f.topic.removeprefix(prefix), f.payload) for f in forwarded_frames(outbox)]


def test_an_esphome_sensor_named_status_is_forwarded_once(local_broker: Mosquitto, tmp_path: Path) -> None:
    """The review's case: `+/+/status/+` (Shelly Gen2) and `+/sensor/+/state` (ESPHome) of the default list
    both match; it was forwarded twice (two points 1 ns apart)."""
    messages = [("esp-node/sensor/status/state", b"21.5"), ("esp-node/sensor/temperature/state", b"21.5")]
    duplicates = _forward(local_broker.port, tmp_path / "outbox", [*LOCAL_DEVICE_TOPICS, "zz/+"], messages)
    assert _forwarded(tmp_path / "outbox") == [*messages, ("zz/end", b"end")]
    assert duplicates == 1


def test_overlapping_user_filters_forward_each_message_once_and_lose_none(
    local_broker: Mosquitto, tmp_path: Path
) -> None:
    """Three filters, one within another and two crossing: every message once, in order, none lost."""
    topics = ["tele/+/SENSOR", "tele/#", "+/+/SENSOR", "zz/+"]
    kinds = ["tele/a/SENSOR", "tele/a/STATE", "x/b/SENSOR", "tele/a/b/c"]  # 3, 1, 1 and 1 filters match
    messages = [(kinds[i % 4], b"%d" % i) for i in range(200)]
    duplicates = _forward(local_broker.port, tmp_path / "outbox", topics, messages)
    assert _forwarded(tmp_path / "outbox") == [*messages, ("zz/end", b"end")]
    assert duplicates == 50 * 2


def test_a_message_queued_before_the_filters_changed_is_forwarded_once(
    local_broker: Mosquitto, tmp_path: Path
) -> None:
    """A filter keeps its identifier across a change of the list: with identifiers by position, the copy
    queued for `a/+` (then 2nd, id 2) would have been dropped once `a/+` came first (id 1): lost."""
    outbox = tmp_path / "outbox"
    RunningForwarder(local_broker.port, outbox, topics=["x/+", "a/+"]).stop()
    plug = device(local_broker.port)
    try:
        publish(plug, "a/b", b"queued")  # the forwarder is away: its session queues one copy (for a/+)
    finally:
        plug.disconnect()
        plug.loop_stop()
    duplicates = _forward(local_broker.port, outbox, ["a/+", "+/b", "zz/+"], [("a/b", b"live")])
    assert _forwarded(outbox) == [("a/b", b"queued"), ("a/b", b"live"), ("zz/end", b"end")]
    assert duplicates == 1  # the live one came for a/+ and +/b
    state = json.loads((outbox / "local-broker.json").read_text())
    assert state["subscription_ids"] == {"a/+": 2, "+/b": 3, "zz/+": 4}
    assert state["next_subscription_id"] == 5


def test_identifiers_stay_with_their_filter_and_are_never_reused() -> None:
    ids, next_id = assign_ids(["a", "b", "c"], {}, 1)
    assert (ids, next_id) == ({"a": 1, "b": 2, "c": 3}, 4)
    ids, next_id = assign_ids(["c", "d", "a"], ids, next_id)  # b removed, d new, order changed
    assert (ids, next_id) == ({"c": 3, "d": 4, "a": 1}, 5)
    ids, next_id = assign_ids(["b", "c"], ids, next_id)  # b back: a new number
    assert (ids, next_id) == ({"b": 5, "c": 3}, 6)
    assert assign_ids(["a", "a"], {}, 1) == ({"a": 1}, 2)
    assert assign_ids(["a"], {"a": 9}, 3) == ({"a": 3}, 4)  # a kept id not below next: not trusted


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a//c", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b", "a/b/", False),
        ("+/+", "a", False),
    ],
)
def test_filters_match_as_mqtt_says(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


def _publish_with_ids(topic: bytes, payload: bytes, ids: list[int], *, qos: int, packet_id: int) -> bytes:
    properties = b"".join(bytes((mqtt5.SUBSCRIPTION_IDENTIFIER,)) + wire.varint(i) for i in ids)
    body = len(topic).to_bytes(2, "big") + topic + (packet_id.to_bytes(2, "big") if qos else b"")
    body += wire.varint(len(properties)) + properties + payload
    return bytes((0x30 | qos << 1,)) + wire.varint(len(body)) + body


_PUBLISHES = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=40),
        st.binary(max_size=300),
        st.lists(st.integers(1, mqtt5.MAX_SUBSCRIPTION_ID), max_size=3),
        st.integers(0, 2),
        st.integers(1, 0xFFFF),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(_PUBLISHES, st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_the_parser_reads_each_copys_identifiers_however_the_stream_is_cut(
    publishes: list[tuple[bytes, bytes, list[int], int, int]], cuts: list[int]
) -> None:
    stream = b"".join(_publish_with_ids(t, p, i, qos=q, packet_id=m) for t, p, i, q, m in publishes)
    stream += b"\x90\x04\x00\x10\x00\x01"  # a SUBACK between them: kept as well
    parser = mqtt5.SubscriptionParser()
    got: list[tuple[bytes, bytes, int, int, tuple[int, ...]]] = []
    pos, index = 0, 0
    while pos < len(stream):
        step = cuts[index % len(cuts)]
        messages, _ = parser.feed(stream[pos : pos + step])
        got += [(m[0], m[1], m[2], m[3], ids) for m, ids in zip(messages, parser.ids, strict=True)]
        pos, index = pos + step, index + 1
    assert got == [(t, p, q, m if q else 0, tuple(i)) for t, p, i, q, m in publishes]
    assert parser.subacks == {16: [1]}
    assert parser.pending_bytes == 0


def test_a_subscribe_carries_its_identifier() -> None:
    packet = mqtt5.subscribe(16, "tele/+/SENSOR", 1, 300)
    # fixed header, length, packet id 16, properties: 3 bytes (0x0B, 300 as 0xAC 0x02), filter, options
    assert packet == b"\x82\x16\x00\x10\x03\x0b\xac\x02\x00\x0dtele/+/SENSOR\x21"
    with pytest.raises(ValueError, match="out of range"):
        mqtt5.subscribe(16, "a", 1, 0)
