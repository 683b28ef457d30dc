"""Rows for tests, made through the registry's own functions (no broker: gateways are inserted as rows)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from sqlalchemy.orm import Session

from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import commit
from ingest.registry.fleet import broker_username, create_device
from ingest.registry.models import Building, Device, Gateway, GatewayStatus, Household, Role, User
from ingest.registry.passwords import hash_password

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple"
_HASH = hash_password(PASSWORD)  # hashed once: argon2 is slow on purpose


def tag() -> str:
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


def t(hour: int, minute: int = 0, *, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)


def building(session: Session) -> Building:
    return create_building(session, name=f"Haus {tag()}", address="Am Reallabor 1, Oldenburg")


def household(session: Session, building_id: int | None = None) -> Household:
    building_id = building_id if building_id is not None else building(session).id
    return create_household(session, building_id=building_id, name=f"WE {tag()}")


def gateway_row(session: Session, building_id: int | None = None) -> Gateway:
    name = f"gw{tag()}"
    gateway = Gateway(
        name=name,
        building_id=building_id,
        status=GatewayStatus.active,
        broker_username=broker_username(name),
        notes="",
    )
    session.add(gateway)
    commit(session)
    return gateway


def device(session: Session, gateway_id: int | None = None, *, meter_number: str | None = None) -> Device:
    gateway_id = gateway_id if gateway_id is not None else gateway_row(session).id
    return create_device(
        session,
        gateway_id=gateway_id,
        native_id=f"dev{tag()}",
        profile_id="generic-json",
        meter_number=meter_number,
    )


def user(session: Session, role: Role, household_id: int | None = None) -> User:
    """A user with password :data:`PASSWORD` (pre-hashed)."""
    row = User(
        username=f"{role.value}{tag()}",
        password_hash=_HASH,
        role=role,
        household_id=household_id,
        full_name="",
        is_active=True,
        session_version=0,
    )
    session.add(row)
    commit(session)
    return row
