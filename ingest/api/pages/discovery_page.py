"""The discovery page: per gateway the devices that report but are not registered, with their decoded
values and when they were first and last heard; one form per device registers it and assigns it to a
household from its first contact, and the ingester replays its quarantined messages at its next registry
refresh (``registry.refresh_s``), so its readings since it was installed are kept."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from ingest.api.deps import SessionDep
from ingest.api.pages.i18n import negotiate
from ingest.api.pages.web import PAGES_PREFIX, CsrfChecked, StaffPage, localizer, render
from ingest.api.routes.discovery import DiscoverySource, SourceDep
from ingest.api.runs import profiles_of
from ingest.api.schemas_discovery import DiscoveryRegister
from ingest.discovery.listing import PER_GATEWAY, GatewayDiscovery
from ingest.registry.errors import InvalidFields, RegistryError
from ingest.registry.models import Assignment, Device, User
from ingest.registry.registration import NewDevice, register_discovered
from ingest.registry.text import native_id_problem, text_problem

log = logging.getLogger(__name__)
router = APIRouter()
ONE_GATEWAY = 100  # devices and topics listed when the page shows one gateway (?gateway=...)


def _page(
    request: Request,
    user: User,
    gateways: list[GatewayDiscovery],
    source: DiscoverySource,
    *,
    status_code: int = 200,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, dict[str, str]] | None = None,
    registered: dict[str, Any] | None = None,
    only: str | None = None,
) -> HTMLResponse:
    family = localizer(request, negotiate(request)).family  # sorted as shown: family (id)
    profiles = sorted(profiles_of(request), key=lambda p: (family(p.profile.family).casefold(), p.id))
    return render(
        request,
        "discovery.html",
        user=user,
        status_code=status_code,
        gateways=gateways,
        only=only,
        opened={key.split("/", 1)[0] for key in errors or {}},
        id_problem=id_problem,  # the gateway of a form with errors
        profiles=[p for p in profiles if p.profile.decoder != "announcement"],
        errors=errors or {},
        values=values or {},
        registered=registered,
        refresh_s=round(source.refresh_s),
    )


@router.get("/discovery")
def discovery_page(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    source: SourceDep,
    registered: int | None = None,
    gateway: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """Per gateway (one section each, to open), its newest devices and topics and how many there are in
    all; ``gateway``: that gateway only, with more of them."""
    done = None
    device = session.get(Device, registered) if registered is not None else None
    if device is not None:
        since = session.scalar(
            select(func.min(Assignment.valid_from)).where(Assignment.device_id == device.id)
        )
        done = {
            "id": device.id,
            "native_id": device.native_id,
            "gateway": device.gateway.name,
            "since": since.replace(tzinfo=dt.UTC) if since is not None and since.tzinfo is None else since,
            "waiting": source.waiting((device.gateway.name, device.native_id)),
        }
    return _page(request, user, _gateways(session, source, gateway), source, registered=done, only=gateway)


def _gateways(session: SessionDep, source: DiscoverySource, gateway: str | None) -> list[GatewayDiscovery]:
    per_gateway = ONE_GATEWAY if gateway else PER_GATEWAY
    return source.gateways(session, per_gateway=per_gateway, gateway=gateway or None)


def id_problem(native_id: str) -> str | None:
    """Why a discovered device id cannot be registered (the registry's text and device id rules), or None."""
    return text_problem(native_id) or native_id_problem(native_id)


def _form_key(gateway_id: str, native_id: str) -> str:
    return f"{gateway_id}/{native_id}"


@router.post("/discovery/register", dependencies=[CsrfChecked])
def discovery_register(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    source: SourceDep,
    gateway_id: Annotated[str, Form(max_length=12)] = "",
    native_id: Annotated[str, Form(max_length=200)] = "",
    profile_id: Annotated[str, Form(max_length=100)] = "",
    household_id: Annotated[str, Form(max_length=12)] = "",
    meter_number: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    key = _form_key(gateway_id, native_id)
    sent = {"profile_id": profile_id, "household_id": household_id, "meter_number": meter_number}
    problems: dict[str, str] = {}
    try:
        body = DiscoveryRegister.model_validate(
            {
                "gateway_id": gateway_id,
                "native_id": native_id,
                "profile_id": profile_id,
                **({"household_id": household_id} if household_id else {}),
                **({"meter_number": meter_number} if meter_number else {}),
            }
        )
        device, _first = register_discovered(
            session,
            NewDevice(**body.model_dump()),
            first_heard=source.first_heard,
            profiles=profiles_of(request).by_id,
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            problems.setdefault(field, str(error.get("msg", "invalid")).removeprefix("Value error, "))
    except InvalidFields as exc:
        problems = dict(exc.problems)
    except RegistryError as exc:
        problems["form"] = str(exc)
    else:
        log.info("discovered device %r registered on the pages by %s", native_id, user.username)
        url = f"{PAGES_PREFIX}/discovery?registered={device.id}"
        return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    listed = _gateways(session, source, None)
    if not any(
        d.native_id == native_id for g in listed for d in g.devices if str(g.gateway_id) == gateway_id
    ):
        # the device with the error is not among the overview's newest: show its gateway only
        named = [g.gateway for g in listed if str(g.gateway_id) == gateway_id]
        if named:
            listed = _gateways(session, source, named[0])
    return _page(
        request,
        user,
        listed,
        source,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        errors={key: problems},
        values={key: sent},
    )
