"""The open-data export: local days from InfluxDB into the month files, then the catalogue.

:func:`export_days` reads one local day at a time (the energy ledger's quarter hours per household and
kind, one query; the street sensors' 10-minute means, one query), builds the four datasets' rows with
disclosure control (:mod:`ingest.opendata.energy_tables`, :mod:`ingest.opendata.disclosure`), writes each
touched month's CSV and JSON (:mod:`ingest.opendata.files`: the month's other days are kept) and finally
``catalog.jsonld`` over every file in the directory (:func:`ingest.opendata.catalogue.write_catalogue`).

Every disclosure group lies within one day (a day's quarter hours, a day's buildings), so days can be
exported one by one and merged into a month in any order.

The daily run (:func:`run_loop`, ``reallabor opendata run``) wakes at ``opendata.daily_at`` local time and
exports yesterday's month from its first day to yesterday: yesterday is added, and days the energy ledger
recomputed since (late data within ``energy.window``) are rewritten. Run it after the ledger has closed
the day (its loop runs every ``energy.interval_s``; 03:30 leaves hours).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.opendata.catalogue import CatalogueError, write_catalogue
from ingest.opendata.datasets import dataset
from ingest.opendata.disclosure import Rule
from ingest.opendata.energy_tables import Row, day_tables
from ingest.opendata.files import ExportFileError, exported_files, write_month
from ingest.opendata.settings import OpenDataSettings, parse_daily_at
from ingest.opendata.sources import PublicLabels, ledger_day, street_rows
from ingest.portal.reader import InfluxUnavailable, Reader

log = logging.getLogger("reallabor.opendata")
QUARTER_15MIN = "quarter-energy-15min"
QUARTER_DAILY = "quarter-energy-daily"
BUILDING_DAILY = "building-energy-daily"
STREET_10MIN = "street-environment-10min"


class ExportFailed(Exception):
    """The export could not read what it needs (the registry) or write its files; the message says why."""


#: what a run of the daily loop survives (logged; the next day's run covers the month again)
FAILURES = (InfluxUnavailable, ExportFailed, ExportFileError, CatalogueError, OSError)


@dataclass
class ExportReport:
    first: dt.date
    last: dt.date
    files: list[Path] = field(default_factory=list)
    catalogue: Path | None = None
    rows: dict[str, int] = field(default_factory=dict)  # dataset id -> rows written for the range
    withheld: dict[str, int] = field(default_factory=dict)  # dataset id -> cells withheld in the range
    seconds: float = 0.0

    def line(self) -> str:
        """One line of JSON: the range, rows and withheld cells per dataset, files, seconds."""
        return json.dumps(
            {
                "from": self.first.isoformat(),
                "to": self.last.isoformat(),
                "rows": self.rows,
                "withheld": self.withheld,
                "files": len(self.files),
                "catalogue": str(self.catalogue) if self.catalogue else None,
                "seconds": round(self.seconds, 3),
            },
            sort_keys=True,
        )


def local_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """``first`` to ``last``, both included."""
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def _month(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def export_days(
    reader: Reader,
    labels: PublicLabels,
    *,
    first: dt.date,
    last: dt.date,
    out_dir: Path,
    opendata: OpenDataSettings,
    tz: ZoneInfo,
    raw_rp: str | None = None,
    now: dt.datetime | None = None,
) -> ExportReport:
    """Export the local days ``first`` … ``last`` (inclusive) into ``out_dir``; :class:`InfluxUnavailable`
    when InfluxDB does not answer (nothing of the range is written then). ``raw_rp``: the raw readings'
    retention policy (``influx.retention_policy``; None: the database's default)."""
    if last < first:
        raise ValueError(f"from ({first.isoformat()}) is after to ({last.isoformat()})")
    started = time.monotonic()
    rule = Rule(opendata.min_households, opendata.dominance_percent)
    report = ExportReport(first, last)
    rows: dict[tuple[str, str], list[Row]] = defaultdict(list)  # (dataset id, month) -> rows
    days_of: dict[str, set[dt.date]] = defaultdict(set)
    for day in local_days(first, last):
        midnight = dt.datetime.combine(day, dt.time(), tz)
        next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
        tables = day_tables(
            ledger_day(reader, midnight, next_midnight),
            midnight=midnight,
            buildings=labels.buildings,
            rule=rule,
        )
        month = _month(day)
        days_of[month].add(day)
        rows[(QUARTER_15MIN, month)] += tables.quarter_15min
        rows[(QUARTER_DAILY, month)].append(tables.quarter_daily)
        rows[(BUILDING_DAILY, month)] += tables.buildings_daily
        rows[(STREET_10MIN, month)] += street_rows(
            reader,
            labels,
            street_building=opendata.street_building,
            start=midnight,
            end=next_midnight,
            tz=tz,
            raw_rp=raw_rp,
        )
    for dataset_id in (QUARTER_15MIN, QUARTER_DAILY, BUILDING_DAILY, STREET_10MIN):
        definition = dataset(dataset_id)
        for month in sorted(days_of):
            written = rows.get((dataset_id, month), [])
            report.rows[dataset_id] = report.rows.get(dataset_id, 0) + len(written)
            report.withheld[dataset_id] = report.withheld.get(dataset_id, 0) + sum(
                _withheld(row) for row in written
            )
            report.files += write_month(out_dir, definition, month, written, days=days_of[month])
    report.catalogue = write_catalogue(
        out_dir, exported_files(out_dir, tz), opendata, now=now, contributor_id=opendata.contributor_id
    )
    report.seconds = time.monotonic() - started
    return report


def _withheld(row: Row) -> int:
    marks = row.get("suppressed")
    return len(marks) if isinstance(marks, list) else 0


def daily_range(today: dt.date) -> tuple[dt.date, dt.date]:
    """What the daily run exports on ``today``: yesterday's month from its first day to yesterday."""
    yesterday = today - dt.timedelta(days=1)
    return yesterday.replace(day=1), yesterday


def next_run(moment: dt.datetime, daily_at: str, tz: ZoneInfo) -> dt.datetime:
    """The first ``daily_at`` local time after ``moment`` (aware). On the day clocks skip that time (a
    spring DST change) the run happens an hour later in wall time, at the same instant zoneinfo gives."""
    at = parse_daily_at(daily_at)
    local = moment.astimezone(tz)
    candidate = dt.datetime.combine(local.date(), at, tz)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), at, tz)
    return candidate


def run_loop(
    job: Callable[[dt.date, dt.date], ExportReport],
    *,
    daily_at: str,
    tz: ZoneInfo,
    stop: threading.Event,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    """Until ``stop``: sleep until the next ``daily_at``, then ``job(*daily_range(today))``. A failure
    (InfluxDB away, the registry unreadable) is logged; the next day's run covers the month again. Returns
    the number of runs that succeeded."""
    done = 0
    while not stop.is_set():
        wake = next_run(now(), daily_at, tz)
        log.info("open data: next export at %s", wake.isoformat())
        while not stop.is_set():
            left = (wake - now()).total_seconds()
            if left <= 0:
                break
            stop.wait(min(left, 300.0))  # re-check the clock: a suspended host or a changed time
        if stop.is_set():
            break
        first, last = daily_range(wake.astimezone(tz).date())
        try:
            report = job(first, last)
        except FAILURES as exc:
            log.warning("open data: export %s..%s failed (%s); again tomorrow", first, last, exc)
        else:
            done += 1
            log.info("open data: %s", report.line())
    return done
