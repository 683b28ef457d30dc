"""review18's attacks on the export, against a real InfluxDB and a real registry changed by the registry's
own functions: withheld cells recomputable as a sum (H1), a household or building renamed (H2, M3), a
street sensor moved into a flat (H4), and the household count beside withheld figures (L1)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ingest.config import InfluxSettings
from ingest.localservices import InfluxDB
from ingest.opendata.disclosure import Rule
from ingest.opendata.energy_tables import DayTables, day_tables
from ingest.opendata.export import export_days
from ingest.opendata.settings import OpenDataSettings
from ingest.opendata.sources import ledger_day, load_labels
from ingest.portal.reader import Reader
from ingest.registry.assignments import assignment_at, create_assignment, update_assignment
from ingest.registry.buildings import update_building, update_household
from ingest.registry.db import session_factory
from ingest.registry.fleet import update_device
from ingest.registry.models import Building, Device, Household
from tests.helpers import InfluxQuery
from tests.opendata.helpers import read_json, write_lines
from tests.opendata.registry import STREET_BUILDING, Placed, Registry, build_registry

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Berlin")
DAY_A, DAY_B, DAY_D, DAY_S = (dt.date(2025, 3, day) for day in (10, 11, 13, 14))
HOMES = {
    "Haus A": [f"A{i}" for i in range(6)],
    "Haus B": [f"B{i}" for i in range(4)],
    "Haus D1": [f"D1-{i}" for i in range(4)],
    "Haus D2": [f"D2-{i}" for i in range(5)],
}
STATION = Placed("gw-street", "env-street-01", "ttn-v3", STREET_BUILDING, None, "52.5100, 13.4000")
FLAT = "52.52437, 13.41053"  # where the sensor hangs after it moved into flat A0


def _escape(text: str) -> str:
    return text.replace(" ", "\\ ").replace(",", "\\,")


def slots(day: dt.date) -> list[int]:
    start = dt.datetime.combine(day, dt.time(), TZ).astimezone(dt.UTC)
    return [int((start + dt.timedelta(minutes=15 * i)).timestamp()) for i in range(96)]


def line(seconds: int, kind: str, kwh: float, building: str, household: str | None, device: str) -> str:
    tags = f"building={_escape(building)},device={_escape(device)}"
    if household:
        tags += f",household={_escape(household)}"
    return f"energy,{tags},kind={kind} kwh={kwh} {seconds}"


def ledger() -> list[str]:
    lines = []
    for index, seconds in enumerate(slots(DAY_A)):  # A5 charges alone twice at night, A0..A4 together
        for name in HOMES["Haus A"]:
            lines.append(line(seconds, "import", 0.1, "Haus A", name, f"{name}-meter"))
            ev = 3.0 if name == "A5" and index in (10, 11) else 1.0 if name != "A5" and index == 40 else 0.0
            lines.append(line(seconds, "ev", ev, "Haus A", name, f"{name}-ev"))
    for index, seconds in enumerate(slots(DAY_B)):  # B3 renamed at noon: the ledger's tag changes
        for name in HOMES["Haus B"]:
            tag = "B3 (neu)" if name == "B3" and index >= 48 else name
            lines.append(
                line(seconds, "import", 0.5 if name == "B3" else 0.1, "Haus B", tag, f"{name}-meter")
            )
        for name in HOMES["Haus A"]:
            lines.append(line(seconds, "import", 0.1, "Haus A", name, f"{name}-meter"))
        for name in HOMES["Haus D2"]:  # the smaller published building: Haus B's partner
            lines.append(line(seconds, "import", 0.1, "Haus D2", name, f"{name}-meter"))
    for index, seconds in enumerate(slots(DAY_D)):  # Haus D1 (4 households) and the street's tiny roof PV
        sun = 40 <= index < 60
        for building in ("Haus D1", "Haus D2"):
            for name in HOMES[building]:
                lines.append(line(seconds, "import", 0.1, building, name, f"{name}-meter"))
                lines.append(line(seconds, "pv", 0.25 if sun else 0.0, building, name, f"{name}-pv"))
        lines.append(line(seconds, "pv", 0.0005 if sun else 0.0, STREET_BUILDING, None, "platz-roof"))
    return lines


def street_lines() -> list[str]:
    tags = "gateway=gw-street,device=env-street-01,profile=ttn-v3,building=Quartiersplatz"
    noon = int(dt.datetime.combine(DAY_S, dt.time(12), TZ).timestamp())
    return [f"environment,{tags} temperature_c={8 + i},noise_dba=50 {noon + 600 * i}" for i in range(3)]


@pytest.fixture(scope="module")
def influx(influxdb: InfluxDB) -> Iterator[InfluxQuery]:
    database = f"leaks_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(influxdb.url, database)
    influx.query(f'CREATE DATABASE "{database}"')
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{database}" DURATION INF REPLICATION 1')
    write_lines(influx, ledger(), rp="rollups")
    write_lines(influx, street_lines())
    yield influx
    influx.drop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    households = [(name, building) for building, names in HOMES.items() for name in names]
    devices = [Placed(f"gw-{name}", f"{name}-meter", "sml", b, name) for name, b in households]
    built = build_registry(tmp_path, [*HOMES, STREET_BUILDING], households, [*devices, STATION])
    yield built
    built.engine.dispose()


def export(influx: InfluxQuery, registry: Registry, out: Path, day: dt.date) -> None:
    with session_factory(registry.engine)() as session:
        labels = load_labels(session, STREET_BUILDING)
    reader = Reader(InfluxSettings(url=influx.url, database=influx.database))
    try:
        export_days(reader, labels, first=day, last=day, out_dir=out, opendata=OpenDataSettings(), tz=TZ)
    finally:
        reader.close()


def tables(influx: InfluxQuery, registry: Registry, day: dt.date) -> DayTables:
    """The day's tables as export_days computes them, contributors by the registry's identities."""
    with session_factory(registry.engine)() as session:
        labels = load_labels(session, STREET_BUILDING)
    midnight = dt.datetime.combine(day, dt.time(), TZ)
    reader = Reader(InfluxSettings(url=influx.url, database=influx.database))
    try:
        energy = ledger_day(reader, midnight, midnight + dt.timedelta(days=1), labels)
    finally:
        reader.close()
    return day_tables(energy, midnight=midnight, buildings=labels.buildings, rule=Rule())


def withheld_columns(row: dict[str, object]) -> list[str]:
    suppressed = row["suppressed"]
    assert isinstance(suppressed, list)
    return [str(name) for name in suppressed]


def rows(out: Path, dataset: str, day: dt.date) -> list[dict[str, Any]]:
    return [
        row for row in read_json(out, dataset, "2025-03") if str(row["start"]).startswith(day.isoformat())
    ]


def test_two_withheld_quarter_hours_of_one_household_are_not_their_day_minus_the_rest(
    influx: InfluxQuery, registry: Registry, tmp_path: Path
) -> None:
    export(influx, registry, tmp_path, DAY_A)
    quarter_hours = rows(tmp_path, "quarter-energy-15min", DAY_A)
    day = rows(tmp_path, "quarter-energy-daily", DAY_A)[0]
    buildings = {row["building"]: row for row in rows(tmp_path, "building-energy-daily", DAY_A)}
    withheld = [row["start"][11:16] for row in quarter_hours if "ev_charging_kwh" in row["suppressed"]]
    # A5's 6 kWh (review18: recovered exactly as the day minus the rest): only its own quarter hours are
    # withheld (primary rule, no partner: the public page decides a quarter hour the same way), and the
    # day's EV charging with them
    assert withheld == ["02:30", "02:45"]
    assert [row["ev_charging_kwh"] for row in quarter_hours if row["start"][11:16] == "10:00"] == [5.0]
    assert day["ev_charging_kwh"] is None
    assert "ev_charging_kwh" in day["suppressed"]
    # Haus A (A0..A5, 11 kWh) passes on its own, but it is the only building that charges: published, it
    # would be the day's total again. The day minus the quarter hours is linked to it: withheld
    haus_a = buildings["building-01"]
    assert haus_a["ev_charging_kwh"] is None
    assert "ev_charging_kwh" in haus_a["suppressed"]
    assert all(row["ev_charging_kwh"] is None for row in buildings.values())


def test_a_building_of_four_is_not_the_quarter_minus_the_published_buildings(
    influx: InfluxQuery, registry: Registry, tmp_path: Path
) -> None:
    export(influx, registry, tmp_path, DAY_D)
    day = rows(tmp_path, "quarter-energy-daily", DAY_D)[0]
    buildings = {row["building"]: row for row in rows(tmp_path, "building-energy-daily", DAY_D)}
    d1, d2 = buildings["building-03"], buildings["building-04"]  # registry order: A, B, D1, D2
    assert day["pv_kwh"] == pytest.approx(45.01)
    assert d1["pv_kwh"] is None  # four households
    # the street's roof PV (hidden) and D1 together fail: D2 goes with them
    assert "pv_kwh" in d2["suppressed"]
    published = sum(row["pv_kwh"] or 0.0 for row in buildings.values())
    assert day["pv_kwh"] - published == pytest.approx(45.01)


def rename(registry: Registry, row: type[Building] | type[Household], name: str, new_name: str) -> None:
    """Rename the building or household ``name`` through the registry's own update, as its page does."""
    with session_factory(registry.engine)() as session:
        found = session.execute(select(row).where(row.name == name)).scalar_one()
        if isinstance(found, Building):
            update_building(session, found, changes={"name": new_name})
        else:
            assert isinstance(found, Household)
            update_household(session, found, changes={"name": new_name})


def test_a_household_renamed_mid_day_is_one_household(
    influx: InfluxQuery, registry: Registry, tmp_path: Path
) -> None:
    rename(registry, Household, "B3", "B3 (neu)")
    haus_b = tables(influx, registry, DAY_B).buildings_daily[1]
    assert haus_b["building"] == "building-02"
    # review18 H2 B: households=5 and the import published
    assert haus_b["grid_import_kwh"] is None
    assert "grid_import_kwh" in withheld_columns(haus_b)
    # the quarter: 6 + 4 + 5 households, not 16
    assert tables(influx, registry, DAY_B).quarter_daily["households"] == 15


def test_a_renamed_building_keeps_its_label_and_rows(
    influx: InfluxQuery, registry: Registry, tmp_path: Path
) -> None:
    rename(registry, Building, "Haus A", "Nordhaus")
    haus_a = tables(influx, registry, DAY_B).buildings_daily[0]
    # review18 M3: households 0 and the import gone (the old name's energy became the hidden part)
    assert haus_a["building"] == "building-01"
    assert haus_a["households"] == 6
    assert haus_a["grid_import_kwh"] == pytest.approx(6 * 0.1 * 96)


def test_a_street_sensor_moved_into_a_flat_publishes_no_coordinates(
    influx: InfluxQuery, registry: Registry, tmp_path: Path
) -> None:
    export(influx, registry, tmp_path / "before", DAY_S)
    before = rows(tmp_path / "before", "street-environment-10min", DAY_S)
    assert [(row["lat"], row["lon"]) for row in before] == [(52.51, 13.4)] * 3
    moved = dt.datetime.combine(DAY_S + dt.timedelta(days=1), dt.time(), TZ)
    with session_factory(registry.engine)() as session:
        device = session.execute(select(Device).where(Device.native_id == STATION.native_id)).scalar_one()
        household = session.execute(select(Household).where(Household.name == "A0")).scalar_one()
        street = assignment_at(session, device_id=device.id, at=moved - dt.timedelta(hours=1))
        assert street is not None
        update_assignment(session, street, changes={"valid_to": moved})
        create_assignment(session, device_id=device.id, valid_from=moved, household_id=household.id)
        update_device(session, device, changes={"location": FLAT})
    out = tmp_path / "after"
    export(influx, registry, out, DAY_S)
    after = rows(out, "street-environment-10min", DAY_S)
    assert [row["temperature_c"] for row in after] == [8.0, 9.0, 10.0]  # its street rows stay
    assert [(row["lat"], row["lon"]) for row in after] == [(None, None)] * 3
    for path in out.rglob("*.*"):
        assert "52.52437" not in path.read_text(encoding="utf-8"), path.name  # catalogue's box included


def test_the_household_count_beside_withheld_figures_is_withheld(
    influx: InfluxQuery, registry: Registry, tmp_path: Path
) -> None:
    haus_b = tables(influx, registry, DAY_B).buildings_daily[1]
    assert haus_b["grid_import_kwh"] is None
    assert haus_b["households"] is None  # review18 L1: "households 4, all cells '.'"
    assert "households" in withheld_columns(haus_b)
    haus_a = tables(influx, registry, DAY_B).buildings_daily[0]
    assert haus_a["households"] == 6
    assert "households" not in withheld_columns(haus_a)
    haus_d2 = tables(influx, registry, DAY_B).buildings_daily[3]  # Haus B's partner: every figure withheld
    assert haus_d2["suppressed"] == ["households", "grid_import_kwh", "self_sufficiency_percent"]
