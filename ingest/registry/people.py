"""Users (operators, technicians, residents): keyword-only CRUD, logins and sessions. Routes turn ``None``
into 404. Buildings and their households: :mod:`ingest.registry.buildings`.

User changes are security events (:func:`ingest.security.audit.audit`); ``by`` names who made them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.common import apply_changes, delete_row, paginate, reference
from ingest.registry.db import commit
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.models import Household, Role, User, new_session_key
from ingest.registry.passwords import hash_password, verify_password
from ingest.registry.usernames import username_problem, username_taken
from ingest.security.audit import audit


def _check_role_household(session: Session, role: Role, household_id: int | None) -> None:
    if role is Role.resident:
        reference(session, Household, household_id, field="household_id")
    elif household_id is not None:
        raise InvalidField("household_id", f"only residents belong to a household, not a {role.value}")


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    household_id: int | None = None,
    full_name: str = "",
    by: str | None = None,
) -> User:
    _check_role_household(session, role, household_id)
    problem = username_problem(username, min_length=1)  # ASCII, unique in any case (usernames.py)
    if problem is not None:
        raise InvalidField("username", problem)
    if username_taken(session, username):
        raise Conflict("a user with this username exists (in some case or form)")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        household_id=household_id,
        full_name=full_name,
        is_active=True,
        session_version=0,
        session_key=new_session_key(),
    )
    session.add(user)
    commit(session)
    audit("user.created", user=username, role=role.value, by=by)
    return user


def get_user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def list_users(
    session: Session,
    *,
    limit: int,
    offset: int,
    role: Role | None = None,
    household_id: int | None = None,
) -> tuple[list[User], int]:
    statement = select(User).order_by(User.id)
    if role is not None:
        statement = statement.where(User.role == role)
    if household_id is not None:
        statement = statement.where(User.household_id == household_id)
    return paginate(session, statement, limit=limit, offset=offset)


def update_user(session: Session, user: User, *, changes: Mapping[str, Any], by: str | None = None) -> User:
    """Apply ``changes`` (``password`` is hashed); a new password, role or deactivation ends all sessions."""
    changes = dict(changes)
    old_role = user.role
    role = changes.get("role", user.role)
    household_id = changes.get("household_id", user.household_id)
    if "role" in changes or "household_id" in changes:
        _check_role_household(session, role, household_id)
    ends_sessions = (
        any(name in changes for name in ("password", "role", "household_id"))
        or changes.get("is_active") is False
    )
    if "password" in changes:
        changes["password_hash"] = hash_password(changes.pop("password"))
    apply_changes(user, changes)
    if ends_sessions:
        user.session_version += 1
    commit(session)
    # the names of the changed fields, never their values (a password)
    fields = sorted("password" if name == "password_hash" else name for name in changes)
    roles = f"{old_role.value}->{user.role.value}" if user.role is not old_role else None
    audit("user.changed", user=user.username, fields=fields, role=roles, by=by)
    return user


def delete_user(session: Session, user: User, *, by: str | None = None) -> None:
    username = user.username
    delete_row(session, user)
    audit("user.deleted", user=username, by=by)


def end_sessions(session: Session, user: User) -> None:
    """Invalidate every token issued to ``user`` so far (logout everywhere)."""
    user.session_version += 1
    commit(session)


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same work whether or not the user exists)."""
    user = get_user_by_name(session, username)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if user is None or not user.is_active:
        return None
    return user
