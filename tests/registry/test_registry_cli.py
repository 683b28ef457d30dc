"""``reallabor users|gateways|devices`` as functions over parsed args, on SQLite and the dynsec broker."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ingest.dynsec import DynsecBootstrap
from ingest.localservices import Mosquitto
from ingest.registry.db import make_engine, session_factory
from tests.registry import factories as f
from tests.registry.cli_runner import run_cli
from tests.registry.mqtt_client import connect_result

pytestmark = [pytest.mark.registry, pytest.mark.integration]


@pytest.fixture
def registry_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap
) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("REALLABOR_REGISTRY__URL", url)
    monkeypatch.setenv("REALLABOR_MQTT__PORT", str(dynsec_broker.port))
    monkeypatch.setenv("REALLABOR_BROKER_ADMIN__PASSWORD", bootstrap.admin_password)
    return url


def test_cli_round_trip(
    registry_env: str,
    dynsec_broker: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = make_engine(registry_env)
    run_cli("devices", "list")  # migrates an empty database
    with session_factory(engine)() as session:
        household = f.household(session)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long resident password\n"))
    assert (
        run_cli(
            "users",
            "add",
            "erika",
            "--role",
            "resident",
            "--household",
            str(household.id),
            "--password-stdin",
        )
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert run_cli("users", "add", "erika", "--role", "operator", "--password-stdin") == 1  # duplicate
    capsys.readouterr()

    name = f"cli{f.tag()}"
    assert run_cli("gateways", "add", name) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["client_id"] == lines["username"]  # the only id the broker lets this account use
    port = dynsec_broker.port
    assert (
        connect_result(port, lines["username"], lines["password"], client_id=lines["client_id"]) == "Success"
    )
    assert run_cli("gateways", "rotate", name) == 0
    rotated = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    old_login = connect_result(port, lines["username"], lines["password"], client_id=lines["client_id"])
    assert old_login == "Not authorized"
    new_login = connect_result(port, rotated["username"], rotated["password"], client_id=rotated["client_id"])
    assert new_login == "Success"

    assert (
        run_cli(
            "devices",
            "add",
            "--gateway",
            name,
            "--native-id",
            "meter7",
            "--profile",
            "generic-json",
            "--meter-number",
            "1EMH0099",
            "--household",
            str(household.id),
            "--from",
            "2026-03-01T08:00+01:00",
        )
        == 0
    )
    capsys.readouterr()
    assert run_cli("devices", "list", "--household", str(household.id), "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["total"] == 1
    assert listed["items"][0]["meter_number"] == "1EMH0099"
    assert (
        run_cli(
            "devices",
            "add",
            "--gateway",
            name,
            "--native-id",
            "m8",
            "--profile",
            "p",
            "--meter-number",
            "1EMH0099",
        )
        == 1
    )

    assert run_cli("gateways", "revoke", name) == 0
    revoked_login = connect_result(
        port, rotated["username"], rotated["password"], client_id=rotated["client_id"]
    )
    assert revoked_login == "Not authorized"
    assert run_cli("gateways", "rotate", "no-such-gateway") == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["devices", "add", "--gateway", "g", "--native-id", "m1\n", "--profile", "p"], "control character"),
        (
            ["devices", "add", "--gateway", "g", "--native-id", "m1", "--profile", "p", "--location", "=1+2"],
            "formula",
        ),
        (["users", "add", "ops\x00", "--role", "operator"], "control character"),
        (["users", "add", "ops", "--role", "operator", "--full-name", "@SUM(A1)"], "formula"),
    ],
)
def test_cli_refuses_what_the_api_refuses(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line checks text by the same rule as the JSON API and the CSV import."""
    with pytest.raises(SystemExit) as exited:
        run_cli(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
