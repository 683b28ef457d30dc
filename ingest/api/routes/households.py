"""Households (housing units): staff read, operators write."""

from __future__ import annotations

from fastapi import APIRouter, status

from ingest.api.deps import FilterId, ItemId, Limit, Offset, OperatorUser, SessionDep, StaffUser
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.schemas import HouseholdCreate, HouseholdPublic, HouseholdUpdate, Page
from ingest.registry.buildings import create_household, list_households, update_household
from ingest.registry.common import delete_row
from ingest.registry.models import Household

router = APIRouter(prefix="/households", tags=["households"])


@router.get("")
def read_households(
    _user: StaffUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    building_id: FilterId = None,
) -> Page[HouseholdPublic]:
    rows = list_households(session, limit=limit, offset=offset, building_id=building_id)
    return page_of(HouseholdPublic, rows, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def add_household(_user: OperatorUser, session: SessionDep, body: HouseholdCreate) -> HouseholdPublic:
    return HouseholdPublic.model_validate(create_household(session, **body.model_dump()))


@router.get("/{household_id}")
def read_household(_user: StaffUser, session: SessionDep, household_id: ItemId) -> HouseholdPublic:
    return HouseholdPublic.model_validate(get_or_404(session, Household, household_id))


@router.patch("/{household_id}")
def change_household(
    _user: OperatorUser, session: SessionDep, household_id: ItemId, body: HouseholdUpdate
) -> HouseholdPublic:
    household = get_or_404(session, Household, household_id)
    changed = update_household(session, household, changes=body.model_dump(exclude_unset=True))
    return HouseholdPublic.model_validate(changed)


@router.delete("/{household_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_household(_user: OperatorUser, session: SessionDep, household_id: ItemId) -> None:
    """409 while residents or assignments refer to it."""
    delete_row(session, get_or_404(session, Household, household_id))
