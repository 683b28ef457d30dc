"""A crafted payload costs the ingester little and is quarantined once: the event loop keeps serving.

The payload of the security review: ~12,000 duplicate JSON keys (144 KB, under ``max_payload_bytes``).
Its duplicate handling once took quadratic time on the event loop (22 s for 16k keys): keep-alives
stopped, the broker dropped the connection, the ack was lost and the message came back again and again,
while ``/metrics`` did not answer. Here ``/metrics`` is polled throughout with a 1 s timeout, good
messages flow around the poison, and the broker's keep-alive is short (5 s), so a stall would show.
"""

from __future__ import annotations

import threading
import time
import urllib.request

from ingest.localservices import Mosquitto, free_port
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

START_MS = 1_764_320_400_000
POISON_TOPIC = "lab/gw-01/tele/hh-001-plug/SENSOR"  # tasmota, tasmota-sml: JSON with duplicate keys kept
POISON = b'{"ENERGY":{' + b",".join([b'"Power":1'] * 12_000) + b"}}"


class MetricsPoller:
    """GET /metrics every 0.1 s from a thread; remembers the slowest answer and every failure."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.slowest_s = 0.0
        self.failures: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-poller", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=1.0) as response:
                    response.read()
            except OSError as exc:
                self.failures.append(f"{exc!r} after {time.monotonic() - started:.2f} s")
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            self.polls += 1
            self._stop.wait(0.1)

    def __enter__(self) -> MetricsPoller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_poison_message_is_quarantined_once_and_metrics_keep_answering(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    metrics_port = free_port()
    ingester.start(mqtt={"keepalive_s": 5}, ingest={"metrics_port": metrics_port})
    good = list(samples(make_fleet(5), count=400, start_ms=START_MS, interval_s=1))
    with MetricsPoller(metrics_port) as poller, Publisher("127.0.0.1", mosquitto.port) as publisher:
        for index, sample in enumerate(good):
            publisher.publish(target.topic_prefix + sample.household.topic, sample.payload())
            if index == 100:
                publisher.publish(target.topic_prefix + POISON_TOPIC, POISON)
            if index % 20 == 0:
                publisher.flush()
                time.sleep(0.05)  # spread over a few seconds: the poller sees the whole episode
        publisher.flush()
        wait_for(lambda: influx.count("electricity", "power_w") == 400, timeout=60, what="every good point")
        time.sleep(8)  # longer than 1.5 keep-alives: a lost connection would bring the poison back

    assert poller.failures == [], poller.failures
    assert poller.polls > 50
    assert poller.slowest_s < 1.0
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as quarantine:
        entries = quarantine.list()
    assert [(e.topic, e.reason, e.payload == POISON) for e in entries] == [
        (target.topic_prefix + POISON_TOPIC, "too_complex", True)
    ]
    rejected = [line for line in ingester.log if "rejected message on" in line]
    assert len(rejected) == 1, rejected
    assert "12001 JSON object keys, limit 10000" in rejected[0]
    connects = [line for line in ingester.log if "mqtt connected" in line or "reconnecting" in line]
    assert len(connects) == 1, connects  # the connection held throughout
