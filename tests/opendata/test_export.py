"""The export end to end against a real InfluxDB and registry, on a hand-made ledger whose cells sit on
either side of the disclosure rule: four buildings of 5, 4, 6 and 7 households (in the 6, one household
draws 90 % of the building's import on the first day), a building PV without household, street sensors and
indoor sensors that look like them. Then the command line: its errors and a real run."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest.config import InfluxSettings
from ingest.localservices import InfluxDB
from ingest.opendata.datasets import SUPPRESSED_CSV
from ingest.opendata.export import ExportReport, due_range, export_days, next_run, read_state, run_loop
from ingest.opendata.settings import OpenDataSettings
from ingest.opendata.sources import PublicLabels, load_labels
from ingest.portal.reader import Reader
from ingest.registry.db import session_factory
from tests.helpers import InfluxQuery
from tests.opendata.catalogue_check import check_catalogue
from tests.opendata.helpers import (
    assert_csv_equals_json,
    assert_no_identifiers,
    parse_opendata,
    read_csv,
    read_json,
    write_lines,
    write_settings,
)
from tests.opendata.registry import STREET_BUILDING, Placed, Registry, build_registry

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Berlin")
DAY1, DAY2 = dt.date(2025, 3, 12), dt.date(2025, 3, 13)
SIZES = {"Haus A": 5, "Haus B": 4, "Haus C": 6, "Haus D": 7}
DOMINANT = ("C0", "Haus C")  # 4.5 kWh a quarter hour on DAY1 against 5 × 0.1: 90 % of Haus C
PV_SLOTS = range(40, 60)  # Haus A's households produce and export by day
STREET = Placed("gw-street", "env-street-01", "ttn-v3", STREET_BUILDING, None, "52.5163, 13.3777")
TRAPS = (
    # a stairwell sensor of the outdoor place: building-level, but no street sensor profile
    Placed("gw-street", "stairwell-eg", "zigbee2mqtt", STREET_BUILDING, None, "Treppenhaus"),
    # a LoRaWAN sensor in a flat
    Placed("gw-a", "lora-flat", "ttn-v3", "Haus A", "A0", "Wohnzimmer"),
)


def households() -> list[tuple[str, str]]:
    return [(f"{building[-1]}{n}", building) for building, size in SIZES.items() for n in range(size)]


def import_kwh(household: str, day: dt.date) -> float:
    return 4.5 if (household, day) == (DOMINANT[0], DAY1) else 0.1


def _escape(text: str) -> str:
    return text.replace(" ", "\\ ").replace(",", "\\,")


def slots(day: dt.date) -> list[dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), TZ).astimezone(dt.UTC)
    return [start + dt.timedelta(minutes=15 * i) for i in range(96)]  # no DST change in March 12/13


@dataclass
class Expected:
    """Per day and quarter hour, the quarter's import, export and PV as written."""

    flows: dict[dt.datetime, dict[str, float]]


def ledger_lines(expected: Expected) -> list[str]:
    lines = []
    for day in (DAY1, DAY2):
        for slot, moment in enumerate(slots(day)):
            seconds = int(moment.timestamp())
            flows = expected.flows.setdefault(moment, {"import": 0.0, "export": 0.0, "pv": 0.0})
            for name, building in households():
                values = {"import": import_kwh(name, day)}
                if building == "Haus A":
                    values["pv"] = 0.2 if slot in PV_SLOTS else 0.0
                    values["export"] = 0.05 if slot in PV_SLOTS else 0.0
                for kind, kwh in values.items():
                    tags = f"building={_escape(building)},device={name}-{kind},household={name},kind={kind}"
                    lines.append(f"energy,{tags} kwh={kwh} {seconds}")
                    flows[kind] += kwh
            pv = 0.3 if slot in PV_SLOTS else 0.0  # Haus D's roof, no household
            lines.append(f"energy,building=Haus\\ D,device=roof-d,kind=pv kwh={pv} {seconds}")
            flows["pv"] += pv
    return lines


def environment_lines() -> list[str]:
    out = []
    moment = int(dt.datetime.combine(DAY1, dt.time(10), TZ).timestamp())
    street = "gateway=gw-street,device=env-street-01,profile=ttn-v3,building=Quartiersplatz"
    out.append(f"environment,{street} temperature_c=8.0,pm25_ugm3=12.0,noise_dba=50.0 {moment + 5}")
    out.append(f"environment,{street} temperature_c=9.0,pm25_ugm3=14.0,noise_dba=54.0 {moment + 300}")
    for tags in (
        "gateway=gw-street,device=stairwell-eg,profile=zigbee2mqtt,building=Quartiersplatz",
        "gateway=gw-a,device=lora-flat,profile=ttn-v3,building=Haus\\ A,household=A0",
        # at the outdoor place, a street profile, but not in the registry
        "gateway=gw-street,device=env-street-99,profile=ttn-v3,building=Quartiersplatz",
    ):
        out.append(f"environment,{tags} temperature_c=21.5,co2_ppm=950 {moment + 60}")
    return out


@dataclass
class World:
    influx: InfluxQuery
    registry: Registry
    labels: PublicLabels
    expected: Expected
    settings: OpenDataSettings


@pytest.fixture(scope="module")
def world(influxdb: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database = f"opendata_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(influxdb.url, database)
    influx.query(f'CREATE DATABASE "{database}"')
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{database}" DURATION INF REPLICATION 1')
    expected = Expected({})
    write_lines(influx, ledger_lines(expected), rp="rollups")
    write_lines(influx, environment_lines())
    devices = [STREET, *TRAPS]
    devices += [Placed(f"gw-{b[-1].lower()}", f"{name}-import", "sml", b, name) for name, b in households()]
    registry = build_registry(
        tmp_path_factory.mktemp("opendata-registry"),
        ["Haus A", "Haus B", STREET_BUILDING, "Haus C", "Haus D"],
        households(),
        devices,
    )
    with session_factory(registry.engine)() as session:
        labels = load_labels(session, STREET_BUILDING)
    yield World(influx, registry, labels, expected, OpenDataSettings())
    registry.engine.dispose()
    influx.drop()


def export(world: World, out: Path, first: dt.date, last: dt.date) -> ExportReport:
    reader = Reader(InfluxSettings(url=world.influx.url, database=world.influx.database))
    try:
        return export_days(
            reader, world.labels, first=first, last=last, out_dir=out, opendata=world.settings, tz=TZ
        )
    finally:
        reader.close()


@pytest.fixture(scope="module")
def exported(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DAY2, then DAY1 in a second run: the month's files keep both."""
    out = tmp_path_factory.mktemp("opendata-out")
    export(world, out, DAY2, DAY2)
    report = export(world, out, DAY1, DAY1)
    assert report.rows["quarter-energy-daily"] == 1
    return out


def building_rows(out: Path, day: dt.date) -> dict[str, dict[str, Any]]:
    rows = read_json(out, "building-energy-daily", "2025-03")
    return {str(row["building"]): row for row in rows if str(row["start"]).startswith(day.isoformat())}


def test_buildings_of_four_households_or_one_dominant_are_suppressed(exported: Path) -> None:
    day1 = building_rows(exported, DAY1)
    # labels in the registry's order, the outdoor place left out: A, B, C, D
    # B's and C's counts withheld with their figures (every measured figure of the row is withheld)
    assert [row["households"] for row in day1.values()] == [5, None, None, 7]
    a, b, c, d = (day1[f"building-0{n}"] for n in range(1, 5))
    assert a["grid_import_kwh"] == pytest.approx(5 * 0.1 * 96)
    assert d["grid_import_kwh"] == pytest.approx(7 * 0.1 * 96)
    for withheld in (b, c):  # four households; one household 90 %
        assert withheld["grid_import_kwh"] is None
        assert "grid_import_kwh" in withheld["suppressed"]
    assert "grid_import_kwh" not in a["suppressed"]
    by_day = [
        r
        for r in read_csv(exported, "building-energy-daily", "2025-03")
        if r["start"].startswith("2025-03-12")
    ]
    assert [r["grid_import_kwh"] for r in by_day] == ["48.0", SUPPRESSED_CSV, SUPPRESSED_CSV, "67.2"]


def test_a_lone_suppressed_building_gets_a_complement(exported: Path) -> None:
    day2 = building_rows(exported, DAY2)
    imports = {label: row["grid_import_kwh"] for label, row in day2.items()}
    # B (4 households, 38.4 kWh) alone would be the quarter's total minus the others: A (48.0, the
    # smallest at least as large) is withheld with it
    assert imports == {"building-01": None, "building-02": None, "building-03": 57.6, "building-04": 67.2}
    # the quarter's PV: Haus A's five households and Haus D's roof; Haus D's roof alone is no household
    # (withheld), and Haus A's is withheld with it
    assert day2["building-04"]["pv_kwh"] is None
    assert day2["building-01"]["pv_kwh"] is None
    assert {"pv_kwh", "self_consumption_kwh"} <= set(day2["building-01"]["suppressed"])


def test_quarter_figures_and_their_definitions(world: World, exported: Path) -> None:
    daily = {str(row["start"])[:10]: row for row in read_json(exported, "quarter-energy-daily", "2025-03")}
    assert list(daily) == ["2025-03-12", "2025-03-13"]
    assert daily["2025-03-12"]["start"] == "2025-03-12T00:00:00+01:00"
    day = daily["2025-03-13"]
    flows = [world.expected.flows[moment] for moment in slots(DAY2)]
    imported, exported_kwh, pv = (sum(f[kind] for f in flows) for kind in ("import", "export", "pv"))
    assert day["households"] == 22
    assert day["suppressed"] == []
    assert day["grid_import_kwh"] == pytest.approx(imported)
    assert day["pv_kwh"] == pytest.approx(pv)
    assert day["self_consumption_kwh"] == pytest.approx(pv - exported_kwh)
    external = sum(max(0.0, f["import"] - f["export"]) for f in flows)
    share = (1 - external / (imported + pv - exported_kwh)) * 100
    assert day["self_sufficiency_percent"] == pytest.approx(round(share, 1))
    quarter_hours = [
        r
        for r in read_json(exported, "quarter-energy-15min", "2025-03")
        if str(r["start"])[:10] == "2025-03-13"
    ]
    assert len(quarter_hours) == 96
    assert sum(float(r["grid_import_kwh"]) for r in quarter_hours) == pytest.approx(imported)
    night, noon = quarter_hours[0], quarter_hours[PV_SLOTS[0]]
    assert night["pv_kwh"] == 0.0  # everybody's zero: five households report it
    assert noon["pv_kwh"] == pytest.approx(5 * 0.2 + 0.3)
    assert noon["self_sufficiency_percent"] == pytest.approx(
        round((1 - (2.2 - 0.25) / (2.2 + 1.3 - 0.25)) * 100, 1)
    )


def test_street_stations_only_never_indoor_sensors(exported: Path) -> None:
    rows = read_json(exported, "street-environment-10min", "2025-03")
    assert rows == [
        {
            "start": "2025-03-12T10:00:00+01:00",
            "station": "station-01",
            "lat": 52.5163,
            "lon": 13.3777,
            "temperature_c": 8.5,
            "humidity_pct": None,
            "co2_ppm": None,
            "pm25_ugm3": 13.0,
            "pm10_ugm3": None,
            "noise_dba": 52.0,
            "suppressed": [],
        }
    ]
    assert read_csv(exported, "street-environment-10min", "2025-03")[0]["co2_ppm"] == ""


def test_no_registry_identifier_in_any_file(world: World, exported: Path) -> None:
    names = {name for name in world.registry.identifiers if name}
    names |= {f"{name}-import" for name, _ in households()} | {
        *SIZES,
        STREET_BUILDING,
        "roof-d",
        "env-street-99",
    }
    assert_no_identifiers(exported, names)


def test_csv_and_json_say_the_same(exported: Path) -> None:
    assert_csv_equals_json(exported, "2025-03")


def test_the_catalogue_describes_every_exported_file(exported: Path) -> None:
    """DCAT-AP.de properties of every dataset and distribution; each file exists, its size, SHA-256, format
    and CSV header as declared (tests/opendata/catalogue_check.py, the catalogue's own check)."""
    assert check_catalogue(exported / "catalog.jsonld", exported) == []


# ------------------------------------------------------------------------------------------ the command line


@pytest.fixture
def config(world: World, tmp_path: Path) -> Path:
    return write_settings(tmp_path / "settings.yaml", world.influx, world.registry.url)


def test_cli_refuses_bad_dates_and_an_unwritable_directory(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_opendata("export", "--from", "2025-13-01", "--to", "2025-03-12")
    assert exited.value.code == 2
    assert "not a date YYYY-MM-DD (2026-11-29): '2025-13-01'" in capsys.readouterr().err
    args = parse_opendata(
        "export", "--config", str(config), "--from", "2025-03-13", "--to", "2025-03-12", "--out", "x"
    )
    assert args.func(args) == 2
    assert "--from (2025-03-13) is after --to (2025-03-12)" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = parse_opendata("export", "--config", str(config), "--from", "2025-03-12", "--to", "2025-03-12")
    args.out = blocker / "out"
    assert args.func(args) == 2
    assert f"--out {blocker / 'out'} is not writable" in capsys.readouterr().err


def test_cli_exports_a_day(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "open"
    args = parse_opendata(
        "export", "--config", str(config), "--from", "2025-03-12", "--to", "2025-03-12", "--out", str(out)
    )
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"]["quarter-energy-15min"] == 96
    assert summary["withheld"]["building-energy-daily"] > 0
    assert (out / "catalog.jsonld").exists()
    assert sorted(p.name for p in (out / "quarter-energy-daily").iterdir()) == [
        "quarter-energy-daily_2025-03.csv",
        "quarter-energy-daily_2025-03.json",
    ]


def test_cli_run_once_exports_the_final_days_and_remembers(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first run: the newest final day's month up to that day (the day before yesterday with the
    default energy.window 1d, from 00:15); the world has no data then, so nothing is written. The next
    run has nothing due."""
    out = tmp_path / "daily"
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text(yaml.safe_dump({**settings, "opendata": {"out_dir": str(out)}}), encoding="utf-8")
    args = parse_opendata("run", "--config", str(config), "--once")
    assert args.func(args) == 0
    newest = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1, minutes=15)).astimezone(TZ).date()
    newest -= dt.timedelta(days=1)
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert (summary["from"], summary["to"]) == (newest.replace(day=1).isoformat(), newest.isoformat())
    assert summary["days_without_data"] == newest.day
    assert summary["days_published"] == 0
    assert "nothing written for them" in captured.err
    assert not (out / "catalog.jsonld").exists()  # no catalogue of nothing
    assert read_state(out) == newest
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out.strip()) == {
        "nothing_due": True,
        "final_through": newest.isoformat(),
    }


def test_daily_run_wakes_at_daily_at_for_the_days_become_final(tmp_path: Path) -> None:
    """The loop with a clock that starts a moment before 03:30 on 1 March, the last run having exported
    through 26 February: it waits until 03:30, then exports 27 February (final at 00:15 on 1 March), and
    sleeps until the next day."""
    moments = iter(
        [
            dt.datetime(2025, 3, 1, 3, 29, 59, 800000, tzinfo=TZ),  # the next run: 03:30 today
            dt.datetime(2025, 3, 1, 3, 29, 59, 900000, tzinfo=TZ),  # 0.1 s to wait
            dt.datetime(2025, 3, 1, 3, 30, 0, 100000, tzinfo=TZ),  # due
            dt.datetime(2025, 3, 1, 3, 30, 0, 200000, tzinfo=TZ),  # the run's clock
            dt.datetime(2025, 3, 1, 3, 31, tzinfo=TZ),  # after the run: tomorrow's 03:30
        ]
    )
    calls: list[tuple[dt.date, dt.date]] = []
    stop = threading.Event()
    (tmp_path / ".daily-run.json").write_text('{"exported_through": "2025-02-26"}')

    def job(first: dt.date, last: dt.date) -> ExportReport:
        calls.append((first, last))
        return ExportReport(first, last)

    def now() -> dt.datetime:
        moment = next(moments, None)
        if moment is None:
            stop.set()
            return dt.datetime(2025, 3, 1, 3, 31, tzinfo=TZ)
        return moment

    assert run_loop(job, daily_at="03:30", tz=TZ, stop=stop, now=now, out_dir=tmp_path) == 1
    assert calls == [(dt.date(2025, 2, 27), dt.date(2025, 2, 27))]
    assert read_state(tmp_path) == dt.date(2025, 2, 27)


def test_next_run_and_due_range() -> None:
    evening = dt.datetime(2025, 3, 29, 22, tzinfo=dt.UTC)  # 23:00 local, the night clocks go forward
    assert next_run(evening, "02:30", TZ).isoformat() == "2025-03-30T02:30:00+01:00"  # 02:30 does not exist
    assert next_run(evening, "03:30", TZ).isoformat() == "2025-03-30T03:30:00+02:00"
    assert next_run(dt.datetime(2025, 3, 30, 1, 30, tzinfo=dt.UTC), "03:30", TZ).isoformat() == (
        "2025-03-31T03:30:00+02:00"  # 03:30 local that day has passed
    )
    day = dt.timedelta(days=1)
    at = dt.datetime(2025, 1, 2, 3, 30, tzinfo=TZ)
    # 31 December is final at 00:15 on 2 January: the previous month's last day (M4)
    assert due_range(at, day, TZ, dt.date(2024, 12, 30)) == (dt.date(2024, 12, 31), dt.date(2024, 12, 31))
    assert due_range(at, day, TZ, None) == (dt.date(2024, 12, 1), dt.date(2024, 12, 31))  # the first run
    assert due_range(at, day, TZ, dt.date(2024, 12, 31)) is None  # nothing became final since
    # a run missed for days (the host was off): every day since
    assert due_range(at, day, TZ, dt.date(2024, 12, 20)) == (dt.date(2024, 12, 21), dt.date(2024, 12, 31))


def test_street_readings_from_the_raw_retention_policy(world: World, tmp_path: Path) -> None:
    """``influx.retention_policy`` set: the street readings are read from that policy, not the default."""
    world.influx.query(
        f'CREATE RETENTION POLICY "raw_other" ON "{world.influx.database}" DURATION INF REPLICATION 1'
    )
    noon = int(dt.datetime.combine(DAY1, dt.time(12), TZ).timestamp())
    tags = "gateway=gw-street,device=env-street-01,profile=ttn-v3,building=Quartiersplatz"
    write_lines(world.influx, [f"environment,{tags} temperature_c=3.0 {noon}"], rp="raw_other")
    reader = Reader(InfluxSettings(url=world.influx.url, database=world.influx.database))
    try:
        export_days(
            reader,
            world.labels,
            first=DAY1,
            last=DAY1,
            out_dir=tmp_path,
            opendata=world.settings,
            tz=TZ,
            raw_rp="raw_other",
        )
    finally:
        reader.close()
    rows = read_json(tmp_path, "street-environment-10min", "2025-03")
    assert [(row["start"], row["temperature_c"]) for row in rows] == [("2025-03-12T12:00:00+01:00", 3.0)]


def test_cli_says_what_is_missing_exit_1(
    world: World, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    day = ("--from", "2025-03-12", "--to", "2025-03-12", "--out", str(tmp_path / "out"))
    missing = tmp_path / "nowhere" / "registry.db"
    config.write_text(
        yaml.safe_dump({**settings, "registry": {"url": f"sqlite:///{missing}"}}), encoding="utf-8"
    )
    args = parse_opendata("export", "--config", str(config), *day)
    assert args.func(args) == 1
    assert f"no registry database at {missing}: run `reallabor registry migrate`" in capsys.readouterr().err
    assert not missing.exists()  # not created empty
    away = {**settings, "influx": {"url": "http://127.0.0.1:1", "database": world.influx.database}}
    config.write_text(yaml.safe_dump(away), encoding="utf-8")
    args = parse_opendata("export", "--config", str(config), *day)
    assert args.func(args) == 1
    assert "InfluxDB at http://127.0.0.1:1: ConnectError" in capsys.readouterr().err
    broken = tmp_path / "out" / "quarter-energy-daily" / "quarter-energy-daily_2025-03.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("<html>not ours</html>", encoding="utf-8")
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    args = parse_opendata("export", "--config", str(config), *day)
    assert args.func(args) == 1
    assert f"{broken}: not an export file (JSONDecodeError" in capsys.readouterr().err
