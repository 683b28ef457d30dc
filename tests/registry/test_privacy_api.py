"""A household's data through the app and the command line, against the real InfluxDB and registry:
operators export and delete (the page wants the household's name typed again and the session's CSRF
token), technicians and residents get 403, the anonymous 401 or the login; a resident's export is
always their own household, whatever the request says; an export holds the household's rows only."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.models import DeletionRecord, Household, Role, User
from tests.helpers import Target
from tests.registry import factories as f
from tests.registry.cli_runner import run_cli
from tests.registry.privacy_fixtures import app_client, cli_settings, quarter
from tests.registry.privacy_world import Home, Quarter

__all__ = ["app_client", "quarter"]  # fixtures, imported for the tests of this module
pytestmark = [pytest.mark.registry, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def log_in(client: TestClient, user: User | None) -> str:
    """The session cookie of ``user`` (None: none); the session's CSRF token."""
    client.cookies.clear()
    if user is None:
        return ""
    signer = client.app.state.signer  # type: ignore[attr-defined]
    token = signer.issue(user)
    client.cookies.set(signer.cookie_name, token)
    csrf: str = signer.csrf_token(token)
    return csrf


def unzip(body: bytes) -> tuple[dict[str, object], dict[str, list[dict[str, str]]]]:
    archive = zipfile.ZipFile(io.BytesIO(body))
    facts = json.loads(archive.read("household.json"))
    tables = {}
    for name in archive.namelist():
        if name.endswith(".csv"):
            tables[name] = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    return facts, tables


def assert_only(home: Home, body: bytes, quarter: Quarter) -> None:
    """The export is ``home``'s: its registry facts, and every CSV row its own (tags and values), as
    many field values as InfluxDB holds for it."""
    facts, tables = unzip(body)
    assert facts["household"]["id"] == home.id  # type: ignore[index]
    assert sorted(r["username"] for r in facts["residents"]) == sorted(home.usernames)  # type: ignore[attr-defined]
    assert len(facts["assignments"]) == 2  # type: ignore[arg-type]
    assert len(facts["invitations"]) == 1  # type: ignore[arg-type]
    text = json.dumps(facts)
    for secret in ("password", "session_key", "code_hash", "$argon2"):
        assert secret not in text
    expected = quarter.counts()[home.id]
    assert {name.removeprefix("influx/").removesuffix(".csv").replace("/", ".") for name in tables} == set(
        expected
    )
    others = [h for h in quarter.homes if h is not home]
    for name, rows in tables.items():
        key = name.removeprefix("influx/").removesuffix(".csv").replace("/", ".")
        assert rows, name
        values = 0
        for row in rows:
            assert (row["household"], row["building"]) == (home.name, home.building)
            for column, cell in row.items():
                if column in ("time", "household", "building", "gateway", "device", "kind") or cell == "":
                    continue
                number = float(cell)
                assert home.base <= number < home.base + 1_000_000, (name, column, cell)
                assert not any(o.base <= number < o.base + 1_000_000 for o in others)
                values += 1
        assert values == expected[key], key


def test_operator_deletes_by_typing_the_name(
    app_client: TestClient, session: Session, quarter: Quarter
) -> None:
    gone, same_name, _ = quarter.homes
    operator = f.user(session, Role.operator)
    csrf = log_in(app_client, operator)
    before = quarter.counts()

    listing = app_client.get("/ops/households")
    assert listing.status_code == 200
    assert f"/ops/households/{gone.id}/delete" in listing.text
    page = app_client.get(f"/ops/households/{gone.id}/delete")
    assert page.status_code == 200
    assert 'id="plan"' in page.text
    for username in gone.usernames:
        assert username in page.text
    url = f"/ops/households/{gone.id}/delete"
    form = {"reason": "move-out", "confirm_name": gone.name}
    app_client.cookies.set("reallabor_lang", "de")
    for token in ({}, {"csrf_token": "x" * 43}):  # none, made up: the pages' "form expired" page
        expired = app_client.post(url, data={**form, **token})
        assert expired.status_code == 403
        assert expired.headers["content-type"].startswith("text/html")
        assert "Das Formular ist abgelaufen" in expired.text
    listing = app_client.get("/ops/households")
    assert f'href="/tech/invitations?household={gone.id}"' in listing.text  # "Einladen"
    assert 'href="/tech/invitations"' in listing.text  # the menu: Einladungen
    wrong = app_client.post(url, data={**form, "confirm_name": "WE 2", "csrf_token": csrf})
    assert wrong.status_code == 422
    assert 'id="problem"' in wrong.text
    no_reason = app_client.post(url, data={**form, "reason": " ", "csrf_token": csrf})
    assert no_reason.status_code == 422
    formula = app_client.post(url, data={**form, "reason": "=1+1", "csrf_token": csrf})
    assert formula.status_code == 422
    assert quarter.counts() == before  # nothing deleted yet

    done = app_client.post(url, data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/ops/deletions?done=D-")
    records = app_client.get(done.headers["location"])
    assert 'id="finished"' in records.text
    assert gone.name not in records.text.split("<main>")[1]  # no household name in the records
    assert quarter.counts()[gone.id] == {}
    assert quarter.counts()[same_name.id] == before[same_name.id]
    session.expire_all()
    assert session.get(Household, gone.id) is None

    api = app_client.get("/api/v1/deletion-records")
    assert api.status_code == 200
    [record] = api.json()["items"]
    assert (record["actor"], record["actor_role"], record["status"]) == (
        operator.username,
        "operator",
        "done",
    )
    assert record["counts"]["influx"] == before[gone.id]


def test_api_deletion_json(app_client: TestClient, session: Session, quarter: Quarter) -> None:
    gone = quarter.homes[2]
    signer = app_client.app.state.signer  # type: ignore[attr-defined]
    resident = {"Authorization": f"Bearer {signer.issue(gone.residents[0])}"}
    assert app_client.get("/api/v1/me", headers=resident).status_code == 200
    log_in(app_client, f.user(session, Role.operator))
    url = f"/api/v1/households/{gone.id}/deletion"
    assert app_client.post(url, json={"confirm_name": "nope", "reason": "move-out"}).status_code == 422
    assert app_client.post(url, json={"confirm_name": gone.name}).status_code == 422
    for reason in ("bad\x00", "=HYPERLINK(1)", "two\nlines"):  # the registry's text rule
        assert app_client.post(url, json={"confirm_name": gone.name, "reason": reason}).status_code == 422
    assert app_client.post(url, data={"confirm_name": gone.name, "reason": "x"}).status_code == 403
    assert quarter.counts()[gone.id]
    answer = app_client.post(url, json={"confirm_name": gone.name, "reason": "move-out"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"]["registry"]["residents"] == 2
    assert quarter.counts()[gone.id] == {}
    assert app_client.post(url, json={"confirm_name": gone.name, "reason": "again"}).status_code == 404
    app_client.cookies.clear()
    assert app_client.get("/api/v1/me", headers=resident).status_code == 401  # the session died with it


def test_only_operators_delete_and_export(app_client: TestClient, session: Session, quarter: Quarter) -> None:
    home = quarter.homes[0]
    before = quarter.counts()
    callers = {
        "technician": f.user(session, Role.technician),
        "resident": home.residents[0],  # even of the household itself
    }
    form = {"reason": "move-out", "confirm_name": home.name}
    for who, user in callers.items():
        csrf = log_in(app_client, user)
        for path in (
            f"/ops/households/{home.id}/delete",
            f"/ops/households/{home.id}/export",
            "/ops/households",
            "/ops/deletions",
        ):
            assert app_client.get(path).status_code == 403, (who, path)
        posted = app_client.post(f"/ops/households/{home.id}/delete", data={**form, "csrf_token": csrf})
        assert posted.status_code == 403, who
        api = app_client.post(f"/api/v1/households/{home.id}/deletion", json=form)
        assert api.status_code == 403, who
        assert app_client.get(f"/api/v1/households/{home.id}/export").status_code == 403, who
        assert app_client.get("/api/v1/deletion-records").status_code == 403, who
    log_in(app_client, None)
    assert app_client.get(f"/ops/households/{home.id}/delete", follow_redirects=False).status_code == 303
    assert app_client.post(f"/ops/households/{home.id}/delete", data=form).status_code in (401, 403, 303)
    assert app_client.post(f"/api/v1/households/{home.id}/deletion", json=form).status_code == 401
    assert app_client.get("/api/v1/deletion-records").status_code == 401
    assert app_client.get("/api/v1/me/export").status_code == 401
    assert app_client.get("/portal/export", follow_redirects=False).status_code == 303
    assert quarter.counts() == before
    assert session.scalars(select(DeletionRecord)).all() == []


def test_exports_hold_only_the_household(app_client: TestClient, session: Session, quarter: Quarter) -> None:
    home, same_name, neighbour = quarter.homes
    log_in(app_client, f.user(session, Role.operator))
    for one in quarter.homes:
        answer = app_client.get(f"/api/v1/households/{one.id}/export")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        assert_only(one, answer.content, quarter)
    page = app_client.get(f"/ops/households/{home.id}/export")
    assert_only(home, page.content, quarter)

    resident = home.residents[1]
    log_in(app_client, resident)
    tampered = [
        "/api/v1/me/export",
        f"/api/v1/me/export?household_id={same_name.id}",
        f"/api/v1/me/export?household={neighbour.id}",
        "/portal/export",
        f"/portal/export?household_id={same_name.id}&household={same_name.id}",
    ]
    app_client.cookies.set("household", str(neighbour.id))
    app_client.cookies.set("household_id", str(neighbour.id))
    for path in tampered:
        answer = app_client.get(path)
        assert answer.status_code == 200, path
        assert_only(home, answer.content, quarter)
    assert app_client.get(f"/portal/export/{same_name.id}").status_code == 404
    assert app_client.get(f"/api/v1/households/{same_name.id}/export").status_code == 403
    staff = f.user(session, Role.technician)
    log_in(app_client, staff)
    assert app_client.get("/api/v1/me/export").status_code == 403
    assert app_client.get("/portal/export").status_code == 403


def test_cli_prints_first_and_deletes_with_yes(
    session: Session,
    quarter: Quarter,
    db_url: str,
    target: Target,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone = quarter.homes[1]
    config = cli_settings(tmp_path / "settings.yaml", db_url, target)
    before = quarter.counts()
    out = tmp_path / "export.zip"
    assert run_cli("households", "export", str(gone.id), "--out", str(out), "--config", str(config)) == 0
    assert_only(gone, out.read_bytes(), quarter)
    assert out.stat().st_mode & 0o077 == 0
    capsys.readouterr()

    assert run_cli("households", "delete", str(gone.id), "--reason", "move-out", "--config", str(config)) == 2
    printed = capsys.readouterr()
    assert "--yes" in printed.err
    assert f"{sum(before[gone.id].values())} values" in printed.out
    assert quarter.counts() == before

    assert (
        run_cli(
            "households", "delete", str(gone.id), "--reason", "move-out", "--yes", "--config", str(config)
        )
        == 0
    )
    assert "deleted: record D-" in capsys.readouterr().out
    assert quarter.counts()[gone.id] == {}
    assert (
        run_cli("households", "delete", str(gone.id), "--reason", "again", "--yes", "--config", str(config))
        == 1
    )
    assert run_cli("households", "deletions", "--json", "--config", str(config)) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["actor"].startswith("cli:")
    assert record["actor_role"] == "cli"
    assert record["household_id"] == gone.id
