"""Fault tests: whatever happens to the ingester or the broker, every message ends up in InfluxDB once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ingest.localservices import Mosquitto
from simulators.fleet import Sample, make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

START_MS = 1_764_320_400_000


def publish_steadily(
    publisher: Publisher, prefix: str, batch: list[Sample], *, rate: float, done: threading.Event
) -> threading.Thread:
    def run() -> None:
        started = time.monotonic()
        for index, sample in enumerate(batch):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publisher.publish(prefix + sample.household.topic, sample.payload())
        publisher.flush()
        done.set()

    thread = threading.Thread(target=run, name="publisher", daemon=True)
    thread.start()
    return thread


def test_r1_sigkill_repeatedly_loses_nothing_and_duplicates_nothing(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    batch = list(samples(make_fleet(50), count=8_000, start_ms=START_MS, interval_s=1))
    ingester.start()
    done = threading.Event()
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        thread = publish_steadily(publisher, target.topic_prefix, batch, rate=1_000, done=done)
        for _ in range(4):  # mostly while publishing (under load a restart may outlast it)
            time.sleep(0.7)
            assert ingester.stop(kill=True) == -9
            ingester.start()
        thread.join()
    wait_for(lambda: influx.count("electricity", "power_w") == len(batch), timeout=60, what="every point")
    expected: dict[str, int] = {}
    for s in batch:
        expected[s.household.device] = expected.get(s.household.device, 0) + 1
    assert influx.count_by_tag("electricity", "power_w", "device") == expected


def test_r3_broker_restart_mid_run_loses_nothing(
    target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    broker = Mosquitto(tmp_path / "mosquitto").start()  # this test restarts it: its own broker
    try:
        ingester.target = Target(**{**target.__dict__, "mqtt_port": broker.port})
        ingester.start()
        batch = list(samples(make_fleet(20), count=6_000, start_ms=START_MS, interval_s=1))
        done = threading.Event()
        with Publisher("127.0.0.1", broker.port, client_id=f"pub-{target.client_id}", persistent=True) as pub:
            thread = publish_steadily(pub, target.topic_prefix, batch, rate=1_500, done=done)
            for _ in range(2):
                time.sleep(1.2)
                broker.stop()  # SIGTERM: Mosquitto saves its persistence file
                time.sleep(0.3)
                broker.start()
            thread.join(60)
            assert done.is_set()
        try:
            wait_for(
                lambda: influx.count("electricity", "power_w") == len(batch), timeout=60, what="every point"
            )
        except AssertionError as exc:
            got = influx.count("electricity", "power_w")
            logs = f"--- ingester:\n{ingester.output()[-6000:]}\n--- broker:\n{broker.tail(40)}"
            raise AssertionError(f"{exc}: {got} of {len(batch)}\n{logs}") from None
        assert "connection lost" in ingester.output() or "reconnecting" in ingester.output()
    finally:
        broker.stop()
