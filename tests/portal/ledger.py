"""A small energy ledger written directly per the data contract (``rollups.energy`` per quarter hour,
``rollups.energy_1d`` per local day; tags household, building, device, kind; field kwh) into a real
InfluxDB, with the written points kept so that tests compute what they expect from them.

Households: seven, two named ``EG`` in different buildings (a name is unique only per building), one
named like an injection; each household's values are scaled by its own factor, so a leak shows. Haus 2
has a building PV without household tag. Quarter hours for every day of May and June 2025 (of four
households only on :data:`SPARSE_DAY`), each daily point the sum of its day's quarter hours; and today's
quarter hours, for the "now" view.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import httpx

from ingest import influxql
from ingest.localservices import InfluxDB
from tests.helpers import InfluxQuery

TZ = ZoneInfo("Europe/Berlin")
DAY = dt.date(2025, 6, 18)
MONTHS = (dt.date(2025, 5, 1), dt.date(2025, 7, 1))  # daily points for [May, July)
SPARSE_DAY = dt.date(2025, 5, 10)  # daily points of four households only: too few for a median
HOUSEHOLDS = (
    ("hh-001", "Haus 1"),
    ("hh-002", "Haus 1"),
    ("hh-003", "Haus 2"),
    ("EG", "Haus 2"),
    ("EG", "Haus 3"),
    ("x' OR '1'='1", "Haus 3"),
    ('hh 7, "quoted"', "Haus 4"),
)
BUILDING_PV = ("Haus 2", "pv-dach-haus2")
FACTORS = (1.0, 1.13, 1.29, 1.47, 1.61, 1.83, 2.07, 2.21, 2.6)  # per household; 8: the building PV


def kinds_of(index: int) -> tuple[str, ...]:
    kinds = ["import", "heat"]
    if index in (0, 1, 4):
        kinds += ["pv", "export"]
    if index in (0, 3):
        kinds.append("ev")
    return tuple(kinds)


def kwh(index: int, kind: str, slot: int, day_number: int) -> float:
    """Deterministic, distinct per household (factor index+1); PV and export only by day (slots 28–80)."""
    base = {"import": 0.10, "export": 0.081, "pv": 0.203, "heat": 0.307, "ev": 0.053}[kind]
    if kind in ("pv", "export") and not 28 <= slot < 80:
        return 0.0
    return round(base * FACTORS[index] * (1 + (slot * 7 + day_number) % 11 / 10), 6)


def _escape(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


@dataclass
class Ledger:
    influx: InfluxQuery
    # (household, building, kind, device) -> {utc time: kwh}
    quarter_hours: dict[tuple[str, str, str, str], dict[dt.datetime, float]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    days: dict[tuple[str, str, str, str], dict[dt.datetime, float]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def write(self, lines: list[str]) -> None:
        for chunk in range(0, len(lines), 5000):
            response = httpx.post(
                f"{self.influx.url}/write",
                params={"db": self.influx.database, "rp": "rollups", "precision": "s"},
                content="\n".join(lines[chunk : chunk + 5000]).encode(),
                trust_env=False,
                timeout=60,
            )
            assert response.status_code == 204, response.text

    def line(
        self,
        measurement: str,
        household: str,
        building: str,
        kind: str,
        device: str,
        moment: dt.datetime,
        value: float,
    ) -> str:
        tags = f"building={_escape(building)},device={_escape(device)}"
        if household:
            tags += f",household={_escape(household)}"
        return f"{measurement},{tags},kind={kind} kwh={value} {int(moment.timestamp())}"

    def fill_day(self, day: dt.date, day_number: int, households: tuple[int, ...]) -> list[str]:
        lines = []
        start = dt.datetime.combine(day, dt.time(), TZ).astimezone(dt.UTC)
        slots = int(
            (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), TZ) - start).total_seconds() // 900
        )
        for index in households:
            name, building = HOUSEHOLDS[index]
            for kind in kinds_of(index):
                device = f"{name}-{kind}"
                for slot in range(slots):
                    moment = start + dt.timedelta(minutes=15 * slot)
                    value = kwh(index, kind, slot, day_number)
                    self.quarter_hours[(name, building, kind, device)][moment] = value
                    lines.append(self.line("energy", name, building, kind, device, moment, value))
        building, device = BUILDING_PV
        for slot in range(slots):
            moment = start + dt.timedelta(minutes=15 * slot)
            value = kwh(8, "pv", slot, day_number)
            self.quarter_hours[("", building, "pv", device)][moment] = value
            lines.append(self.line("energy", "", building, "pv", device, moment, value))
        return lines

    def fill_days(self) -> list[str]:
        """Every day of :data:`MONTHS`: quarter hours, and the daily points as their sums."""
        lines = []
        day = MONTHS[0]
        number = 0
        while day < MONTHS[1]:
            households = (0, 1, 2, 3) if day == SPARSE_DAY else tuple(range(len(HOUSEHOLDS)))
            lines += self.fill_day(day, number, households)
            start = dt.datetime.combine(day, dt.time(), TZ).astimezone(dt.UTC)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), TZ).astimezone(dt.UTC)
            slots = [
                start + dt.timedelta(minutes=15 * i) for i in range(int((end - start).total_seconds()) // 900)
            ]
            for key, points in self.quarter_hours.items():
                values = [points[m] for m in slots if m in points]
                if values:
                    self.days[key][start] = round(sum(values), 6)
                    lines.append(self.line("energy_1d", *key, start, self.days[key][start]))
            day += dt.timedelta(days=1)
            number += 1
        return lines


def make_ledger(influxdb: InfluxDB, *, today: dt.date) -> Ledger:
    database = f"portal_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(influxdb.url, database)
    for q in (
        f"CREATE DATABASE {influxql.ident(database)}",
        f'CREATE RETENTION POLICY "rollups" ON {influxql.ident(database)} DURATION INF REPLICATION 1',
    ):
        httpx.post(f"{influxdb.url}/query", data={"q": q}, trust_env=False).raise_for_status()
    ledger = Ledger(influx)
    ledger.write(ledger.fill_days())
    ledger.write(ledger.fill_day(today, 3, tuple(range(len(HOUSEHOLDS)))))
    return ledger


def totals(
    table: dict[tuple[str, str, str, str], dict[dt.datetime, float]],
    household: str,
    building: str,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (name, place, kind, _device), points in table.items():
        if (name, place) == (household, building):
            for moment, value in points.items():
                if start <= moment < end:
                    out[kind] += value
    return dict(out)
