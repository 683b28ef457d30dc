"""The core path end to end: simulated gateways -> real Mosquitto -> ingester process -> real InfluxDB."""

from __future__ import annotations

import random

import orjson
import pytest

from ingest.localservices import Mosquitto
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

START_MS = 1_764_320_400_000  # 2025-11-28T09:00:00Z


def test_110_households_10000_messages_arrive_exactly(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    ingester.start()
    fleet = make_fleet(110, seed=7)
    sent = list(samples(fleet, count=10_000, start_ms=START_MS, interval_s=10, seed=7))
    with Publisher("127.0.0.1", mosquitto.port, window=2000) as publisher:
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in sent)
        publisher.flush()

    wait_for(lambda: influx.count("electricity", "power_w") == 10_000, timeout=60, what="10,000 points")
    per_device = influx.count_by_tag("electricity", "power_w", "device")
    assert len(per_device) == 110
    expected_per_device: dict[str, int] = {}
    for s in sent:
        expected_per_device[s.household.device] = expected_per_device.get(s.household.device, 0) + 1
    assert per_device == expected_per_device
    gateways = influx.count_by_tag("electricity", "power_w", "gateway")
    assert sorted(gateways) == [f"gw-{n:02d}" for n in range(1, 12)]

    for s in random.Random(1).sample(sent, 25):
        rows = influx.rows(
            f"SELECT * FROM electricity WHERE device = '{s.household.device}' "
            f"AND time = {s.time_ms * 1_000_000}"
        )
        assert len(rows) == 1, s
        row = rows[0]
        assert row["power_w"] == pytest.approx(s.power_w)
        assert row["energy_import_kwh"] == pytest.approx(s.import_wh / 1000)
        assert row["energy_export_kwh"] == pytest.approx(s.export_wh / 1000)
        assert row["voltage_l1_v"] == pytest.approx(s.voltage_v)
        assert row["gateway"] == s.household.gateway
        assert row["profile"] == "generic-json"
    assert ingester.process is not None
    assert ingester.process.poll() is None


BAD_PAYLOADS: list[tuple[str, bytes, str]] = [
    ("lab/gw-01/hh-001-em/state", b"not json at all", "invalid_json"),
    ("lab/gw-01/hh-001-em/state", b"\xff\xfe\x00garbage", "invalid_json"),
    ("lab/gw-01/hh-001-em/state", b'{"ts": 1764320400000, "power_w": "lots"}', "invalid_value"),
    ("lab/gw-01/hh-001-em/state", b'{"ts": 1764320400000, "voltage_l1_v": 9999}', "implausible_value"),
    ("lab/gw-01/hh-001-em/state", b"[1, 2, 3]", "invalid_payload"),
    ("lab/gw-01/hh-001-em/state", b'{"unknown": 1}', "no_readings"),
    ("lab/gw-01/hh-001-em/state", b'{"power_w": NaN}', "invalid_json"),
    ("lab/gw-01/hh-001-em/state", b"{" + b'"a":' * 100_000 + b"1", "oversized_payload"),
    ("lab/gw-01/hh-001-em/state", b"", "invalid_json"),
    # the ingester subscribes to all of lab/#: a topic no profile knows is quarantined, not unseen
    ("lab/gw-01/heizung/kessel/vorlauf", b"47.5", "no_profile"),
]


def test_malformed_payloads_among_good_ones(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    ingester.start()
    good = list(samples(make_fleet(5), count=500, start_ms=START_MS, interval_s=1))
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for index, sample in enumerate(good):
            publisher.publish(target.topic_prefix + sample.household.topic, sample.payload())
            if index % 50 == 0:
                topic, payload, _ = BAD_PAYLOADS[(index // 50) % len(BAD_PAYLOADS)]
                publisher.publish(target.topic_prefix + topic, payload)
        publisher.flush()

    wait_for(lambda: influx.count("electricity", "power_w") == 500, timeout=60, what="every good point")
    bad_sent = len(range(0, 500, 50))
    wait_for(
        lambda: sum("rejected message on" in line for line in ingester.log) == bad_sent,
        timeout=20,
        what="one log line per rejected message",
    )
    rejections = [line for line in ingester.log if "rejected message on" in line]
    for topic, _, reason in BAD_PAYLOADS:
        assert any(f"{target.topic_prefix}{topic}" in line and reason in line for line in rejections), reason
    assert "Traceback" not in ingester.output()
    assert ingester.process is not None
    assert ingester.process.poll() is None, "the ingester died"


def test_graceful_stop_keeps_the_session_and_restart_catches_up(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    ingester.start()
    fleet = make_fleet(20)
    batch = list(samples(fleet, count=1_000, start_ms=START_MS, interval_s=1))
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch[:400])
        publisher.flush()
        wait_for(lambda: influx.count("electricity", "power_w") == 400, timeout=30, what="first 400")
        assert ingester.stop() == 0
        assert "ingester stopped" in ingester.output()
        # the broker queues these for the ingester's persistent session while it is away
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch[400:])
        publisher.flush()
    ingester.start()
    wait_for(lambda: influx.count("electricity", "power_w") == 1_000, timeout=30, what="all 1,000 points")


def test_payload_values_survive_the_trip(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    """Quirky but valid input: strings, decimal commas, local time; device time and received time."""
    ingester.start()
    messages = [
        (
            "lab/gw-09/room-1/state",
            {"ts": "2025-11-28 10:00:00", "temperature_c": "21,5", "humidity_pct": 40},
        ),
        ("lab/gw-09/room-2/state", {"ts": 5, "co2_ppm": 612}),
    ]
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for topic, document in messages:
            publisher.publish(target.topic_prefix + topic, orjson.dumps(document))
        publisher.flush()
    rows = wait_for(
        lambda: influx.rows("SELECT * FROM environment GROUP BY device"), timeout=30, what="environment rows"
    )
    wait_for(lambda: len(influx.rows("SELECT * FROM environment")) == 2, timeout=10)
    rows = {row["device"]: row for row in influx.rows("SELECT * FROM environment GROUP BY device")}
    assert rows["room-1"]["temperature_c"] == 21.5
    assert rows["room-1"]["time"] == 1_764_320_400_000_000_000  # 10:00 Berlin = 09:00 UTC
    assert rows["room-2"]["co2_ppm"] == 612.0
    assert rows["room-2"]["time"] > 1_764_320_400_000_000_000  # the unset clock fell back to receive time
