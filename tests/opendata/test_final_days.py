"""A day is published once, when it is final, and never rewritten (review18 H3, M1, M2, M6, M7): against a
real InfluxDB and registry. A quarter hour published with 5 households and later with 6 would give away the
late household's own value; two exports at once must not lose each other's days; a re-export after the
raw readings expired must not delete published street rows; the command line refuses days that are not
final and dates InfluxDB cannot hold."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.config import InfluxSettings
from ingest.energy.job import local_days as ledger_days
from ingest.localservices import InfluxDB
from ingest.opendata.export import (
    SETTLE,
    ExportReport,
    export_days,
    final_at,
    last_final_day,
)
from ingest.opendata.files import LOCK_NAME, ExportBusy
from ingest.opendata.settings import OpenDataSettings
from ingest.opendata.sources import PublicLabels, load_labels
from ingest.portal.reader import Reader
from ingest.registry.db import session_factory
from tests.helpers import InfluxQuery
from tests.opendata.helpers import parse_opendata, read_json, write_lines, write_settings
from tests.opendata.registry import STREET_BUILDING, Placed, Registry, build_registry

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Berlin")
DAYS = [dt.date(2025, 3, 10) + dt.timedelta(days=n) for n in range(4)]  # 10 … 13 March
LATE_DAY = DAYS[2]
LATE_SLOT = dt.datetime(2025, 3, 12, 5, 0, tzinfo=TZ)  # C5's quarter hour arrives late
HOUSEHOLDS = [(f"C{n}", "Haus C") for n in range(6)]
STREET = Placed("gw-street", "env-street-01", "ttn-v3", STREET_BUILDING, None, "52.5163, 13.3777")


def _energy(household: str, moment: dt.datetime, kwh: float) -> str:
    tags = f"building=Haus\\ C,device={household}-import,household={household},kind=import"
    return f"energy,{tags} kwh={kwh} {int(moment.timestamp())}"


def _quarter_hours(day: dt.date) -> list[dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), TZ).astimezone(dt.UTC)
    return [start + dt.timedelta(minutes=15 * i) for i in range(96)]  # no DST change on 10-13 March


@dataclass
class World:
    influx: InfluxQuery
    registry: Registry
    labels: PublicLabels


@pytest.fixture(scope="module")
def world(influxdb: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Haus C's 6 households every quarter hour of 10-13 March, but C5 not at 05:00 on 12 March (its
    value comes late, in the test); a street station's readings at 10:00 each day."""
    database = f"final_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(influxdb.url, database)
    influx.query(f'CREATE DATABASE "{database}"')
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{database}" DURATION INF REPLICATION 1')
    energy, street = [], []
    for day in DAYS:
        for moment in _quarter_hours(day):
            for name, _ in HOUSEHOLDS:
                if (name, moment) != ("C5", LATE_SLOT):
                    energy.append(_energy(name, moment, 0.1))
        ten = dt.datetime.combine(day, dt.time(10), TZ)
        tags = "gateway=gw-street,device=env-street-01,profile=ttn-v3,building=Quartiersplatz"
        street.append(f"environment,{tags} temperature_c=7.5 {int(ten.timestamp())}")
    write_lines(influx, energy, rp="rollups")
    write_lines(influx, street)
    devices = [STREET, *(Placed("gw-c", f"{n}-import", "sml", b, n) for n, b in HOUSEHOLDS)]
    registry = build_registry(
        tmp_path_factory.mktemp("final-registry"), ["Haus C", STREET_BUILDING], HOUSEHOLDS, devices
    )
    with session_factory(registry.engine)() as session:
        labels = load_labels(session, STREET_BUILDING)
    yield World(influx, registry, labels)
    registry.engine.dispose()
    influx.drop()


def export(
    world: World, out: Path, first: dt.date, last: dt.date, *, force: bool = False, wait_s: float = 900
) -> ExportReport:
    reader = Reader(InfluxSettings(url=world.influx.url, database=world.influx.database))
    try:
        return export_days(
            reader,
            world.labels,
            first=first,
            last=last,
            out_dir=out,
            opendata=OpenDataSettings(),
            tz=TZ,
            force=force,
            lock_timeout_s=wait_s,
        )
    finally:
        reader.close()


def _month_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*_2025-03.*")}


def _slot(out: Path, moment: dt.datetime) -> dict[str, object]:
    rows = read_json(out, "quarter-energy-15min", "2025-03")
    (row,) = [row for row in rows if row["start"] == moment.isoformat()]
    return row


def test_a_published_day_is_never_revised_by_late_data(world: World, tmp_path: Path) -> None:
    """Review18 H3 C: 05:00 published with 5 households, C5's value then arrives late (the ledger
    recomputes it). A re-export leaves the published day as it is; only --force rewrites it (the caller
    warns), and the difference is exactly C5's value: what a revision would give away."""
    out = tmp_path / "out"
    first = export(world, out, LATE_DAY, LATE_DAY)
    assert first.published == [LATE_DAY]
    before = _month_files(out)
    assert _slot(out, LATE_SLOT)["households"] == 5
    write_lines(world.influx, [_energy("C5", LATE_SLOT.astimezone(dt.UTC), 0.377)], rp="rollups")
    again = export(world, out, DAYS[1], LATE_DAY)  # the day before is new, the late day is not
    assert (again.published, again.already) == ([DAYS[1]], [LATE_DAY])
    slot = _slot(out, LATE_SLOT)
    assert (slot["households"], slot["grid_import_kwh"]) == (5, pytest.approx(0.5))
    after = _month_files(out)
    assert sorted(after) == sorted(before)
    late = [r for r in read_json(out, "quarter-energy-15min", "2025-03") if r["start"][:10] == "2025-03-12"]
    assert len(late) == 96  # the late day's rows as published, the day before's added
    forced = export(world, out, LATE_DAY, LATE_DAY, force=True)
    assert forced.forced == [LATE_DAY]
    revised = _slot(out, LATE_SLOT)
    assert revised["households"] == 6
    assert float(str(revised["grid_import_kwh"])) - 0.5 == pytest.approx(0.377)


def test_a_day_without_data_writes_nothing(world: World, tmp_path: Path) -> None:
    """Review18 M6: a range long before any data (a year) writes no month files and no catalogue."""
    out = tmp_path / "out"
    report = export(world, out, dt.date(2024, 1, 1), dt.date(2024, 2, 29))
    assert len(report.empty) == 60
    assert report.published == []
    assert report.files == []
    assert report.catalogue is None
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # only the (empty, hidden) lock


def test_expired_street_readings_do_not_delete_published_rows(world: World, tmp_path: Path) -> None:
    """Review18 M2: two street days published, then the first day's raw readings expire; a re-export
    (and even --force) keeps the street rows of that day."""
    out = tmp_path / "out"
    database = f"final_raw_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(world.influx.url, database)
    influx.query(f'CREATE DATABASE "{database}"')
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{database}" DURATION INF REPLICATION 1')
    try:
        tags = "gateway=gw-street,device=env-street-01,profile=ttn-v3,building=Quartiersplatz"
        lines = [
            f"environment,{tags} temperature_c={n}.5 "
            f"{int(dt.datetime.combine(day, dt.time(10, 10 * n), TZ).timestamp())}"
            for day in DAYS[:2]
            for n in range(3)
        ]
        write_lines(influx, lines)
        own = World(influx, world.registry, world.labels)
        export(own, out, DAYS[0], DAYS[1])
        assert len(read_json(out, "street-environment-10min", "2025-03")) == 6
        expiry = dt.datetime.combine(DAYS[1], dt.time(), TZ).isoformat()
        influx.query(f"DELETE FROM environment WHERE time < '{expiry}'")
        assert export(own, out, DAYS[0], DAYS[1]).already == DAYS[:2]
        assert len(read_json(out, "street-environment-10min", "2025-03")) == 6
        export(own, out, DAYS[0], DAYS[1], force=True)
        rows = read_json(out, "street-environment-10min", "2025-03")
        assert sorted({str(row["start"])[:10] for row in rows}) == ["2025-03-10", "2025-03-11"]
        assert len(rows) == 6
    finally:
        influx.drop()


def test_a_second_export_waits_for_the_first(world: World, tmp_path: Path) -> None:
    """Review18 M1: the output directory's lock. Held by another process (here another open file
    description), an export waits; released within the wait, it goes on; held too long, ExportBusy
    names the directory. Four exports of four days at once all end up in the month."""
    out = tmp_path / "out"
    out.mkdir()
    holder = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(ExportBusy, match=f"another export is writing {out}"):
            export(world, out, DAYS[0], DAYS[0], wait_s=0.3)
        assert not (out / "quarter-energy-daily").exists()
        threading.Timer(0.5, fcntl.flock, (holder, fcntl.LOCK_UN)).start()
        report = export(world, out, DAYS[0], DAYS[0], wait_s=30)
        assert report.published == [DAYS[0]]
        assert report.seconds >= 0.4  # it waited for the holder
    finally:
        os.close(holder)
    together = tmp_path / "together"
    threads = [threading.Thread(target=export, args=(world, together, day, day)) for day in DAYS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    daily = read_json(together, "quarter-energy-daily", "2025-03")
    assert [row["start"][:10] for row in daily] == [day.isoformat() for day in DAYS]


# ------------------------------------------------------------------------------------- finality


@pytest.mark.parametrize("window", [dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(hours=36)])
def test_final_days_are_the_days_the_ledger_no_longer_recomputes(window: dt.timedelta) -> None:
    """At every quarter hour over the autumn DST change, a day is final exactly when the ledger's loop
    (which recomputes [now - window, now) widened to whole local days, ingest.energy.job) no longer
    touches it, SETTLE after that."""
    start = dt.datetime(2025, 10, 24, tzinfo=TZ).astimezone(dt.UTC)
    for step in range(4 * 24 * 6):
        now = start + dt.timedelta(minutes=15 * step)
        newest = last_final_day(now, window, TZ)
        touched_after = {
            midnight.date()
            for moment in (now - SETTLE, now)
            for midnight, _ in ledger_days(moment - window, moment, "Europe/Berlin")
        }
        assert min(touched_after) > newest, now  # no run from SETTLE ago on rewrites a final day
        assert final_at(newest, window, TZ) <= now < final_at(newest + dt.timedelta(days=1), window, TZ)
    # on the night clocks go back, a day of 25 hours: final 25 h + window + SETTLE after its midnight
    assert (
        final_at(dt.date(2025, 10, 26), dt.timedelta(days=1), TZ).isoformat() == "2025-10-28T00:15:00+01:00"
    )


# ------------------------------------------------------------------------------- the command line


@pytest.fixture
def config(world: World, tmp_path: Path) -> Path:
    opendata = {"out_dir": str(tmp_path / "open")}
    return write_settings(tmp_path / "settings.yaml", world.influx, world.registry.url, opendata=opendata)


def test_cli_refuses_days_that_are_not_final(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review18 M6: today, yesterday (energy.window 1d) and a future month are refused with exit 2,
    naming the first day that is not final and when it will be; nothing is written."""
    now = dt.datetime.now(dt.UTC)
    newest = last_final_day(now, dt.timedelta(days=1), TZ)
    today = now.astimezone(TZ).date()
    for first, last, pending in (
        (today, today, today),
        (newest, newest + dt.timedelta(days=1), newest + dt.timedelta(days=1)),
        (dt.date(2030, 1, 1), dt.date(2030, 1, 2), dt.date(2030, 1, 1)),
    ):
        args = parse_opendata(
            "export", "--config", str(config), "--from", first.isoformat(), "--to", last.isoformat()
        )
        assert args.func(args) == 2
        err = capsys.readouterr().err
        when = final_at(pending, dt.timedelta(days=1), TZ).isoformat(timespec="minutes")
        assert f"{pending.isoformat()} is not final yet" in err, err
        assert f"energy.window 1d) may still rewrite it until {when}" in err, err
        assert f"days up to {newest.isoformat()} are final" in err, err
    assert not (tmp_path / "open").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9999-12-31", "'9999-12-31' is outside 1970-01-01 … 2262-04-10"),
        ("0001-01-01", "'0001-01-01' is outside 1970-01-01 … 2262-04-10"),
        ("20250310", "not a date YYYY-MM-DD (2026-11-29): '20250310'"),
        ("2025-W11-1", "not a date YYYY-MM-DD (2026-11-29): '2025-W11-1'"),
    ],
)
def test_cli_refuses_dates_it_cannot_hold(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review18 M7: 9999-12-31 and 0001-01-01 were an OverflowError traceback (exit 1); now exit 2 naming
    the value, as are the other ISO forms Python would accept."""
    with pytest.raises(SystemExit) as exited:
        parse_opendata("export", "--from", text, "--to", text)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_force_warns_and_a_re_export_is_a_no_op(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = ("--from", DAYS[0].isoformat(), "--to", DAYS[0].isoformat())
    args = parse_opendata("export", "--config", str(config), *day)
    assert args.func(args) == 0
    assert '"days_published": 1' in capsys.readouterr().out
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert '"days_already_published": 1' in captured.out
    assert "WARNING" not in captured.err
    args = parse_opendata("export", "--config", str(config), *day, "--force")
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert '"days_rewritten": 1' in captured.out
    assert "WARNING --force rewrote 1 published day(s) (2025-03-10)" in captured.err
    assert "can be one household's own value" in captured.err


def test_cli_help_explains_exit_codes_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """Review18 L5."""
    with pytest.raises(SystemExit) as exited:
        parse_opendata("export", "--help")
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "Only final days" in text
    for line in ("exit codes:", "  0  done", "  1  InfluxDB", "  2  bad usage", "example:"):
        assert line in text, line
    assert "reallabor opendata export --from 2026-11-01 --to 2026-11-28" in text
    assert "--force" in text
    assert "YYYY-MM-DD" in text
