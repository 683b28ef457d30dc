"""Assignments (device ↔ household/building over time): staff read and write, operators delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from ingest.api.deps import FilterId, ItemId, Limit, Offset, OperatorUser, SessionDep, StaffUser
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.schemas import AssignmentCreate, AssignmentPublic, AssignmentUpdate, MeterSwap, Page
from ingest.registry.assignments import create_assignment, list_assignments, swap_meter, update_assignment
from ingest.registry.common import delete_row
from ingest.registry.models import Assignment

router = APIRouter(prefix="/assignments", tags=["assignments"])


@router.get("")
def read_assignments(
    _user: StaffUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    device_id: FilterId = None,
    household_id: FilterId = None,
    building_id: FilterId = None,
    at: Annotated[AwareDatetime | None, Query(description="only those valid at this time")] = None,
) -> Page[AssignmentPublic]:
    rows = list_assignments(
        session,
        limit=limit,
        offset=offset,
        device_id=device_id,
        household_id=household_id,
        building_id=building_id,
        at=at,
    )
    return page_of(AssignmentPublic, rows, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "overlaps another"}})
def add_assignment(_user: StaffUser, session: SessionDep, body: AssignmentCreate) -> AssignmentPublic:
    return AssignmentPublic.model_validate(create_assignment(session, **body.model_dump()))


@router.post("/swap", status_code=status.HTTP_201_CREATED)
def swap_meters(_user: StaffUser, session: SessionDep, body: MeterSwap) -> AssignmentPublic:
    """The new meter takes over the old one's household at ``at``; the old one is retired, history kept."""
    assignment = swap_meter(
        session,
        old_device_id=body.old_device_id,
        new_device_id=body.new_device_id,
        at=body.at,
        note=body.note,
    )
    return AssignmentPublic.model_validate(assignment)


@router.get("/{assignment_id}")
def read_assignment(_user: StaffUser, session: SessionDep, assignment_id: ItemId) -> AssignmentPublic:
    return AssignmentPublic.model_validate(get_or_404(session, Assignment, assignment_id))


@router.patch("/{assignment_id}", responses={409: {"description": "overlaps another"}})
def change_assignment(
    _user: StaffUser, session: SessionDep, assignment_id: ItemId, body: AssignmentUpdate
) -> AssignmentPublic:
    """Move the interval's ends (e.g. close it with ``valid_to``) or edit the note."""
    assignment = get_or_404(session, Assignment, assignment_id)
    changed = update_assignment(session, assignment, changes=body.model_dump(exclude_unset=True))
    return AssignmentPublic.model_validate(changed)


@router.delete("/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_assignment(_user: OperatorUser, session: SessionDep, assignment_id: ItemId) -> None:
    """For mistakes only: a real end of an assignment is a PATCH of ``valid_to``."""
    delete_row(session, get_or_404(session, Assignment, assignment_id))
