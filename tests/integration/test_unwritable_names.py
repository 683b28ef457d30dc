"""Names line protocol cannot carry are quarantined at the decode stage; the batch around them is unharmed.

The security review's case: a Tasmota SML group named ``x\\ y\\="`` (it becomes the ``channel`` tag) made
InfluxDB 1.6 refuse the whole batch with 100 other households' readings, until bisection found the line;
a group name ending in a backslash was stored altered.
"""

from __future__ import annotations

import orjson

from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

START_MS = 1_764_320_400_000
NASTY_GROUPS = ['x\\ y\\="', "meter\\", "a\nb"]


def test_unwritable_group_names_are_quarantined_and_the_batch_is_written(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    ingester.start(influx={"flush_interval_s": 1.0})  # one batch: the nasty lines would sit among the rest
    good = list(samples(make_fleet(100), count=100, start_ms=START_MS, interval_s=1))
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for index, sample in enumerate(good):
            publisher.publish(target.topic_prefix + sample.household.topic, sample.payload())
            if index % 30 == 10:
                group = NASTY_GROUPS[index // 30]
                document = {"Time": "2025-11-28T10:00:00", "SML": {"Power_curr": 5}, group: {"Power_curr": 7}}
                topic = f"{target.topic_prefix}lab/gw-02/tele/hh-{index:03d}-sml/SENSOR"
                publisher.publish(topic, orjson.dumps(document))
        publisher.flush()

    wait_for(lambda: influx.count("electricity", "power_w") == 100, timeout=30, what="the 100 good points")
    wait_for(lambda: sum("rejected message on" in line for line in ingester.log) == 3, timeout=10)
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as quarantine:
        entries = quarantine.list()
    assert sorted((e.reason, e.detail) for e in entries) == sorted(
        ("invalid_name", f"tag value {group!r} contains {bad!r}")
        for group, bad in zip(NASTY_GROUPS, ["\\", "\\", "\n"], strict=True)
    )
    assert not [line for line in ingester.log if "influx" in line and ("refused" in line or "failed" in line)]
    assert influx.rows("SELECT * FROM electricity WHERE channel <> ''") == []  # nothing stored altered


def test_lone_surrogate_group_name_is_quarantined_and_the_ingester_lives(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    """The review's crash: a JSON-escaped lone surrogate as a Tasmota group name became a tag that could
    not be encoded; the commit failed, the ingester exited, and the unacked message came back after
    every restart."""
    ingester.start()
    poison = b'{"Time":"2025-11-28T10:00:00","\\ud800":{"Temperature":21.5}}'
    good = list(samples(make_fleet(10), count=20, start_ms=START_MS, interval_s=1))
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        publisher.publish(f"{target.topic_prefix}lab/gw-03/tele/room-1/SENSOR", poison)
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in good)
        publisher.flush()
    wait_for(lambda: influx.count("electricity", "power_w") == 20, timeout=30, what="the good points")
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as quarantine:
        assert [(e.reason, e.payload) for e in quarantine.list()] == [("invalid_json", poison)]
    assert ingester.process is not None
    assert ingester.process.poll() is None, ingester.output()
    assert "Traceback" not in ingester.output()
