"""Gateways: staff register and re-key them (the password is in the response, once); operators revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ingest.api.deps import BrokerDep, FilterId, ItemId, Limit, Offset, OperatorUser, SessionDep, StaffUser
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.schemas import (
    GatewayCreate,
    GatewayCredentials,
    GatewayName,
    GatewayPublic,
    GatewayUpdate,
    Page,
)
from ingest.registry.fleet import (
    create_gateway,
    gateway_client_id,
    list_gateways,
    revoke_gateway,
    rotate_gateway,
    update_gateway,
)
from ingest.registry.models import Gateway, GatewayStatus

router = APIRouter(prefix="/gateways", tags=["gateways"])


def _credentials(gateway: Gateway, password: str) -> GatewayCredentials:
    return GatewayCredentials(
        gateway=GatewayPublic.model_validate(gateway),
        username=gateway.broker_username,
        password=password,
        client_id=gateway_client_id(gateway.name),
        topic_prefix=f"lab/{gateway.name}/",
    )


@router.get("")
def read_gateways(
    _user: StaffUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    building_id: FilterId = None,
    status: Annotated[GatewayStatus | None, Query()] = None,
    name: Annotated[GatewayName | None, Query()] = None,
) -> Page[GatewayPublic]:
    rows = list_gateways(
        session, limit=limit, offset=offset, building_id=building_id, status=status, name=name
    )
    return page_of(GatewayPublic, rows, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def add_gateway(
    _user: StaffUser, session: SessionDep, body: GatewayCreate, broker: BrokerDep
) -> GatewayCredentials:
    """Register a gateway and create its broker account; the password is shown only in this response."""
    gateway, password = create_gateway(session, broker, **body.model_dump())
    return _credentials(gateway, password)


@router.get("/{gateway_id}")
def read_gateway(_user: StaffUser, session: SessionDep, gateway_id: ItemId) -> GatewayPublic:
    return GatewayPublic.model_validate(get_or_404(session, Gateway, gateway_id))


@router.patch("/{gateway_id}")
def change_gateway(
    _user: StaffUser, session: SessionDep, gateway_id: ItemId, body: GatewayUpdate
) -> GatewayPublic:
    gateway = get_or_404(session, Gateway, gateway_id)
    changed = update_gateway(session, gateway, changes=body.model_dump(exclude_unset=True))
    return GatewayPublic.model_validate(changed)


@router.post("/{gateway_id}/rotate")
def rotate_gateway_password(
    _user: StaffUser, session: SessionDep, gateway_id: ItemId, broker: BrokerDep
) -> GatewayCredentials:
    """A new broker password (the old one stops working, a connected gateway is disconnected)."""
    gateway = get_or_404(session, Gateway, gateway_id)
    return _credentials(gateway, rotate_gateway(session, broker, gateway))


@router.post("/{gateway_id}/revoke")
def revoke_gateway_account(
    _user: OperatorUser, session: SessionDep, gateway_id: ItemId, broker: BrokerDep
) -> GatewayPublic:
    """Delete the broker account (the gateway is disconnected and cannot log in again); history stays."""
    gateway = get_or_404(session, Gateway, gateway_id)
    return GatewayPublic.model_validate(revoke_gateway(session, broker, gateway))
