"""Buildings: staff read, operators write."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ingest.api.deps import ItemId, Limit, Offset, OperatorUser, SessionDep, StaffUser
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.schemas import BuildingCreate, BuildingPublic, BuildingUpdate, Page
from ingest.registry.buildings import create_building, list_buildings, update_building
from ingest.registry.common import delete_row
from ingest.registry.models import Building
from ingest.registry.text import Name

router = APIRouter(prefix="/buildings", tags=["buildings"])


@router.get("")
def read_buildings(
    _user: StaffUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    name: Annotated[Name | None, Query()] = None,
) -> Page[BuildingPublic]:
    rows = list_buildings(session, limit=limit, offset=offset, name=name)
    return page_of(BuildingPublic, rows, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def add_building(_user: OperatorUser, session: SessionDep, body: BuildingCreate) -> BuildingPublic:
    return BuildingPublic.model_validate(create_building(session, **body.model_dump()))


@router.get("/{building_id}")
def read_building(_user: StaffUser, session: SessionDep, building_id: ItemId) -> BuildingPublic:
    return BuildingPublic.model_validate(get_or_404(session, Building, building_id))


@router.patch("/{building_id}")
def change_building(
    _user: OperatorUser, session: SessionDep, building_id: ItemId, body: BuildingUpdate
) -> BuildingPublic:
    building = get_or_404(session, Building, building_id)
    changed = update_building(session, building, changes=body.model_dump(exclude_unset=True))
    return BuildingPublic.model_validate(changed)


@router.delete("/{building_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_building(_user: OperatorUser, session: SessionDep, building_id: ItemId) -> None:
    """409 while households, gateways or assignments refer to it."""
    delete_row(session, get_or_404(session, Building, building_id))
