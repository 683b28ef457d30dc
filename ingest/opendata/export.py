"""The open-data export: final local days from InfluxDB into the month files, then the catalogue.

:func:`export_days` reads one local day at a time (the energy ledger's quarter hours per household and
kind, one query; the street sensors' 10-minute means, one query), builds the four datasets' rows with
disclosure control (:mod:`ingest.opendata.energy_tables`, :mod:`ingest.opendata.disclosure`), writes each
touched month's CSV and JSON (:mod:`ingest.opendata.files`: the month's other days are kept) and finally
``catalog.jsonld`` over every file in the directory (:func:`ingest.opendata.catalogue.write_catalogue`),
all under the output directory's lock (:func:`ingest.opendata.files.export_lock`).

A day is published once, when it is final, and never rewritten: a figure published twice with different
values gives away the difference, and late data (a gateway back after an outage) makes that difference
one household's own value. A day is final when the energy ledger no longer recomputes it
(:func:`final_at`: the day's end plus ``energy.window`` plus :data:`SETTLE`). A day already in the files
is skipped (``force`` rewrites it, and the caller must warn); a day without any data (no ledger value, no
street reading) writes nothing and is not published. The day's row of ``quarter-energy-daily`` is written
last: it marks the day as published.

Every disclosure group lies within one day (a day's quarter hours, a day's buildings), so days can be
exported one by one and merged into a month in any order.

The daily run (:func:`run_loop`, ``reallabor opendata run``) wakes at ``opendata.daily_at`` local time and
exports the days that have become final since its last run (:func:`due_range`, remembered in
``<out_dir>/.daily-run.json``), across a month's end too. With the default ``energy.window`` of a day,
a day is final two nights later (Monday at 00:15 on Wednesday), so the 03:30 run on Wednesday publishes
Monday.
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
from ingest.opendata.files import (
    ExportFileError,
    days_in,
    export_lock,
    exported_files,
    write_month,
)
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


#: what a run of the daily loop survives (logged; the next day's run tries the same days again)
FAILURES = (InfluxUnavailable, ExportFailed, ExportFileError, CatalogueError, OSError)
#: after a day's end plus ``energy.window``, time for a ledger run that started inside the window to write
#: (a run of the quarter's window takes 10-25 s, docs/dashboards.md)
SETTLE = dt.timedelta(minutes=15)
#: how long an export waits for another one holding the output directory (a backfill of a year ~5 min)
LOCK_TIMEOUT_S = 900.0
STATE_NAME = ".daily-run.json"  # hidden: never served


@dataclass
class ExportReport:
    first: dt.date
    last: dt.date
    files: list[Path] = field(default_factory=list)
    catalogue: Path | None = None
    rows: dict[str, int] = field(default_factory=dict)  # dataset id -> rows written for the range
    withheld: dict[str, int] = field(default_factory=dict)  # dataset id -> cells withheld in the range
    published: list[dt.date] = field(default_factory=list)  # days written (for the first time, or forced)
    already: list[dt.date] = field(default_factory=list)  # days in the files before: left as they are
    forced: list[dt.date] = field(default_factory=list)  # days in the files before, rewritten (force)
    empty: list[dt.date] = field(default_factory=list)  # days without any data: nothing written
    seconds: float = 0.0

    def line(self) -> str:
        """One line of JSON: the range, rows and withheld cells per dataset, files, seconds."""
        return json.dumps(
            {
                "from": self.first.isoformat(),
                "to": self.last.isoformat(),
                "rows": self.rows,
                "withheld": self.withheld,
                "days_published": len(self.published),
                "days_already_published": len(self.already),
                "days_rewritten": len(self.forced),
                "days_without_data": len(self.empty),
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
    force: bool = False,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> ExportReport:
    """Export the local days ``first`` … ``last`` (inclusive) into ``out_dir``; :class:`InfluxUnavailable`
    when InfluxDB does not answer (nothing of the range is written then). Days already published are left
    as they are unless ``force``; days without data write nothing. The caller checks that the days are
    final (:func:`last_final_day`). ``raw_rp``: the raw readings' retention policy
    (``influx.retention_policy``; None: the database's default)."""
    if last < first:
        raise ValueError(f"from ({first.isoformat()}) is after to ({last.isoformat()})")
    started = time.monotonic()
    with export_lock(out_dir, lock_timeout_s):  # the published days are read under it too
        rule = Rule(opendata.min_households, opendata.dominance_percent)
        report = ExportReport(first, last)
        days = local_days(first, last)
        published = published_days(out_dir, {_month(day) for day in days})
        rows: dict[tuple[str, str], list[Row]] = defaultdict(list)  # (dataset id, month) -> rows
        days_of: dict[str, set[dt.date]] = defaultdict(set)
        for day in days:
            if day in published and not force:
                report.already.append(day)
                continue
            midnight = dt.datetime.combine(day, dt.time(), tz)
            next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
            energy = ledger_day(reader, midnight, next_midnight, labels)
            street = street_rows(
                reader,
                labels,
                street_building=opendata.street_building,
                start=midnight,
                end=next_midnight,
                tz=tz,
                raw_rp=raw_rp,
            )
            if not energy.energy and not street:
                report.empty.append(day)
                continue
            (report.forced if day in published else report.published).append(day)
            tables = day_tables(energy, midnight=midnight, buildings=labels.buildings, rule=rule)
            month = _month(day)
            days_of[month].add(day)
            rows[(QUARTER_15MIN, month)] += tables.quarter_15min
            rows[(QUARTER_DAILY, month)].append(tables.quarter_daily)
            rows[(BUILDING_DAILY, month)] += tables.buildings_daily
            rows[(STREET_10MIN, month)] += street
        _write(out_dir, rows, days_of, report)
        _catalogue(out_dir, opendata, tz, now, report)
    report.seconds = time.monotonic() - started
    return report


def published_days(out_dir: Path, months: set[str]) -> set[dt.date]:
    """The days of ``months`` already published: those with their ``quarter-energy-daily`` row."""
    daily = dataset(QUARTER_DAILY)
    return {day for month in months for day in days_in(out_dir, daily, month)}


def _write(
    out_dir: Path,
    rows: dict[tuple[str, str], list[Row]],
    days_of: dict[str, set[dt.date]],
    report: ExportReport,
) -> None:
    """The months' files of the days read (``rows`` per dataset id and month), counted in ``report``."""
    # the quarter's daily row last: it marks a day as published (a run cut short is completed next time)
    for dataset_id in (QUARTER_15MIN, BUILDING_DAILY, STREET_10MIN, QUARTER_DAILY):
        definition = dataset(dataset_id)
        report.rows.setdefault(dataset_id, 0)
        report.withheld.setdefault(dataset_id, 0)
        for month in sorted(days_of):
            written = rows.get((dataset_id, month), [])
            report.rows[dataset_id] += len(written)
            report.withheld[dataset_id] += sum(_withheld(row) for row in written)
            report.files += write_month(out_dir, definition, month, written, days=days_of[month])


def _catalogue(
    out_dir: Path, opendata: OpenDataSettings, tz: ZoneInfo, now: dt.datetime | None, report: ExportReport
) -> None:
    files = exported_files(out_dir, tz)
    if files:  # every run (a changed base_url or publisher shows at once), but no catalogue of nothing
        report.catalogue = write_catalogue(
            out_dir, files, opendata, now=now, contributor_id=opendata.contributor_id
        )


def _withheld(row: Row) -> int:
    marks = row.get("suppressed")
    return len(marks) if isinstance(marks, list) else 0


def final_at(day: dt.date, window: dt.timedelta, tz: ZoneInfo) -> dt.datetime:
    """When the energy ledger stops rewriting ``day`` (local): its loop recomputes ``[now − window, now)``
    widened to whole local days (``energy.window``, UTC arithmetic), so the last run that touches the day
    starts just before the day's end plus the window; :data:`SETTLE` lets that run finish."""
    next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return (next_midnight.astimezone(dt.UTC) + window + SETTLE).astimezone(tz)


def last_final_day(now: dt.datetime, window: dt.timedelta, tz: ZoneInfo) -> dt.date:
    """The newest local day that is final at ``now`` (aware): ``final_at(day) <= now``."""
    return (now.astimezone(dt.UTC) - window - SETTLE).astimezone(tz).date() - dt.timedelta(days=1)


def due_range(
    now: dt.datetime, window: dt.timedelta, tz: ZoneInfo, exported_through: dt.date | None
) -> tuple[dt.date, dt.date] | None:
    """What the daily run exports at ``now``: the days after ``exported_through`` up to the newest final
    day (the first run: from the first of that day's month); None when no day has become final since."""
    last = last_final_day(now, window, tz)
    first = last.replace(day=1) if exported_through is None else exported_through + dt.timedelta(days=1)
    return (first, last) if first <= last else None


def read_state(out_dir: Path) -> dt.date | None:
    """The last day the daily run has exported through (``<out_dir>/.daily-run.json``), None before its
    first run; a damaged file is :class:`ExportFailed`, naming it."""
    path = out_dir / STATE_NAME
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return dt.date.fromisoformat(body["exported_through"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportFailed(f"{path}: {type(exc).__name__}: {exc}; delete it to start again") from None


def write_state(out_dir: Path, exported_through: dt.date) -> None:
    path = out_dir / STATE_NAME
    temporary = path.with_name(f"{STATE_NAME}.tmp")
    temporary.write_text(json.dumps({"exported_through": exported_through.isoformat()}) + "\n", "utf-8")
    temporary.replace(path)


def run_due(
    job: Callable[[dt.date, dt.date], ExportReport],
    *,
    now: dt.datetime,
    window: dt.timedelta,
    tz: ZoneInfo,
    out_dir: Path | None,
    exported_through: dt.date | None = None,
) -> tuple[ExportReport | None, dt.date | None]:
    """One daily run: ``job`` over the days that have become final since the last run (remembered in
    ``out_dir``'s state file; without ``out_dir``, ``exported_through`` is the memory); the report (None
    when no day has become final since) and the newest day exported through."""
    through = read_state(out_dir) if out_dir is not None else exported_through
    due = due_range(now, window, tz, through)
    if due is None:
        return None, through
    report = job(*due)
    if out_dir is not None:
        write_state(out_dir, due[1])
    return report, due[1]


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
    out_dir: Path | None = None,
    window: dt.timedelta = dt.timedelta(days=1),
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    """Until ``stop``: sleep until the next ``daily_at``, then :func:`run_due` (its state in ``out_dir``;
    None: remembered in this process only). A failure (InfluxDB away, the registry unreadable) is logged;
    the next day's run takes the same days again. Returns the number of runs that succeeded."""
    done = 0
    through: dt.date | None = None
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
        try:
            report, through = run_due(
                job, now=now(), window=window, tz=tz, out_dir=out_dir, exported_through=through
            )
        except FAILURES as exc:
            log.warning("open data: the export failed (%s); again tomorrow", exc)
        else:
            done += 1
            log.info(
                "open data: %s", report.line() if report else "no day has become final since the last run"
            )
    return done
