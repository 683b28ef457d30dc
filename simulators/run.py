"""Run the simple fleet against a broker: in real time, or a fixed number of messages as fast as allowed."""

from __future__ import annotations

import logging
import threading
import time

from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher

log = logging.getLogger(__name__)


def publish_fleet(
    publisher: Publisher,
    *,
    households: int,
    interval_s: float,
    count: int | None,
    prefix: str = "",
    seed: int = 1,
    realtime: bool = True,
    stop: threading.Event | None = None,
) -> int:
    """Publish samples; in real time each household reports every ``interval_s`` seconds."""
    fleet = make_fleet(households, seed=seed)
    start_ms = int(time.time() * 1000)
    started = time.monotonic()
    sent = 0
    total = count if count is not None else 2**62
    for sample in samples(fleet, count=total, start_ms=start_ms, interval_s=interval_s, seed=seed):
        if stop is not None and stop.is_set():
            break
        if realtime:
            due = started + (sample.time_ms - start_ms) / 1000
            delay = due - time.monotonic()
            if delay > 0:
                if stop is not None:
                    if stop.wait(delay):
                        break
                else:
                    time.sleep(delay)
        publisher.publish(prefix + sample.household.topic, sample.payload())
        sent += 1
    return sent


def run_fleet(
    *, host: str, port: int, households: int, interval_s: float, count: int | None, prefix: str, seed: int
) -> int:
    with Publisher(host, port, client_id=f"reallabor-sim-{seed}") as publisher:
        try:
            sent = publish_fleet(
                publisher, households=households, interval_s=interval_s, count=count, prefix=prefix, seed=seed
            )
        except KeyboardInterrupt:
            sent = publisher.published
        publisher.flush()
    log.info("published %d messages from %d households", sent, households)
    return 0
