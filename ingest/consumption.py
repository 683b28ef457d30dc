"""Energy from cumulative meter counters: increments that stay right across resets and meter swaps.

A counter (OBIS 1.8.0, 2.8.0) only grows. The energy between two readings is their difference; when a
reading is lower than the one before, the meter was swapped (or reset) and the new one counts from zero,
so the energy since the previous reading is the new reading itself. Each increment belongs to the day
(in the household's zone) of the later reading::

    daily_energy([(t0, 100.0), (t1, 100.4), (t2, 0.3), (t3, 0.9)])  # -> {day: 0.4 + 0.3 + 0.6}

The simulator's ground truth and the checks against InfluxDB use this one definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Europe/Berlin"


def increment(previous: float | None, current: float) -> float:
    """Energy between two consecutive readings of one counter; a drop means a new meter from zero."""
    if previous is None:
        return 0.0
    if current < previous:
        return current
    return current - previous


@lru_cache(maxsize=65536)
def _day_of_hour(hour: int, zone: str) -> date:
    # every zone offset in use here is whole hours, so the local date changes only on UTC hour boundaries
    return datetime.fromtimestamp(hour * 3600, UTC).astimezone(ZoneInfo(zone)).date()


def local_day(time_ns: int, zone: str = DEFAULT_ZONE) -> date:
    """The local calendar day of a UTC nanosecond time in ``zone``."""
    return _day_of_hour(time_ns // 3_600_000_000_000, zone)


class CounterDays:
    """Feed one counter's readings in time order; collects the energy per local day."""

    def __init__(self, zone: str = DEFAULT_ZONE) -> None:
        self.zone = zone
        self.last: float | None = None
        self.last_ns: int | None = None
        self.days: dict[date, float] = {}
        self.resets = 0

    def add(self, time_ns: int, value: float) -> float:
        if self.last_ns is not None and time_ns < self.last_ns:
            raise ValueError(f"readings out of time order: {time_ns} after {self.last_ns}")
        if self.last is not None and value < self.last:
            self.resets += 1
        step = increment(self.last, value)
        self.last, self.last_ns = value, time_ns
        day = local_day(time_ns, self.zone)
        self.days[day] = self.days.get(day, 0.0) + step
        return step


def daily_energy(readings: Iterable[tuple[int, float]], *, zone: str = DEFAULT_ZONE) -> dict[date, float]:
    """Energy per local day from ``(time_ns, counter)`` readings (sorted here; equal times kept once)."""
    counter = CounterDays(zone)
    previous_ns: int | None = None
    for time_ns, value in sorted(readings):
        if time_ns == previous_ns:
            continue
        counter.add(time_ns, value)
        previous_ns = time_ns
    return counter.days


def total_energy(readings: Iterable[tuple[int, float]]) -> float:
    """Energy over all readings, across resets."""
    return sum(daily_energy(readings).values())
