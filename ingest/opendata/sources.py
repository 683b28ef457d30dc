"""What the export reads: the energy ledger and the street sensors from InfluxDB (InfluxQL built by
:func:`ingest.influxql.statement`, read by the portal's :class:`~ingest.portal.reader.Reader`), and the
public labels from the registry.

**Which sensors are street sensors.** The registry has no indoor/outdoor field; the project's convention
(docs/dashboards.md, the demo's seed) is that street sensors are devices assigned to a building *without a
household*, the building being the quarter's outdoor place (``opendata.street_building``, the demo's
``Quartiersplatz``). The export reads only ``environment`` series whose ``building`` tag is that building,
whose ``household`` tag is empty (readings the ingester's enrichment attributed to that outdoor place at
the time they were measured) and whose ``profile`` is a street sensor's (:data:`STREET_PROFILES`, the
LoRaWAN street sensors): :func:`street_condition`, shared with the public quarter page. Of those, only
devices the registry lists as ever assigned there without a household are written. Every other environment
sensor (a room's, a stairwell's, one that was in a flat before it went outside, for that time) counts as
indoor and is never read.

**Labels.** Buildings are ``building-01``, ``building-02`` … and street sensors ``station-01`` … numbered in
the order the registry created them (new ones are appended, so a label stays with its building or sensor),
never a name, address, device or gateway identifier. A station's latitude and longitude come from the
device's registry ``location`` when it is written as decimal degrees ``"lat, lon"``; other text there
(e.g. "Straße") is not published.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.influxql import Duration, Ident, Raw, any_of, statement
from ingest.opendata.energy_tables import DayEnergy
from ingest.portal.reader import Reader
from ingest.registry.models import Assignment, Building, Device, Gateway

LEDGER = Ident("rollups", "energy")
ENVIRONMENT = "environment"
QUARTER_HOUR = dt.timedelta(minutes=15)
TEN_MINUTES = dt.timedelta(minutes=10)
STREET_FIELDS = ("temperature_c", "humidity_pct", "co2_ppm", "pm25_ugm3", "pm10_ugm3", "noise_dba")
STREET_DIGITS = 2
STREET_PROFILES = ("ttn-v3",)
_LAT_LON = re.compile(r"^\s*([-+]?[0-9]{1,2}(?:\.[0-9]+)?)\s*[,;]\s*([-+]?[0-9]{1,3}(?:\.[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Station:
    label: str
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class PublicLabels:
    buildings: dict[str, str]  # the ledger's building tag (registry name) -> public label, in label order
    stations: dict[tuple[str, str], Station]  # (gateway name, device native id) -> station


def lat_lon(location: str) -> tuple[float, float] | None:
    """Decimal degrees ``"52.5163, 13.3777"`` in a registry location, else None."""
    match = _LAT_LON.match(location)
    if match is None:
        return None
    lat, lon = float(match[1]), float(match[2])
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


def load_labels(session: Session, street_building: str) -> PublicLabels:
    """Public labels of the registry's buildings (without the street place) and street stations."""
    names = session.execute(select(Building.name).order_by(Building.id)).scalars().all()
    buildings = {
        name: f"building-{number:02d}"
        for number, name in enumerate((n for n in names if n != street_building), start=1)
    }
    outdoor = session.execute(
        select(Device.id, Gateway.name, Device.native_id, Device.location)
        .join(Assignment, Assignment.device_id == Device.id)
        .join(Building, Building.id == Assignment.building_id)
        .join(Gateway, Gateway.id == Device.gateway_id)
        .where(Building.name == street_building, Assignment.household_id.is_(None))
        .distinct()
        .order_by(Device.id)
    ).all()
    stations = {}
    for number, (_, gateway, native_id, location) in enumerate(outdoor, start=1):
        place = lat_lon(location or "")
        stations[(gateway, native_id)] = Station(
            f"station-{number:02d}", place[0] if place else None, place[1] if place else None
        )
    return PublicLabels(buildings, stations)


def street_condition(street_building: str) -> Raw:
    """The InfluxQL condition selecting street sensors' ``environment`` series, never indoor ones."""
    return Raw(
        statement(
            "{bk} = {b} AND {hk} = {none} AND {profiles}",
            bk=Ident("building"),
            b=street_building,
            hk=Ident("household"),
            none="",
            profiles=any_of("profile", STREET_PROFILES),
        )
    )


def quarter_hours(midnight: dt.datetime, next_midnight: dt.datetime) -> list[dt.datetime]:
    """Every 15-minute bucket start of a local day, aware in UTC (92, 96 or 100)."""
    start, end = midnight.astimezone(dt.UTC), next_midnight.astimezone(dt.UTC)
    count = int((end - start) / QUARTER_HOUR)
    return [start + QUARTER_HOUR * index for index in range(count)]


def ledger_day(reader: Reader, midnight: dt.datetime, next_midnight: dt.datetime) -> DayEnergy:
    """The ledger's quarter hours of one local day, per household/building contributor and kind."""
    rows = reader.rows(
        statement(
            'SELECT "kwh" FROM {m} WHERE time >= {start} AND time < {end} GROUP BY "household", "building", '
            '"kind"',
            m=LEDGER,
            start=midnight,
            end=next_midnight,
        )
    )
    day = DayEnergy(quarter_hours(midnight, next_midnight))
    for row in rows:
        value = row.values.get("kwh")
        if isinstance(value, int | float):
            who = (row.tags.get("household", ""), row.tags.get("building", ""))
            day.add(row.time, row.tags.get("kind", ""), who, float(value))
    return day


def street_rows(
    reader: Reader,
    labels: PublicLabels,
    *,
    street_building: str,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
    raw_rp: str | None = None,
) -> list[dict[str, object]]:
    """``street-environment-10min`` rows of ``[start, end)``: 10-minute means of the street stations,
    ordered by time and station. A sensor with several channels (CayenneLPP) gets ``label/channel``.
    ``raw_rp``: the raw readings' retention policy (``influx.retention_policy``; None: the default)."""
    means = ", ".join(f"mean({{f{i}}}) AS {{f{i}}}" for i in range(len(STREET_FIELDS)))
    fields = {f"f{i}": Ident(name) for i, name in enumerate(STREET_FIELDS)}
    rows = reader.rows(
        statement(
            f"SELECT {means} FROM {{m}} WHERE {{street}} AND time >= {{start}} AND time < {{end}} "
            'GROUP BY time({every}), "gateway", "device", "channel" fill(none)',
            m=Ident(raw_rp, ENVIRONMENT) if raw_rp else Ident(ENVIRONMENT),
            street=street_condition(street_building),
            start=start,
            end=end,
            every=Duration(TEN_MINUTES),
            **fields,
        )
    )
    out: dict[tuple[dt.datetime, str], dict[str, object]] = {}
    for row in rows:
        station = labels.stations.get((row.tags.get("gateway", ""), row.tags.get("device", "")))
        if station is None:  # not listed in the registry as a street sensor: not published
            continue
        channel = row.tags.get("channel", "")
        label = f"{station.label}/{channel}" if channel else station.label
        values = {
            name: round(float(value), STREET_DIGITS) if isinstance(value, int | float) else None
            for name in STREET_FIELDS
            for value in (row.values.get(name),)
        }
        if all(value is None for value in values.values()):
            continue
        out[(row.time, label)] = {
            "start": row.time.astimezone(tz).isoformat(timespec="seconds"),
            "station": label,
            "lat": station.lat,
            "lon": station.lon,
            **values,
            "suppressed": [],
        }
    return [out[key] for key in sorted(out)]


def group_by_day(rows: list[dict[str, object]]) -> dict[dt.date, list[dict[str, object]]]:
    """Rows by the local date of their ``start``."""
    out: dict[dt.date, list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        out[dt.date.fromisoformat(str(row["start"])[:10])].append(row)
    return out
