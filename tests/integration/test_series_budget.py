"""One gateway inventing tag values meets its series budget; the other gateways' new series still arrive.

The review's case: one gateway sent Tasmota messages with thousands of distinct sensor-group names until
the ``sensor`` tag passed InfluxDB's ``max-values-per-tag`` (100,000); from then on InfluxDB refused every
gateway's new series. Here the budget is small (50) so that the test sends little.
"""

from __future__ import annotations

import orjson

from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

TIME = "2025-11-28T10:00:00"


def _groups(first: int, count: int) -> bytes:
    return orjson.dumps(
        {"Time": TIME, **{f"SHT-{n}": {"Temperature": 21.5} for n in range(first, first + count)}}
    )


def test_a_gateway_past_its_series_budget_harms_no_other(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    ingester.start(ingest={"max_series_per_gateway": 50})
    flooder = f"{target.topic_prefix}lab/gw-x/tele/room-1/SENSOR"
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for message in range(8):  # 10 new series each: the first five fill the budget
            publisher.publish(flooder, _groups(message * 10, 10))
        publisher.flush()
        wait_for(lambda: sum("too_many_series" in line for line in ingester.log) == 3, timeout=20)
        publisher.publish(flooder, _groups(0, 10))  # its known series go on
        publisher.publish(f"{target.topic_prefix}lab/gw-y/tele/room-9/SENSOR", _groups(1000, 1))
        publisher.flush()

    wait_for(lambda: influx.count("environment", "temperature_c") == 51, timeout=20, what="points")
    sensors = influx.count_by_tag("environment", "temperature_c", "sensor")
    assert len(sensors) == 51
    assert "SHT-1000" in sensors  # the other gateway's new sensor
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as quarantine:
        assert [(e.topic, e.reason) for e in quarantine.list()] == [(flooder, "too_many_series")] * 3
    assert sum("has 50 series: messages adding more are quarantined" in line for line in ingester.log) == 1
