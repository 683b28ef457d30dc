"""The portal's numbers from the energy ledger (InfluxDB, retention policy ``rollups``): ``energy`` holds
each device's kWh per quarter hour, ``energy_1d`` per local day; tags ``household``, ``building``,
``device``, ``kind`` (import, export, pv, heat, ev). Definitions in docs/portal.md.

Every statement is built by :func:`ingest.influxql.statement`; the household always comes from the
caller (the session's user), filtered by household *and* building name (a household's name is unique
only within its building). Figures about other households leave this module only as a median over at
least :data:`MIN_HOUSEHOLDS` households, or summed over the whole quarter.
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
from ingest.portal.quarter import HouseholdKey, QuarterDays
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
class Community:
    """Shares (0…1, None without consumption) for the household and the quarter; kWh as defined in
    docs/portal.md."""

    consumption: float
    own_pv_used: float
    shared: float  # the household's share of the quarter's surplus, per quarter hour
    self_sufficiency: float | None
    quarter_pv_covered: float | None
    quarter_consumption: float
    quarter_self_sufficiency: float | None
    quarter_pv_share: float | None
    quarter_pv: float


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
        return {
            row.tags["kind"]: float(row.values["kwh"])
            for row in rows
            if row.tags.get("kind") in KINDS and row.values.get("kwh") is not None
        }

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

    # ------------------------------------------------------------------ the quarter (never one household)

    def median(self, period: Period, *, max_missing: int | None = None) -> dict[str, Any]:
        """The quarter's median household per kind and for consumption, each over the households that
        have that kind, and only where at least :data:`MIN_HOUSEHOLDS` have it (else None); plus how
        many households were counted. No single household's value leaves. ``max_missing``: see
        :meth:`QuarterDays.days` (raises :class:`QuarterPending`)."""
        per: dict[HouseholdKey, dict[str, float]] = defaultdict(dict)
        for day in self.quarter.days(period.start, period.end, max_missing=max_missing):
            for key, kinds in day.households.items():
                for kind, value in kinds.items():
                    per[key][kind] = per[key].get(kind, 0.0) + value
        out: dict[str, Any] = {"households": len(per)}
        columns: dict[str, list[float]] = defaultdict(list)
        for totals in per.values():
            for kind, value in totals.items():
                columns[kind].append(value)
            if "import" in totals:
                columns["consumption"].append(consumption(totals)[0])
        for kind in (*KINDS, "consumption"):
            values = columns.get(kind, [])
            out[kind] = statistics.median(values) if len(values) >= MIN_HOUSEHOLDS else None
        return out

    def community(
        self,
        household: Household,
        period: Period,
        totals: dict[str, float],
        *,
        max_missing: int | None = None,
    ) -> Community:
        days = self.quarter.days(period.start, period.end, max_missing=max_missing)
        key = (household.name, household.building)
        shared = sum(day.shared.get(key, 0.0) for day in days)
        own_consumption, own_used = consumption(totals)
        quarter_import = sum(day.quarter_import for day in days)
        quarter_export = sum(day.quarter_export for day in days)
        quarter_pv = sum(day.quarter_pv for day in days)
        external = sum(day.external for day in days)
        quarter_consumption = max(0.0, quarter_import + quarter_pv - quarter_export)
        quarter_self = _share(quarter_consumption - external, quarter_consumption)
        return Community(
            consumption=own_consumption,
            own_pv_used=own_used,
            shared=shared,
            self_sufficiency=_share(own_used, own_consumption),
            quarter_pv_covered=_share(min(own_consumption, own_used + shared), own_consumption),
            quarter_consumption=quarter_consumption,
            quarter_self_sufficiency=None if quarter_self is None else max(0.0, quarter_self),
            quarter_pv_share=_share(quarter_pv, quarter_consumption),
            quarter_pv=quarter_pv,
        )


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
