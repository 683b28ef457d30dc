"""The ledger's job: ``rollup(range)`` recomputes and writes a range; :func:`run_loop` recomputes a
trailing window every interval, so late data (the spool, replays, gateway outboxes) is taken in.

A range is widened to whole local days (``energy_1d`` is the sum of its day's buckets, so a day is always
computed whole) and read one local day at a time: memory stays at one day of raw counters (110 households
at 1-minute readings: ~0.5 M readings), whatever the range. Each counter starts from its predecessor, its
last reading before the range; the state carries over from one day to the next.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ingest.consumption import DEFAULT_ZONE
from ingest.energy.kinds import SOURCES
from ingest.energy.ledger import CounterLedger, Key, add_buckets, daily
from ingest.energy.store import (
    INIT_HINT,
    MEASUREMENT_1D,
    MEASUREMENT_15M,
    LedgerError,
    LedgerWriter,
    RawReader,
    SeriesId,
    lines,
)
from ingest.lifecycle import ROLLUP_RP
from ingest.timeparse import datetime_to_ns

log = logging.getLogger(__name__)
LOOKBACK_NS = 2 * 86400 * 1_000_000_000  # predecessors searched together this far back, then one by one


@dataclass
class RollupReport:
    since: dt.datetime  # the range as computed: whole local days
    until: dt.datetime
    readings: int = 0
    buckets: int = 0  # 15-minute points written
    days: int = 0  # daily points written
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"energy ledger {self.since.isoformat()} .. {self.until.isoformat()}: {self.readings} readings, "
            f"{self.buckets} buckets, {self.days} days written in {self.seconds:.2f} s "
            f"({self.per_second:,.0f} readings/s)"
        )


def local_days(since: dt.datetime, until: dt.datetime, zone: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[since, until)`` widened to whole local days, as (midnight, next midnight) pairs (aware)."""
    tz = ZoneInfo(zone)
    first = since.astimezone(tz).date()
    last_moment = until.astimezone(tz)
    last = last_moment.date()
    if last_moment.time() == dt.time() and last > first:
        last -= dt.timedelta(days=1)  # until on a midnight: that day is not in the range
    days = []
    day = first
    while day <= last:
        days.append(
            (
                dt.datetime.combine(day, dt.time(), tz),
                dt.datetime.combine(day + dt.timedelta(1), dt.time(), tz),
            )
        )
        day += dt.timedelta(days=1)
    return days


def rollup(
    reader: RawReader,
    writer: LedgerWriter,
    *,
    since: dt.datetime,
    until: dt.datetime,
    zone: str = DEFAULT_ZONE,
) -> RollupReport:
    """Compute and write the ledger of ``[since, until)`` (widened to whole local days). Idempotent."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be aware datetimes")
    if not since < until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    started = time.monotonic()
    if ROLLUP_RP not in reader.retention_policies():
        raise LedgerError(f"database {reader.database!r} has no retention policy {ROLLUP_RP!r}: {INIT_HINT}")
    days = local_days(since, until, zone)
    report = RollupReport(days[0][0], days[-1][1])
    counters: dict[SeriesId, CounterLedger] = {}
    first_ns = datetime_to_ns(days[0][0])
    for source in SOURCES:
        found = reader.predecessors(source, first_ns, after_ns=first_ns - LOOKBACK_NS)
        for series, (time_ns, value) in found.items():
            counters[series] = CounterLedger(value, time_ns)
    for start, end in days:
        points: dict[Key, float] = {}
        for source in SOURCES:
            for series, readings in reader.readings(source, datetime_to_ns(start), datetime_to_ns(end)):
                kind = source.kind(series.field, series.channel)
                if kind is None:
                    continue
                counter = counters.get(series)
                if counter is None:  # silent before the range for longer than LOOKBACK_NS, or new
                    previous = reader.predecessor(series, first_ns)
                    counter = CounterLedger(previous[1], previous[0]) if previous else CounterLedger()
                    counters[series] = counter
                before = counter.readings
                counter.feed(readings)
                report.readings += counter.readings - before
                add_buckets(points, kind, series.device, counter.take())
        days_points = daily(points, zone=zone)
        writer.write(lines(MEASUREMENT_15M, points))
        writer.write(lines(MEASUREMENT_1D, days_points))
        report.buckets += len(points)
        report.days += len(days_points)
    report.seconds = time.monotonic() - started
    return report


def run_loop(
    job: Callable[[dt.datetime, dt.datetime], RollupReport],
    *,
    window: dt.timedelta,
    interval_s: float,
    stop: threading.Event,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    """Every ``interval_s`` until ``stop``: ``job(now - window, now)``. A failure (InfluxDB away) is logged
    and tried again next time. Returns the number of runs that succeeded."""
    done = 0
    while not stop.is_set():
        moment = now()
        try:
            report = job(moment - window, moment)
        except LedgerError as exc:
            log.warning("energy ledger: %s; again in %.0f s", exc, interval_s)
        else:
            done += 1
            log.info("%s", report.line())
        stop.wait(interval_s)
    return done
