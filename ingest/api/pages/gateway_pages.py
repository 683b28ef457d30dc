"""Pages for gateways: register one, its page, its broker credentials (rotate, revoke) and its
installation bundle (a download with a new password inside, :mod:`ingest.gateway.bundle`).

As the JSON API's gateway routes allow: staff register gateways and rotate their passwords (the new
password and the bound client id are shown once, as at registration); only operators revoke, after a
confirmation step. Without broker administration the buttons are disabled and say why.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.api.deps import MAX_ID, SessionDep
from ingest.api.pages.web import PAGES_PREFIX, CsrfChecked, OperatorPage, StaffPage, localizer, render
from ingest.api.schemas import GatewayCreate
from ingest.dynsec import DynsecError
from ingest.gateway.bundle import GATEWAY_NAME as BUNDLE_GATEWAY_NAME
from ingest.gateway.bundle import BundleError, BundleSettings, make_bundle
from ingest.registry.errors import Conflict, RegistryError
from ingest.registry.fleet import create_gateway, gateway_client_id, revoke_gateway, rotate_gateway
from ingest.registry.models import Building, Device, Gateway, GatewayStatus, Role, User

log = logging.getLogger(__name__)
router = APIRouter()
GatewayId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _buildings(session: Session) -> list[Building]:
    return list(session.scalars(select(Building).order_by(Building.name).limit(1000)))


def _gateway(session: Session, gateway_id: int) -> Gateway:
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "gateway not found")
    return gateway


def _credentials(
    request: Request, user: User, gateway: Gateway, password: str, *, rotated: bool
) -> HTMLResponse:
    return render(
        request,
        "gateway_created.html",
        user=user,
        gateway=gateway,
        password=password,
        client_id=gateway_client_id(gateway.name),
        topic_prefix=f"lab/{gateway.name}/",
        rotated=rotated,
    )


@router.get("/gateways/new")
def gateway_form(request: Request, user: StaffPage, session: SessionDep) -> HTMLResponse:
    return render(
        request,
        "gateway_new.html",
        user=user,
        buildings=_buildings(session),
        broker_off=request.app.state.broker is None,
        values={},
    )


@router.post("/gateways", dependencies=[CsrfChecked])
def gateway_submit(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    name: Annotated[str, Form(max_length=200)],
    building_id: Annotated[str, Form(max_length=12)] = "",
    notes: Annotated[str, Form(max_length=4000)] = "",
) -> HTMLResponse:
    broker = request.app.state.broker
    fmt = localizer(request)
    values = {"name": name, "building_id": building_id, "notes": notes}
    errors: dict[str, str] = {}
    if broker is None:
        errors["form"] = "broker_off"
    else:
        try:  # the JSON API's rules for the fields (text, name pattern), then the registry's
            body = GatewayCreate(
                name=name,
                building_id=int(building_id) if building_id.isdigit() else None,
                notes=notes,
            )
            gateway, password = create_gateway(session, broker, **body.model_dump())
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error.get("loc") else "form"
                errors.setdefault(field, fmt.pydantic_error(error))
        except RegistryError as exc:
            field = getattr(exc, "field", "name")
            message = getattr(exc, "message", str(exc))
            errors[field if field in values else "name"] = fmt.field_error(field, message)
        except DynsecError as exc:
            log.warning("gateway %s not registered on the pages: broker: %s", name, exc)
            errors["form"] = "broker_failed"
        else:
            log.info("gateway %s registered on the pages by %s", gateway.name, user.username)
            return _credentials(request, user, gateway, password, rotated=False)
    return render(
        request,
        "gateway_new.html",
        user=user,
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE
        if errors.get("form")
        else status.HTTP_422_UNPROCESSABLE_CONTENT,
        buildings=_buildings(session),
        broker_off=broker is None,
        values=values,
        errors=errors,
    )


def _gateway_page(
    request: Request,
    user: User,
    session: Session,
    gateway: Gateway,
    *,
    problem: str | None = None,
    revoked: bool = False,
    status_code: int = 200,
) -> HTMLResponse:
    devices = session.scalars(
        select(Device).where(Device.gateway_id == gateway.id).order_by(Device.native_id).limit(1000)
    ).all()
    building = session.get(Building, gateway.building_id) if gateway.building_id is not None else None
    return render(
        request,
        "gateway.html",
        user=user,
        status_code=status_code,
        gateway=gateway,
        building=building,
        devices=devices,
        client_id=gateway_client_id(gateway.name),
        broker_off=request.app.state.broker is None,
        active=gateway.status is GatewayStatus.active,
        may_revoke=user.role is Role.operator,
        problem=problem,
        revoked=revoked,
    )


@router.get("/gateways/{gateway_id}")
def gateway_page(
    request: Request, user: StaffPage, session: SessionDep, gateway_id: GatewayId, revoked: bool = False
) -> HTMLResponse:
    return _gateway_page(request, user, session, _gateway(session, gateway_id), revoked=revoked)


def _refused(request: Request, user: User, session: Session, gateway: Gateway, exc: Exception) -> Response:
    """The gateway's page with why the change did not happen (the registry or the broker)."""
    if isinstance(exc, DynsecError):
        log.warning("gateway %s: broker refused a change from the pages: %s", gateway.name, exc)
        problem, code = "broker_failed", status.HTTP_503_SERVICE_UNAVAILABLE
    elif isinstance(exc, Conflict):
        problem, code = "gateway_is_revoked", status.HTTP_409_CONFLICT
    else:
        problem, code = "page_error", status.HTTP_409_CONFLICT
    session.rollback()
    return _gateway_page(request, user, session, gateway, problem=problem, status_code=code)


@router.post("/gateways/{gateway_id}/rotate", dependencies=[CsrfChecked])
def gateway_rotate(request: Request, user: StaffPage, session: SessionDep, gateway_id: GatewayId) -> Response:
    """A new broker password, shown once (the old one stops working)."""
    gateway = _gateway(session, gateway_id)
    broker = request.app.state.broker
    if broker is None:
        return _gateway_page(request, user, session, gateway, problem="broker_off_actions", status_code=503)
    try:
        password = rotate_gateway(session, broker, gateway, actor=user.username)
    except (RegistryError, DynsecError) as exc:
        return _refused(request, user, session, gateway, exc)
    log.info("gateway %s: password rotated on the pages by %s", gateway.name, user.username)
    return _credentials(request, user, gateway, password, rotated=True)


@router.post("/gateways/{gateway_id}/bundle", dependencies=[CsrfChecked])
def gateway_bundle(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    gateway_id: GatewayId,
    stops_sending: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """The gateway's installation bundle as a download, with a new broker password inside (shown once:
    the password of every earlier bundle stops working). Only with the box ticked that says the running
    gateway stops sending until the new bundle is installed (no JavaScript needed)."""
    gateway = _gateway(session, gateway_id)
    broker = request.app.state.broker
    if stops_sending != "yes":  # nothing rotated: the running gateway goes on
        return _gateway_page(
            request, user, session, gateway, problem="bundle_confirm_missing", status_code=422
        )
    if broker is None:
        return _gateway_page(request, user, session, gateway, problem="broker_off_actions", status_code=503)
    if gateway.status is not GatewayStatus.active:
        return _gateway_page(request, user, session, gateway, problem="gateway_is_revoked", status_code=409)
    if not BUNDLE_GATEWAY_NAME.match(gateway.name):
        return _gateway_page(request, user, session, gateway, problem="bundle_name", status_code=409)
    section, mqtt_host, mqtt_port = request.app.state.gateway_bundle
    try:
        bundle_settings = BundleSettings.load(section, mqtt_host=mqtt_host, mqtt_port=mqtt_port)
        bundle = make_bundle(session, broker, gateway, settings=bundle_settings, actor=user.username)
    except BundleError as exc:
        log.warning("gateway %s: no bundle on the pages: %s", gateway.name, exc)
        session.rollback()
        return _gateway_page(request, user, session, gateway, problem="bundle_failed", status_code=503)
    except (RegistryError, DynsecError) as exc:
        return _refused(request, user, session, gateway, exc)
    log.info("gateway %s: bundle downloaded on the pages by %s", gateway.name, user.username)
    return Response(
        bundle.data,
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{bundle.filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/gateways/{gateway_id}/revoke")
def gateway_revoke_confirm(
    request: Request, user: OperatorPage, session: SessionDep, gateway_id: GatewayId
) -> HTMLResponse:
    """The confirmation step: one more page before the account is gone."""
    gateway = _gateway(session, gateway_id)
    return render(
        request,
        "gateway_revoke.html",
        user=user,
        gateway=gateway,
        broker_off=request.app.state.broker is None,
        active=gateway.status is GatewayStatus.active,
    )


@router.post("/gateways/{gateway_id}/revoke", dependencies=[CsrfChecked])
def gateway_revoke(
    request: Request, user: OperatorPage, session: SessionDep, gateway_id: GatewayId
) -> Response:
    """Delete the broker account (the gateway is disconnected); the registry keeps its history."""
    gateway = _gateway(session, gateway_id)
    broker = request.app.state.broker
    if broker is None:
        return _gateway_page(request, user, session, gateway, problem="broker_off_actions", status_code=503)
    if gateway.status is not GatewayStatus.active:
        return _gateway_page(request, user, session, gateway, problem="gateway_is_revoked", status_code=409)
    try:
        revoke_gateway(session, broker, gateway)
    except (RegistryError, DynsecError) as exc:
        return _refused(request, user, session, gateway, exc)
    log.info("gateway %s revoked on the pages by %s", gateway.name, user.username)
    url = f"{PAGES_PREFIX}/gateways/{gateway.id}?revoked=1"
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
