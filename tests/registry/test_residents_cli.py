"""``reallabor residents invite|invitations|revoke`` on a real SQLite registry: the letter's code redeems,
listings never show a code, revoking by id or by code closes it."""

from __future__ import annotations

import json
import logging
import re

import pytest
from sqlalchemy import Engine

from ingest.registry import invitations as inv
from ingest.registry.db import session_factory
from ingest.security.audit import AUDIT_LOGGER
from tests.registry import factories as f
from tests.registry.cli_runner import run_cli
from tests.registry.test_people_cli import sqlite_registry  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.registry]
CODE = re.compile(r"Einladungscode / code:\s+([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})$", re.M)


def test_invite_list_revoke(
    sqlite_registry: Engine,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    with session_factory(sqlite_registry)() as session:
        household = f.household(session)
        name = household.name

    assert run_cli("residents", "invite", name, "--days", "3", "--url", "https://lab.example/") == 0
    out = capsys.readouterr()
    found = CODE.search(out.out)
    assert found, out.out
    code = found.group(1)
    assert "Öffnen Sie / open:         https://lab.example/portal/welcome" in out.out
    assert f"Haushalt / household:      {name}" in out.out
    assert "shown only now" in out.err
    assert code not in caplog.text  # the audit names the invitation, never its code

    assert run_cli("residents", "invite", str(household.id)) == 0
    second = CODE.search(capsys.readouterr().out)
    assert second
    assert run_cli("residents", "invite", "no such household") == 1
    assert "no household" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("residents", "invite", name, "--days", "91")
    capsys.readouterr()

    assert run_cli("residents", "invitations", "--json") == 0
    listing = capsys.readouterr().out
    items = json.loads(listing)["items"]
    assert [item["state"] for item in items] == ["open", "open"]
    assert code not in listing
    assert second.group(1) not in listing
    assert run_cli("residents", "invitations") == 0
    table = capsys.readouterr().out
    assert name in table
    assert code not in table

    # revoke by the code on the letter (typed loosely), then by id
    assert run_cli("residents", "revoke", code.lower().replace("-", " ")) == 0
    assert f"invitation {items[1]['id']} for household {name} is revoked" in capsys.readouterr().out
    assert run_cli("residents", "revoke", str(items[0]["id"])) == 0
    assert run_cli("residents", "revoke", "9999") == 1
    assert run_cli("residents", "revoke", "AAAA-BBBB-CCCC-DDDD") == 1
    assert "(the code given)" in capsys.readouterr().err  # a wrong code is not echoed into logs
    assert run_cli("residents", "invitations", "--json") == 0
    assert json.loads(capsys.readouterr().out)["items"] == []
    assert run_cli("residents", "invitations", "--all", "--json") == 0
    states = [item["state"] for item in json.loads(capsys.readouterr().out)["items"]]
    assert states == ["revoked", "revoked"]
    with session_factory(sqlite_registry)() as session, pytest.raises(inv.InvitationInvalid):
        inv.redeem(session, code, username="too.late", password="a long enough secret")


def test_printed_code_redeems(sqlite_registry: Engine, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    with session_factory(sqlite_registry)() as session:
        household_id = f.household(session).id
    assert run_cli("residents", "invite", str(household_id)) == 0
    found = CODE.search(capsys.readouterr().out)
    assert found
    with session_factory(sqlite_registry)() as session:
        user = inv.redeem(session, found.group(1), username="erika", password="a long enough secret")
        assert user.household_id == household_id
    assert run_cli("residents", "invitations", "--all", "--json") == 0
    assert [item["state"] for item in json.loads(capsys.readouterr().out)["items"]] == ["redeemed"]


def test_the_letter_url_is_api_public_url(
    sqlite_registry: Engine,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The letter prints ``api.public_url`` (not where the API listens); production refuses to guess."""
    with session_factory(sqlite_registry)() as session:
        name = f.household(session).name
    monkeypatch.setenv("REALLABOR_API__PUBLIC_URL", "https://quartier.example/energie/")
    assert run_cli("residents", "invite", name) == 0
    assert (
        "Öffnen Sie / open:         https://quartier.example/energie/portal/welcome\n"
        in capsys.readouterr().out
    )
    assert run_cli("residents", "invite", name, "--url", "https://other.example") == 0  # --url wins
    assert "https://other.example/portal/welcome" in capsys.readouterr().out

    monkeypatch.delenv("REALLABOR_API__PUBLIC_URL")
    monkeypatch.setenv("REALLABOR_MODE", "production")
    with session_factory(sqlite_registry)() as session:
        before = len(inv.list_invitations(session, limit=100, offset=0)[0])
    assert run_cli("residents", "invite", name) == 2
    assert "api.public_url: required in mode 'production'" in capsys.readouterr().err
    with session_factory(sqlite_registry)() as session:
        assert len(inv.list_invitations(session, limit=100, offset=0)[0]) == before  # none made

    monkeypatch.setenv("REALLABOR_API__PUBLIC_URL", "http://quartier.example")
    with pytest.raises(SystemExit):  # refused at start, with the key path
        run_cli("residents", "invite", name)
    assert "api.public_url: 'http://quartier.example': mode 'production' needs an https://" in (
        capsys.readouterr().err
    )
