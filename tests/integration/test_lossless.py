"""Issue 3's promise: a message is in InfluxDB, in the spool, or in quarantine with a reason. Never gone."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest.decode import MessageDecoder
from ingest.localservices import InfluxDB, Mosquitto, free_port
from ingest.profiles import load_profiles
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.readings import DecodeRejected
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import (
    InfluxQuery,
    IngesterProcess,
    Target,
    assert_accounting,
    read_metrics,
    settled,
    wait_for,
)

START_MS = 1_764_320_400_000


def quarantined(target: Target) -> list[tuple[str, bytes, str, str]]:
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
        records = q.list(limit=100_000)
    return [(r.topic, r.payload, r.reason, r.detail) for r in records]


def test_r2_influxdb_outage_fills_the_spool_which_drains_to_zero(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, tmp_path: Path
) -> None:
    own = InfluxDB(tmp_path / "influxdb").start()  # this test stops it
    try:
        ingester.target = Target(**{**target.__dict__, "influx_url": own.url})
        metrics_port = free_port()
        ingester.start(ingest={"metrics_port": metrics_port, "stats_interval_s": 1})
        influx = InfluxQuery(own.url, target.database)
        batch = list(samples(make_fleet(10), count=4_000, start_ms=START_MS, interval_s=1))
        with Publisher("127.0.0.1", mosquitto.port) as publisher:
            publisher.publish_all(
                (target.topic_prefix + s.household.topic, s.payload()) for s in batch[:1000]
            )
            publisher.flush()
            wait_for(lambda: influx.count("electricity", "power_w") == 1000, timeout=30, what="first 1000")
            own.stop()
            publisher.publish_all(
                (target.topic_prefix + s.household.topic, s.payload()) for s in batch[1000:]
            )
            publisher.flush()
        # the broker handed everything over and the ingester acknowledged it: it is in the spool now
        wait_for(
            lambda: read_metrics(metrics_port)["received_total"] >= 4000, timeout=30, what="all received"
        )
        wait_for(lambda: read_metrics(metrics_port)["in_spool_messages"] == 3000, timeout=30, what="spooled")
        assert_accounting(read_metrics(metrics_port))  # at rest: 1000 written, 3000 in the spool
        assert list((target.state_dir / "spool").glob("*.seg"))
        own.start()
        wait_for(lambda: influx.count("electricity", "power_w") == 4000, timeout=60, what="all 4000 points")
        metrics = wait_for(lambda: settled(metrics_port), timeout=30, what="spool empty")
        assert_accounting(metrics)
        assert metrics["written_total"] == 4000
        assert metrics["write_retries_total"] > 0
        wait_for(lambda: influx.count("ingest_stats", "received") > 0, timeout=10, what="ingest_stats points")
    finally:
        own.stop()


def test_full_spool_applies_backpressure_instead_of_dropping(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, tmp_path: Path
) -> None:
    own = InfluxDB(tmp_path / "influxdb").start()
    try:
        ingester.target = Target(**{**target.__dict__, "influx_url": own.url})
        metrics_port = free_port()
        ingester.start(
            ingest={"metrics_port": metrics_port, "spool_max_bytes": 1024 * 1024},
            influx={"batch_size": 500, "retry_max_s": 1},
        )
        influx = InfluxQuery(own.url, target.database)
        own.stop()
        batch = list(samples(make_fleet(50), count=15_000, start_ms=START_MS, interval_s=1))
        with Publisher("127.0.0.1", mosquitto.port, window=5000) as publisher:
            publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch)
            publisher.flush()
        wait_for(lambda: "spool full" in ingester.output(), timeout=60, what="backpressure")
        metrics = read_metrics(metrics_port)
        assert metrics["received_total"] < 15_000  # the rest waits at the broker, unacknowledged
        spool_bytes = sum(p.stat().st_size for p in (target.state_dir / "spool").glob("*.seg"))
        assert spool_bytes <= 1024 * 1024
        own.start()
        wait_for(
            lambda: influx.count("electricity", "power_w") == 15_000, timeout=90, what="all 15,000 points"
        )
        assert_accounting(wait_for(lambda: settled(metrics_port), timeout=30, what="spool empty"))
    finally:
        own.stop()


def _hypothesis_payloads(count: int) -> list[bytes]:
    """Payloads drawn by hypothesis (generation phase only), to be published as one flood."""
    drawn: list[bytes] = []
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )
    mapped = st.fixed_dictionaries(
        {},
        optional={
            key: st.none()
            | st.floats()
            | st.text(max_size=6)
            | st.integers()
            | st.booleans()
            | st.lists(st.integers())
            for key in ("ts", "power_w", "energy_import_wh", "voltage_l1_v", "temperature_c")
        },
    )
    strategy = (
        st.binary(max_size=200)
        | json_values.map(lambda v: json.dumps(v).encode())
        | mapped.map(lambda v: json.dumps(v).encode())
    )

    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(payload: bytes) -> None:
        drawn.append(payload)

    collect()
    return drawn


NASTY = [
    b"",
    b"\xff\xfe\xfd",
    b'{"power_w": "\xed\xa0\x80"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'{"power_w": NaN}',
    b'{"power_w": Infinity}',
    b'{"power_w": -Infinity}',
    b'{"power_w": 1e999}',
    b'{"power_w": [1, 2]}',
    b'{"power_w": {"x": 1}}',
    b'{"power_w": true, "ts": "yesterday"}',
    b'{"power_w": "12,5,3"}',
    b'{"voltage_l1_v": 1000000}',
    b"null",
    b"0",
    b'"just a string"',
    b"x" * 300_000,
    b'{"power_w": 1, "ts": 1000000000000000000000000000000}',
    b'{"power_w": 1, "ts": -99999999999999999999}',
]


def test_r4_malformed_flood_quarantined_with_reasons_good_all_written(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    bad = _hypothesis_payloads(2500) + NASTY
    decoder = MessageDecoder(load_profiles(target.profiles_dir), max_payload_bytes=256 * 1024)
    expected_rejections: Counter[tuple[bytes, str]] = Counter()
    accepted_bad = 0
    for index, payload in enumerate(bad):
        try:
            decoder.decode(f"lab/gw-bad/bad-{index}/state", payload, START_MS * 1_000_000)
            accepted_bad += 1
        except DecodeRejected as exc:
            expected_rejections[(payload, exc.reason)] += 1
    assert len(expected_rejections) > 1000

    metrics_port = free_port()
    ingester.start(ingest={"metrics_port": metrics_port})
    good = list(samples(make_fleet(30), count=3_000, start_ms=START_MS, interval_s=1))
    with Publisher("127.0.0.1", mosquitto.port, window=2000) as publisher:
        for index in range(max(len(good), len(bad))):
            if index < len(good):
                publisher.publish(target.topic_prefix + good[index].household.topic, good[index].payload())
            if index < len(bad):
                publisher.publish(f"{target.topic_prefix}lab/gw-bad/bad-{index}/state", bad[index])
        publisher.flush()

    total = len(good) + len(bad)
    wait_for(lambda: read_metrics(metrics_port)["received_total"] == total, timeout=60, what="all received")
    metrics = wait_for(lambda: settled(metrics_port), timeout=30, what="every message written or quarantined")
    assert_accounting(metrics)
    assert metrics["written_total"] == len(good) + accepted_bad
    assert influx.count("electricity", "power_w", where="gateway != 'gw-bad'") == len(good)
    rows = quarantined(target)
    assert Counter((payload, reason) for _, payload, reason, _ in rows) == expected_rejections
    assert all(detail for *_, detail in rows), "every quarantined message says why"
    assert ingester.process is not None
    assert ingester.process.poll() is None, "the ingester died"
    assert "Traceback" not in ingester.output()


def test_influx_refusal_quarantines_only_the_offending_lines(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    metrics_port = free_port()
    ingester.start(
        influx={"batch_size": 1000, "flush_interval_s": 0.5}, ingest={"metrics_port": metrics_port}
    )
    # co2_ppm already exists as a string field in this shard: every float co2_ppm conflicts
    httpx.post(
        f"{target.influx_url}/write",
        params={"db": target.database},
        content=f'environment,device=old co2_ppm="n/a" {START_MS * 1_000_000}'.encode(),  # same shard
        trust_env=False,
    ).raise_for_status()
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for index in range(100):
            document: dict[str, object] = {"ts": START_MS + index * 1000, "temperature_c": 20 + index / 10}
            if index % 10 == 0:
                document["co2_ppm"] = 400 + index
            publisher.publish(f"{target.topic_prefix}lab/gw-1/room-{index % 7}/state", orjson.dumps(document))
        publisher.flush()
    wait_for(lambda: len(quarantined(target)) == 10, timeout=30, what="10 refused lines in quarantine")
    wait_for(lambda: influx.count("environment", "temperature_c") == 90, timeout=30, what="the 90 good lines")
    for topic, payload, reason, detail in quarantined(target):
        assert reason == "influx_rejected"
        assert topic == "influx:environment"
        assert b"co2_ppm=" in payload
        assert "field type conflict" in detail
    metrics = read_metrics(metrics_port)
    assert metrics["points_quarantined_total"] == 10
    assert metrics["influx_rejected_batches_total"] >= 1  # refused in part, then bisected


def test_quarantine_replay_after_a_profile_fix(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    original = (target.profiles_dir / "generic-json.yaml").read_text()
    strict = original.replace(
        "electricity.power_w: {min: -50000, max: 60000}", "electricity.power_w: {min: 0, max: 100}"
    )
    assert strict != original
    (profiles / "generic-json.yaml").write_text(strict)
    ingester.target = Target(**{**target.__dict__, "profiles_dir": profiles})
    ingester.start()
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for index in range(20):
            power = 50 if index % 2 else 5000  # every second one is "implausible" for the strict profile
            document = {"ts": START_MS + index * 1000, "power_w": power}
            publisher.publish(f"{target.topic_prefix}lab/gw-1/hh-{index}/state", orjson.dumps(document))
        publisher.flush()
    wait_for(lambda: len(quarantined(target)) == 10, timeout=30, what="10 implausible in quarantine")
    wait_for(lambda: influx.count("electricity", "power_w") == 10, timeout=30)

    (profiles / "generic-json.yaml").write_text(original)  # the fix
    config = ingester.config_path
    result = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "quarantine", "replay", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["replayed"] == 10
    assert influx.count("electricity", "power_w") == 20
    stats = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "quarantine", "stats", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(stats.stdout)["pending"] == 0
    assert json.loads(stats.stdout)["replayed"] == 10


def test_warns_when_the_broker_drops_messages(
    target: Target, ingester: IngesterProcess, tmp_path: Path
) -> None:
    """A broker with Mosquitto's stock queue limit loses messages for an absent subscriber: we say so."""
    broker = Mosquitto(tmp_path / "mosquitto", max_queued_messages=100).start()
    try:
        ingester.target = Target(**{**target.__dict__, "mqtt_port": broker.port})
        ingester.start()
        assert ingester.stop() == 0  # the persistent session stays at the broker
        batch = list(samples(make_fleet(5), count=500, start_ms=START_MS, interval_s=1))
        with Publisher("127.0.0.1", broker.port) as publisher:
            publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch)
            publisher.flush()
        ingester.start()
        wait_for(lambda: "the broker reports" in ingester.output(), timeout=15, what="the drop warning")
        assert "docs/broker.md" in ingester.output()
    finally:
        broker.stop()
