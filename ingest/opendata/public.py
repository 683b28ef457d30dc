"""The public quarter page's figures (``/quarter``): what everyone may see of the quarter right now, read
from InfluxDB in ONE request per cache period and shared by every visitor (:class:`FiguresCache`).

What it holds (definitions as in docs/portal.md, "For the quarter"; the page says it in plain words):

- **today by quarter hour** from the energy ledger (``rollups.energy``): grid import and export of the
  households' meters, PV yield of every installation (households' and buildings'); the newest complete
  quarter hour of these is the page's "power flows now" (energy of that quarter hour, and its mean power);
- **only complete quarter hours** (review18 H3: a quarter hour first shown with 5 households and later
  with 6 changes by exactly the late household's value): a quarter hour is shown, and counts into today's
  and the month's figures, only once every household expected has reported it — expected are the
  households that reported in the 24 hours before it — or once its day is final (older than the ledger's
  ``energy.window``, which it no longer rewrites; the open-data files publish only final days). Until then
  the page says "not complete yet". Households are counted by the export's identity
  (:meth:`ingest.opendata.sources.Identities.contributor`: the registry's assignment history, not names);
- **self-sufficiency** today and this month: ``1 − Σt max(0, Iq(t) − Eq(t)) / Cq`` with
  ``Cq = ΣI + ΣP − ΣE`` — the part of the quarter's electricity use not drawn from outside the quarter,
  netted per quarter hour (a neighbour's solar power counts as the quarter's own);
- **street climate**: 10-minute means over the street sensors of today (raw ``environment``).

Disclosure: a quarter total is shown only where :func:`ingest.opendata.disclosure.publishable` allows it
(at least ``min_households`` contributing households, none above ``dominance_percent`` of the total);
a self-sufficiency only where the period's import (households) and PV yield (installations) both pass.
Otherwise the figure is None and the page says why, as the open-data files mark a suppressed cell.

Street sensors, never indoor ones: the rule of the open-data export (:mod:`ingest.opendata.sources`):
``environment`` points attributed to the quarter's outdoor place (``opendata.street_building``, a registry
building) without a household. Rooms, stairwells and every sensor of a household are never read.

Cost: each refresh is one HTTP ``/query`` with several statements (InfluxDB counts one ``queryReq``):
the quarter hours per household, device and kind of the days the ledger may still rewrite (and the 24 hours
before them, for the expectations), the month's final days as sums per quarter hour and per household, the
street means. The final days are read once and kept for :data:`SETTLED_TTL_S`, as the portal keeps them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import httpx

from ingest.influxql import Ident, Regex, statement
from ingest.opendata.disclosure import Cell, Contributor, Rule, Status, assess, derived
from ingest.opendata.energy_tables import KIND_COLUMNS, SELF_SUFFICIENCY, DayEnergy, day_tables
from ingest.opendata.sources import Identities, quarter_hours, street_condition
from ingest.portal.reader import InfluxUnavailable, Reader, Row

log = logging.getLogger(__name__)

LEDGER_RP = "rollups"
QUARTER_HOURS = "energy"
DAILY = "energy_1d"
ENVIRONMENT = "environment"
KINDS = ("import", "export", "pv")
SLOT = dt.timedelta(minutes=15)
STREET_SLOT = dt.timedelta(minutes=10)
SETTLED_TTL_S = 6 * 3600.0
DEFAULT_WINDOW = dt.timedelta(days=1)  # energy.window's default
EXPECTED_FROM = dt.timedelta(hours=24)  # a quarter hour expects the households that reported within this
WAIT_S = 1.0  # longest a visitor waits for a running refresh: then the previous figures
REFRESH_TIMEOUT_S = 5.0  # a refresh's hard limit: later it counts as failed (InfluxDB's reader gives up too)
STREET_FIELDS = ("temperature_c", "humidity_pct", "pm25_ugm3", "pm10_ugm3", "noise_dba", "co2_ppm")

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- the figures


@dataclass(frozen=True)
class QuarterHour:
    """One quarter hour's quarter totals (kWh; None: withheld by disclosure control or no data)."""

    start: dt.datetime
    end: dt.datetime
    kwh: dict[str, float | None]
    complete: bool = True  # every expected household has reported it (else every kwh is None)


@dataclass(frozen=True)
class StreetClimate:
    """Today's 10-minute means over the street sensors, and each quantity's newest mean."""

    times: tuple[dt.datetime, ...]
    values: dict[str, tuple[float | None, ...]]
    latest: dict[str, tuple[dt.datetime, float]]


@dataclass(frozen=True)
class PublicFigures:
    """Everything the public page shows, as of ``at`` (UTC)."""

    at: dt.datetime
    day: dt.date
    today: tuple[QuarterHour, ...]  # every quarter hour of today up to now, in order
    last: QuarterHour | None  # the newest ended, complete quarter hour with any published figure
    self_sufficiency_today: float | None  # 0…1
    self_sufficiency_month: float | None
    street: StreetClimate
    version: int = 0  # counts refreshes: a new value means new figures (the page's JSON cache)


# ---------------------------------------------------------------------------------------------- reading


class BatchReader(Reader):
    """The portal's reader (same account, same errors) sending several statements in one request."""

    def results(self, statements: list[str]) -> list[list[Row]]:
        """The rows of each statement, in order: ONE HTTP request, one ``queryReq`` in InfluxDB."""
        try:
            response = self._http.get(
                "/query", params={"q": ";\n".join(statements), "db": self.database, "epoch": "s"}
            )
            response.raise_for_status()
            results = response.json()["results"]
        except httpx.HTTPStatusError as exc:  # its text has the URL with the statements: the status only
            raise InfluxUnavailable(f"HTTP {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise InfluxUnavailable(type(exc).__name__) from exc
        out: list[list[Row]] = []
        for result in results:
            if "error" in result:
                raise InfluxUnavailable(str(result["error"]))
            out.append(_rows(result))
        if len(out) != len(statements):
            raise InfluxUnavailable(f"{len(out)} results for {len(statements)} statements")
        return out


def _rows(result: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for series in result.get("series", []):
        columns = series["columns"]
        tags = series.get("tags") or {}
        for values in series.get("values", []):
            record = dict(zip(columns, values, strict=True))
            moment = dt.datetime.fromtimestamp(int(record.pop("time")), dt.UTC)
            rows.append(Row(moment, tags, record))
    return rows


@dataclass
class _Period:
    """A stretch of days as the self-sufficiency needs it: quarter-hour import/export sums of the households'
    meters, and per contributor its totals per kind."""

    slots: dict[dt.datetime, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    totals: dict[str, dict[Contributor, float]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, other: _Period) -> _Period:
        out = _Period()
        for source in (self, other):
            for moment, kinds in source.slots.items():
                for kind, value in kinds.items():
                    out.slots[moment][kind] = out.slots[moment].get(kind, 0.0) + value
            for kind, per in source.totals.items():
                for who, value in per.items():
                    out.totals[kind][who] = out.totals[kind].get(who, 0.0) + value
        return out


def _contributor(tags: Mapping[str, str]) -> Contributor:
    return (tags.get("household", ""), tags.get("building", ""))


def _who(row: Row, identities: Identities | None) -> Contributor:
    """The contributor of a ledger row of one quarter hour: the export's identity when the registry is
    known (a renamed household stays one), else the name tags."""
    if identities is None:
        return _contributor(row.tags)
    tags = row.tags
    return identities.contributor(
        tags.get("device", ""), tags.get("household", ""), tags.get("building", ""), row.time, row.time + SLOT
    )


def _complete(
    slots: Mapping[dt.datetime, Mapping[str, Mapping[Contributor, float]]],
    start: dt.datetime,
    end: dt.datetime,
) -> set[dt.datetime]:
    """The quarter hours in ``[start, end)`` that every household expected has reported: those that
    reported any kind in the :data:`EXPECTED_FROM` before it (buildings' own devices are not households)."""
    reporters = {
        moment: {who[0] for per in kinds.values() for who in per if who[0]} for moment, kinds in slots.items()
    }
    out = set()
    moment = start.astimezone(dt.UTC)
    seen: dict[str, int] = defaultdict(int)  # household -> quarter hours it reported within the last 24 h
    window = [moment - SLOT * (index + 1) for index in range(EXPECTED_FROM // SLOT)]
    for earlier in window:
        for household in reporters.get(earlier, ()):
            seen[household] += 1
    while moment < end:
        present = reporters.get(moment, set())
        if present and all(household in present for household, count in seen.items() if count):
            out.add(moment)
        for household in present:
            seen[household] += 1
        for household in reporters.get(moment - EXPECTED_FROM, ()):
            seen[household] -= 1
        moment += SLOT
    return out


def _counts(kind: str, who: Contributor) -> bool:
    """Import and export count for households' meters only (a device without household, e.g. after a
    deletion, counts on neither side: docs/portal.md); PV of buildings counts too."""
    return kind == "pv" or bool(who[0])


class QuarterSource:
    """Builds one refresh's statements, sends them as one request and turns the rows into figures."""

    def __init__(
        self,
        reader: BatchReader,
        tz: ZoneInfo,
        *,
        rule: Rule,
        street_building: str,
        raw_rp: str | None = None,
        window: dt.timedelta = DEFAULT_WINDOW,
        identities: Callable[[], Identities | None] | None = None,
        now: Callable[[], dt.datetime] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.tz = tz
        self.rule = rule
        self.street_building = street_building
        self.raw_rp = raw_rp  # the raw readings' retention policy (influx.retention_policy; None: default)
        self.window = window  # energy.window: days older than it are final (the ledger leaves them)
        self.identities = identities  # the registry's identities, read per refresh (None: the name tags)
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self._clock = clock
        self._settled: tuple[tuple[dt.datetime, dt.datetime], float, _Period] | None = None
        self._version = 0

    def _midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), self.tz)

    def _cell(self, values: Mapping[Contributor, float]) -> Cell:
        return assess(values, self.rule)

    def load(self) -> PublicFigures:
        now = self.now()
        day = now.astimezone(self.tz).date()
        day_start = self._midnight(day)
        tomorrow = self._midnight(day + dt.timedelta(days=1))
        month_start = self._midnight(day.replace(day=1))
        # the ledger rewrites the trailing window widened to whole local days: earlier days are final
        open_start = max(month_start, self._midnight((now - self.window).astimezone(self.tz).date()))
        open_start = min(open_start, day_start)
        settled_range = (month_start, open_start)

        statements = [
            self._by_household(open_start - EXPECTED_FROM, tomorrow),
            self._street(min(day_start, now - dt.timedelta(hours=1)), tomorrow),
        ]
        kept = self._settled
        refresh_settled = month_start < open_start and (
            kept is None or kept[0] != settled_range or kept[1] <= self._clock()
        )
        if refresh_settled:
            statements += self._period(month_start, open_start, daily=True)
        results = self.reader.results(statements)
        identities = self.identities() if self.identities is not None else None

        ledger_rows, street_rows = results[0], results[1]
        if refresh_settled:
            self._settled = (
                settled_range,
                self._clock() + SETTLED_TTL_S,
                _period_from(results[2], results[3]),
            )
        settled = self._settled[2] if self._settled is not None and month_start < open_start else _Period()

        slots: dict[dt.datetime, dict[str, dict[Contributor, float]]] = defaultdict(lambda: defaultdict(dict))
        for row in ledger_rows:
            value = row.values.get("kwh")
            if isinstance(value, int | float):
                who = _who(row, identities)
                per = slots[row.time][row.tags.get("kind", "")]
                per[who] = per.get(who, 0.0) + float(value)
        complete = _complete(slots, open_start, tomorrow)

        # the open days (the window's, today last) with their complete quarter hours only
        open_days: list[DayEnergy] = []
        midnight = open_start
        while midnight < tomorrow:
            following = self._midnight(midnight.date() + dt.timedelta(days=1))
            energy = DayEnergy(quarter_hours(midnight, following))
            for start in energy.slots:
                if start in complete:
                    for kind, per in slots[start].items():
                        for who, kwh in per.items():
                            energy.add(start.astimezone(self.tz), kind, who, kwh)
            open_days.append(energy)
            midnight = following
        energy = open_days[-1]  # today

        # today as the export computes a day (ingest.opendata.energy_tables): the same cells, the same
        # secondary suppression within the day, the same self-sufficiency (of the complete quarter hours)
        tables = day_tables(energy, midnight=day_start, buildings={}, rule=self.rule)
        today = []
        for start, figures in zip(energy.slots, tables.quarter_15min, strict=True):
            if start in energy.energy:
                today.append(QuarterHour(start, start + SLOT, {k: _kwh(figures, k) for k in KINDS}))
            elif start in slots:  # the ledger has it, some expected household not yet
                today.append(QuarterHour(start, start + SLOT, dict.fromkeys(KINDS), complete=False))
        shown = [
            q for q in today if q.complete and q.end <= now and any(v is not None for v in q.kwh.values())
        ]
        share = tables.quarter_daily.get(SELF_SUFFICIENCY)
        month = settled
        for one in open_days:
            month = month.add(_period_of(one))
        self._version += 1
        return PublicFigures(
            at=now,
            day=day,
            today=tuple(today),
            last=shown[-1] if shown else None,
            self_sufficiency_today=share / 100 if isinstance(share, int | float) else None,
            self_sufficiency_month=self._self_sufficiency(month),
            street=_street_from(street_rows, day_start),
            version=self._version,
        )

    # ------------------------------------------------------------------------------ statements

    @staticmethod
    def _by_household(start: dt.datetime, end: dt.datetime) -> str:
        return statement(
            'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {kk} =~ {kinds} AND time >= {start} AND time < {end} '
            'GROUP BY time(15m), "household", "building", "device", "kind" fill(none)',
            m=Ident(LEDGER_RP, QUARTER_HOURS),
            kk=Ident("kind"),
            kinds=Regex("^(import|export|pv)$"),
            start=start,
            end=end,
        )

    @staticmethod
    def _period(start: dt.datetime, end: dt.datetime, *, daily: bool) -> list[str]:
        """Two statements: the households' import and export per quarter hour (for the netting), and the
        totals per household (PV: per installation) and kind, from the daily ledger when ``daily``."""
        slots = statement(
            'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {kk} =~ {kinds} AND {hk} != {none} '
            'AND time >= {start} AND time < {end} GROUP BY time(15m), "kind" fill(none)',
            m=Ident(LEDGER_RP, QUARTER_HOURS),
            kk=Ident("kind"),
            kinds=Regex("^(import|export)$"),
            hk=Ident("household"),
            none="",
            start=start,
            end=end,
        )
        totals = statement(
            'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {kk} =~ {kinds} AND time >= {start} AND time < {end} '
            'GROUP BY "household", "building", "kind"',
            m=Ident(LEDGER_RP, DAILY if daily else QUARTER_HOURS),
            kk=Ident("kind"),
            kinds=Regex("^(import|export|pv)$"),
            start=start,
            end=end,
        )
        return [slots, totals]

    def _street(self, start: dt.datetime, end: dt.datetime) -> str:
        means = ", ".join(f'mean("{name}") AS "{name}"' for name in STREET_FIELDS)  # constants, not input
        return statement(
            f"SELECT {means} FROM {{m}} WHERE {{street}} AND time >= {{start}} AND time < {{end}} "
            "GROUP BY time(10m) fill(none)",
            m=Ident(self.raw_rp, ENVIRONMENT) if self.raw_rp else Ident(ENVIRONMENT),
            street=street_condition(self.street_building),
            start=start,
            end=end,
        )

    # ------------------------------------------------------------------------------ self-sufficiency

    def _self_sufficiency(self, period: _Period) -> float | None:
        """docs/portal.md, "For the quarter", over several days: as the export's rows compute it
        (``energy_tables._row``), a derived figure withheld unless import, export and (where there is any)
        PV each pass disclosure control."""
        imported, exported, pv = (self._cell(period.totals.get(kind, {})) for kind in KINDS)
        share: float | None = None
        if imported.total is not None and exported.total is not None:
            consumption = imported.total + (pv.total or 0.0) - exported.total
            if consumption > 0:
                external = sum(
                    max(0.0, kinds.get("import", 0.0) - kinds.get("export", 0.0))
                    for kinds in period.slots.values()
                )
                share = min(1.0, max(0.0, 1.0 - external / consumption))
        with_pv = (pv,) if pv.status is not Status.missing else ()
        return derived(imported, exported, *with_pv, total=share).value


def _period_from(slot_rows: list[Row], total_rows: list[Row]) -> _Period:
    period = _Period()
    for row in slot_rows:
        kind, value = row.tags.get("kind", ""), row.values.get("kwh")
        if kind in ("import", "export") and isinstance(value, int | float):
            period.slots[row.time][kind] = period.slots[row.time].get(kind, 0.0) + float(value)
    for row in total_rows:
        kind, value, who = row.tags.get("kind", ""), row.values.get("kwh"), _contributor(row.tags)
        if kind in KINDS and isinstance(value, int | float) and _counts(kind, who):
            period.totals[kind][who] = period.totals[kind].get(who, 0.0) + float(value)
    return period


def _period_of(day: DayEnergy) -> _Period:
    """A day's quarter hours (per contributor) as a period: sums per quarter hour, totals per contributor."""
    period = _Period()
    for moment, kinds in day.energy.items():
        for kind in ("import", "export"):
            if kind in kinds:
                period.slots[moment][kind] = sum(kinds[kind].values())
    for kind, contributions in day.day_total().items():
        if kind in KINDS:
            period.totals[kind] = dict(contributions)
    return period


def _kwh(row: Mapping[str, object], kind: str) -> float | None:
    value = row.get(KIND_COLUMNS[kind])
    return float(value) if isinstance(value, int | float) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _street_from(rows: Iterable[Row], day_start: dt.datetime) -> StreetClimate:
    ordered = sorted(rows, key=lambda row: row.time)
    latest: dict[str, tuple[dt.datetime, float]] = {}
    for row in ordered:
        for name in STREET_FIELDS:
            value = row.values.get(name)
            if isinstance(value, int | float):
                latest[name] = (row.time, float(value))
    today = [row for row in ordered if row.time >= day_start]
    values = {
        name: tuple(
            float(row.values[name]) if isinstance(row.values.get(name), int | float) else None
            for row in today
        )
        for name in STREET_FIELDS
    }
    return StreetClimate(tuple(row.time for row in today), values, latest)


# ---------------------------------------------------------------------------------------------- the cache


class Unavailable(Exception):
    """No figures to show yet: the first refresh failed or has not finished within the wait; the caller
    answers 503 with ``Retry-After: retry_after_s``."""

    def __init__(self, name: str, retry_after_s: int) -> None:
        super().__init__(f"{name}: not available; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Served(Generic[T]):
    """A cached value and whether it is the previous one (``stale``: the refresh due now failed, or has not
    finished within the wait)."""

    value: T
    stale: bool


class FiguresCache(Generic[T]):
    """One value for everyone, at most ``ttl_s`` old, refreshed by ONE background thread of its own, so
    visitors never hold a server worker while InfluxDB is slow or hangs (review18 M5: 45 waiting visitors
    took all 40 threads of the server's pool and its health check timed out).

    - Single flight: a refresh starts when a visitor finds the value due and none runs; at most one runs.
    - Bounded wait: a visitor waits at most ``wait_s`` for a running refresh (asynchronously: no thread),
      then gets the previous value marked stale (stale-while-revalidate). Before the first value there is
      nothing else to give, so it waits for that refresh to end, at most ``timeout_s`` (a cold start under
      load took more than a second, and 503 would have been the answer), then :class:`Unavailable`.
    - Hard timeout: a refresh not finished within ``timeout_s`` counts as failed (the loader's own client
      gives up at the same time; its thread cannot be killed, so no other refresh starts until it returns).
    - A failed refresh is logged once and not retried before ``ttl_s`` has passed (the database is not
      asked more often when it is in trouble); the previous value, if any, stays meanwhile, marked stale.
    """

    POLL_S = 0.025  # how often a waiting visitor looks (event-loop agnostic: no future shared across loops)

    def __init__(
        self,
        load: Callable[[], T],
        *,
        ttl_s: float,
        name: str = "quarter figures",
        wait_s: float = WAIT_S,
        timeout_s: float = REFRESH_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.name = name
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"refresh {name}")
        self._value: T | None = None
        self._fresh_until = 0.0
        self._failed = False  # the newest refresh failed (or timed out)
        self._running: Future[T] | None = None
        self._started = 0.0
        self._timed_out = False  # the running refresh passed timeout_s (already logged)
        self.loads = 0  # how often the source was asked (tests, logs)

    def fresh_for(self) -> float:
        """Seconds until the value is refreshed (0: at the next request)."""
        return max(0.0, self._fresh_until - self._clock())

    async def get(self) -> Served[T]:
        """The current value (refreshed first when due, waiting at most ``wait_s``, for the first value at
        most ``timeout_s``)."""
        with self._lock:
            running = self._refresh_if_due()
            wait = self.wait_s if self._value is not None else self.timeout_s
        deadline = time.monotonic() + wait  # real time: ``clock`` drives the cache period only
        while running is not None and not running.done() and time.monotonic() < deadline:
            await asyncio.sleep(self.POLL_S)
            with self._lock:
                self._check_timeout()
                if self._timed_out:
                    break
        return self._served()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------ under the lock

    def _refresh_if_due(self) -> Future[T] | None:
        """The running refresh, or a new one when the value is due; None when it is fresh, or when the
        refresh that timed out still holds the thread."""
        self._check_timeout()
        if self._running is not None:
            return None if self._timed_out else self._running
        if self._clock() < self._fresh_until:
            return None
        self.loads += 1
        self._started = time.monotonic()
        future = self._running = self._executor.submit(self._load)
        future.add_done_callback(self._settle)  # RLock: it may run at once, in this thread
        return future

    def _check_timeout(self) -> None:
        running = self._running
        if running is None or running.done() or self._timed_out:
            return
        if time.monotonic() - self._started >= self.timeout_s:
            self._timed_out = True
            self._fail(f"no answer within {self.timeout_s:g} s")

    def _fail(self, reason: str) -> None:
        self._failed = True
        self._fresh_until = self._clock() + self.ttl_s
        keeps = "the previous ones stay" if self._value is not None else "none to show"
        log.warning("%s: refresh failed (%s); %s", self.name, reason, keeps)

    def _settle(self, future: Future[T]) -> None:
        with self._lock:
            self._running = None
            timed_out, self._timed_out = self._timed_out, False
            exc = None if future.cancelled() else future.exception()
            if future.cancelled() or exc is not None:
                if not timed_out:  # a timed-out refresh was logged when it timed out: once per attempt
                    self._fail("cancelled" if exc is None else str(exc) or type(exc).__name__)
                return
            self._value, self._failed = future.result(), False
            self._fresh_until = self._clock() + self.ttl_s

    def _served(self) -> Served[T]:
        with self._lock:
            if self._value is not None:
                return Served(self._value, stale=self._failed or self._running is not None)
            if self._running is not None and not self._timed_out:
                retry = self.timeout_s - (time.monotonic() - self._started)
            else:
                retry = self.fresh_for()
            raise Unavailable(self.name, max(1, math.ceil(retry)))
