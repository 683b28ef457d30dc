"""Several ingester instances sharing one test's slice of the broker and InfluxDB (issue 17), and a paced
publisher whose every message becomes one point that can be told apart from every other.

An instance's identity is what a restart must find again: its MQTT client id (so it takes its persistent
session back), its state directory (spool and quarantine) and its /metrics port, all derived by the
ingester from ``ingest.instance`` of ``ingest.instances``; all of them share one ``mqtt.shared_group``, so
the broker deals the stream over their sessions round-robin.
"""

from __future__ import annotations

import ast
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.wire_publisher import WirePublisher
from ingest.localservices import free_port
from tests.helpers import IngesterProcess, Target, read_metrics, settled, wait_for

START_MS = 1_764_320_400_000
DEVICES = 100
TICK_S = 0.005
STOPPED = "ingester stopped: "  # the ingester's last log line, with its counters (Stats.as_dict)


def reading(prefix: str, index: int) -> tuple[str, bytes]:
    """Message ``index``: one device of ``DEVICES`` (its own series), its own timestamp (1 ms apart), so
    every message is one distinct point; power_w = index % 1000 makes the sum checkable too."""
    topic = f"{prefix}lab/gw-scale/m-{index % DEVICES}/state"
    return topic, orjson.dumps({"ts": START_MS + index, "power_w": index % 1000})


def publish_readings(port: int, prefix: str, indices: range) -> None:
    """Messages ``indices`` (``reading``) to the broker on ``port``, all acknowledged on return."""
    with WirePublisher("127.0.0.1", port, window=1_000) as publisher:
        for index in indices:
            publisher.publish(*reading(prefix, index))
        publisher.flush()
        assert publisher.published == len(indices)


def power_sum(indices: range) -> int:
    return sum(index % 1000 for index in indices)


def came_in(stats: dict[str, Any]) -> int:
    return int(stats["received"]) + int(stats["replayed"])


def went_out(stats: dict[str, Any]) -> int:
    """Where the messages that came in are: written, in the spool, quarantined (now or before)."""
    return (
        int(stats["written"])
        + int(stats["in_spool"])
        + int(stats["quarantined"])
        + int(stats["already_quarantined"])
    )


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (instance K's /metrics is on base + K)."""
    for _ in range(100):
        base = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise AssertionError(f"no {count} consecutive free ports")


@dataclass
class Instance:
    """Instance ``number`` of ``of`` (``ingest.instance`` / ``ingest.instances``, as ``reallabor ingest
    --instance K --of N``): ``reallabor ingest`` child processes, one per lifetime, of one identity, which
    the ingester derives from the shared settings (Settings.as_instance)."""

    target: Target
    directory: Path  # its config file
    number: int
    of: int
    group: str
    metrics_base: int
    mqtt: dict[str, Any] = field(default_factory=dict)  # further mqtt settings (session_expiry_s)
    starts: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = IngesterProcess(self.target, self.directory, env={**os.environ})

    @classmethod
    def fleet(cls, target: Target, directory: Path, count: int, **mqtt: Any) -> list[Instance]:
        """``count`` instances sharing the stream, with one shared group of this test's own."""
        base = free_ports(count)
        group = f"share-{target.client_id}"
        return [
            cls(target, directory / f"instance-{k}", k, count, group, base, mqtt=mqtt) for k in range(count)
        ]

    @property
    def client_id(self) -> str:
        return f"{self.target.client_id}-{self.number}"  # derived by the ingester, not set here

    @property
    def metrics_port(self) -> int:
        return self.metrics_base + self.number  # likewise

    @property
    def state_dir(self) -> Path:
        return self.target.state_dir / f"instance-{self.number}"  # likewise

    def config(self) -> dict[str, Any]:
        return self.target.config(
            mqtt={"shared_group": self.group, **self.mqtt},
            ingest={
                "instance": self.number,
                "instances": self.of,
                "metrics_port": self.metrics_base,
                "stats_interval_s": 60,
            },
        )

    def launch(self) -> None:
        """Start a lifetime without waiting (``wait_ready`` waits)."""
        self.starts += 1
        self.process.launch(self.config(), wait_ready=False)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(
            lambda: self.process.output().count("ingester ready") >= self.starts,
            timeout=timeout,
            what=f"instance {self.number} ready (start {self.starts})",
        )

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def kill(self) -> int | None:
        return self.process.stop(kill=True)

    def stop(self) -> int | None:
        return self.process.stop()

    def metrics(self) -> dict[str, float]:
        return read_metrics(self.metrics_port)

    def wait_settled(self, *, timeout: float) -> dict[str, float]:
        """Its /metrics once everything it received is written or quarantined."""
        metrics: dict[str, float] = wait_for(
            lambda: settled(self.metrics_port), timeout=timeout, what=f"instance {self.number} settled"
        )
        return metrics

    def final_stats(self) -> list[dict[str, Any]]:
        """The counters of every lifetime that ended by itself (SIGTERM), in order; a SIGKILLed one has
        none: its counters were only in its memory."""
        return [ast.literal_eval(line.split(STOPPED, 1)[1]) for line in self.process.log if STOPPED in line]


class PacedPublisher(threading.Thread):
    """Publishes ``reading(prefix, i)`` for ``indices`` at ``rate`` msg/s (QoS 1, the bench's lean
    publisher) in the background; ``sent`` counts what went out, ``acked`` is set once the broker
    acknowledged all of it."""

    def __init__(self, port: int, prefix: str, indices: range, *, rate: float) -> None:
        super().__init__(name="paced-publisher", daemon=True)
        self.port, self.prefix, self.indices, self.rate = port, prefix, indices, rate
        self.sent = 0
        self.acked = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with WirePublisher("127.0.0.1", self.port, window=5_000) as publisher:
                started = time.monotonic()
                for index in self.indices:
                    ahead = started + self.sent / self.rate - time.monotonic()
                    if ahead > TICK_S:  # in steps of a few ms: a sleep per message costs more than it
                        publisher.push()  # what is buffered goes now, not when its chunk is full
                        time.sleep(ahead)
                    publisher.publish(*reading(self.prefix, index))
                    self.sent += 1
                publisher.flush()
                if publisher.published != len(self.indices):
                    raise AssertionError(f"broker acknowledged {publisher.published} of {len(self.indices)}")
            self.acked.set()
        except BaseException as exc:  # reported by the test that waits for ``acked``
            self.error = exc
            raise

    def wait_sent(self, count: int, *, timeout: float) -> None:
        self._wait(lambda: self.sent >= count, timeout, f"{count} messages sent")

    def wait_acked(self, *, timeout: float) -> None:
        self._wait(self.acked.is_set, timeout, "every message acknowledged by the broker")

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.error is not None:
                raise AssertionError(f"the publisher failed: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what} ({self.sent} sent)")
            time.sleep(0.05)
