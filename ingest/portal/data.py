"""The portal's numbers from the energy ledger (InfluxDB, retention policy ``rollups``): ``energy`` holds
each device's kWh per quarter hour, ``energy_1d`` per local day; tags ``household``, ``building``,
``device``, ``kind`` (import, export, pv, heat, ev). Definitions in docs/portal.md.

Every statement is built by :func:`ingest.influxql.statement`; the household always comes from the
caller (the session's user), filtered by household *and* building name (a household's name is unique
only within its building). Figures about other households leave this module only as
:class:`QuarterFigures`: typical values (means of the middle half) and rounded shares, each over at least
:data:`MIN_HOUSEHOLDS` households; never a count, a quarter total or one household's value.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ingest.influxql import Ident, Raw, statement
from ingest.portal.periods import Period
from ingest.portal.quarter import DayFigures, HouseholdKey, QuarterDays
from ingest.portal.reader import Reader, Row

KINDS = ("import", "export", "pv", "heat", "ev")
BUILDING_PV = "pv_building"  # the household's building's PV (no household tag): shown, not counted as own
LEDGER_RP = "rollups"
QUARTER_HOURS = "energy"
DAILY = "energy_1d"
RAW_ELECTRICITY = "electricity"
POWER_FIELD = "power_w"  # signed: import positive, export negative (device_profiles/*.yaml)
MIN_HOUSEHOLDS = 5
FRESH = dt.timedelta(minutes=5)
QUARTER = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Household:
    """A resident's household as the ledger tags it (from the session's user, never from a request)."""

    id: int
    name: str
    building: str


@dataclass
class Bars:
    """kWh per bar and kind (``pv_building`` too when the building has PV of its own) and the totals."""

    buckets: list[dt.datetime]
    kinds: dict[str, list[float | None]]
    totals: dict[str, float]


@dataclass(frozen=True)
class Power:
    watts: float
    at: dt.datetime


@dataclass(frozen=True)
class QuarterFigures:
    """What a resident sees of the other households in a period (docs/portal.md, "What residents see of
    others"); every figure None when fewer than :data:`MIN_HOUSEHOLDS` households have data for it.

    ``typical``: per kind and for consumption, the mean of the middle half of the households having it
    (:func:`typical`), rounded by :func:`round_kwh`. Shares (0…1) rounded to whole percent; the PV-based
    ones only with at least :data:`MIN_HOUSEHOLDS` PV installations in the quarter. No count, no total."""

    enough: bool
    typical: dict[str, float | None]
    self_sufficiency: float | None
    pv_share: float | None


@dataclass(frozen=True)
class Community:
    """The household's own shares (0…1, None without consumption), kWh as defined in docs/portal.md, and the
    quarter's figures as residents see them."""

    consumption: float
    own_pv_used: float
    shared: float  # the household's share of the quarter's surplus, per quarter hour
    self_sufficiency: float | None
    quarter_pv_covered: float | None  # None unless the quarter's PV figures are shown
    quarter: QuarterFigures


def round_kwh(value: float) -> float:
    """A typical value as shown: 0.1 kWh below 10 kWh, whole kWh above."""
    return round(value, 1) if abs(value) < 10 else float(round(value))


def round_share(share: float | None) -> float | None:
    return None if share is None else round(share, 2)


def typical(values: list[float]) -> float | None:
    """A typical household: the mean of the middle values once the lowest and highest quarter are left
    out (at least 3 values, as MIN_HOUSEHOLDS >= 5), rounded; None below :data:`MIN_HOUSEHOLDS`. Unlike a
    median of an odd count, an average of several households (it may equal one's rounded value by chance,
    without saying whose)."""
    if len(values) < MIN_HOUSEHOLDS:
        return None
    ordered = sorted(values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut]
    return round_kwh(statistics.fmean(middle))


def consumption(totals: dict[str, float]) -> tuple[float, float]:
    """(consumption, own PV used): import plus the own PV that was not exported."""
    own_used = max(0.0, totals.get("pv", 0.0) - totals.get("export", 0.0)) if "pv" in totals else 0.0
    return totals.get("import", 0.0) + own_used, own_used


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


class PortalData:
    def __init__(self, reader: Reader, tz: ZoneInfo, *, now: Callable[[], dt.datetime] | None = None) -> None:
        self.reader = reader
        self.tz = tz
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.quarter = QuarterDays(reader, tz, now=self.now)
        self._frozen: dict[tuple[str, dt.date], QuarterFigures] = {}
        self._frozen_covered: dict[tuple[str, dt.date, HouseholdKey], float | None] = {}
        self._rechecked: set[tuple[str, dt.date, HouseholdKey, float]] = set()

    # ------------------------------------------------------------------ the household's own

    def _where_household(self, household: Household, period: Period, *, building_pv: bool) -> dict[str, Any]:
        start, end = period.range
        own = statement("{hk} = {h}", hk=Ident("household"), h=household.name)
        if building_pv:  # the building's own PV (no household tag) too
            own = statement(
                "({own} OR ({hk} = {none} AND {kk} = {pv}))",
                own=Raw(own),
                hk=Ident("household"),
                none="",
                kk=Ident("kind"),
                pv="pv",
            )
        return {
            "m": Ident(LEDGER_RP, DAILY if period.daily else QUARTER_HOURS),
            "who": Raw(own),
            "bk": Ident("building"),
            "b": household.building,
            "start": start,
            "end": end,
        }

    def bars(self, household: Household, period: Period) -> Bars:
        rows = self.reader.rows(
            statement(
                'SELECT "kwh" FROM {m} WHERE {who} AND {bk} = {b} AND time >= {start} AND time < {end} '
                'GROUP BY "kind", "household"',
                **self._where_household(household, period, building_pv=True),
            )
        )
        buckets = period.buckets()
        index = {moment: i for i, moment in enumerate(buckets)}
        kinds: dict[str, list[float | None]] = {}
        for row in rows:
            kind = row.tags.get("kind", "")
            if kind not in KINDS:
                continue
            if not row.tags.get("household"):
                kind = BUILDING_PV
            slot = index.get(period.bucket(row.time))
            value = row.values.get("kwh")
            if slot is None or not isinstance(value, int | float):
                continue
            values = kinds.setdefault(kind, [None] * len(buckets))
            values[slot] = (values[slot] or 0.0) + float(value)
        if "pv" in kinds:  # a household with its own PV: the building's is not its to show
            kinds.pop(BUILDING_PV, None)
        if "export" in kinds and "pv" not in kinds and not any(kinds["export"]):
            kinds.pop("export")  # no PV, nothing exported: no "export 0" line (see _without_idle_export)
        totals = {kind: sum(v for v in values if v is not None) for kind, values in kinds.items()}
        return Bars(buckets, {kind: kinds[kind] for kind in (*KINDS, BUILDING_PV) if kind in kinds}, totals)

    def totals(self, household: Household, period: Period) -> dict[str, float]:
        rows = self.reader.rows(
            statement(
                'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {who} AND {bk} = {b} AND time >= {start} '
                'AND time < {end} GROUP BY "kind"',
                **self._where_household(household, period, building_pv=False),
            )
        )
        return _without_idle_export(
            {
                row.tags["kind"]: float(row.values["kwh"])
                for row in rows
                if row.tags.get("kind") in KINDS and row.values.get("kwh") is not None
            }
        )

    def power(self, household: Household) -> Power | None:
        """The main meter's newest power (no ``channel`` tag), when at most :data:`FRESH` old."""
        rows = self.reader.rows(
            statement(
                "SELECT last({f}) AS {f} FROM {m} WHERE {hk} = {h} AND {bk} = {b} AND {ck} = {none} "
                "AND time > {since}",
                f=Ident(POWER_FIELD),
                m=Ident(RAW_ELECTRICITY),
                hk=Ident("household"),
                h=household.name,
                bk=Ident("building"),
                b=household.building,
                ck=Ident("channel"),
                none="",
                since=self.now() - FRESH,
            )
        )
        for row in rows:
            value = row.values.get(POWER_FIELD)
            if isinstance(value, int | float):
                return Power(float(value), row.time)
        return None

    def totals_between(self, household: Household, start: dt.datetime, end: dt.datetime) -> dict[str, float]:
        """The household's totals per kind in [start, end) (local times): whole days from the daily
        ledger, the rest of the last day from its quarter hours. For comparing an unfinished period with
        the same part of the previous one."""
        first_day = start.astimezone(self.tz).date()
        cut_day = end.astimezone(self.tz).date()
        out: dict[str, float] = {}
        midnight = dt.datetime.combine(cut_day, dt.time(), self.tz)
        parts: list[tuple[dt.datetime, dt.datetime, bool]] = []  # (start, end, from the daily ledger)
        if cut_day > first_day:
            parts.append((start, midnight, True))
        if end > midnight:
            parts.append((max(start, midnight), end, False))
        for where in parts:
            rows = self.reader.rows(
                statement(
                    'SELECT sum("kwh") AS "kwh" FROM {m} WHERE {hk} = {h} AND {bk} = {b} AND time >= {start} '
                    'AND time < {end} GROUP BY "kind"',
                    m=Ident(LEDGER_RP, DAILY if where[2] else QUARTER_HOURS),
                    hk=Ident("household"),
                    h=household.name,
                    bk=Ident("building"),
                    b=household.building,
                    start=where[0],
                    end=where[1],
                )
            )
            for row in rows:
                kind = row.tags.get("kind", "")
                if kind in KINDS and row.values.get("kwh") is not None:
                    out[kind] = out.get(kind, 0.0) + float(row.values["kwh"])
        return _without_idle_export(out)

    # ------------------------------------------------------------------ the quarter (never one household)

    def _per_household(self, days: list[DayFigures]) -> dict[HouseholdKey, dict[str, float]]:
        per: dict[HouseholdKey, dict[str, float]] = defaultdict(dict)
        for day in days:
            for key, kinds in day.households.items():
                for kind, value in kinds.items():
                    per[key][kind] = per[key].get(kind, 0.0) + value
        return per

    def _quarter(self, days: list[DayFigures]) -> QuarterFigures:
        per = self._per_household(days)
        enough = len(per) >= MIN_HOUSEHOLDS
        columns: dict[str, list[float]] = defaultdict(list)
        for totals in per.values():
            for kind, value in totals.items():
                columns[kind].append(value)
            if "import" in totals:
                columns["consumption"].append(consumption(totals)[0])
        typicals = {
            kind: typical(columns.get(kind, [])) if enough else None for kind in (*KINDS, "consumption")
        }
        if not enough:
            return QuarterFigures(False, typicals, None, None)
        pv_ok = self._pv_installations(days, per) >= MIN_HOUSEHOLDS
        quarter_import = sum(day.quarter_import for day in days)
        quarter_export = sum(day.quarter_export for day in days)
        quarter_pv = sum(day.quarter_pv for day in days)
        external = sum(day.external for day in days)
        quarter_consumption = max(0.0, quarter_import + quarter_pv - quarter_export)
        quarter_self = _share(quarter_consumption - external, quarter_consumption)
        return QuarterFigures(
            True,
            typicals,
            round_share(None if quarter_self is None else max(0.0, quarter_self)) if pv_ok else None,
            round_share(_share(quarter_pv, quarter_consumption)) if pv_ok else None,
        )

    @staticmethod
    def _pv_installations(days: list[DayFigures], per: dict[HouseholdKey, dict[str, float]]) -> int:
        buildings: set[str] = set()
        for day in days:
            buildings |= day.pv_buildings
        return sum(1 for totals in per.values() if totals.get("pv", 0.0) > 0) + len(buildings)

    def quarter_figures(self, period: Period, *, max_missing: int | None = None) -> QuarterFigures:
        """The quarter's figures of the period as residents see them. A settled period's figures (every
        day two days in the past) are kept as first shown, for the life of the process: a later deletion
        of a household does not change them, so comparing before and after reveals nothing (M1 of the
        review of issue 14). ``max_missing``: see :meth:`QuarterDays.days` (raises
        :class:`QuarterPending`)."""
        key = (period.view, period.start)
        frozen = self._frozen.get(key)
        if frozen is not None:
            return frozen
        figures = self._quarter(self.quarter.days(period.start, period.end, max_missing=max_missing))
        if self.quarter.settled(period.end):
            self._frozen[key] = figures
        return figures

    def community(
        self,
        household: Household,
        period: Period,
        totals: dict[str, float],
        *,
        max_missing: int | None = None,
    ) -> Community:
        """The household's shares next to the quarter's figures. When the kept quarter figures disagree
        with the household's own totals (a late ledger rollup), the period's days are computed again."""
        key = (household.name, household.building)
        days = self.quarter.days(period.start, period.end, max_missing=max_missing)
        recheck = (period.view, period.start, key, round(totals.get("import", 0.0), 3))
        if self.quarter.settled(period.end) and _stale(days, key, totals) and recheck not in self._rechecked:
            # once per own figure: the day view's own numbers come from the quarter hours, the kept days
            # from the daily ledger; should those differ for good, a page must not recompute every time
            self._rechecked.add(recheck)
            self.quarter.forget(period.start, period.end)
            self._thaw(period)
            days = self.quarter.days(period.start, period.end, max_missing=max_missing)
        quarter = self.quarter_figures(period, max_missing=max_missing)
        shared = sum(day.shared.get(key, 0.0) for day in days)
        own_consumption, own_used = consumption(totals)
        covered: float | None = None
        if quarter.pv_share is not None:  # the neighbours' surplus only where the quarter's PV is shown
            frozen_key = (period.view, period.start, key)
            covered = self._frozen_covered.get(frozen_key)
            if frozen_key not in self._frozen_covered:
                covered = round_share(_share(min(own_consumption, own_used + shared), own_consumption))
                if self.quarter.settled(period.end):
                    self._frozen_covered[frozen_key] = covered
        return Community(
            consumption=own_consumption,
            own_pv_used=own_used,
            shared=shared,
            self_sufficiency=_share(own_used, own_consumption),
            quarter_pv_covered=covered,
            quarter=quarter,
        )

    def forget_kept(self) -> None:
        """Forget every kept period figure, as after a start (the bench's cold runs)."""
        self._frozen.clear()
        self._frozen_covered.clear()

    def _thaw(self, period: Period) -> None:
        """Forget kept figures of periods overlapping ``period`` (their days are being recomputed)."""
        for frozen in list(self._frozen):
            if _overlaps(frozen[0], frozen[1], period, self.tz):
                self._frozen.pop(frozen, None)
        for covered in list(self._frozen_covered):
            if _overlaps(covered[0], covered[1], period, self.tz):
                self._frozen_covered.pop(covered, None)


def _overlaps(view: str, start: dt.date, period: Period, tz: ZoneInfo) -> bool:
    other = Period(view, start, tz)  # type: ignore[arg-type]  # keys come from Periods
    return other.start < period.end and period.start < other.end


def _stale(days: list[DayFigures], key: HouseholdKey, totals: dict[str, float]) -> bool:
    """Whether the kept days disagree with the household's own import (read just now from the ledger)."""
    kept = sum(day.households.get(key, {}).get("import", 0.0) for day in days)
    own = totals.get("import", 0.0)
    return abs(kept - own) > 0.001 + 1e-6 * abs(own)


def _without_idle_export(totals: dict[str, float]) -> dict[str, float]:
    """Every main meter has an export register; without own PV and with nothing exported in the period,
    an "export 0" line would only puzzle (L4 of the review of issue 14)."""
    if "export" in totals and "pv" not in totals and totals["export"] <= 0:
        totals = {kind: value for kind, value in totals.items() if kind != "export"}
    return totals


def ledger_rows(
    reader: Reader, household: Household, start: dt.datetime, end: dt.datetime, *, daily: bool
) -> list[Row]:
    """The household's own ledger rows (every device and kind) in [start, end), oldest first."""
    rows = reader.rows(
        statement(
            'SELECT "kwh" FROM {m} WHERE {hk} = {h} AND {bk} = {b} AND time >= {start} AND time < {end} '
            'GROUP BY "device", "kind"',
            m=Ident(LEDGER_RP, DAILY if daily else QUARTER_HOURS),
            hk=Ident("household"),
            h=household.name,
            bk=Ident("building"),
            b=household.building,
            start=start,
            end=end,
        )
    )
    return sorted(rows, key=lambda row: (row.time, row.tags.get("device", ""), row.tags.get("kind", "")))
