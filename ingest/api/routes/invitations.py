"""Invitations for residents' accounts: operators only. The code is in the creating response only; the
registry keeps its hash (:mod:`ingest.registry.invitations`). Residents redeem it on ``/portal/welcome``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from ingest.api.deps import FilterId, ItemId, Limit, Offset, OperatorUser, SessionDep
from ingest.api.routes.common import get_or_404
from ingest.api.schemas import Body, Page, Public
from ingest.registry.invitations import InvitationState, create, list_invitations, revoke, state_of
from ingest.registry.models import Household, Invitation

WELCOME_PATH = "/portal/welcome"
router = APIRouter(tags=["invitations"])


class InvitationCreate(Body):
    days: int = Field(14, ge=1, le=90, description="valid for this many days")


class InvitationPublic(Public):
    id: int
    household_id: int
    state: InvitationState
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    redeemed_at: dt.datetime | None
    redeemed_by_id: int | None
    revoked_at: dt.datetime | None


class InvitationCreated(BaseModel):
    """Shown once: the registry keeps only the code's hash."""

    invitation: InvitationPublic
    code: str = Field(description="16 characters in four groups; typed on welcome_path")
    welcome_path: str


def public(invitation: Invitation) -> InvitationPublic:
    fields = {name: getattr(invitation, name) for name in InvitationPublic.model_fields if name != "state"}
    return InvitationPublic(**fields, state=state_of(invitation))


@router.post("/households/{household_id}/invitations", status_code=status.HTTP_201_CREATED)
def add_invitation(
    user: OperatorUser,
    session: SessionDep,
    household_id: ItemId,
    body: InvitationCreate,
    response: Response,
) -> InvitationCreated:
    """A one-time code with which a resident of the household creates their account."""
    response.headers["Cache-Control"] = "no-store"  # the code: in no cache
    household = get_or_404(session, Household, household_id)
    invitation, code = create(
        session,
        household_id=household.id,
        created_by=user,
        by=user.username,
        ttl=dt.timedelta(days=body.days),
    )
    return InvitationCreated(invitation=public(invitation), code=code, welcome_path=WELCOME_PATH)


@router.get("/invitations")
def read_invitations(
    _user: OperatorUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    household_id: FilterId = None,
    state: Annotated[Literal["open", "all"], Query(description="open ones, or every one")] = "open",
) -> Page[InvitationPublic]:
    """Invitations, newest first, never with their codes."""
    rows, total = list_invitations(
        session, limit=limit, offset=offset, household_id=household_id, open_only=state == "open"
    )
    return Page[InvitationPublic](
        items=[public(row) for row in rows], total=total, limit=limit, offset=offset
    )


@router.post(
    "/invitations/{invitation_id}/revoke",
    responses={409: {"description": "already redeemed: deactivate the resident's user instead"}},
)
def revoke_invitation(user: OperatorUser, session: SessionDep, invitation_id: ItemId) -> InvitationPublic:
    """Withdraw an invitation; revoking one again changes nothing."""
    invitation = get_or_404(session, Invitation, invitation_id)
    return public(revoke(session, invitation, by=user.username))
