"""Pages for devices and the commissioning check."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.api.deps import MAX_ID, SessionDep
from ingest.api.pages.localize import Localizer
from ingest.api.pages.web import PAGES_PREFIX, CsrfChecked, StaffPage, localizer, render
from ingest.api.runs import RunsDep, profiles_of, run_status, start_run
from ingest.api.schemas import DeviceCreate
from ingest.api.schemas_technician import RUN_ID
from ingest.registry.assignments import assignment_at
from ingest.registry.commissioning import list_checks
from ingest.registry.db import utcnow
from ingest.registry.errors import RegistryError
from ingest.registry.models import Device, Gateway, GatewayStatus, Household
from ingest.registry.registration import NewDevice, device_problems, register_device

log = logging.getLogger(__name__)
router = APIRouter()
DeviceId = Annotated[int, Path(ge=1, le=MAX_ID)]
TIMEOUTS = (60, 120, 300)


# ---------------------------------------------------------------- devices


def _device_form(
    request: Request,
    user: Any,
    session: Session,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    profiles = sorted(profiles_of(request), key=lambda p: (p.profile.family, p.id))
    gateways = session.scalars(
        select(Gateway).where(Gateway.status == GatewayStatus.active).order_by(Gateway.name).limit(1000)
    ).all()
    households = session.scalars(select(Household).limit(5000)).unique().all()
    by_building: dict[str, list[Household]] = {}
    for household in sorted(households, key=lambda h: (h.building.name, h.name)):
        by_building.setdefault(household.building.name, []).append(household)
    return render(
        request,
        "device_new.html",
        user=user,
        status_code=status_code,
        profiles=profiles,
        gateways=gateways,
        households=by_building,
        values=values,
        errors=errors or {},
    )


@router.get("/devices/new")
def device_form(request: Request, user: StaffPage, session: SessionDep) -> HTMLResponse:
    preset = request.query_params.get("gateway_id", "")
    return _device_form(request, user, session, values={"gateway_id": preset if preset.isdigit() else ""})


def _body(values: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        key: values[key] for key in ("native_id", "profile_id", "location", "notes") if values.get(key)
    }
    for key in ("gateway_id", "household_id"):
        if values.get(key):
            body[key] = values[key]
    if values.get("meter_number"):
        body["meter_number"] = values["meter_number"]
    return body


@router.post("/devices", dependencies=[CsrfChecked])
def device_submit(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    gateway_id: Annotated[str, Form(max_length=12)] = "",
    native_id: Annotated[str, Form(max_length=200)] = "",
    profile_id: Annotated[str, Form(max_length=100)] = "",
    meter_number: Annotated[str, Form(max_length=100)] = "",
    location: Annotated[str, Form(max_length=300)] = "",
    household_id: Annotated[str, Form(max_length=12)] = "",
    notes: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    values = {
        "gateway_id": gateway_id,
        "native_id": native_id,
        "profile_id": profile_id,
        "meter_number": meter_number,
        "location": location,
        "household_id": household_id,
        "notes": notes,
    }
    fmt = localizer(request)
    new, errors = _check(request, session, values, fmt)
    if new is not None and not errors:
        try:
            device = register_device(session, new)
        except RegistryError as exc:
            field = getattr(exc, "field", "form")
            errors["form"] = fmt.field_error(field, getattr(exc, "message", str(exc)))
        else:
            log.info("device %s registered on the pages by %s", device.id, user.username)
            url = f"{PAGES_PREFIX}/devices/{device.id}?created=1"
            return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    return _device_form(
        request,
        user,
        session,
        values=values,
        errors=errors,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _check(
    request: Request, session: Session, values: dict[str, str], fmt: Localizer
) -> tuple[NewDevice | None, dict[str, str]]:
    """The JSON API's checks of a device (fields, then references and duplicates), each field's first
    error in the page's language."""
    errors: dict[str, str] = {}
    try:
        device = NewDevice(**DeviceCreate.model_validate(_body(values)).model_dump())
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(field, fmt.pydantic_error(error))
        return None, errors
    for field, message in device_problems(session, device, profiles_of(request).by_id):
        errors.setdefault(field, fmt.field_error(field, message))
    return device, errors


@router.post("/devices/validate")
async def device_validate(request: Request, _user: StaffPage, session: SessionDep) -> JSONResponse:
    """Validation as you type: the form's fields as JSON, answered as POST /api/v1/devices/validate
    would (``detail``: loc and msg per field), with the messages in the page's language."""
    try:
        sent = await request.json()
    except ValueError:
        sent = {}
    values = {key: str(value) for key, value in sent.items()} if isinstance(sent, dict) else {}
    _body_ok, errors = _check(request, session, values, localizer(request))
    if not errors:
        return JSONResponse({"valid": True})
    detail = [{"loc": ["body", field], "msg": message} for field, message in errors.items()]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.get("/devices/{device_id}")
def device_page(
    request: Request, user: StaffPage, session: SessionDep, device_id: DeviceId, created: bool = False
) -> HTMLResponse:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    checks, _total = list_checks(session, device_id=device.id, limit=10, offset=0)
    try:
        profile = profiles_of(request).by_id.get(device.profile_id)
    except HTTPException:  # the profiles cannot be loaded: the page still shows the device
        profile = None
    return render(
        request,
        "device.html",
        user=user,
        device=device,
        family=profile.profile.family if profile is not None else None,
        assignment=assignment_at(session, device_id=device.id, at=utcnow()),
        checks=checks,
        created=created,
        timeouts=TIMEOUTS,
        default_timeout=int(request.app.state.commissioning_timeout_s),
    )


@router.post("/devices/{device_id}/commission", dependencies=[CsrfChecked])
async def commission_submit(
    user: StaffPage,
    session: SessionDep,
    runs: RunsDep,
    device_id: DeviceId,
    timeout_s: Annotated[int, Form(ge=5, le=600)] = 120,
) -> Response:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    run = start_run(runs, device, user, timeout_s=float(timeout_s))
    return RedirectResponse(f"{PAGES_PREFIX}/runs/{run.id}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/runs/{run_id}")
def run_page(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    runs: RunsDep,
    run_id: Annotated[str, Path(pattern=RUN_ID)],
) -> HTMLResponse:
    state = run_status(runs, session, run_id)
    device = session.get(Device, state.device_id)
    return render(request, "run.html", user=user, run=state, device=device)
