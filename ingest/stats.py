"""Message accounting: every message the broker hands over is counted exactly once by its outcome."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    received: int = 0  # messages the broker handed over
    decoded: int = 0  # messages that became readings
    rejected: Counter[str] = field(default_factory=Counter)  # messages by rejection reason
    written: int = 0  # decoded messages whose points InfluxDB confirmed
    points_written: int = 0
    influx_rejected_batches: int = 0  # batches InfluxDB refused in part (HTTP 400)
    write_retries: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "decoded": self.decoded,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(self.rejected),
            "written": self.written,
            "points_written": self.points_written,
            "influx_rejected_batches": self.influx_rejected_batches,
            "write_retries": self.write_retries,
        }
