"""Invitations: a one-time code with which a resident creates their own account for their household.

The code is printed on a letter and typed by people who may not type much: 16 characters in four groups
of four (``K7QM-3XHP-WN9D-TE4R``) from Crockford's base-32 alphabet (digits and capitals without I, L, O,
U), 80 random bits. Typing is forgiving: lower case, spaces and dashes are fine, and O, I and L count as
0, 1 and 1. Only the code's SHA-256 is stored, never the code: a fast hash suffices because the code is
random (2^80 guesses offline), and it lets the code be looked up by its hash.

An invitation is *open* while it is neither redeemed, revoked nor expired. Every code that is not open
(unknown, malformed, used, revoked, expired) gives the one :class:`InvitationInvalid` with the same words,
so an attempt learns nothing about which codes exist. Redeeming claims the invitation with one
conditional UPDATE and creates the user in the same transaction: of two concurrent redeems of one code,
exactly one gets an account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import unicodedata
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ingest.registry.common import paginate, reference
from ingest.registry.db import commit, flush, utcnow
from ingest.registry.errors import Conflict, InvalidField, RegistryError
from ingest.registry.models import Household, Invitation, Role, User, new_session_key
from ingest.registry.passwords import hash_password
from ingest.registry.usernames import USERNAME_MAX, USERNAME_MIN
from ingest.registry.usernames import username_problem as username_problem  # the pages' and tests' name
from ingest.registry.usernames import username_taken as username_taken
from ingest.security.audit import audit

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: 5 bits a character
GROUPS, GROUP_SIZE = 4, 4
CODE_LENGTH = GROUPS * GROUP_SIZE  # 80 bits
DEFAULT_TTL = dt.timedelta(days=14)
MAX_TTL = dt.timedelta(days=90)
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-‐‑–—_.]+")
PASSWORD_MIN, PASSWORD_MAX = 10, 200  # as for every user (ingest.api.schemas.Password)
_SLUG = re.compile(r"[^a-z0-9]+")


class InvitationInvalid(RegistryError):
    """The code does not open an invitation: unknown, used, revoked or expired (deliberately one error)."""

    def __init__(self) -> None:
        super().__init__("the invitation code is not valid (unknown, already used, revoked or expired)")


def new_code() -> str:
    """A fresh code's 16 characters (:func:`grouped` prints it)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def grouped(code: str) -> str:
    """``XXXX-XXXX-XXXX-XXXX``: how a code is printed."""
    return "-".join(code[i : i + GROUP_SIZE] for i in range(0, len(code), GROUP_SIZE))


def normalize_code(code: str) -> str | None:
    """The code's 16 characters as generated (upper case, no separators, typos mapped), or None when
    it cannot be one."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", code)).upper().translate(_TYPOS)
    if len(text) != CODE_LENGTH or any(char not in ALPHABET for char in text):
        return None
    return text


def code_hash(code: str) -> str:
    """The stored form of a (normalized) code."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def is_open(invitation: Invitation, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return invitation.redeemed_at is None and invitation.revoked_at is None and invitation.expires_at > now


InvitationState = Literal["open", "redeemed", "revoked", "expired"]


def state_of(invitation: Invitation) -> InvitationState:
    if invitation.redeemed_at is not None:
        return "redeemed"
    if invitation.revoked_at is not None:
        return "revoked"
    return "open" if is_open(invitation) else "expired"


# ---------------------------------------------------------------- operators


def create(
    session: Session,
    *,
    household_id: int,
    created_by: User | None = None,
    by: str,
    ttl: dt.timedelta = DEFAULT_TTL,
    now: dt.datetime | None = None,
) -> tuple[Invitation, str]:
    """A new invitation for the household and its code, grouped for printing (returned once, never
    stored)."""
    if not dt.timedelta(hours=1) <= ttl <= MAX_TTL:
        raise InvalidField("days", f"an invitation is valid between 1 hour and {MAX_TTL.days} days")
    household = reference(session, Household, household_id, field="household_id")
    now = now or utcnow()
    code = new_code()
    invitation = Invitation(
        code_hash=code_hash(code),
        household_id=household.id,
        created_by_id=created_by.id if created_by is not None else None,
        created_by=by,
        created_at=now,
        expires_at=now + ttl,
        revoked_by="",
    )
    session.add(invitation)
    commit(session)
    audit("invitation.created", invitation=invitation.id, household=household.id, by=by)
    return invitation, grouped(code)


def list_invitations(
    session: Session,
    *,
    limit: int,
    offset: int,
    household_id: int | None = None,
    open_only: bool = True,
    now: dt.datetime | None = None,
) -> tuple[list[Invitation], int]:
    """Invitations, newest first; by default only the open ones."""
    statement = select(Invitation).order_by(Invitation.id.desc())
    if household_id is not None:
        statement = statement.where(Invitation.household_id == household_id)
    if open_only:
        statement = statement.where(
            Invitation.redeemed_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > (now or utcnow()),
        )
    return paginate(session, statement, limit=limit, offset=offset)


def find_by_code(session: Session, code: str) -> Invitation | None:
    """The invitation of this code in any state (operators revoking a letter's code), or None."""
    normalized = normalize_code(code)
    if normalized is None:
        return None
    return session.scalar(select(Invitation).where(Invitation.code_hash == code_hash(normalized)))


def revoke(
    session: Session, invitation: Invitation, *, by: str, now: dt.datetime | None = None
) -> Invitation:
    """Close an invitation for good; a redeemed one cannot be (its account stays: deactivate the user)."""
    if invitation.redeemed_at is not None:
        raise Conflict("the invitation is already redeemed: deactivate the resident's user instead")
    if invitation.revoked_at is None:
        invitation.revoked_at = now or utcnow()
        invitation.revoked_by = by
        commit(session)
        audit("invitation.revoked", invitation=invitation.id, household=invitation.household_id, by=by)
    return invitation


# ---------------------------------------------------------------- residents


def open_invitation(session: Session, code: str, *, now: dt.datetime | None = None) -> Invitation:
    """The open invitation of ``code``, or :class:`InvitationInvalid` (the same for every reason)."""
    normalized = normalize_code(code)
    invitation = (
        session.scalar(select(Invitation).where(Invitation.code_hash == code_hash(normalized)))
        if normalized is not None
        else None
    )
    if invitation is None or not is_open(invitation, now):
        raise InvitationInvalid()
    return invitation


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be used: the rules of every user's password."""
    if len(password) < PASSWORD_MIN:
        return f"at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"at most {PASSWORD_MAX} characters"
    if any(char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF for char in password):
        return "NUL and lone surrogates are not allowed"
    return None


def suggest_username(session: Session, household: Household) -> str:
    """A free username from the building's and the household's names, e.g. ``haus-a-we-03``."""
    ascii_name = unicodedata.normalize("NFKD", f"{household.building.name} {household.name}")
    ascii_name = ascii_name.encode("ascii", "ignore").decode().lower()
    base = _SLUG.sub("-", ascii_name).strip("-")[: USERNAME_MAX - 4] or "bewohner"
    base = base if len(base) >= USERNAME_MIN else f"{base}-we"
    for number in range(1, 100):
        candidate = base if number == 1 else f"{base}-{number}"
        if not username_taken(session, candidate):
            return candidate
    return f"{base}-{secrets.randbelow(10**6)}"


def redeem(
    session: Session,
    code: str,
    *,
    username: str,
    password: str,
    full_name: str = "",
    client: str | None = None,
    now: dt.datetime | None = None,
) -> User:
    """Create the resident for the code's household and close the invitation, in one transaction.

    :class:`InvitationInvalid` unless the code is open (checked first, so nothing else about the
    registry is told to a wrong code); then :class:`InvalidField` (``username``, ``password``) or
    :class:`Conflict` (the username is taken). Two concurrent redeems of one code: one user.
    """
    now = now or utcnow()
    invitation = open_invitation(session, code, now=now)
    for field, problem in (
        ("username", username_problem(username)),
        ("password", password_problem(password)),
    ):
        if problem is not None:
            raise InvalidField(field, problem)
    if username_taken(session, username):
        raise Conflict("a user with this username exists")
    password_hash = hash_password(password)  # slow: before the write transaction, not inside it
    claimed = session.connection().execute(
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.redeemed_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(redeemed_at=now)
    )
    if claimed.rowcount != 1:  # redeemed, revoked or expired since it was read
        session.rollback()
        raise InvitationInvalid()
    user = User(
        username=username,
        password_hash=password_hash,
        role=Role.resident,
        household_id=invitation.household_id,
        full_name=full_name,
        is_active=True,
        session_version=0,
        session_key=new_session_key(),
    )
    session.add(user)
    flush(session)  # a username taken meanwhile: Conflict, the claim rolled back with it
    session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id)
        .values(redeemed_by_id=user.id)
        .execution_options(synchronize_session=False)
    )
    commit(session)
    session.refresh(invitation)
    audit(
        "invitation.redeemed",
        invitation=invitation.id,
        household=invitation.household_id,
        user=username,
        client=client,
    )
    audit("user.created", user=username, role=Role.resident.value, by=f"invitation {invitation.id}")
    return user
