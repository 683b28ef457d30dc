"""Assignments: which household (or building) a device measures, and when.

Intervals are half-open ``[valid_from, valid_to)``; ``valid_to`` None is open-ended. One device's
assignments never overlap (checked here for a clear message, enforced by the database against races).
A meter swap closes the old meter's assignment and opens the new one's at the same instant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from ingest.registry.common import apply_changes, paginate, reference
from ingest.registry.db import commit, flush
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.models import Assignment, Building, Device, DeviceStatus, Household


def _overlapping(
    device_id: int, valid_from: dt.datetime, valid_to: dt.datetime | None
) -> list[ColumnElement[bool]]:
    conditions = [
        Assignment.device_id == device_id,
        (Assignment.valid_to.is_(None)) | (Assignment.valid_to > valid_from),
    ]
    if valid_to is not None:
        conditions.append(Assignment.valid_from < valid_to)
    return conditions


def _check_interval(
    session: Session,
    *,
    device_id: int,
    valid_from: dt.datetime,
    valid_to: dt.datetime | None,
    ignore_id: int | None = None,
) -> None:
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidField("valid_to", "must be after valid_from")
    statement = select(Assignment).where(*_overlapping(device_id, valid_from, valid_to))
    if ignore_id is not None:
        statement = statement.where(Assignment.id != ignore_id)
    other = session.scalars(statement.limit(1)).first()
    if other is not None:
        until = other.valid_to.isoformat() if other.valid_to else "open end"
        raise Conflict(
            f"device {device_id} is already assigned from {other.valid_from.isoformat()} "
            f"to {until} (assignment {other.id})"
        )


def _place(session: Session, household_id: int | None, building_id: int | None) -> tuple[int | None, int]:
    """(household, building) of an assignment: the building follows from the household."""
    if household_id is not None:
        household = reference(session, Household, household_id, field="household_id")
        if building_id is not None and building_id != household.building_id:
            raise InvalidField(
                "building_id", f"household {household_id} is in building {household.building_id}"
            )
        return household_id, household.building_id
    if building_id is None:
        raise InvalidField("household_id", "give a household, or a building for a common-area device")
    reference(session, Building, building_id, field="building_id")
    return None, building_id


def create_assignment(
    session: Session,
    *,
    device_id: int,
    valid_from: dt.datetime,
    valid_to: dt.datetime | None = None,
    household_id: int | None = None,
    building_id: int | None = None,
    note: str = "",
    commit_now: bool = True,
) -> Assignment:
    reference(session, Device, device_id, field="device_id")
    household_id, building_id = _place(session, household_id, building_id)
    _check_interval(session, device_id=device_id, valid_from=valid_from, valid_to=valid_to)
    assignment = Assignment(
        device_id=device_id,
        household_id=household_id,
        building_id=building_id,
        valid_from=valid_from,
        valid_to=valid_to,
        note=note,
    )
    session.add(assignment)
    if commit_now:
        commit(session)
    else:
        flush(session)
    return assignment


def update_assignment(session: Session, assignment: Assignment, *, changes: Mapping[str, Any]) -> Assignment:
    """Change the interval or the note; where a device was is history, so the place is not changed here."""
    valid_from = changes.get("valid_from", assignment.valid_from)
    valid_to = changes.get("valid_to", assignment.valid_to)
    _check_interval(
        session,
        device_id=assignment.device_id,
        valid_from=valid_from,
        valid_to=valid_to,
        ignore_id=assignment.id,
    )
    apply_changes(assignment, changes)
    commit(session)
    return assignment


def assignment_at(session: Session, *, device_id: int, at: dt.datetime) -> Assignment | None:
    """The assignment of ``device_id`` valid at ``at``, or None."""
    statement = select(Assignment).where(
        Assignment.device_id == device_id,
        Assignment.valid_from <= at,
        (Assignment.valid_to.is_(None)) | (Assignment.valid_to > at),
    )
    return session.scalars(statement).first()


def list_assignments(
    session: Session,
    *,
    limit: int,
    offset: int,
    device_id: int | None = None,
    household_id: int | None = None,
    building_id: int | None = None,
    at: dt.datetime | None = None,
) -> tuple[list[Assignment], int]:
    statement = select(Assignment).order_by(Assignment.device_id, Assignment.valid_from)
    if device_id is not None:
        statement = statement.where(Assignment.device_id == device_id)
    if household_id is not None:
        statement = statement.where(Assignment.household_id == household_id)
    if building_id is not None:
        statement = statement.where(Assignment.building_id == building_id)
    if at is not None:
        statement = statement.where(
            Assignment.valid_from <= at, (Assignment.valid_to.is_(None)) | (Assignment.valid_to > at)
        )
    return paginate(session, statement, limit=limit, offset=offset)


def swap_meter(
    session: Session, *, old_device_id: int, new_device_id: int, at: dt.datetime, note: str = ""
) -> Assignment:
    """The new device takes over the old one's place at ``at``; the old one is retired. One transaction."""
    old = reference(session, Device, old_device_id, field="old_device_id")
    reference(session, Device, new_device_id, field="new_device_id")
    if old_device_id == new_device_id:
        raise InvalidField("new_device_id", "must differ from old_device_id")
    current = assignment_at(session, device_id=old_device_id, at=at)
    if current is None:
        raise Conflict(f"device {old_device_id} has no assignment at {at.isoformat()}")
    if current.valid_to is not None:
        raise Conflict(f"assignment {current.id} already ends at {current.valid_to.isoformat()}")
    if current.valid_from == at:
        raise Conflict("the swap time equals the old assignment's start: change that assignment instead")
    try:
        current.valid_to = at
        flush(session)
        assignment = create_assignment(
            session,
            device_id=new_device_id,
            household_id=current.household_id,
            building_id=current.building_id,
            valid_from=at,
            note=note or f"replaces device {old_device_id}",
            commit_now=False,
        )
        old.status = DeviceStatus.retired
    except BaseException:
        session.rollback()
        raise
    commit(session)
    return assignment
