"""The quarter's figures per local day, computed once and kept: every household's totals per kind (for
the typical household), the quarter's import, export and PV (import and export of household meters
only), the energy drawn from outside the quarter (netted per quarter hour) and each household's share
of the quarter's surplus. A period's quarter figures are sums
over its days, so a year costs no more than its days once they are known.

Why: InfluxDB 1.6 needs tens of seconds to group a year of the whole quarter's quarter hours (7.7 million
points for 110 households; bench/portal.py), far too long for a page. Days are computed in batches of a
week, three small queries each (import per household and quarter hour, export per quarter hour, the
daily ledger per household and kind), and kept: days that lie two days in the past for
:data:`SETTLED_TTL_S` (the ledger's loop recomputes only its trailing window), newer ones for a minute.
:meth:`QuarterDays.warm` fills the current and the previous year in a background thread, newest first.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ingest.influxql import Ident, statement
from ingest.portal.reader import InfluxUnavailable, Reader

log = logging.getLogger(__name__)
LEDGER_RP = "rollups"
KINDS = ("import", "export", "pv", "heat", "ev")
BATCH_DAYS = 7
SETTLED_TTL_S = 6 * 3600.0
FRESH_TTL_S = 60.0
HouseholdKey = tuple[str, str]  # (household name, building name)


class QuarterPending(Exception):
    """Too many of the period's days are not computed yet to wait for them in a request."""


@dataclass
class DayFigures:
    households: dict[HouseholdKey, dict[str, float]] = field(default_factory=dict)  # own kinds' kWh
    quarter_import: float = 0.0
    quarter_export: float = 0.0
    quarter_pv: float = 0.0  # every PV in the quarter, households' and buildings'
    pv_buildings: set[str] = field(default_factory=set)  # buildings with PV of their own (no household tag)
    external: float = 0.0  # sum over quarter hours of max(0, import - export)
    shared: dict[HouseholdKey, float] = field(default_factory=dict)  # import covered by the surplus


@dataclass
class _Entry:
    expires: float
    figures: DayFigures


class QuarterDays:
    def __init__(self, reader: Reader, tz: ZoneInfo, *, now: Callable[[], dt.datetime]) -> None:
        self.reader = reader
        self.tz = tz
        self.now = now
        self._days: dict[dt.date, _Entry] = {}
        self._lock = threading.Lock()  # one computation at a time: the warmer and requests share it
        self._warmer: threading.Thread | None = None

    def _midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), self.tz)

    def settled(self, end: dt.date) -> bool:
        """Whether every day before ``end`` lies two days in the past (the ledger no longer rewrites it)."""
        return self._midnight(end) < self.now() - dt.timedelta(days=2)

    def forget(self, first: dt.date, end: dt.date) -> None:
        """Drop the kept figures of [first, end): they are computed again when next needed."""
        with self._lock:
            for offset in range((end - first).days):
                self._days.pop(first + dt.timedelta(days=offset), None)

    def cached(self, day: dt.date) -> DayFigures | None:
        entry = self._days.get(day)
        return entry.figures if entry is not None and entry.expires > time.monotonic() else None

    def days(self, first: dt.date, end: dt.date, *, max_missing: int | None = None) -> list[DayFigures]:
        """Figures of [first, end); computes missing days, unless more than ``max_missing`` are missing
        (then :class:`QuarterPending`, and the warmer is asked to compute them)."""
        wanted = [first + dt.timedelta(days=i) for i in range((end - first).days)]
        missing = [day for day in wanted if self.cached(day) is None]
        if max_missing is not None and len(missing) > max_missing:
            self.warm(extra=(first, end))
            raise QuarterPending(f"{len(missing)} days of the quarter not computed yet")
        if missing:
            self._compute(missing)
        out = []
        for day in wanted:
            figures = self.cached(day)
            out.append(figures if figures is not None else DayFigures())
        return out

    def _compute(self, days: list[dt.date]) -> None:
        with self._lock:
            days = [day for day in days if self.cached(day) is None]  # another thread may have done them
            for batch in _batches(sorted(days)):
                self._load(batch[0], batch[-1] + dt.timedelta(days=1))

    def _load(self, first: dt.date, end: dt.date) -> None:
        start, stop = self._midnight(first), self._midnight(end)
        figures: dict[dt.date, DayFigures] = defaultdict(DayFigures)
        where: dict[str, Ident | dt.datetime] = {"start": start, "end": stop, "kk": Ident("kind")}
        imports = self.reader.rows(
            statement(
                'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {kk} = {k} AND time >= {start} AND time < {end} '
                'GROUP BY time(15m), "household", "building" fill(none)',
                m=Ident(LEDGER_RP, "energy"),
                k="import",
                **where,
            )
        )
        exports = self.reader.rows(
            statement(
                'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {kk} = {k} AND time >= {start} AND time < {end} '
                "AND {hk} != {none} GROUP BY time(15m) fill(none)",
                m=Ident(LEDGER_RP, "energy"),
                k="export",
                hk=Ident("household"),
                none="",
                **where,
            )
        )
        totals = self.reader.rows(
            statement(
                'SELECT sum("kwh") AS "kwh" FROM {m} WHERE time >= {start} AND time < {end} '
                'GROUP BY time(1d), "household", "building", "kind" fill(none) tz({zone})',
                m=Ident(LEDGER_RP, "energy_1d"),
                start=start,
                end=stop,
                zone=str(self.tz),
            )
        )
        per_slot: dict[dt.datetime, list[tuple[HouseholdKey, float]]] = defaultdict(list)
        for row in imports:
            value = row.values.get("kwh")
            if value is not None and row.tags.get("household"):
                per_slot[row.time].append(
                    ((row.tags["household"], row.tags.get("building", "")), float(value))
                )
        export_at = {
            row.time: float(row.values["kwh"]) for row in exports if row.values.get("kwh") is not None
        }
        for moment in set(per_slot) | set(export_at):
            day = figures[moment.astimezone(self.tz).date()]
            quarter_import = sum(value for _, value in per_slot.get(moment, []))
            quarter_export = export_at.get(moment, 0.0)
            day.external += max(0.0, quarter_import - quarter_export)
            if quarter_import > 0:
                factor = min(1.0, quarter_export / quarter_import)
                for key, value in per_slot[moment]:
                    day.shared[key] = day.shared.get(key, 0.0) + value * factor
        for row in totals:
            value = row.values.get("kwh")
            kind = row.tags.get("kind", "")
            if value is None or kind not in KINDS:
                continue
            day = figures[row.time.astimezone(self.tz).date()]
            tagged = bool(row.tags.get("household"))
            # import and export of households' meters only, as in the per-quarter-hour netting above: a
            # device left without household (after a deletion) would otherwise count on one side only
            if kind == "import" and tagged:
                day.quarter_import += float(value)
            elif kind == "export" and tagged:
                day.quarter_export += float(value)
            elif kind == "pv":
                day.quarter_pv += float(value)
                if not tagged and float(value) > 0:
                    day.pv_buildings.add(row.tags.get("building", ""))
            if tagged:
                key = (row.tags["household"], row.tags.get("building", ""))
                own = day.households.setdefault(key, {})
                own[kind] = own.get(kind, 0.0) + float(value)
        settled = self.settled(end)
        expires = time.monotonic() + (SETTLED_TTL_S if settled else FRESH_TTL_S)
        for offset in range((end - first).days):
            date = first + dt.timedelta(days=offset)
            self._days[date] = _Entry(expires, figures.get(date, DayFigures()))

    def warm(self, *, extra: tuple[dt.date, dt.date] | None = None) -> None:
        """Compute the current and the previous year (and ``extra``) in a background thread, newest first;
        one warmer at a time."""
        if self._warmer is not None and self._warmer.is_alive():
            return
        today = self.now().astimezone(self.tz).date()
        ranges = [(dt.date(today.year - 1, 1, 1), today + dt.timedelta(days=1))]
        if extra is not None:
            ranges.insert(0, extra)

        def run() -> None:
            started = time.monotonic()
            try:
                for first, end in ranges:
                    day = end - dt.timedelta(days=1)
                    while day >= first:
                        batch_first = max(first, day - dt.timedelta(days=BATCH_DAYS - 1))
                        self.days(batch_first, day + dt.timedelta(days=1))
                        day = batch_first - dt.timedelta(days=1)
                log.info("portal: quarter figures computed in %.1f s", time.monotonic() - started)
            except InfluxUnavailable as exc:
                # the kind only: the cause's text holds the query URL with household names
                kind = type(exc.__cause__ or exc).__name__
                log.warning("portal: computing the quarter's figures stopped (%s)", kind)

        self._warmer = threading.Thread(target=run, name="portal-quarter", daemon=True)
        self._warmer.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the warmer is done (the bench and the tests)."""
        if self._warmer is not None:
            self._warmer.join(timeout)


def _batches(days: Iterable[dt.date]) -> list[list[dt.date]]:
    """Runs of consecutive days, at most :data:`BATCH_DAYS` long."""
    out: list[list[dt.date]] = []
    for day in days:
        if out and (day - out[-1][-1]).days == 1 and len(out[-1]) < BATCH_DAYS:
            out[-1].append(day)
        else:
            out.append([day])
    return out
