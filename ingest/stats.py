"""Message accounting: every message the broker hands over is counted exactly once by its outcome.

received = decoded + quarantined (at decode), and once a batch is committed:
received = written + in spool + quarantined + already_quarantined, with dropped staying 0.
(``already_quarantined``: a reject the broker sent again because a crash or a lost connection came between
its quarantine commit and its ack; the quarantine holds it once, so it is counted once, in the process
that stored it.)

Messages come from a second source too: the quarantine, when the ingester replays the ``unknown_device``
entries of a device that got registered (by this process or an earlier one). Such a message was counted
as quarantined when it was rejected and counts as ``replayed`` when it leaves the quarantine for the spool;
its way on is counted as any other's (decoded, spooled, written). So in general:
received + replayed = written + in spool + quarantined + already_quarantined.

The fields of :class:`Stats` are the one list of counters: each is exported as ``<name>_total`` on
/metrics, as a field of the ``ingest_stats`` point (under its ``point`` name where one is given) and in the
log line at the end. Adding a counter is adding a field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from ingest.metrics import Sample

_POINT = "point"  # field metadata: the counter's name in the ingest_stats point, where it differs


@dataclass
class Stats:
    received: int = 0  # messages the broker handed over
    decoded: int = 0  # committed messages that became readings
    quarantined: Counter[str] = field(default_factory=Counter)  # committed rejections by reason
    already_quarantined: int = 0  # redelivered rejections the quarantine held already (not stored again)
    spooled: int = 0  # decoded messages whose lines are durably in the spool
    written: int = 0  # spooled messages whose points InfluxDB confirmed
    points_written: int = 0
    points_quarantined: int = 0  # lines InfluxDB refused for good
    influx_rejected_batches: int = 0  # writes InfluxDB refused in part (HTTP 400), then bisected
    write_retries: int = field(default=0, metadata={_POINT: "retried"})
    dropped: int = 0  # messages lost: no code path increments it; exported so that dashboards can alert
    replayed: int = 0  # quarantined messages taken back into the spool (their device got registered)
    implausible_read_times: int = 0  # gateways' read_ns outside [2020, now + 5 min]: arrival time used
    # connects that found the broker no longer holding our session: what it queued for us is lost (the
    # count is in no other counter; ingest/mqtt_session.py)
    sessions_lost: int = 0

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def in_spool(self) -> int:
        return self.spooled - self.written

    def counters(self) -> Iterator[tuple[str, int]]:
        """The plain counters (all but ``quarantined``, which is one per reason) by name."""
        for name in _COUNTERS:
            yield name, getattr(self, name)

    def as_dict(self) -> dict[str, object]:
        """For the log."""
        return {
            **dict(self.counters()),
            "quarantined": self.quarantined_total,
            "quarantined_by_reason": dict(self.quarantined),
            "in_spool": self.in_spool,
        }

    def point_fields(self) -> Iterator[tuple[str, int]]:
        """The fields of the ``ingest_stats`` point (the spool's and the broker's gauges come on top)."""
        for name, value in self.counters():
            yield _POINT_NAMES.get(name, name), value
        yield "quarantined", self.quarantined_total

    def samples(self) -> Iterator[Sample]:
        """For /metrics."""
        for name, value in self.counters():
            yield f"{name}_total", "counter", {}, value
        for reason, count in sorted(self.quarantined.items()):
            yield "quarantined_total", "counter", {"reason": reason}, count
        yield "in_spool_messages", "gauge", {}, self.in_spool


_COUNTERS = tuple(f.name for f in fields(Stats) if f.name != "quarantined")
_POINT_NAMES = {f.name: f.metadata[_POINT] for f in fields(Stats) if _POINT in f.metadata}
