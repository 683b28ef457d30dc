"""Registering a device as staff do (the API, the technician pages, discovery): every problem at once,
then the device and, with a household or building, its assignment, in one commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Container
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.assignments import create_assignment
from ingest.registry.db import commit, utcnow
from ingest.registry.errors import InvalidFields
from ingest.registry.fleet import create_device
from ingest.registry.models import Building, Device, Gateway, GatewayStatus, Household

FirstHeard = Callable[[str, str], dt.datetime | None]
"""(gateway name, native id) → when the device was first heard, None: never (discovery's quarantine)."""


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device to register, and where it measures from ``assigned_from`` (default: now)."""

    gateway_id: int
    native_id: str
    profile_id: str
    meter_number: str | None = None
    location: str = ""
    notes: str = ""
    household_id: int | None = None
    building_id: int | None = None
    assigned_from: dt.datetime | None = None


def device_problems(session: Session, device: NewDevice, profiles: Container[str]) -> list[tuple[str, str]]:
    """What stops ``device`` from being registered, as (field, reason): references and duplicates;
    ``profiles`` the known profile ids."""
    problems: list[tuple[str, str]] = []
    gateway = session.get(Gateway, device.gateway_id)
    if gateway is None:
        problems.append(("gateway_id", f"no gateway with id {device.gateway_id}"))
    elif gateway.status is not GatewayStatus.active:
        problems.append(("gateway_id", f"gateway {gateway.name} is {gateway.status.value}"))
    elif session.scalar(
        select(Device.id).where(Device.gateway_id == gateway.id, Device.native_id == device.native_id)
    ):
        problems.append(("native_id", f"gateway {gateway.name} already has a device {device.native_id!r}"))
    if device.profile_id not in profiles:
        problems.append(("profile_id", f"unknown profile {device.profile_id!r}"))
    if device.meter_number and session.scalar(
        select(Device.id).where(Device.meter_number == device.meter_number)
    ):
        problems.append(("meter_number", f"a device with meter number {device.meter_number!r} exists"))
    if device.household_id is not None and session.get(Household, device.household_id) is None:
        problems.append(("household_id", f"no household with id {device.household_id}"))
    if device.building_id is not None and session.get(Building, device.building_id) is None:
        problems.append(("building_id", f"no building with id {device.building_id}"))
    return problems


def register_device(session: Session, device: NewDevice) -> Device:
    """Create the device and, with a household or building, its assignment, in one commit."""
    place = device.household_id is not None or device.building_id is not None
    row = create_device(
        session,
        gateway_id=device.gateway_id,
        native_id=device.native_id,
        profile_id=device.profile_id,
        meter_number=device.meter_number,
        location=device.location,
        notes=device.notes,
        commit_now=not place,
    )
    if place:
        create_assignment(
            session,
            device_id=row.id,
            household_id=device.household_id,
            building_id=device.building_id,
            valid_from=device.assigned_from or utcnow(),
            commit_now=False,
        )
        commit(session)
    return row


def _building_problems(session: Session, gateway: Gateway, device: NewDevice) -> list[tuple[str, str]]:
    """The household (or building) must be in the gateway's building, when the gateway has one."""
    if gateway.building_id is None:
        return []
    building = session.get(Building, gateway.building_id)
    where = building.name if building is not None else f"building {gateway.building_id}"
    if device.household_id is not None:
        household = session.get(Household, device.household_id)
        if household is not None and household.building_id != gateway.building_id:
            return [
                (
                    "household_id",
                    f"household {household.name!r} is not in {where!r}, the building of gateway "
                    f"{gateway.name!r}: choose one of its households",
                )
            ]
    elif device.building_id is not None and device.building_id != gateway.building_id:
        return [("building_id", f"gateway {gateway.name!r} is in {where!r}, not in another building")]
    return []


def register_discovered(
    session: Session, device: NewDevice, *, first_heard: FirstHeard, profiles: Container[str]
) -> tuple[Device, dt.datetime]:
    """Register a device that reported before, assigned from its first contact (so its quarantined
    messages replay with its household), and return it with that time; InvalidFields with every problem."""
    problems: list[tuple[str, str]] = []
    if device.household_id is None and device.building_id is None:
        problems.append(("household_id", "choose the household (or the building) the device measures"))
    gateway = session.get(Gateway, device.gateway_id)
    assigned_from = utcnow()
    if gateway is not None:
        first = first_heard(gateway.name, device.native_id)
        if first is None:
            problems.append(
                (
                    "native_id",
                    f"device {device.native_id!r} was never heard on gateway {gateway.name!r}: "
                    "register it on the devices page instead",
                )
            )
        else:
            assigned_from = min(first, assigned_from)
        problems += _building_problems(session, gateway, device)
    device = dataclasses.replace(device, assigned_from=assigned_from)
    problems += device_problems(session, device, profiles)
    if problems:
        raise InvalidFields(problems)
    return register_device(session, device), assigned_from
