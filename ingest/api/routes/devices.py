"""Devices: staff register and edit them, operators delete never-assigned ones."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime

from ingest.api.deps import FilterId, ItemId, Limit, Offset, OperatorUser, SessionDep, StaffUser
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.schemas import AssignmentPublic, DeviceCreate, DevicePublic, DeviceUpdate, Page
from ingest.registry.assignments import assignment_at
from ingest.registry.db import utcnow
from ingest.registry.fleet import delete_device, list_devices, update_device
from ingest.registry.models import Device, DeviceStatus
from ingest.registry.registration import NewDevice, register_device
from ingest.registry.text import Key

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("")
def read_devices(
    _user: StaffUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    gateway_id: FilterId = None,
    building_id: FilterId = None,
    household_id: FilterId = None,
    meter_number: Annotated[Key | None, Query()] = None,
    profile_id: Annotated[Key | None, Query(alias="profile")] = None,
    status: Annotated[DeviceStatus | None, Query()] = None,
) -> Page[DevicePublic]:
    """Building and household filter by the assignment valid now."""
    rows = list_devices(
        session,
        limit=limit,
        offset=offset,
        gateway_id=gateway_id,
        building_id=building_id,
        household_id=household_id,
        meter_number=meter_number,
        profile_id=profile_id,
        status=status,
    )
    return page_of(DevicePublic, rows, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def add_device(_user: StaffUser, session: SessionDep, body: DeviceCreate) -> DevicePublic:
    """Register a device; with ``household_id`` or ``building_id`` it is assigned in the same step."""
    device = register_device(session, NewDevice(**body.model_dump()))
    return DevicePublic.model_validate(device)


@router.get("/{device_id}")
def read_device(_user: StaffUser, session: SessionDep, device_id: ItemId) -> DevicePublic:
    return DevicePublic.model_validate(get_or_404(session, Device, device_id))


@router.get("/{device_id}/assignment", responses={404: {"description": "unknown device, or unassigned"}})
def read_device_assignment(
    _user: StaffUser,
    session: SessionDep,
    device_id: ItemId,
    at: Annotated[AwareDatetime | None, Query(description="default: now")] = None,
) -> AssignmentPublic:
    """Where the device was at ``at``."""
    get_or_404(session, Device, device_id)
    when: dt.datetime = at or utcnow()
    assignment = assignment_at(session, device_id=device_id, at=when)
    if assignment is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"device {device_id} is unassigned at {when.isoformat()}"
        )
    return AssignmentPublic.model_validate(assignment)


@router.patch("/{device_id}")
def change_device(
    _user: StaffUser, session: SessionDep, device_id: ItemId, body: DeviceUpdate
) -> DevicePublic:
    device = get_or_404(session, Device, device_id)
    changed = update_device(session, device, changes=body.model_dump(exclude_unset=True))
    return DevicePublic.model_validate(changed)


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_device(_user: OperatorUser, session: SessionDep, device_id: ItemId) -> None:
    """Only a device that was never assigned; one with history is retired (PATCH status) instead."""
    delete_device(session, get_or_404(session, Device, device_id))
