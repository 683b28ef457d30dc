"""The registry as plain, immutable data for the ingester: no ORM object, no session, no I/O after load.

``snapshot.devices[(gateway, native_id)]`` is a :class:`DeviceEntry` whose ``spans`` are the device's
assignments sorted by ``valid_from``; :meth:`RegistrySnapshot.lookup` finds the one valid at a time.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.models import Assignment, Building, Device, Gateway, Household


@dataclass(frozen=True, slots=True)
class Span:
    """One assignment: the device measured ``household`` (None: common area) of ``building``."""

    valid_from: dt.datetime
    valid_to: dt.datetime | None
    household: str | None
    building: str
    household_id: int | None
    building_id: int

    def covers(self, at: dt.datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    device_id: int
    gateway: str
    native_id: str
    profile_id: str
    meter_number: str | None
    status: str
    spans: tuple[Span, ...] = ()
    _starts: tuple[dt.datetime, ...] = field(default=(), repr=False, compare=False)

    def span_at(self, at: dt.datetime) -> Span | None:
        index = bisect.bisect_right(self._starts, at) - 1
        if index < 0:
            return None
        span = self.spans[index]
        return span if span.covers(at) else None


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    devices: dict[tuple[str, str], DeviceEntry]
    loaded_at: dt.datetime

    def lookup(self, gateway: str, native_id: str, at: dt.datetime) -> Span | None:
        """The assignment of device ``native_id`` behind ``gateway`` at ``at`` (None: unknown/unassigned)."""
        entry = self.devices.get((gateway, native_id))
        return entry.span_at(at) if entry is not None else None

    def as_dict(self) -> dict[tuple[str, str], list[tuple[dt.datetime, dt.datetime | None, str | None, str]]]:
        """``(gateway, native_id) → [(valid_from, valid_to, household, building), ...]``."""
        return {
            key: [(s.valid_from, s.valid_to, s.household, s.building) for s in entry.spans]
            for key, entry in self.devices.items()
        }


def load_snapshot(session: Session, *, now: dt.datetime | None = None) -> RegistrySnapshot:
    """Read every device with its assignment history in two queries."""
    spans: dict[int, list[Span]] = {}
    rows = session.execute(
        select(
            Assignment.device_id,
            Assignment.valid_from,
            Assignment.valid_to,
            Household.name,
            Building.name,
            Assignment.household_id,
            Assignment.building_id,
        )
        .join(Building, Building.id == Assignment.building_id)
        .outerjoin(Household, Household.id == Assignment.household_id)
        .order_by(Assignment.device_id, Assignment.valid_from)
    )
    for device_id, valid_from, valid_to, household, building, household_id, building_id in rows:
        spans.setdefault(device_id, []).append(
            Span(valid_from, valid_to, household, building, household_id, building_id)
        )
    devices: dict[tuple[str, str], DeviceEntry] = {}
    for device_id, gateway, native_id, profile_id, meter_number, status in session.execute(
        select(
            Device.id, Gateway.name, Device.native_id, Device.profile_id, Device.meter_number, Device.status
        ).join(Gateway, Gateway.id == Device.gateway_id)
    ):
        device_spans = tuple(spans.get(device_id, ()))
        devices[(gateway, native_id)] = DeviceEntry(
            device_id=device_id,
            gateway=gateway,
            native_id=native_id,
            profile_id=profile_id,
            meter_number=meter_number,
            status=str(status),
            spans=device_spans,
            _starts=tuple(span.valid_from for span in device_spans),
        )
    return RegistrySnapshot(devices=devices, loaded_at=now or dt.datetime.now(dt.UTC))
