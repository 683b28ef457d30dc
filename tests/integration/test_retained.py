"""A retained message reaches the ingester once, not again at every (re)connect.

The review's case: a retained reading without device time became a new point at each ingester start
(stamped with the receive time), and a retained bad payload was quarantined again at each start.
"""

from __future__ import annotations

import time

import paho.mqtt.publish as single

from ingest.localservices import Mosquitto
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for


def test_retained_messages_are_taken_once(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    good = f"{target.topic_prefix}lab/gw-01/hh-001-em/state"
    bad = f"{target.topic_prefix}lab/gw-01/hh-002-em/state"
    ingester.start()
    assert ingester.stop() == 0  # the ingester's session stands: what is published now waits for it
    for topic, payload in ((good, b'{"power_w": 230.5}'), (bad, b"not json")):
        single.single(topic, payload, qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)
    try:
        for _ in range(3):
            ingester.start()
            wait_for(lambda: influx.count("electricity", "power_w") >= 1, timeout=20, what="the reading")
            time.sleep(1.5)  # a retained copy sent at subscribe would be written by now
            assert ingester.stop() == 0
        assert influx.count("electricity", "power_w") == 1
        with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as quarantine:
            assert [(e.topic, e.reason) for e in quarantine.list()] == [(bad, "invalid_json")]
    finally:
        for topic in (good, bad):  # an empty retained message deletes the retained one
            single.single(topic, b"", qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)
