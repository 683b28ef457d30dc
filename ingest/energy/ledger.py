"""The ledger's computation, pure: counter readings -> energy (kWh) per device, 15-minute bucket and
household, and the local days' sums.

The rule is :func:`ingest.consumption.increment` (a drop is a new meter from zero, the new reading being
its energy). Each increment belongs to the bucket of the later reading, ``[t, t+15m)`` UTC-aligned, and
to that reading's ``household``/``building`` tags (what the ingester's enrichment put on it from the
registry's assignment history): a gap's energy lands in the bucket of the next reading. A counter's first
reading ever is its baseline (0). Readings are sorted; equal times count once (the lowest value, as
:func:`ingest.consumption.daily_energy` keeps).

A bucket in which a counter has a reading gets a point, 0 when nothing was used; a bucket without any
reading has none (the gap's energy is in the next reading's bucket). So a silent meter shows as missing
points, a meter that counts nothing as zeros.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from ingest.consumption import DEFAULT_ZONE, increment, local_day

BUCKET_S = 900
BUCKET_NS = BUCKET_S * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Reading:
    time_ns: int
    value: float
    household: str = ""
    building: str = ""


@dataclass(frozen=True, slots=True, order=True)
class Key:
    """One ledger point's series and time: 15-minute bucket start, or local midnight for a day."""

    kind: str
    device: str
    household: str
    building: str
    time_ns: int


def bucket_of(time_ns: int) -> int:
    """The start of the 15-minute bucket ``[t, t+15m)`` holding ``time_ns`` (UTC-aligned)."""
    return time_ns - time_ns % BUCKET_NS


@lru_cache(maxsize=4096)
def _midnight_ns(day: dt.date, zone: str) -> int:
    return int(dt.datetime.combine(day, dt.time(), ZoneInfo(zone)).timestamp()) * 1_000_000_000


def local_midnight(time_ns: int, zone: str = DEFAULT_ZONE) -> int:
    """Local midnight (in ``zone``) of the local day holding ``time_ns``, as UTC nanoseconds."""
    return _midnight_ns(local_day(time_ns, zone), zone)


class CounterLedger:
    """One counter (a device's series): feed readings in time order, collect energy per bucket.

    ``previous``: the counter's last reading before the first one fed (its predecessor), None when the
    first reading fed is the counter's first ever. Carried over from one chunk of readings to the next.
    """

    def __init__(self, previous: float | None = None, previous_ns: int | None = None) -> None:
        self.last = previous
        self.last_ns = previous_ns
        self.buckets: dict[tuple[int, str, str], float] = {}  # (bucket start, household, building) -> kWh
        self.readings = 0

    def add(self, reading: Reading) -> None:
        if self.last_ns is not None and reading.time_ns <= self.last_ns:
            if reading.time_ns == self.last_ns:
                return  # a duplicate: counted once
            raise ValueError(f"readings out of time order: {reading.time_ns} after {self.last_ns}")
        step = increment(self.last, reading.value)
        self.last, self.last_ns = reading.value, reading.time_ns
        self.readings += 1
        key = (bucket_of(reading.time_ns), reading.household, reading.building)
        self.buckets[key] = self.buckets.get(key, 0.0) + step

    def feed(self, readings: Iterable[Reading]) -> None:
        """Readings in any order: sorted by time (and value, so equal times keep the lowest)."""
        for reading in sorted(readings, key=lambda r: (r.time_ns, r.value)):
            self.add(reading)

    def take(self) -> dict[tuple[int, str, str], float]:
        """The buckets collected so far, emptied (the state for the next readings stays)."""
        out, self.buckets = self.buckets, {}
        return out


def counter_buckets(
    readings: Iterable[Reading], *, previous: float | None = None
) -> dict[tuple[int, str, str], float]:
    """Energy per (bucket start, household, building) of one counter's readings."""
    ledger = CounterLedger(previous)
    ledger.feed(readings)
    return ledger.buckets


def add_buckets(
    into: dict[Key, float], kind: str, device: str, buckets: Mapping[tuple[int, str, str], float]
) -> None:
    """A counter's buckets into the ledger's points (a device's several counters of one kind add up)."""
    for (time_ns, household, building), kwh in buckets.items():
        key = Key(kind, device, household, building, time_ns)
        into[key] = into.get(key, 0.0) + kwh


def daily(points: Mapping[Key, float], *, zone: str = DEFAULT_ZONE) -> dict[Key, float]:
    """The 15-minute points summed per local day (time: local midnight). Whole-hour zone offsets keep
    every 15-minute bucket inside one local day; a DST day has 92 or 100 of them."""
    out: dict[Key, float] = {}
    for key, kwh in points.items():
        day = Key(key.kind, key.device, key.household, key.building, local_midnight(key.time_ns, zone))
        out[day] = out.get(day, 0.0) + kwh
    return out
