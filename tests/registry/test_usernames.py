"""The rule for new usernames (ingest/registry/usernames.py, review 14 L6), on SQLite and PostgreSQL:
look-alikes from other scripts and full-width forms are refused, names are unique in any case and form
(SQLite's lower() folds ASCII only: "Ärger" and "ärger" had both been registered), for residents by
invitation and staff alike; an account made under the former rule keeps logging in and blocks its
look-alikes."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from ingest.registry import invitations as inv
from ingest.registry.db import commit
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.models import Role, User
from ingest.registry.passwords import hash_password
from ingest.registry.people import authenticate, create_user
from ingest.registry.usernames import username_key, username_problem, username_taken
from tests.registry import factories as f

pytestmark = pytest.mark.registry
PASSWORD = "a long enough secret"


@pytest.mark.parametrize(
    "name",
    [
        "\u043eperator",  # Cyrillic о
        "\uff4fperator",  # full-width ｏ
        "Ärger",
        "ärger",
        "Jürgen",
        "Stra\u00dfe",  # ß
        "e\u0301rika",  # a combining accent
        "erika\u200b",  # zero-width space
        ".erika",
        "has space",
    ],
)
def test_look_alikes_and_non_ascii_are_refused(name: str) -> None:
    assert username_problem(name) is not None


def test_plain_names_are_fine() -> None:
    for name in ("erika.m", "Juergen.Mueller-2", "haus-a-we-03", "anna@we3", "x_y"):
        assert username_problem(name) is None, name
    assert username_key("ＥＲＩＫＡ") == username_key("erika") == username_key("Erika")


def _legacy(session: Session, username: str, household_id: int) -> User:
    """An account as the former rule let it be made (any script), straight into the table."""
    row = User(
        username=username,
        password_hash=hash_password(PASSWORD),
        role=Role.resident,
        household_id=household_id,
        full_name="",
        is_active=True,
        session_version=0,
    )
    session.add(row)
    commit(session)
    return row


def test_unique_in_any_case_and_form(session: Session) -> None:
    household = f.household(session)
    _legacy(session, "Ärger", household.id)
    _legacy(session, "ｅｒｉｋａ", household.id)  # full-width, made before the rule
    assert authenticate(session, username="Ärger", password=PASSWORD) is not None  # still logs in
    assert authenticate(session, username="ｅｒｉｋａ", password=PASSWORD) is not None

    assert username_taken(session, "ÄRGER")  # the database's lower() would not see it on SQLite
    assert username_taken(session, "ärger")
    assert username_taken(session, "ERIKA")
    assert not username_taken(session, "aerger")

    _, code = inv.create(session, household_id=household.id, by="t")
    with pytest.raises(Conflict):
        inv.redeem(session, code, username="Erika", password=PASSWORD)
    with pytest.raises(InvalidField) as refused:
        inv.redeem(session, code, username="ärger", password=PASSWORD)
    assert refused.value.field == "username"
    with pytest.raises(InvalidField):
        inv.redeem(session, code, username="\u043eperator", password=PASSWORD)
    made = inv.redeem(session, code, username="Aerger", password=PASSWORD)
    assert made.username == "Aerger"

    staff = create_user(session, username="Operator", password=PASSWORD, role=Role.operator)
    for twin in ("operator", "OPERATOR", "ＯPERATOR"):
        with pytest.raises((Conflict, InvalidField)):
            create_user(session, username=twin, password=PASSWORD, role=Role.operator)
    with pytest.raises(InvalidField, match="ASCII"):
        create_user(session, username="\u043eperator2", password=PASSWORD, role=Role.technician)
    with pytest.raises(Conflict):
        create_user(session, username="aerger", password=PASSWORD, role=Role.technician)
    assert authenticate(session, username=staff.username, password=PASSWORD) is not None
    suggestion = inv.suggest_username(session, household)
    assert username_problem(suggestion) is None
    assert not username_taken(session, suggestion)
