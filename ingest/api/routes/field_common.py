"""Shared by field-work routes and pages: the app's run manager and profiles, the device checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.api.schemas import DeviceCreate
from ingest.commissioning.errors import CheckNotPossible
from ingest.commissioning.runner import RunManager
from ingest.profiles.loader import ProfileSet
from ingest.registry.assignments import create_assignment
from ingest.registry.common import reference
from ingest.registry.db import commit, utcnow
from ingest.registry.errors import InvalidField
from ingest.registry.fleet import create_device
from ingest.registry.models import Building, Device, Gateway, GatewayStatus, Household


class InvalidFields(InvalidField):
    """Several field errors at once (answered as one 422 listing each)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems[0][0], problems[0][1])
        self.problems = problems


def get_runs(request: Request) -> RunManager:
    runs: RunManager = request.app.state.runs
    return runs


RunsDep = Annotated[RunManager, Depends(get_runs)]


def profiles_of(request: Request) -> ProfileSet:
    """The loaded device profiles (503 when they cannot be loaded)."""
    runs: RunManager = request.app.state.runs
    try:
        return runs.commissioner.decoder().profiles
    except CheckNotPossible as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


ProfilesDep = Annotated[ProfileSet, Depends(profiles_of)]


def device_problems(session: Session, body: DeviceCreate, profiles: ProfileSet) -> list[tuple[str, str]]:
    """What stops ``body`` from being registered, as (field, reason): references and duplicates."""
    problems: list[tuple[str, str]] = []
    gateway = session.get(Gateway, body.gateway_id)
    if gateway is None:
        problems.append(("gateway_id", f"no gateway with id {body.gateway_id}"))
    elif gateway.status is not GatewayStatus.active:
        problems.append(("gateway_id", f"gateway {gateway.name} is {gateway.status.value}"))
    elif session.scalar(
        select(Device.id).where(Device.gateway_id == gateway.id, Device.native_id == body.native_id)
    ):
        problems.append(("native_id", f"gateway {gateway.name} already has a device {body.native_id!r}"))
    if body.profile_id not in profiles.by_id:
        problems.append(("profile_id", f"unknown profile {body.profile_id!r}"))
    if body.meter_number and session.scalar(
        select(Device.id).where(Device.meter_number == body.meter_number)
    ):
        problems.append(("meter_number", f"a device with meter number {body.meter_number!r} exists"))
    if body.household_id is not None and session.get(Household, body.household_id) is None:
        problems.append(("household_id", f"no household with id {body.household_id}"))
    if body.building_id is not None and session.get(Building, body.building_id) is None:
        problems.append(("building_id", f"no building with id {body.building_id}"))
    return problems


def register_device(session: Session, body: DeviceCreate) -> Device:
    """Create the device and, with a household or building, its assignment from now (one commit)."""
    fields = body.model_dump(exclude={"household_id", "building_id", "assigned_from"})
    reference(session, Gateway, body.gateway_id, field="gateway_id")
    place = body.household_id is not None or body.building_id is not None
    device = create_device(session, **fields, commit_now=not place)
    if place:
        create_assignment(
            session,
            device_id=device.id,
            household_id=body.household_id,
            building_id=body.building_id,
            valid_from=body.assigned_from or utcnow(),
            commit_now=False,
        )
        commit(session)
    return device
