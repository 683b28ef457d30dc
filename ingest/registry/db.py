"""Engine and session set-up for SQLite (default) and PostgreSQL (psycopg 3), and the DB error door.

``sqlite:///state/registry.db`` gets foreign keys on, WAL and a busy timeout; ``postgresql://...``
is driven by psycopg 3. :func:`commit` turns an IntegrityError into :class:`Conflict`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from ingest.registry.errors import Conflict
from ingest.security.files import private_file

# constraint (or trigger message) → what an operator reads in the 409
_CONFLICTS = {
    "uq_buildings_name": "a building with this name exists",
    "buildings.name": "a building with this name exists",
    "uq_households_building_id": "this building already has a household with this name",
    "households.building_id, households.name": "this building already has a household with this name",
    "uq_users_username": "a user with this username exists",
    "users.username": "a user with this username exists",
    "uq_gateways_name": "a gateway with this name exists",
    "gateways.name": "a gateway with this name exists",
    "uq_devices_meter_number": "a device with this meter number exists",
    "devices.meter_number": "a device with this meter number exists",
    "uq_devices_gateway_id": "this gateway already has a device with this native id",
    "devices.gateway_id, devices.native_id": "this gateway already has a device with this native id",
    "assignment_overlap": "the assignment overlaps another assignment of the same device",
    "ex_assignments_no_overlap": "the assignment overlaps another assignment of the same device",
    "FOREIGN KEY": "still referenced by other records",
    "foreign key": "still referenced by other records",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: give a timezone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: dt.datetime | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file is created private (0600, in a 0700 directory)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_file(Path(parsed.database))  # password hashes, residents: the owner's only
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def conflict_from(exc: IntegrityError) -> Conflict:
    text = str(exc.orig)
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    for key, message in _CONFLICTS.items():
        if (constraint and constraint.startswith(key)) or key in text:
            return Conflict(message)
    return Conflict("the change conflicts with existing data")


def commit(session: Session) -> None:
    """Commit, or roll back and raise :class:`Conflict` for a violated constraint."""
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise conflict_from(exc) from exc


def flush(session: Session) -> None:
    """Flush, or roll back and raise :class:`Conflict` for a violated constraint."""
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise conflict_from(exc) from exc
