"""The public quarter page's figures (``/quarter``): what everyone may see of the quarter right now, read
from InfluxDB in ONE request per cache period and shared by every visitor (:class:`FiguresCache`).

What it holds (definitions as in docs/portal.md, "For the quarter"; the page says it in plain words):

- **today by quarter hour** from the energy ledger (``rollups.energy``): grid import and export of the
  households' meters, PV yield of every installation (households' and buildings'); the newest settled
  quarter hour of these is the page's "power flows now" (energy of that quarter hour, and its mean power);
- **only settled quarter hours** (review18 H3, review18b HIGH-2: a figure shown and later changed gives
  the change away, one household's value): the ledger books an increment into the quarter hour of its
  later reading, so a quarter hour is shown, and counts into today's self-sufficiency, only once it has
  ended and every expected device has a value in a later quarter hour (:func:`_settled`). Until then the
  page says "not complete yet"; the running quarter hour is in no figure;
- **disclosure as the files**: each quarter hour's figure by the primary (n, k) rule alone
  (:func:`ingest.opendata.disclosure.assess`, no partner quarter hours); no total of today's quarter hours
  is published; today's self-sufficiency only while none of its quarter hours withholds import, export or
  PV (the file withholds that day's totals and what derives from them);
- **self-sufficiency** today (settled quarter hours) and this month (its FINAL days only, by the files'
  own rule :func:`ingest.opendata.export.last_final_day`, so it changes once a day and its differences say
  nothing about today): ``1 − Σt max(0, Iq(t) − Eq(t)) / Cq`` with ``Cq = ΣI + ΣP − ΣE``, netted per quarter
  hour, rounded to the files' 0.1 % before it leaves; households counted by the registry's identity
  (:meth:`ingest.opendata.sources.Identities.contributor`), never by name tags;
- **street climate**: 10-minute means over the street sensors of today (raw ``environment``).

Disclosure: a quarter total is shown only where :func:`ingest.opendata.disclosure.assess` publishes it
(at least ``min_households`` contributing households, none above ``dominance_percent`` of the total);
a self-sufficiency only where the period's import, export (households) and PV yield (installations) pass.
Otherwise the figure is None and the page says why, as the open-data files mark a suppressed cell.

Street sensors, never indoor ones: the rule of the open-data export (:mod:`ingest.opendata.sources`):
``environment`` points attributed to the quarter's outdoor place (``opendata.street_building``, a registry
building) without a household. Rooms, stairwells and every sensor of a household are never read.

Cost: each refresh is one HTTP ``/query`` with several statements (InfluxDB counts one ``queryReq``):
the quarter hours per household, device and kind of today (and the 24 hours before it, for the
expectations), the month's final days as sums per quarter hour and daily points per device, the street
means. The final days are read when one more becomes final and kept for :data:`SETTLED_TTL_S`.
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
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

import httpx

from ingest.influxql import Ident, Regex, statement
from ingest.opendata.disclosure import Cell, Contributor, Rule, Status, assess, derived
from ingest.opendata.energy_tables import KWH_DIGITS, PERCENT_DIGITS
from ingest.opendata.export import last_final_day
from ingest.opendata.sources import Identities, quarter_hours, street_condition
from ingest.portal.reader import InfluxUnavailable, Reader, Row, rows_of

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
# the month's figure is shown once half its 0.1 % rounding step is this many kWh of the month's consumption:
# more than one household draws or feeds in a quarter hour (an 11 kW charger: 2.75 kWh)
MONTH_COVER_KWH = 3.0
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
    complete: bool = (
        True  # settled: no later ledger run changes it (else every kwh is None; :func:`_settled`)
    )


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
    today: tuple[QuarterHour, ...]  # every ended quarter hour of today, in order (never the running one)
    last: QuarterHour | None  # the newest settled quarter hour with any published figure
    self_sufficiency_today: float | None  # 0…1 in steps of 0.001 (the files' 0.1 %), settled quarter hours
    self_sufficiency_month: float | None  # the same over this month's final days
    street: StreetClimate
    month_through: dt.date | None = None  # the month figure's last final day (None: no final day yet)
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
            out.append(rows_of(result))
        if len(out) != len(statements):
            raise InfluxUnavailable(f"{len(out)} results for {len(statements)} statements")
        return out


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
        month_cover_kwh: float = MONTH_COVER_KWH,
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
        self.month_cover_kwh = month_cover_kwh  # see MONTH_COVER_KWH
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
        # the files' own rule (export.final_at): days through ``through`` are final, the ledger leaves them
        through = min(last_final_day(now, self.window, self.tz), day - dt.timedelta(days=1))
        final_end = self._midnight(through + dt.timedelta(days=1))
        settled_range = (month_start, final_end) if month_start < final_end else None

        statements = [
            self._by_device(day_start - EXPECTED_FROM, tomorrow),
            self._street(min(day_start, now - dt.timedelta(hours=1)), tomorrow),
        ]
        kept = self._settled
        refresh_settled = settled_range is not None and (
            kept is None or kept[0] != settled_range or kept[1] <= self._clock()
        )
        if refresh_settled:
            statements += self._period(month_start, final_end)
        results = self.reader.results(statements)
        identities = self.identities() if self.identities is not None else None

        ledger_rows, street_rows = results[0], results[1]
        if refresh_settled and settled_range is not None:
            period = _period_from(results[2], results[3], identities, self.tz)
            self._settled = (settled_range, self._clock() + SETTLED_TTL_S, period)
        month = self._settled[2] if settled_range is not None and self._settled is not None else None

        slots: dict[dt.datetime, dict[str, dict[Contributor, float]]] = defaultdict(lambda: defaultdict(dict))
        newest: dict[str, dt.datetime] = {}  # device -> its newest quarter hour with a ledger value
        for row in ledger_rows:
            value = row.values.get("kwh")
            if isinstance(value, int | float):
                device = row.tags.get("device", "")
                newest[device] = max(newest.get(device, row.time), row.time)
                who = _who(row, identities)
                kind = row.tags.get("kind", "")
                if row.time >= day_start and _counts(kind, who):
                    per = slots[row.time][kind]
                    per[who] = per.get(who, 0.0) + float(value)
        ended = [start for start in quarter_hours(day_start, tomorrow) if start + SLOT <= now]
        settled = set(_settled(ended, newest, identities))

        # today: ended quarter hours only; a settled one with its cells by the primary (n, k) rule alone
        # (the files' rule: no partner quarter hours), an unsettled one as "not complete yet"
        today: list[QuarterHour] = []
        cells: dict[dt.datetime, dict[str, Cell]] = {}
        for start in ended:
            if start in settled and start in slots:
                cells[start] = {kind: self._cell(slots[start].get(kind, {})) for kind in KINDS}
                kwh = {kind: _rounded(cell.value, KWH_DIGITS) for kind, cell in cells[start].items()}
                today.append(QuarterHour(start, start + SLOT, kwh))
            elif start not in settled:
                today.append(QuarterHour(start, start + SLOT, dict.fromkeys(KINDS), complete=False))
        shown = [q for q in today if q.complete and any(v is not None for v in q.kwh.values())]
        self._version += 1
        return PublicFigures(
            at=now,
            day=day,
            today=tuple(today),
            last=shown[-1] if shown else None,
            self_sufficiency_today=self._today_share({start: slots[start] for start in cells}, cells),
            self_sufficiency_month=(
                None if month is None else self._self_sufficiency(month, cover_kwh=self.month_cover_kwh)
            ),
            month_through=through if settled_range is not None else None,
            street=_street_from(street_rows, day_start),
            version=self._version,
        )

    def _today_share(
        self,
        slots: Mapping[dt.datetime, Mapping[str, Mapping[Contributor, float]]],
        cells: Mapping[dt.datetime, Mapping[str, Cell]],
    ) -> float | None:
        """Today's self-sufficiency over the settled quarter hours, rounded to the files' 0.1 %. Withheld
        when any of those quarter hours withholds import, export or PV: the file withholds that day's total
        and what is derived from it, and the figure with the published quarter hours would give the total
        back (review18b HIGH-1)."""
        if any(cell.withheld for kinds in cells.values() for cell in kinds.values()):
            return None
        period = _Period()
        for start, kinds in slots.items():
            for kind in ("import", "export"):
                period.slots[start][kind] = sum(kinds.get(kind, {}).values())
            for kind in KINDS:
                for who, kwh in kinds.get(kind, {}).items():
                    period.totals[kind][who] = period.totals[kind].get(who, 0.0) + kwh
        return self._self_sufficiency(period)

    # ------------------------------------------------------------------------------ statements

    @staticmethod
    def _by_device(start: dt.datetime, end: dt.datetime) -> str:
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
    def _period(start: dt.datetime, end: dt.datetime) -> list[str]:
        """Two statements over final days: the households' import and export per quarter hour (for the
        netting), and the daily ledger's points per device and kind (contributors by the registry's identity
        of the device on that day, :func:`_period_from`)."""
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
            'SELECT "kwh" FROM {m} WHERE {kk} =~ {kinds} AND time >= {start} AND time < {end} '
            'GROUP BY "household", "building", "device", "kind"',
            m=Ident(LEDGER_RP, DAILY),
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

    def _self_sufficiency(self, period: _Period, *, cover_kwh: float = 0.0) -> float | None:
        """docs/portal.md, "For the quarter", over several days: as the export's rows compute it
        (``energy_tables._row``), a derived figure withheld unless import, export and (where there is any)
        PV each pass disclosure control.

        ``cover_kwh`` (the month's: :data:`MONTH_COVER_KWH`): withheld too until half its 0.1 % rounding
        step is that much of the consumption. The month's figure moves once a day by a final day whose
        withheld quarter hours the files keep back; the rounding is what hides them (review18b: about
        0.06 kWh in a small quarter's first days, less than one cell)."""
        imported, exported, pv = (self._cell(period.totals.get(kind, {})) for kind in KINDS)
        share: float | None = None
        if imported.total is not None and exported.total is not None:
            consumption = imported.total + (pv.total or 0.0) - exported.total
            if consumption > 0 and consumption * 0.5 * 10 ** -(PERCENT_DIGITS + 2) >= cover_kwh:
                external = sum(
                    max(0.0, kinds.get("import", 0.0) - kinds.get("export", 0.0))
                    for kinds in period.slots.values()
                )
                share = min(1.0, max(0.0, 1.0 - external / consumption))
        with_pv = (pv,) if pv.status is not Status.missing else ()
        return _rounded(derived(imported, exported, *with_pv, total=share).value, PERCENT_DIGITS + 2)


def _period_from(
    slot_rows: list[Row], day_rows: list[Row], identities: Identities | None, tz: ZoneInfo
) -> _Period:
    """Final days as a period: quarter-hour import/export sums, and per contributor its totals, each day's
    point credited by the registry's identity of its device on that day (a renamed household stays one,
    review18b L-b), else by the name tags."""
    period = _Period()
    for row in slot_rows:
        kind, value = row.tags.get("kind", ""), row.values.get("kwh")
        if kind in ("import", "export") and isinstance(value, int | float):
            period.slots[row.time][kind] = period.slots[row.time].get(kind, 0.0) + float(value)
    for row in day_rows:
        kind, value = row.tags.get("kind", ""), row.values.get("kwh")
        if kind not in KINDS or not isinstance(value, int | float):
            continue
        who = _contributor(row.tags)
        if identities is not None:
            local = row.time.astimezone(tz).date() + dt.timedelta(days=1)
            tags = row.tags
            who = identities.contributor(
                tags.get("device", ""),
                tags.get("household", ""),
                tags.get("building", ""),
                row.time,
                dt.datetime.combine(local, dt.time(), tz),
            )
        if _counts(kind, who):
            period.totals[kind][who] = period.totals[kind].get(who, 0.0) + float(value)
    return period


def _settled(
    ended: Iterable[dt.datetime], newest: Mapping[str, dt.datetime], identities: Identities | None
) -> Iterable[dt.datetime]:
    """The ended quarter hours no later ledger run can change (review18b HIGH-2). The ledger books an
    increment into the quarter hour of its later reading, so a device's quarter hour is settled once the
    device has a value in a later one. Expected are the devices with a value in the :data:`EXPECTED_FROM`
    before the quarter hour or in it, whose registry assignment is open then (one taken out stops being
    waited for; a device the registry does not know is expected). A device is waited for exactly when its
    newest value lies in ``[start − EXPECTED_FROM, end)``."""
    for start in ended:
        end = start + SLOT
        if not any(
            start - EXPECTED_FROM <= last < end and _assigned(identities, device, start, end)
            for device, last in newest.items()
        ):
            yield start


def _assigned(identities: Identities | None, device: str, start: dt.datetime, end: dt.datetime) -> bool:
    spans = identities.spans.get(device) if identities is not None else None
    return not spans or any(span.overlaps(start, end) for span in spans)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits) + 0.0  # no -0.0


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
