"""The caller's own data. A resident's household comes from the session, never from a parameter."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from ingest.api.deps import CurrentUser, ResidentUser, SessionDep
from ingest.api.schemas import BuildingPublic, MyHousehold, ResidentDevice, UserPublic
from ingest.registry.fleet import list_devices
from ingest.registry.models import Household

router = APIRouter(prefix="/me", tags=["me"])


@router.get("")
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("/household")
def read_my_household(user: ResidentUser, session: SessionDep) -> MyHousehold:
    household = session.get(Household, user.household_id) if user.household_id is not None else None
    if household is None:  # the schema forbids it; kept for a household deleted under a session
        raise HTTPException(status.HTTP_404_NOT_FOUND, "your household is not in the registry")
    devices, _ = list_devices(session, limit=500, offset=0, household_id=household.id)
    return MyHousehold(
        id=household.id,
        name=household.name,
        building=BuildingPublic.model_validate(household.building),
        devices=[ResidentDevice.model_validate(device) for device in devices],
    )
