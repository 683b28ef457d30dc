"""A household in the registry: its facts for the export, and its rows for the deletion.

What belongs to a household: the row itself, its residents (users; never their password hashes or
session keys in an export), its invitations (never their code hashes), and its assignments (which
device measured it when). The devices are the building's infrastructure: a deletion removes the
household's assignments (so a device becomes unassigned and the next tenant's household gets a new
assignment), never the device.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ingest.privacy.influx import Selector
from ingest.registry.models import Assignment, Household, Invitation, User


def selector(household: Household) -> Selector:
    """The tags its points carry (the enricher writes the household's and the building's names)."""
    return Selector(household=household.name, building=household.building.name)


def reference(household_id: int, building_id: int, created_at: dt.datetime | None) -> str:
    """A neutral name for a household in records and logs: no name, which may be a family's."""
    day = f", registered {created_at.date().isoformat()}" if created_at is not None else ""
    return f"household #{household_id} (building #{building_id}{day})"


def _when(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def residents(session: Session, household: Household) -> list[User]:
    return list(session.scalars(select(User).where(User.household_id == household.id).order_by(User.id)))


def _assignments(session: Session, household: Household) -> list[Assignment]:
    statement = (
        select(Assignment).where(Assignment.household_id == household.id).order_by(Assignment.valid_from)
    )
    return list(session.scalars(statement).unique())


def _invitations(session: Session, household: Household) -> list[Invitation]:
    statement = select(Invitation).where(Invitation.household_id == household.id).order_by(Invitation.id)
    return list(session.scalars(statement).unique())


def facts(session: Session, household: Household) -> dict[str, Any]:
    """Everything the registry stores about the household, as JSON-ready data."""
    building = household.building
    return {
        "household": {
            "id": household.id,
            "name": household.name,
            "notes": household.notes,
            "created_at": _when(household.created_at),
        },
        "building": {"id": building.id, "name": building.name, "address": building.address},
        "residents": [
            {
                "username": user.username,
                "full_name": user.full_name,
                "active": user.is_active,
                "created_at": _when(user.created_at),
            }
            for user in residents(session, household)
        ],
        "assignments": [
            {
                "device_id": a.device.id,
                "gateway": a.device.gateway.name,
                "device": a.device.native_id,
                "profile": a.device.profile_id,
                "meter_number": a.device.meter_number,
                "location": a.device.location,
                "valid_from": _when(a.valid_from),
                "valid_to": _when(a.valid_to),
                "note": a.note,
            }
            for a in _assignments(session, household)
        ],
        "invitations": [
            {
                "created_at": _when(i.created_at),
                "expires_at": _when(i.expires_at),
                "redeemed_at": _when(i.redeemed_at),
                "revoked_at": _when(i.revoked_at),
            }
            for i in _invitations(session, household)
        ],
    }


def counts(session: Session, household: Household) -> dict[str, int]:
    """How many rows of each kind the household has (what a deletion removes)."""

    def count(model: Any) -> int:
        statement = select(func.count()).select_from(model).where(model.household_id == household.id)
        return int(session.scalar(statement) or 0)

    return {
        "residents": count(User),
        "invitations": count(Invitation),
        "assignments": count(Assignment),
        "household": 1,
    }


def remove_links(session: Session, household: Household) -> dict[str, int]:
    """Delete the residents (their sessions die with their rows), invitations and assignments; the
    caller commits. Invitations first: they name their redeemer (SET NULL), residents name nobody."""
    removed = {}
    for key, model in (("invitations", Invitation), ("residents", User), ("assignments", Assignment)):
        result = session.execute(delete(model).where(model.household_id == household.id))
        removed[key] = int(getattr(result, "rowcount", 0) or 0)
    return removed
