"""The household of a resident (from the session's user) and the devices assigned to it now, with when
each last reported (the receive time the ingester records, :mod:`ingest.registry.fleet_status`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ingest.portal.data import Household
from ingest.registry.fleet_status import DEFAULT_SILENT_AFTER
from ingest.registry.models import Assignment, Device, Role, User
from ingest.registry.models import Household as HouseholdRow


@dataclass(frozen=True)
class HomeDevice:
    native_id: str
    profile_id: str
    location: str
    meter_number: str | None
    last_seen: dt.datetime | None
    silent: bool  # never heard, or not for :data:`DEFAULT_SILENT_AFTER`


def household_of(session: Session, user: User) -> Household | None:
    """The resident's household, or None (not a resident, or no household)."""
    if user.role is not Role.resident or user.household_id is None:
        return None
    row = session.get(HouseholdRow, user.household_id)
    if row is None:
        return None
    return Household(row.id, row.name, row.building.name)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)  # SQLite: naive UTC


def home_devices(session: Session, household: Household, *, now: dt.datetime) -> list[HomeDevice]:
    rows = session.scalars(
        select(Device)
        .join(Assignment, Assignment.device_id == Device.id)
        .where(
            Assignment.household_id == household.id,
            Assignment.valid_from <= now,
            or_(Assignment.valid_to.is_(None), Assignment.valid_to > now),
        )
        .order_by(Device.location, Device.native_id)
    ).unique()
    out = []
    for device in rows:
        seen = _aware(device.last_seen)
        out.append(
            HomeDevice(
                native_id=device.native_id,
                profile_id=device.profile_id,
                location=device.location,
                meter_number=device.meter_number,
                last_seen=seen,
                silent=seen is None or now - seen > DEFAULT_SILENT_AFTER,
            )
        )
    return out
