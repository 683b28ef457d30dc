"""Message accounting: every message the broker hands over is counted exactly once by its outcome.

received = decoded + quarantined (at decode), and once a batch is committed:
received = written + in spool + quarantined, with dropped staying 0.

Messages come from a second source too: the quarantine, when the ingester replays the ``unknown_device``
entries of a device that got registered (by this process or an earlier one). Such a message was counted
as quarantined when it was rejected and counts as ``replayed`` when it leaves the quarantine for the spool;
its way on is counted as any other's (decoded, spooled, written). So in general:
received + replayed = written + in spool + quarantined.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from ingest.metrics import Sample


@dataclass
class Stats:
    received: int = 0  # messages the broker handed over
    decoded: int = 0  # committed messages that became readings
    quarantined: Counter[str] = field(default_factory=Counter)  # committed rejections by reason
    spooled: int = 0  # decoded messages whose lines are durably in the spool
    written: int = 0  # spooled messages whose points InfluxDB confirmed
    points_written: int = 0
    points_quarantined: int = 0  # lines InfluxDB refused for good
    influx_rejected_batches: int = 0  # writes InfluxDB refused in part (HTTP 400), then bisected
    write_retries: int = 0
    dropped: int = 0  # messages lost: no code path increments it; exported so that dashboards can alert
    replayed: int = 0  # quarantined messages taken back into the spool (their device got registered)
    implausible_read_times: int = 0  # gateways' read_ns outside [2020, now + 5 min]: arrival time used

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def in_spool(self) -> int:
        return self.spooled - self.written

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "decoded": self.decoded,
            "quarantined": self.quarantined_total,
            "quarantined_by_reason": dict(self.quarantined),
            "spooled": self.spooled,
            "written": self.written,
            "in_spool": self.in_spool,
            "points_written": self.points_written,
            "points_quarantined": self.points_quarantined,
            "write_retries": self.write_retries,
            "dropped": self.dropped,
            "replayed": self.replayed,
        }

    def samples(self) -> Iterator[Sample]:
        yield "received_total", "counter", {}, self.received
        yield "decoded_total", "counter", {}, self.decoded
        for reason, count in sorted(self.quarantined.items()):
            yield "quarantined_total", "counter", {"reason": reason}, count
        yield "spooled_total", "counter", {}, self.spooled
        yield "written_total", "counter", {}, self.written
        yield "in_spool_messages", "gauge", {}, self.in_spool
        yield "points_written_total", "counter", {}, self.points_written
        yield "points_quarantined_total", "counter", {}, self.points_quarantined
        yield "write_retries_total", "counter", {}, self.write_retries
        yield "influx_rejected_batches_total", "counter", {}, self.influx_rejected_batches
        yield "dropped_total", "counter", {}, self.dropped
        yield "replayed_total", "counter", {}, self.replayed
        yield "implausible_read_times_total", "counter", {}, self.implausible_read_times
