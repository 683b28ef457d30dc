"""Fleet status (last seen, silent first), the device profiles, and device checks before registering."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from ingest.api.deps import SessionDep, StaffUser
from ingest.api.runs import ProfilesDep
from ingest.api.schemas import DeviceCreate
from ingest.api.schemas_technician import DeviceValid, FleetRow, ProfilePublic
from ingest.registry.errors import InvalidFields
from ingest.registry.fleet_status import fleet_status
from ingest.registry.registration import NewDevice, device_problems

router = APIRouter(tags=["fleet"])


@router.get("/fleet/status")
def read_fleet_status(
    _user: StaffUser,
    session: SessionDep,
    silent_after_min: Annotated[int, Query(ge=1, le=10080, description="silent after minutes")] = 15,
) -> list[FleetRow]:
    """Active gateways and non-retired devices, never seen and longest silent first."""
    rows = fleet_status(session, silent_after=dt.timedelta(minutes=silent_after_min))
    return [FleetRow.model_validate(row) for row in rows]


@router.get("/profiles")
def read_profiles(_user: StaffUser, profiles: ProfilesDep) -> list[ProfilePublic]:
    """The device profiles a device can be registered with."""
    return [
        ProfilePublic(
            id=p.id,
            family=p.profile.family,
            description=p.profile.description,
            topics=list(p.profile.topics),
            plausibility={k: {"min": r.min, "max": r.max} for k, r in p.profile.plausibility.items()},
        )
        for p in sorted(profiles, key=lambda p: p.id)
    ]


@router.post(
    "/devices/validate",
    responses={422: {"description": "field errors, the same shape as FastAPI's validation errors"}},
)
def validate_device(
    _user: StaffUser, session: SessionDep, profiles: ProfilesDep, body: DeviceCreate
) -> DeviceValid:
    """Check a device as POST /devices would, without registering it (for validation as you type)."""
    problems = device_problems(session, NewDevice(**body.model_dump()), profiles.by_id)
    if problems:
        raise InvalidFields(problems)
    return DeviceValid()
