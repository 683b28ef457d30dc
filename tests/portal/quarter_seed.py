"""A small quarter for the public page's tests, written into a real InfluxDB per the data contract: the
energy ledger (``rollups.energy`` per quarter hour, ``rollups.energy_1d`` per local day; tags household,
building, device, kind; field kwh) for every day of the current month up to now, and the raw
``environment`` measurement of today: street sensors (the outdoor place, no household) and, to be left
out, a flat's room sensor and a stairwell sensor (a building's, no household).

The points are kept, so that tests compute what the page must show from them (docs/portal.md's
definitions, written out again here independently of the code under test).

Households: ``households`` of them in two buildings, each with grid import; the first ``pv`` of them with
PV and export. Values differ per household (its own factor) and per quarter hour; PV and export only
between 07:00 and 20:00 UTC, so that both the netting (import and export in the same quarter hour) and
plain import show up.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import httpx

from ingest import influxql

TZ = ZoneInfo("Europe/Berlin")
STREET = "Quartiersplatz"
SLOT = dt.timedelta(minutes=15)
Key = tuple[str, str, str]  # household ("" for a building's device), building, kind


def _escape(text: str) -> str:
    return text.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def _kwh(index: int, kind: str, moment: dt.datetime, giant: float | None, daylight: bool) -> float:
    slot = (moment.hour * 4 + moment.minute // 15) % 96
    factor = giant if giant is not None and index == 0 else 1.0 + 0.37 * index
    if daylight and kind in ("pv", "export") and not 28 <= slot < 80:
        return 0.0
    base = {"import": 0.11, "export": 0.07, "pv": 0.19}[kind]
    return round(base * factor * (1 + (slot * 7 + moment.day) % 11 / 10), 6)


@dataclass
class Quarter:
    url: str
    database: str
    now: dt.datetime  # UTC: the last point written lies in the quarter hour containing it
    quarter_hours: dict[Key, dict[dt.datetime, float]] = field(default_factory=lambda: defaultdict(dict))
    street: dict[str, list[tuple[dt.datetime, float]]] = field(default_factory=lambda: defaultdict(list))

    # ------------------------------------------------------------------ expectations

    def midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), TZ)

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(TZ).date()

    def slot_totals(self, start: dt.datetime) -> dict[str, float]:
        """The quarter's import and export (households' meters) and PV (all) in the quarter hour."""
        out: dict[str, float] = defaultdict(float)
        for (household, _building, kind), points in self.quarter_hours.items():
            if start in points and (household or kind == "pv"):
                out[kind] += points[start]
        return dict(out)

    def self_sufficiency(self, start: dt.datetime, end: dt.datetime) -> float:
        """docs/portal.md: 1 - sum_t max(0, Iq(t) - Eq(t)) / (sum I + sum P - sum E)."""
        moments = sorted({m for points in self.quarter_hours.values() for m in points if start <= m < end})
        external = consumption = 0.0
        for moment in moments:
            totals = self.slot_totals(moment)
            imported, exported = totals.get("import", 0.0), totals.get("export", 0.0)
            external += max(0.0, imported - exported)
            consumption += imported + totals.get("pv", 0.0) - exported
        return 1.0 - external / consumption

    # ------------------------------------------------------------------ writing

    def write(self, lines: list[str], *, rp: str | None = None) -> None:
        params = {"db": self.database, "precision": "s"} | ({"rp": rp} if rp else {})
        for chunk in range(0, len(lines), 5000):
            response = httpx.post(
                f"{self.url}/write",
                params=params,
                content="\n".join(lines[chunk : chunk + 5000]).encode(),
                trust_env=False,
                timeout=60,
            )
            assert response.status_code == 204, response.text

    def drop(self) -> None:
        httpx.post(
            f"{self.url}/query", data={"q": f"DROP DATABASE {influxql.ident(self.database)}"}, trust_env=False
        )


def _line(measurement: str, tags: dict[str, str], fields: str, moment: dt.datetime) -> str:
    tag_text = ",".join(f"{key}={_escape(value)}" for key, value in sorted(tags.items()) if value)
    return f"{measurement},{tag_text} {fields} {int(moment.timestamp())}"


def seed(
    url: str,
    *,
    now: dt.datetime,
    households: int = 6,
    pv: int = 5,
    street_sensors: int = 2,
    giant: float | None = None,
    daylight: bool = True,
    late: int = 0,
) -> Quarter:
    """A database of its own with the month so far (ledger) and today's environment readings.
    ``giant``: the first household's factor instead of 1 (the others': 1.37, 1.74, …). ``daylight``: PV and
    export only from 07:00 to 20:00 UTC (False: around the clock, so that a test at any hour sees them).
    ``late``: the last household has not delivered its newest ``late`` quarter hours yet (not written)."""
    database = f"quarter_{uuid.uuid4().hex[:8]}"
    for q in (
        f"CREATE DATABASE {influxql.ident(database)}",
        f'CREATE RETENTION POLICY "rollups" ON {influxql.ident(database)} DURATION INF REPLICATION 1',
    ):
        httpx.post(f"{url}/query", data={"q": q}, trust_env=False).raise_for_status()
    quarter = Quarter(url, database, now)
    today = quarter.today
    first = quarter.midnight(today.replace(day=1)).astimezone(dt.UTC)
    last = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    energy: list[str] = []
    daily: dict[tuple[Key, dt.date], float] = defaultdict(float)
    moment = first
    while moment <= last:
        for index in range(households):
            if late and index == households - 1 and moment > last - SLOT * late:
                continue
            name, building = f"hh-{index + 1:02d}", "Haus A" if index % 2 == 0 else "Haus B"
            for kind in ("import", "pv", "export") if index < pv else ("import",):
                value = _kwh(index, kind, moment, giant, daylight)
                quarter.quarter_hours[(name, building, kind)][moment] = value
                daily[((name, building, kind), moment.astimezone(TZ).date())] += value
                tags = {"household": name, "building": building, "kind": kind, "device": f"{name}-{kind}"}
                energy.append(_line("energy", tags, f"kwh={value}", moment))
        moment += SLOT
    for ((name, building, kind), day), value in daily.items():
        tags = {"household": name, "building": building, "kind": kind, "device": f"{name}-{kind}"}
        energy.append(_line("energy_1d", tags, f"kwh={round(value, 6)}", quarter.midnight(day)))
    quarter.write(energy, rp="rollups")

    environment: list[str] = []
    moment = quarter.midnight(today).astimezone(dt.UTC)
    step = dt.timedelta(minutes=5)
    n = 0
    while moment <= now:
        for sensor in range(street_sensors):
            temperature = round(4.0 + sensor + 3.0 * (n % 24) / 24, 2)
            quarter.street["temperature_c"].append((moment, temperature))
            tags = {"building": STREET, "device": f"env-street-{sensor + 1:02d}", "profile": "ttn-v3"}
            fields = f"temperature_c={temperature},humidity_pct={80.0 + sensor},pm25_ugm3={9.0 + n % 3}"
            environment.append(_line("environment", tags, fields, moment))
        # indoors: a flat's living room, and a stairwell sensor of a building (no household): never shown
        room = {
            "household": "hh-01",
            "building": "Haus A",
            "device": "hh-01 Wohnzimmer",
            "profile": "zigbee2mqtt",
        }
        environment.append(
            _line("environment", room, "temperature_c=21.5,humidity_pct=45,co2_ppm=900", moment)
        )
        stairs = {"building": "Haus B", "device": "treppenhaus", "profile": "zigbee2mqtt"}
        environment.append(_line("environment", stairs, "temperature_c=15.5,humidity_pct=55", moment))
        moment += step
        n += 1
    quarter.write(environment)
    return quarter


def street_means(quarter: Quarter, name: str) -> dict[dt.datetime, float]:
    """The 10-minute means over the street sensors (InfluxDB's GROUP BY time(10m) buckets, UTC-aligned)."""
    buckets: dict[dt.datetime, list[float]] = defaultdict(list)
    for moment, value in quarter.street[name]:
        start = moment.replace(minute=moment.minute - moment.minute % 10, second=0, microsecond=0)
        buckets[start].append(value)
    return {start: sum(values) / len(values) for start, values in sorted(buckets.items())}
