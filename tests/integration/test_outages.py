"""The ingester waits for InfluxDB instead of losing messages; the broker keeps them meanwhile."""

from __future__ import annotations

from pathlib import Path

from ingest.localservices import InfluxDB, Mosquitto
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for


def test_influxdb_down_at_start_and_mid_run(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, tmp_path: Path
) -> None:
    own = InfluxDB(tmp_path / "influxdb")  # this test stops it: its own instance
    ingester.target = Target(**{**target.__dict__, "influx_url": own.url})
    own.start()
    influx = InfluxQuery(own.url, target.database)
    ingester.start()
    batch = list(samples(make_fleet(10), count=3_000, start_ms=1_764_320_400_000, interval_s=1))
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch[:1000])
        publisher.flush()
        wait_for(lambda: influx.count("electricity", "power_w") == 1000, timeout=30, what="first 1000")
        own.stop()
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch[1000:])
        publisher.flush()
        wait_for(lambda: "influx write of" in ingester.output(), timeout=30, what="a failed write")
        own.start()
    wait_for(lambda: influx.count("electricity", "power_w") == 3000, timeout=60, what="all 3000 points")
    own.stop()
