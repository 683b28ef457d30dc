"""Buildings and their households (housing units): keyword-only CRUD. Routes turn ``None`` into 404."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.common import apply_changes, paginate, reference
from ingest.registry.db import commit
from ingest.registry.models import Building, Household


def create_building(session: Session, *, name: str, address: str = "", notes: str = "") -> Building:
    building = Building(name=name, address=address, notes=notes)
    session.add(building)
    commit(session)
    return building


def list_buildings(
    session: Session, *, limit: int, offset: int, name: str | None = None
) -> tuple[list[Building], int]:
    statement = select(Building).order_by(Building.id)
    if name is not None:
        statement = statement.where(Building.name == name)
    return paginate(session, statement, limit=limit, offset=offset)


def update_building(session: Session, building: Building, *, changes: Mapping[str, Any]) -> Building:
    apply_changes(building, changes)
    commit(session)
    return building


def create_household(session: Session, *, building_id: int, name: str, notes: str = "") -> Household:
    reference(session, Building, building_id, field="building_id")
    household = Household(building_id=building_id, name=name, notes=notes)
    session.add(household)
    commit(session)
    return household


def list_households(
    session: Session, *, limit: int, offset: int, building_id: int | None = None
) -> tuple[list[Household], int]:
    statement = select(Household).order_by(Household.id)
    if building_id is not None:
        statement = statement.where(Household.building_id == building_id)
    return paginate(session, statement, limit=limit, offset=offset)


def update_household(session: Session, household: Household, *, changes: Mapping[str, Any]) -> Household:
    if "building_id" in changes:
        reference(session, Building, changes["building_id"], field="building_id")
    apply_changes(household, changes)
    commit(session)
    return household
