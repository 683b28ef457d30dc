"""Last seen, fleet status, meter number search and the CSV import, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.registry.assignments import assignment_at
from ingest.registry.device_import import import_devices
from ingest.registry.fleet_status import (
    Liveness,
    fleet_status,
    record_last_seen,
    search_meter_numbers,
)
from ingest.registry.models import Device, Gateway
from tests.registry import factories as f

pytestmark = pytest.mark.registry
PROFILES = {"generic-json", "tasmota-sml"}
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_last_seen_moves_forward_only(session: Session) -> None:
    gateway = f.gateway_row(session)
    device = f.device(session, gateway.id)
    later, earlier = NOW, NOW - dt.timedelta(hours=1)
    changed = record_last_seen(
        session,
        [
            (gateway.name, device.native_id, earlier),
            (gateway.name, device.native_id, later),
            ("nope", "x", later),
        ],
    )
    assert changed == 2  # one gateway, one device; unknown names ignored
    session.expire_all()
    assert session.get(Device, device.id).last_seen == later  # type: ignore[union-attr]
    assert session.get(Gateway, gateway.id).last_seen == later  # type: ignore[union-attr]
    assert record_last_seen(session, [(gateway.name, device.native_id, earlier)]) == 0
    session.expire_all()
    assert session.get(Device, device.id).last_seen == later  # type: ignore[union-attr]


def test_fleet_status_lists_silent_ones_first(session: Session) -> None:
    gateway = f.gateway_row(session)
    fresh, silent, never = (f.device(session, gateway.id) for _ in range(3))
    record_last_seen(
        session,
        [
            (gateway.name, fresh.native_id, NOW - dt.timedelta(minutes=1)),
            (gateway.name, silent.native_id, NOW - dt.timedelta(hours=2)),
        ],
    )
    rows = [r for r in fleet_status(session, now=NOW) if r.kind == "device"]
    assert [(r.id, r.liveness) for r in rows] == [
        (never.id, Liveness.never),
        (silent.id, Liveness.silent),
        (fresh.id, Liveness.ok),
    ]
    assert rows[1].silent_for_s == 7200


def test_meter_number_search(session: Session) -> None:
    exact = f.device(session, meter_number="1ESY1160")
    partial = f.device(session, meter_number="X-1ESY1160-2")
    f.device(session, meter_number="OTHER_1")
    assert [d.id for d in search_meter_numbers(session, "1esy1160")] == [exact.id, partial.id]
    assert search_meter_numbers(session, "%") == []
    assert [d.meter_number for d in search_meter_numbers(session, "_1")] == ["OTHER_1"]


def _csv(*rows: str, header: str = "gateway,native_id,profile,meter_number,building,household") -> bytes:
    return "\n".join([header, *rows]).encode()


def test_import_writes_every_row(session: Session) -> None:
    gateway = f.gateway_row(session)
    household = f.household(session)
    data = _csv(
        f"{gateway.name},m1,generic-json,Z-001,{household.building.name},{household.name}",
        f"{gateway.name},m2,tasmota-sml,,{household.building.name},",
        "",
    )
    report = import_devices(session, data, profiles=PROFILES, assigned_from=NOW)
    assert report.ok, report.as_json()
    assert report.written
    assert [(r.row, r.ok) for r in report.rows] == [(2, True), (3, True)]
    first = session.get(Device, report.rows[0].device_id)
    assert first is not None
    assert first.meter_number == "Z-001"
    placed = assignment_at(session, device_id=first.id, at=NOW)
    assert placed is not None
    assert placed.household_id == household.id
    common = assignment_at(session, device_id=report.rows[1].device_id or 0, at=NOW)
    assert common is not None
    assert common.household_id is None
    assert common.building_id == household.building_id


def test_import_reports_each_bad_row_and_writes_nothing(session: Session) -> None:
    gateway = f.gateway_row(session)
    taken = f.device(session, gateway.id, meter_number="Z-TAKEN")
    before = session.scalar(select(func.count(Device.id)))
    data = _csv(
        f"{gateway.name};ok1;generic-json;;;",
        f"{gateway.name};{taken.native_id};generic-json;Z-TAKEN;;",
        "nogw;a//b;nonsense;;Haus X;",
        f"{gateway.name};ok1;generic-json;;;",
        header="gateway;native_id;profile;meter_number;building;household",
    )
    report = import_devices(session, data, profiles=PROFILES)
    assert not report.ok
    assert not report.written
    by_row = {r.row: dict(r.errors) for r in report.rows}
    assert by_row[2] == {}
    assert set(by_row[3]) == {"native_id", "meter_number"}
    assert "in the registry" in by_row[3]["meter_number"]
    assert set(by_row[4]) == {"gateway", "native_id", "profile", "building"}
    assert "earlier row" in by_row[5]["native_id"]
    assert session.scalar(select(func.count(Device.id))) == before
    rows = report.as_json()["rows"]
    assert isinstance(rows, list)
    assert rows[1]["errors"][0] == {"field": "native_id", "reason": by_row[3]["native_id"]}


def test_import_file_errors_and_dry_run(session: Session) -> None:
    gateway = f.gateway_row(session)
    unknown = import_devices(session, _csv(header="gateway,native_id,colour"), profiles=PROFILES)
    assert unknown.file_errors == ["unknown column 'colour'", "missing column 'profile'"]
    assert import_devices(session, b"\xff\xfe", profiles=PROFILES).file_errors[0].startswith("not UTF-8")
    dry = import_devices(
        session, _csv(f"{gateway.name},d1,generic-json,,,", header="gateway,native_id,profile,a,b,c")
    )
    assert dry.file_errors
    dry = import_devices(
        session,
        b"\xef\xbb\xbfgateway,native_id,profile\n" + f"{gateway.name},d1,generic-json".encode(),
        dry_run=True,
    )
    assert dry.ok
    assert not dry.written
    assert session.scalar(select(Device.id).where(Device.native_id == "d1")) is None


def test_cli_import(
    session: Session,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.registry.cli_runner import run_cli as run

    gateway = f.gateway_row(session)
    monkeypatch.setenv("REALLABOR_REGISTRY__URL", db_url)
    monkeypatch.setenv(
        "REALLABOR_INGEST__PROFILES_DIR", str(Path(__file__).resolve().parents[2] / "device_profiles")
    )
    good = tmp_path / "good.csv"
    good.write_text(f"gateway,native_id,profile\n{gateway.name},c1,generic-json\n")
    assert run("devices", "import", str(good), "--json") == 0
    assert json.loads(capsys.readouterr().out)["written"] is True
    bad = tmp_path / "bad.csv"
    bad.write_text(f"gateway,native_id,profile\n{gateway.name},c1,generic-json\n")
    assert run("devices", "import", str(bad)) == 1
    out = capsys.readouterr().out
    assert "row 2: error native_id:" in out
