"""Discovery: devices that report but are not registered, per gateway; register one and assign it back to
its first contact, so that its quarantined messages, which the ingester replays at its next registry
refresh, are written with its household and building."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlalchemy.orm import Session

from ingest.api.deps import SessionDep, StaffUser
from ingest.api.routes.field_common import (
    InvalidFields,
    ProfilesDep,
    device_problems,
    get_runs,
    register_device,
)
from ingest.api.schemas import DeviceCreate, DevicePublic
from ingest.api.schemas_discovery import DiscoveryRegister, DiscoveryRegistered, GatewayDiscoveryPublic
from ingest.commissioning.errors import CheckNotPossible
from ingest.decode import MessageDecoder
from ingest.discovery.listing import (
    MAX_PER_GATEWAY,
    GatewayDiscovery,
    UnregisteredCounts,
    discover,
    first_contact,
    unregistered_counts,
)
from ingest.profiles.loader import ProfileSet
from ingest.quarantine import DeviceKey, Quarantine, QuarantineError
from ingest.registry.db import utcnow
from ingest.registry.models import Building, Device, Gateway, Household

log = logging.getLogger(__name__)
router = APIRouter(prefix="/discovery", tags=["discovery"])
DEFAULT_REFRESH_S = 10.0
API_PER_GATEWAY = 50


class DiscoverySource:
    """What discovery reads: the ingester's decoder and quarantine file (those of the commissioning check)."""

    def __init__(self, request: Request) -> None:
        commissioner = get_runs(request).commissioner
        try:
            self.decoder: MessageDecoder = commissioner.decoder()
        except CheckNotPossible as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        self.quarantine_path = commissioner.config.quarantine_path
        self.refresh_s = float(getattr(request.app.state, "registry_refresh_s", DEFAULT_REFRESH_S))

    def waiting(self, key: DeviceKey) -> int:
        """The device's quarantined messages not replayed yet (0 when the quarantine cannot be read)."""
        if self.quarantine_path is None or not self.quarantine_path.exists():
            return 0
        try:
            with Quarantine(self.quarantine_path, read_only=True) as quarantine:
                summaries = quarantine.pending_by_device(["unknown_device"], key=key)
        except QuarantineError:
            return 0
        return sum(s.messages for s in summaries)

    def gateways(
        self, session: Session, *, per_gateway: int = API_PER_GATEWAY, gateway: str | None = None
    ) -> list[GatewayDiscovery]:
        try:
            return discover(
                self.quarantine_path, session, self.decoder, per_gateway=per_gateway, gateway=gateway
            )
        except QuarantineError as exc:
            log.warning("discovery: the quarantine cannot be read: %s", exc)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the quarantine cannot be read: {exc}"
            ) from exc

    def counts(self, session: Session) -> UnregisteredCounts:
        """How many unregistered devices and unknown topics, on how many gateways (503 when unreadable)."""
        try:
            return unregistered_counts(self.quarantine_path, session, self.decoder)
        except QuarantineError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the quarantine cannot be read: {exc}"
            ) from exc


SourceDep = Annotated[DiscoverySource, Depends(DiscoverySource)]


def _building_problems(session: Session, gateway: Gateway, body: DiscoveryRegister) -> list[tuple[str, str]]:
    """The household (or building) must be in the gateway's building, when the gateway has one."""
    if gateway.building_id is None:
        return []
    building = session.get(Building, gateway.building_id)
    where = building.name if building is not None else f"building {gateway.building_id}"
    if body.household_id is not None:
        household = session.get(Household, body.household_id)
        if household is not None and household.building_id != gateway.building_id:
            return [
                (
                    "household_id",
                    f"household {household.name!r} is not in {where!r}, the building of gateway "
                    f"{gateway.name!r}: choose one of its households",
                )
            ]
    elif body.building_id is not None and body.building_id != gateway.building_id:
        return [("building_id", f"gateway {gateway.name!r} is in {where!r}, not in another building")]
    return []


def register_discovered(
    session: Session, source: DiscoverySource, profiles: ProfileSet, body: DiscoveryRegister
) -> DiscoveryRegistered:
    """Register the device, assigned from its first contact; InvalidFields with what stops it."""
    problems: list[tuple[str, str]] = []
    if body.household_id is None and body.building_id is None:
        problems.append(("household_id", "choose the household (or the building) the device measures"))
    gateway = session.get(Gateway, body.gateway_id)
    assigned_from = utcnow()
    if gateway is not None:
        try:
            first = first_contact(source.quarantine_path, (gateway.name, body.native_id), source.decoder)
        except QuarantineError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the quarantine cannot be read: {exc}"
            ) from exc
        if first is None:
            problems.append(
                (
                    "native_id",
                    f"device {body.native_id!r} was never heard on gateway {gateway.name!r}: "
                    "register it on the devices page instead",
                )
            )
        else:
            assigned_from = min(first, assigned_from)
        problems += _building_problems(session, gateway, body)
    create = DeviceCreate(
        gateway_id=body.gateway_id,
        native_id=body.native_id,
        profile_id=body.profile_id,
        meter_number=body.meter_number,
        location=body.location,
        household_id=body.household_id,
        building_id=body.building_id,
        assigned_from=assigned_from,
    )
    problems += device_problems(session, create, profiles)
    if problems:
        raise InvalidFields(problems)
    device: Device = register_device(session, create)
    return DiscoveryRegistered(
        device=DevicePublic.model_validate(device),
        assigned_from=assigned_from,
        replay_within_s=source.refresh_s,
    )


@router.get("")
def read_discovery(
    _user: StaffUser,
    session: SessionDep,
    source: SourceDep,
    gateway: Annotated[str | None, Query(max_length=64, description="only this gateway")] = None,
    per_gateway: Annotated[
        int,
        Query(ge=1, le=MAX_PER_GATEWAY, description="devices and topics listed per gateway, newest first"),
    ] = API_PER_GATEWAY,
) -> list[GatewayDiscoveryPublic]:
    """Devices that report but are not registered, per gateway: from the ingester's quarantine
    (``unknown_device`` with the decoded values of the newest message, ``announcement``) and topics no
    profile decodes (``no_profile``). Each gateway lists its ``per_gateway`` most recently heard devices
    and topics; ``devices_total`` and ``unknown_topics_total`` say how many there are in all."""
    found = source.gateways(session, per_gateway=per_gateway, gateway=gateway)
    return [GatewayDiscoveryPublic.model_validate(g, from_attributes=True) for g in found]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "field errors, the same shape as FastAPI's validation errors"}},
)
def register(
    user: StaffUser, session: SessionDep, source: SourceDep, profiles: ProfilesDep, body: DiscoveryRegister
) -> DiscoveryRegistered:
    """Register a discovered device and assign it from its first contact (the earliest of its quarantined
    messages): the ingester replays them at its next registry refresh (``replay_within_s``), with the
    household and building tags."""
    registered = register_discovered(session, source, profiles, body)
    log.info(
        "discovered device %r registered by %s, assigned from %s",
        body.native_id,
        user.username,
        registered.assigned_from.isoformat(),
    )
    return registered
