"""``reallabor buildings|households`` and ``users add``'s household, on a real SQLite registry; and the
registry commands finding the demo's settings without ``--config``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from ingest.registry.models import Household, User
from ingest.security.audit import AUDIT_LOGGER
from tests.registry import factories as f
from tests.registry.cli_runner import run_cli

pytestmark = [pytest.mark.registry]


@pytest.fixture
def sqlite_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite registry named by the environment; no settings file (this test's own cwd)."""
    monkeypatch.chdir(tmp_path)  # no state/demo/ingest.yaml of a running demo
    monkeypatch.delenv("REALLABOR_CONFIG", raising=False)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("REALLABOR_REGISTRY__URL", url)
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def test_buildings_and_households(
    sqlite_registry: Engine, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    assert run_cli("buildings", "add", "Haus A", "--address", "Am Reallabor 1, Oldenburg") == 0
    assert "building Haus A created" in capsys.readouterr().out
    assert run_cli("buildings", "add", "Haus A") == 1  # names are unique
    assert run_cli("buildings", "add", "Haus B", "--notes", "Wärmepumpe\nseit 2024") == 0
    capsys.readouterr()

    assert run_cli("households", "add", "WE 01", "--building", "Haus A") == 0  # by name
    assert "household WE 01 in Haus A created" in capsys.readouterr().out
    assert run_cli("households", "add", "WE 02", "--building", "1") == 0  # by id
    assert run_cli("households", "add", "WE 01", "--building", "Haus B") == 0  # unique per building only
    assert run_cli("households", "add", "WE 02", "--building", "Haus A") == 1  # duplicate in Haus A
    assert run_cli("households", "add", "WE 09", "--building", "Haus Z") == 1
    assert "no building with id or name 'Haus Z' (reallabor buildings list" in capsys.readouterr().err
    with session_factory(sqlite_registry)() as session:
        f.gateway_row(session, building_id=1)

    assert run_cli("buildings", "list", "--json") == 0
    listed = _json(capsys)
    assert listed["total"] == 2
    assert [(b["name"], b["households"], b["gateways"]) for b in listed["items"]] == [
        ("Haus A", 2, 1),
        ("Haus B", 1, 0),
    ]
    assert run_cli("buildings", "list") == 0
    text = capsys.readouterr()
    assert text.out.splitlines()[1].split() == [
        "1",
        "Haus",
        "A",
        "2",
        "1",
        "Am",
        "Reallabor",
        "1,",
        "Oldenburg",
    ]
    assert text.err.splitlines()[-1] == "2 of 2"

    assert run_cli("households", "list", "--building", "Haus A", "--json") == 0
    households = _json(capsys)
    assert [(h["name"], h["building"]) for h in households["items"]] == [
        ("WE 01", "Haus A"),
        ("WE 02", "Haus A"),
    ]
    assert run_cli("households", "list", "--json") == 0
    assert _json(capsys)["total"] == 3

    events = [record.getMessage() for record in caplog.records if record.name == AUDIT_LOGGER]
    assert [event.split()[0] for event in events] == [
        "building.created",
        "building.created",
        "household.created",
        "household.created",
        "household.created",
    ]
    assert "building='Haus A'" in events[0]
    assert "by='cli:" in events[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["buildings", "add", "=HYPERLINK(1)"], "formula"),
        (["buildings", "add", "Haus C", "--address", "Weg 1\nZeile 2"], "control character"),
        (["households", "add", "", "--building", "1"], "at least 1 character"),
    ],
)
def test_people_commands_refuse_what_the_api_refuses(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_users_add_names_the_household(
    sqlite_registry: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with session_factory(sqlite_registry)() as session:
        first = f.household(session)
        f.household(session)  # a second building ...
        twin = f.household(session)
        twin.name = first.name  # ... with a household of the same name
        unique = f.household(session)
        session.commit()
        first_id, twin_id, unique_id, unique_name = first.id, twin.id, unique.id, unique.name
    stdin = io.StringIO("a long resident password\n" * 4)
    monkeypatch.setattr("sys.stdin", stdin)

    with pytest.raises(SystemExit) as exited:
        run_cli("users", "add", "erika", "--role", "resident", "--password-stdin")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "give --household ID|NAME" in err
    assert "reallabor households list" in err
    with pytest.raises(SystemExit) as exited:
        run_cli("users", "add", "otto", "--role", "operator", "--household", "1", "--password-stdin")
    assert exited.value.code == 2
    assert "only residents belong to a household, not a operator" in capsys.readouterr().err
    assert stdin.tell() == 0  # refused before the password was asked for

    assert run_cli("users", "add", "erika", "--role", "resident", "--household", first.name) == 1
    err = capsys.readouterr().err
    assert f"2 households are named {first.name!r} (id {first_id} in " in err
    assert "give the id" in err
    assert run_cli("users", "add", "nobody", "--role", "resident", "--household", "WE 404") == 1
    assert "no household with id or name 'WE 404'" in capsys.readouterr().err

    assert (
        run_cli("users", "add", "erika", "--role", "resident", "--household", unique_name, "--password-stdin")
        == 0
    )
    assert (
        run_cli("users", "add", "max", "--role", "resident", "--household", str(twin_id), "--password-stdin")
        == 0
    )
    assert run_cli("users", "add", "ops", "--role", "operator", "--password-stdin") == 0
    with session_factory(sqlite_registry)() as session:
        users = {u.username: u.household_id for u in session.scalars(select(User))}
    assert users == {"erika": unique_id, "max": twin_id, "ops": None}


def test_registry_commands_find_the_demo_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --config: $REALLABOR_CONFIG, else the demo's state/demo/ingest.yaml, saying which."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REALLABOR_CONFIG", raising=False)
    monkeypatch.delenv("REALLABOR_REGISTRY__URL", raising=False)
    demo_db, other_db = tmp_path / "demo.db", tmp_path / "other.db"
    (tmp_path / "state" / "demo").mkdir(parents=True)
    (tmp_path / "state" / "demo" / "ingest.yaml").write_text(f"registry:\n  url: sqlite:///{demo_db}\n")
    (tmp_path / "other.yaml").write_text(f"registry:\n  url: sqlite:///{other_db}\n")

    assert run_cli("buildings", "add", "Haus Demo") == 0
    assert "settings from state/demo/ingest.yaml (the demo's" in capsys.readouterr().err
    assert run_cli("households", "add", "WE 01", "--building", "Haus Demo") == 0
    monkeypatch.setenv("REALLABOR_CONFIG", str(tmp_path / "other.yaml"))
    assert run_cli("buildings", "add", "Haus Other") == 0
    assert f"settings from {tmp_path / 'other.yaml'} (REALLABOR_CONFIG)" in capsys.readouterr().err
    assert run_cli("buildings", "list", "--config", "state/demo/ingest.yaml", "--json") == 0
    assert [b["name"] for b in _json(capsys)["items"]] == ["Haus Demo"]

    for db, names in ((demo_db, ["WE 01"]), (other_db, [])):
        engine = make_engine(f"sqlite:///{db}")
        with session_factory(engine)() as session:
            assert list(session.scalars(select(Household.name))) == names
        engine.dispose()
