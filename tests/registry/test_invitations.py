"""Invitations in the registry, on SQLite and PostgreSQL: the code (form, entropy, only its hash stored),
expiry, one-time use, revoke, one neutral error for every closed code, concurrent redeems."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ingest.registry import invitations as inv
from ingest.registry.db import session_factory
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.models import Invitation, Role, User
from ingest.registry.people import authenticate
from tests.registry import factories as f

pytestmark = pytest.mark.registry

PASSWORD = "a long enough secret"
NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def _neutral(exc: pytest.ExceptionInfo[inv.InvitationInvalid]) -> str:
    return str(exc.value)


def test_code_form_and_entropy() -> None:
    codes = {inv.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert math.log2(len(inv.ALPHABET)) * inv.CODE_LENGTH >= 80
    for code in list(codes)[:50]:
        printed = inv.grouped(code)
        assert len(printed) == 19
        assert printed.count("-") == 3
        assert not set(code) & set("ILOU")
        assert inv.normalize_code(printed) == code
    # every character of the alphabet turns up (secrets.choice over all 32)
    assert set("".join(codes)) == set(inv.ALPHABET)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("k7qm 3xhp wn9d te4r", "K7QM3XHPWN9DTE4R"),
        (" K7QM–3XHP—WN9D-TE4R ", "K7QM3XHPWN9DTE4R"),
        ("O1IL-0000-0000-0000", "0111000000000000"),
        ("K7QM-3XHP-WN9D-TE4", None),  # one short
        ("K7QM-3XHP-WN9D-TE4RR", None),
        ("K7QM-3XHP-WN9D-TE4U", None),  # U is not in the alphabet
        ("", None),
    ],
)
def test_typing_is_forgiving(typed: str, expected: str | None) -> None:
    assert inv.normalize_code(typed) == expected


def test_only_the_hash_is_stored(session: Session) -> None:
    household = f.household(session)
    invitation, code = inv.create(session, household_id=household.id, by="test")
    normalized = inv.normalize_code(code)
    assert normalized is not None
    assert invitation.code_hash == hashlib.sha256(normalized.encode()).hexdigest()
    row = session.execute(text("SELECT * FROM invitations WHERE id = :id"), {"id": invitation.id}).one()
    for value in row:
        assert normalized not in str(value)
        assert code not in str(value)
    assert invitation.expires_at - invitation.created_at == inv.DEFAULT_TTL


def test_redeem_creates_a_resident_once(session: Session) -> None:
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="test")
    user = inv.redeem(session, code.lower().replace("-", " "), username="erika.m", password=PASSWORD)
    assert user.role is Role.resident
    assert user.household_id == household.id
    assert authenticate(session, username="erika.m", password=PASSWORD) is not None
    stored = session.scalar(select(Invitation).where(Invitation.household_id == household.id))
    assert stored is not None
    assert stored.redeemed_at is not None
    assert stored.redeemed_by_id == user.id
    with pytest.raises(inv.InvitationInvalid) as again:
        inv.redeem(session, code, username="someone.else", password=PASSWORD)
    assert session.scalar(select(User).where(User.username == "someone.else")) is None
    assert _neutral(again) == str(inv.InvitationInvalid())


def test_closed_codes_give_one_neutral_error(session: Session) -> None:
    household = f.household(session)
    _, expired = inv.create(session, household_id=household.id, by="test", now=NOW - dt.timedelta(days=15))
    revoked_row, revoked = inv.create(session, household_id=household.id, by="test")
    inv.revoke(session, revoked_row, by="test")
    _, used = inv.create(session, household_id=household.id, by="test")
    inv.redeem(session, used, username="first.one", password=PASSWORD)
    unknown = inv.grouped(inv.new_code())
    messages = set()
    for code in (expired, revoked, used, unknown, "not a code", "x" * 500):
        with pytest.raises(inv.InvitationInvalid) as refused:
            inv.redeem(session, code, username=f"u{f.tag()}", password=PASSWORD, now=NOW)
        messages.add(_neutral(refused))
    assert len(messages) == 1
    # a closed code says nothing about the username or password either (no oracle about users)
    with pytest.raises(inv.InvitationInvalid):
        inv.redeem(session, unknown, username="first.one", password="short")


def test_expiry_is_exact(session: Session) -> None:
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t", ttl=dt.timedelta(days=2), now=NOW)
    assert inv.open_invitation(session, code, now=NOW + dt.timedelta(days=2, seconds=-1))
    with pytest.raises(inv.InvitationInvalid):
        inv.open_invitation(session, code, now=NOW + dt.timedelta(days=2))
    with pytest.raises(InvalidField):
        inv.create(session, household_id=household.id, by="t", ttl=dt.timedelta(days=91))
    with pytest.raises(InvalidField):
        inv.create(session, household_id=2**31 - 1, by="t")


def test_revoke_and_listing(session: Session) -> None:
    household = f.household(session)
    first, _ = inv.create(session, household_id=household.id, by="op")
    second, code = inv.create(session, household_id=household.id, by="op")
    assert inv.find_by_code(session, code) == second
    inv.revoke(session, first, by="op")
    inv.revoke(session, first, by="op")  # twice: still revoked, no error
    rows, total = inv.list_invitations(session, limit=10, offset=0, household_id=household.id)
    assert [row.id for row in rows] == [second.id]
    assert total == 1
    everything, _ = inv.list_invitations(
        session, limit=10, offset=0, household_id=household.id, open_only=False
    )
    assert {row.id for row in everything} == {first.id, second.id}
    inv.redeem(session, code, username="resident.two", password=PASSWORD)
    with pytest.raises(Conflict):
        inv.revoke(session, second, by="op")


def test_username_and_password_rules(session: Session) -> None:
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    f.user(session, Role.technician)
    taken = session.scalars(select(User.username)).first()
    assert taken is not None
    for username, password, field in (
        ("ab", PASSWORD, "username"),
        ("has space", PASSWORD, "username"),
        ("=cmd", PASSWORD, "username"),
        ("bidi\u202eevil", PASSWORD, "username"),
        ("erika", "short", "password"),
        ("erika", "x" * 201, "password"),
    ):
        with pytest.raises(InvalidField) as refused:
            inv.redeem(session, code, username=username, password=password)
        assert refused.value.field == field
    with pytest.raises(Conflict):
        inv.redeem(session, code, username=taken.upper(), password=PASSWORD)
    assert inv.open_invitation(session, code)  # refusals leave the code open
    assert inv.username_problem("Juergen.Mueller-2") is None
    assert inv.username_problem("Jürgen.Müller-2") is not None  # umlauts written out (usernames.py)
    suggestion = inv.suggest_username(session, household)
    assert inv.username_problem(suggestion) is None
    assert not inv.username_taken(session, suggestion)


def test_concurrent_redeems_make_one_user(engine: Engine, session: Session) -> None:
    household = f.household(session)
    _, code = inv.create(session, household_id=household.id, by="t")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def redeem(number: int) -> None:
        with session_factory(engine)() as own:
            barrier.wait()
            try:
                inv.redeem(own, code, username=f"racer{number}", password=PASSWORD)
                outcomes.append("user")
            except inv.InvitationInvalid:
                outcomes.append("invalid")

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["invalid", "invalid", "invalid", "user"]
    residents = session.scalars(select(User).where(User.household_id == household.id)).all()
    assert len(residents) == 1
