"""Discovery: devices that report but are not registered, per gateway; register one and assign it back to
its first contact, so that its quarantined messages, which the ingester replays at its next registry
refresh, are written with its household and building."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlalchemy.orm import Session

from ingest.api.deps import SessionDep, StaffUser
from ingest.api.runs import ProfilesDep, get_runs
from ingest.api.schemas import DevicePublic
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
from ingest.discovery.merged import opened
from ingest.quarantine import DeviceKey, QuarantineError
from ingest.registry.registration import NewDevice, register_discovered

log = logging.getLogger(__name__)
router = APIRouter(prefix="/discovery", tags=["discovery"])
DEFAULT_REFRESH_S = 10.0
API_PER_GATEWAY = 50


class DiscoverySource:
    """What discovery reads: the ingester's decoder and quarantine file (those of the commissioning check),
    with several ingester instances every instance's quarantine beside it."""

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
        try:
            with opened(self.quarantine_path) as quarantine:
                if quarantine is None:
                    return 0
                summaries = quarantine.pending_by_device(["unknown_device"], key=key)
        except QuarantineError:
            return 0
        return sum(s.messages for s in summaries)

    def first_heard(self, gateway: str, native_id: str) -> dt.datetime | None:
        """The device's first contact in the quarantine (503 when it cannot be read)."""
        try:
            return first_contact(self.quarantine_path, (gateway, native_id), self.decoder)
        except QuarantineError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the quarantine cannot be read: {exc}"
            ) from exc

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
    device, assigned_from = register_discovered(
        session, NewDevice(**body.model_dump()), first_heard=source.first_heard, profiles=profiles.by_id
    )
    log.info(
        "discovered device %r registered by %s, assigned from %s",
        body.native_id,
        user.username,
        assigned_from.isoformat(),
    )
    return DiscoveryRegistered(
        device=DevicePublic.model_validate(device),
        assigned_from=assigned_from,
        replay_within_s=source.refresh_s,
    )
