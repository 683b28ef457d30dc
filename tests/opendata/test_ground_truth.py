"""The export of a simulated day (tests/filled_day.py: 110 households, meter swaps, a counter reset, the
real energy ledger) against the simulator's ground truth, with a registry of the same quarter: the
quarter's import and export equal the truth, the street stations are the four street sensors, and no
identifier of the registry or the simulator appears in any file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.config import InfluxSettings
from ingest.opendata.energy_tables import DayEnergy
from ingest.opendata.export import ExportReport, export_days
from ingest.opendata.settings import OpenDataSettings
from ingest.opendata.sources import ledger_day, load_labels
from ingest.portal.reader import Reader
from ingest.registry.db import session_factory
from tests.filled_day import DAY_DATE, FilledDay
from tests.opendata.catalogue_check import check_catalogue
from tests.opendata.helpers import assert_csv_equals_json, assert_no_identifiers, read_json
from tests.opendata.registry import STREET_BUILDING, Registry, quarter_registry

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Berlin")
MONTH = "2025-06"


@dataclass
class Exported:
    out: Path
    report: ExportReport
    registry: Registry
    energy: DayEnergy  # the day the export read, before disclosure control


@pytest.fixture(scope="module")
def exported(filled_day: FilledDay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    registry = quarter_registry(tmp_path_factory.mktemp("opendata-quarter"), filled_day.quarter)
    with session_factory(registry.engine)() as session:
        labels = load_labels(session, STREET_BUILDING)
    out = tmp_path_factory.mktemp("opendata-day")
    influx = filled_day.influx
    reader = Reader(InfluxSettings(url=influx.url, database=influx.database))
    midnight = dt.datetime.combine(DAY_DATE, dt.time(), TZ)
    try:
        report = export_days(
            reader, labels, first=DAY_DATE, last=DAY_DATE, out_dir=out, opendata=OpenDataSettings(), tz=TZ
        )
        energy = ledger_day(reader, midnight, midnight + dt.timedelta(days=1), labels)
    finally:
        reader.close()
    print(f"export of the simulated day: {report.line()}")
    yield Exported(out, report, registry, energy)
    registry.engine.dispose()


def _truth_kwh(filled: FilledDay, column: str) -> float:
    return sum(
        float(str(row[column])) / 1000 for row in filled.truth.rows() if row["day"] == DAY_DATE.isoformat()
    )


def test_the_days_import_and_export_equal_the_ground_truth(filled_day: FilledDay, exported: Exported) -> None:
    (day,) = read_json(exported.out, "quarter-energy-daily", MONTH)
    assert day["households"] == 110
    quarter_hours = read_json(exported.out, "quarter-energy-15min", MONTH)
    assert len(quarter_hours) == 96
    totals = exported.energy.day_total()
    for column, kind, truth_column in (
        ("grid_import_kwh", "import", "import_wh"),
        ("grid_export_kwh", "export", "export_wh"),
    ):
        truth = _truth_kwh(filled_day, truth_column)
        read = sum(totals[kind].values())  # what the export computed, before disclosure control
        assert truth > 0
        assert read == pytest.approx(truth, rel=1e-3), column
        published = [row[column] for row in quarter_hours if column not in row["suppressed"]]
        withheld = 96 - len(published)
        if column == "grid_import_kwh":  # 110 households in every quarter hour: nothing withheld
            assert withheld == 0
            assert day[column] == pytest.approx(read, abs=0.0005)
            assert sum(published) == pytest.approx(day[column], abs=96 * 0.0005)  # each rounded to the Wh
        else:
            # early and late PV: fewer than five households export. Only those quarter hours are
            # withheld (no partner), and the day's export with them, since the day minus the published
            # quarter hours would be their sum; and with it self-consumption and self-sufficiency
            assert withheld > 0
            assert day[column] is None
            assert {column, "self_consumption_kwh", "self_sufficiency_percent"} <= set(day["suppressed"])
            assert 0 < read - sum(published) < 0.01 * read
        print(
            f"{column}: truth {truth:.3f} kWh, exported {read:.3f} ({(read - truth) / truth:+.5%}), "
            f"{withheld} quarter hours withheld; published in the daily file: {day[column]}"
        )
    columns = sorted({column for row in quarter_hours for column in row["suppressed"]})
    per_column = {column: sum(column in row["suppressed"] for row in quarter_hours) for column in columns}
    print(f"quarter hours withheld per column: {per_column}; the quarter's day withheld: {day['suppressed']}")


def test_street_stations_are_the_street_sensors_only(filled_day: FilledDay, exported: Exported) -> None:
    rows = read_json(exported.out, "street-environment-10min", MONTH)
    stations = {row["station"]: (row["lat"], row["lon"]) for row in rows}
    assert stations == {
        f"station-{n + 1:02d}": (float(f"52.{5100 + n}"), float(f"13.{4000 + n}"))
        for n in range(len(filled_day.quarter.street))
    }
    raw = filled_day.influx.rows(
        'SELECT count("temperature_c") AS n FROM "environment" WHERE "household" = \'\' AND '
        f"time >= {filled_day.day_start_ms}ms AND time <= {filled_day.day_end_ms}ms"
    )
    # a street reading every 15 minutes: each in a 10-minute bucket of its own; the 110 room sensors
    # (household-tagged, many more readings) are not among them
    assert len(rows) == raw[0]["n"]
    assert all(row["temperature_c"] is not None and row["co2_ppm"] is None for row in rows)


def test_no_identifier_of_the_quarter_in_any_file(filled_day: FilledDay, exported: Exported) -> None:
    names = set(exported.registry.identifiers) | {STREET_BUILDING}
    for h in filled_day.quarter.households:
        names |= {
            h.name,
            h.gateway,
            h.meter_device,
            h.pv_device,
            h.ev_device,
            h.heat_device,
            h.climate_device,
        }
        names.add(f"Haus {h.building}")
    for sensor in filled_day.quarter.street:
        names |= {sensor.device, sensor.gateway, sensor.dev_eui}
    assert len(names) > 600
    assert_no_identifiers(exported.out, names)
    assert_csv_equals_json(exported.out, MONTH)


def test_the_catalogue_describes_the_days_files(exported: Exported) -> None:
    assert check_catalogue(exported.out / "catalog.jsonld", exported.out) == []
