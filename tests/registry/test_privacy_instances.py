"""Deleting a household erases its messages from the ingester's quarantine: from every instance's file
(``<state_dir>/instance-K/``) as from the single one, through the library, the API and the command line.
Its messages are those of its devices while assigned to it (by device key or by topic) and refused lines
with its tags; other households' entries and its devices' messages from before stay. The erased payloads
are gone from the files' bytes, not only from the table."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.config import Settings
from ingest.privacy.delete import delete_household, plan_deletion
from ingest.privacy.export import export_household
from ingest.privacy.influx import Selector
from ingest.privacy.quarantine import Window, closed, erase
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry
from ingest.registry.models import Role
from ingest.timeparse import datetime_to_ns
from tests.helpers import Target
from tests.registry import factories as f
from tests.registry.cli_runner import run_cli
from tests.registry.privacy_fixtures import app_client, cli_settings, quarter
from tests.registry.privacy_world import Home, Quarter, escape

__all__ = ["app_client", "quarter"]  # fixtures, imported for the tests of this module
pytestmark = [pytest.mark.registry]
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the registry's part is tested on both

ASSIGNED = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)  # after privacy_world's assignments began (2026-01-01)
BEFORE = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)  # before them: nobody's household
FILES = {
    "one": [QUARANTINE_FILE] * 3,
    "instances": [QUARANTINE_FILE, f"instance-0/{QUARANTINE_FILE}", f"instance-1/{QUARANTINE_FILE}"],
}


def _secret(home: Home, n: int) -> bytes:
    return f"secret-{home.index}-{n}".encode()


def _device_message(home: Home, device: int, n: int, at: dt.datetime, *, keyed: bool) -> QuarantineEntry:
    gateway, native = home.devices[device]
    payload = b'{"power_w": "' + _secret(home, n) + b'"}'
    topic = f"p/lab/{gateway}/{native}/state"
    if keyed:  # as the enricher rejects a device it does not know (yet)
        return QuarantineEntry(
            topic, payload, datetime_to_ns(at), "unknown_device", "", None, gateway, native
        )
    return QuarantineEntry(topic, payload, datetime_to_ns(at), "implausible", "power_w out of range")


def _refused_line(home: Home, n: int) -> QuarantineEntry:
    tags = f"household={escape(home.name)},building={escape(home.building)}"
    line = f"electricity,{tags},gateway=g power_w=1 {n}".encode() + b" # " + _secret(home, n)
    return QuarantineEntry(
        "influx:electricity", line, datetime_to_ns(ASSIGNED), "influx_rejected", "field type"
    )


def _seed(state: Path, quarter: Quarter, layout: str) -> tuple[Home, dict[str, set[bytes]]]:
    """Each home's messages spread over the layout's files; the home to delete and, per file, the
    secrets that must stay."""
    gone = quarter.homes[0]  # 'WE 1'; quarter.homes[1] is a 'WE 1' too, in the other building
    names = FILES[layout]
    entries: dict[str, list[QuarantineEntry]] = {name: [] for name in names}
    kept: dict[str, set[bytes]] = {name: set() for name in names}
    for home in quarter.homes:
        spread = [
            (names[0], _device_message(home, 0, 1, ASSIGNED, keyed=True)),
            (names[1], _device_message(home, 1, 2, ASSIGNED + dt.timedelta(hours=1), keyed=False)),
            (names[2], _device_message(home, 0, 3, ASSIGNED + dt.timedelta(hours=2), keyed=False)),
            (names[2], _refused_line(home, 4)),
            (names[1], _device_message(home, 0, 5, BEFORE, keyed=True)),  # before its assignment
        ]
        for n, (name, entry) in enumerate(spread, 1):
            entries[name].append(entry)
            if home is not gone or n == 5:
                kept[name].add(_secret(home, n))
    for name, listed in entries.items():
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        with Quarantine(state / name) as q:
            q.add_many(listed)
    return gone, kept


def _left(state: Path, kept: dict[str, set[bytes]]) -> dict[str, set[bytes]]:
    """Per file, the secrets still in its entries; and none of the erased ones in its bytes."""
    left = {}
    for name in kept:
        with Quarantine(state / name, read_only=True) as q:
            payloads = [r.payload for r in q.list(limit=1000)]
        left[name] = {s for s in _all_secrets() if any(s in p for p in payloads)}
        raw = b"".join(p.read_bytes() for p in (state / name).parent.glob(f"{QUARANTINE_FILE}*"))
        assert not [s for s in _all_secrets() if s in raw and s not in left[name]], name
    return left


def _exported(body: bytes) -> tuple[int, list[dict[str, str]]]:
    """household.json's count of quarantined messages and quarantine.csv's rows."""
    archive = zipfile.ZipFile(io.BytesIO(body))
    held = json.loads(archive.read("household.json"))["quarantine_messages"]
    if "quarantine.csv" not in archive.namelist():
        return held, []
    return held, list(csv.DictReader(io.StringIO(archive.read("quarantine.csv").decode())))


def _payload(row: dict[str, str]) -> bytes:
    if row["payload_encoding"] == "base64":
        return base64.b64decode(row["payload"])
    return row["payload"].encode()


def _all_secrets() -> set[bytes]:
    return {f"secret-{i}-{n}".encode() for i in (1, 2, 3) for n in range(1, 6)}


@SQLITE
@pytest.mark.parametrize("layout", ["one", "instances"])
def test_delete_erases_its_messages_from_every_quarantine(
    session: Session, quarter: Quarter, tmp_path: Path, layout: str
) -> None:
    state = tmp_path / "state"
    gone, kept = _seed(state, quarter, layout)
    path = state / QUARANTINE_FILE
    assert plan_deletion(session, quarter.data(), gone.household, quarantine=path).quarantine == 4
    assert plan_deletion(session, quarter.data(), gone.household).quarantine == 0  # none given

    export = export_household(session, gone.household, quarantine=path)
    held, rows = _exported(b"".join(export.chunks(quarter.data())))
    assert held == len(rows) == 4
    assert sorted(_payload(row).split(b"secret-")[1][:3] for row in rows) == [b"1-1", b"1-2", b"1-3", b"1-4"]
    assert {row["file"] for row in rows} == set(FILES[layout])
    assert {row["reason"] for row in rows} == {"unknown_device", "implausible", "influx_rejected"}

    record = delete_household(
        session,
        quarter.data(),
        gone.household,
        actor="op",
        actor_role="operator",
        reason="x",
        quarantine=path,
    )
    assert _left(state, kept) == {name: kept[name] for name in kept}
    erased = record.counts["quarantine"]
    assert sum(erased.values()) == 4
    assert set(erased) == set(FILES[layout])
    assert "quarantine_late" not in record.counts


def test_late_erasure_ends_where_the_assignment_ended(tmp_path: Path) -> None:
    path = tmp_path / QUARANTINE_FILE
    start, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    entries = [
        QuarantineEntry(f"lab/gw/m1/{n}", b"x", datetime_to_ns(at), "implausible", "")
        for n, at in enumerate((end - dt.timedelta(seconds=1), end, end + dt.timedelta(days=1)))
    ]
    with Quarantine(path) as q:
        q.add_many(entries)
    windows = closed([Window("gw", "m1", datetime_to_ns(start), None)], end)
    assert erase(path, windows, Selector("WE 1", "Haus A")) == {QUARANTINE_FILE: 1}
    with Quarantine(path, read_only=True) as q:
        assert [r.topic for r in q.list()] == ["lab/gw/m1/1", "lab/gw/m1/2"]  # the next tenant's


@SQLITE
def test_api_and_cli_erase_every_instance(
    app_client: TestClient,
    api_settings: Settings,
    session: Session,
    quarter: Quarter,
    db_url: str,
    target: Target,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = api_settings.ingest.state_dir
    gone, kept = _seed(state, quarter, "instances")
    signer = app_client.app.state.signer  # type: ignore[attr-defined]
    app_client.cookies.set(signer.cookie_name, signer.issue(f.user(session, Role.operator)))
    exported = app_client.get(f"/api/v1/households/{gone.id}/export")
    assert exported.status_code == 200, exported.text
    held, rows = _exported(exported.content)
    assert (held, sorted(row["file"] for row in rows)) == (
        4,
        sorted(FILES["instances"] + [FILES["instances"][2]]),
    )
    url = f"/api/v1/households/{gone.id}/deletion"
    answer = app_client.post(url, json={"confirm_name": gone.name, "reason": "move-out"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"]["quarantine"] == {
        QUARANTINE_FILE: 1,
        f"instance-0/{QUARANTINE_FILE}": 1,
        f"instance-1/{QUARANTINE_FILE}": 2,
    }
    assert _left(state, kept) == kept

    # the command line, with the settings of two instances: the next household
    neighbour = quarter.homes[2]
    ingest = {"state_dir": str(state), "instances": 2}
    config = cli_settings(tmp_path / "settings.yaml", db_url, target, ingest=ingest)
    args = ("households", "delete", str(neighbour.id), "--reason", "move-out", "--config", str(config))
    zipped = tmp_path / "export.zip"
    assert (
        run_cli("households", "export", str(neighbour.id), "--out", str(zipped), "--config", str(config)) == 0
    )
    held, rows = _exported(zipped.read_bytes())
    assert held == 4
    assert all(_payload(row).count(b"secret-3-") == 1 for row in rows)
    assert run_cli(*args, "--settle", "0") == 2
    assert "quarantine (every ingester instance's): 4 messages" in capsys.readouterr().out
    assert run_cli(*args, "--settle", "0", "--yes") == 0
    printed = json.loads(capsys.readouterr().out.split("deleted: record ", 1)[1].split("\n", 1)[1])
    assert sum(printed["counts"]["quarantine"].values()) == 4
    still = {
        name: {s for s in secrets if not s.startswith(b"secret-3-") or s == b"secret-3-5"}
        for name, secrets in kept.items()
    }
    assert _left(state, kept) == still  # same_name's ('WE 1' of the other building) stay as well
