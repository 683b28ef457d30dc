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

**Who contributed.** The ledger tags its points with the registry *names* current when the ingester
enriched each reading (``household``, ``building``) and the device's native id (``device``). The registry
keeps no history of names: a rename just overwrites ``Household.name``/``Building.name``. What it does keep
is every device's assignment history (``Assignment``: household id, building id, ``[valid_from,
valid_to)``), and ids never change. So a ledger point is credited to the household and building the
registry's assignment history names for its device at its quarter hour (:class:`Identities`), and the
disclosure rule counts households by that id: a household renamed mid-day is one household, not two, and
a renamed building keeps its rows. Only a point whose device the registry does not know (or whose native id
is ambiguous there) falls back to the names: the registry's current ones, else the tags as written.

**Labels.** Buildings are ``building-01``, ``building-02`` … and street sensors ``station-01`` … numbered in
the order the registry created them (its ids: new ones are appended, so a label stays with its building or
sensor through renames), never a name, address, device or gateway identifier.

**Coordinates.** ``Device.location`` has no history either: it is where the device is *now*. A station's
latitude and longitude (``"lat, lon"`` decimal degrees there; other text such as "Straße" is not published)
are therefore written only on rows inside the device's current assignment, and only when that assignment is
the street place without household (open-ended). A sensor since moved into a flat, or taken down, gets empty
coordinates on all its street rows, so a flat's location is never published; its rows stay. Rows of times
when the registry does not have the device at the street place are not written at all.
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
from ingest.opendata.disclosure import Contributor
from ingest.opendata.energy_tables import DayEnergy
from ingest.portal.reader import Reader
from ingest.registry.models import Assignment, Building, Device, Household

LEDGER = Ident("rollups", "energy")
ENVIRONMENT = "environment"
QUARTER_HOUR = dt.timedelta(minutes=15)
TEN_MINUTES = dt.timedelta(minutes=10)
STREET_FIELDS = ("temperature_c", "humidity_pct", "co2_ppm", "pm25_ugm3", "pm10_ugm3", "noise_dba")
STREET_DIGITS = 2
STREET_PROFILES = ("ttn-v3",)
_LAT_LON = re.compile(r"^\s*([-+]?[0-9]{1,2}(?:\.[0-9]+)?)\s*[,;]\s*([-+]?[0-9]{1,3}(?:\.[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Span:
    """One assignment of the registry: ``[start, end)`` (end None: open), household id (None: the
    building's own device), building id."""

    start: dt.datetime
    end: dt.datetime | None
    household: int | None
    building: int

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start < end and (self.end is None or self.end > start)


@dataclass(frozen=True)
class Station:
    label: str
    lat: float | None  # where the device is now: written only on rows inside ``located``
    lon: float | None
    street: tuple[Span, ...] = ()  # the device's assignments to the street place without household
    located: Span | None = None  # its current assignment, when that is the street place


@dataclass(frozen=True)
class Identities:
    """The registry's stable ids behind the ledger's name tags (module docstring, "Who contributed")."""

    spans: dict[str, tuple[Span, ...]]  # device native id -> assignments of every device with that id
    households: dict[tuple[str, str], int]  # current (household name, building name) -> household id
    buildings: dict[str, int]  # current building name -> id
    building_names: dict[int, str]  # id -> current name

    def contributor(
        self, device: str, household: str, building: str, start: dt.datetime, end: dt.datetime
    ) -> Contributor:
        """(household key, building's current name) of a ledger point of ``device`` in ``[start, end)``,
        tagged ``household``/``building``. The household key is opaque and never published."""
        places = {
            (span.household, span.building)
            for span in self.spans.get(device, ())
            if span.overlaps(start, end)
        }
        if len(places) > 1:  # a native id on two gateways, or a move within the quarter hour: the tags decide
            places = {
                place
                for place in places
                if self.building_names.get(place[1]) == building
                and (place[0] is None) == (not household)
                and (place[0] is None or self.households.get((household, building)) == place[0])
            }
        if len(places) == 1:
            household_id, building_id = next(iter(places))
        else:
            building_id = self.buildings.get(building, -1)
            household_id = self.households.get((household, building)) if household else None
            if household and household_id is None:  # not in the registry (any more) under this name
                return (f"tag:{household}@{building}", self.building_names.get(building_id, building))
        key = "" if household_id is None else f"id:{household_id}"
        return (key, self.building_names.get(building_id, building))


@dataclass(frozen=True)
class PublicLabels:
    buildings: dict[str, str]  # a building's current registry name -> public label, in label order
    stations: dict[tuple[str, str], Station]  # (gateway name, device native id) -> station
    identities: Identities | None = None  # None: contributors by the ledger's name tags


def lat_lon(location: str) -> tuple[float, float] | None:
    """Decimal degrees ``"52.5163, 13.3777"`` in a registry location, else None."""
    match = _LAT_LON.match(location)
    if match is None:
        return None
    lat, lon = float(match[1]), float(match[2])
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


def load_identities(session: Session) -> Identities:
    """Every assignment of the registry, by the device's native id, and the current names."""
    buildings = {
        building_id: name for building_id, name in session.execute(select(Building.id, Building.name))
    }
    households = {
        (name, buildings[building_id]): household_id
        for household_id, name, building_id in session.execute(
            select(Household.id, Household.name, Household.building_id)
        )
    }
    spans: dict[str, list[Span]] = defaultdict(list)
    for native_id, valid_from, valid_to, household_id, building_id in session.execute(
        select(
            Device.native_id,
            Assignment.valid_from,
            Assignment.valid_to,
            Assignment.household_id,
            Assignment.building_id,
        )
        .join(Assignment, Assignment.device_id == Device.id)
        .order_by(Assignment.valid_from)
    ):
        spans[native_id].append(Span(valid_from, valid_to, household_id, building_id))
    return Identities(
        {device: tuple(found) for device, found in spans.items()},
        households,
        {name: building_id for building_id, name in buildings.items()},
        buildings,
    )


def load_labels(session: Session, street_building: str) -> PublicLabels:
    """Public labels of the registry's buildings (without the street place) and street stations, and the
    registry's identities for counting households."""
    names = session.execute(select(Building.name).order_by(Building.id)).scalars().all()
    buildings = {
        name: f"building-{number:02d}"
        for number, name in enumerate((n for n in names if n != street_building), start=1)
    }
    street_id = session.execute(select(Building.id).where(Building.name == street_building)).scalar()
    history: dict[int, list[Assignment]] = defaultdict(list)
    for assignment in session.execute(
        select(Assignment).order_by(Assignment.device_id, Assignment.valid_from)
    ).scalars():
        history[assignment.device_id].append(assignment)
    stations = {}
    number = 0
    for device_id in sorted(history):
        assignments = history[device_id]
        street = tuple(
            Span(a.valid_from, a.valid_to, None, a.building_id)
            for a in assignments
            if a.building_id == street_id and a.household_id is None
        )
        if not street:
            continue
        number += 1
        latest = assignments[-1]
        located = next((span for span in street if span.start == latest.valid_from), None)
        if located is not None and located.end is not None:
            located = None  # taken down: where it is now is not where it measured
        device = assignments[0].device
        place = lat_lon(device.location or "") if located is not None else None
        stations[(device.gateway.name, device.native_id)] = Station(
            f"station-{number:02d}",
            place[0] if place else None,
            place[1] if place else None,
            street,
            located if place else None,
        )
    return PublicLabels(buildings, stations, load_identities(session))


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


def ledger_day(
    reader: Reader, midnight: dt.datetime, next_midnight: dt.datetime, labels: PublicLabels | None = None
) -> DayEnergy:
    """The ledger's quarter hours of one local day, per contributor and kind: per household and building
    as the registry's assignment history names them (``labels.identities``), else by the name tags."""
    identities = labels.identities if labels is not None else None
    rows = reader.rows(
        statement(
            'SELECT "kwh" FROM {m} WHERE time >= {start} AND time < {end} GROUP BY "household", "building", '
            '"device", "kind"',
            m=LEDGER,
            start=midnight,
            end=next_midnight,
        )
    )
    day = DayEnergy(quarter_hours(midnight, next_midnight))
    for row in rows:
        value = row.values.get("kwh")
        if isinstance(value, int | float):
            household, building = row.tags.get("household", ""), row.tags.get("building", "")
            who = (household, building)
            if identities is not None:
                device = row.tags.get("device", "")
                who = identities.contributor(device, household, building, row.time, row.time + QUARTER_HOUR)
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
        until = row.time + TEN_MINUTES
        if not any(span.overlaps(row.time, until) for span in station.street):
            continue  # the registry does not have the device at the street place then
        located = station.located is not None and station.located.overlaps(row.time, until)
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
            "lat": station.lat if located else None,
            "lon": station.lon if located else None,
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
