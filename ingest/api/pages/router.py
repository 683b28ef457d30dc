"""Page routes: login, home with meter number search, fleet status, language switch; and
:func:`install`, which turns the pages' exceptions into redirects and small error pages."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.api.cookies import clear_session, set_language, set_session
from ingest.api.deps import SessionDep, get_signer
from ingest.api.pages import device_pages, discovery_page, gateway_pages, import_page, invite_pages
from ingest.api.pages.i18n import LANGUAGES
from ingest.api.pages.web import (
    OPS_PREFIX,
    PAGES_PREFIX,
    CsrfChecked,
    CsrfRefused,
    LoginRequired,
    PageForbidden,
    StaffPage,
    landing,
    login_url,
    render,
    safe_next,
    session_user,
)
from ingest.api.routes.discovery import DiscoverySource
from ingest.api.throttle import LoginBusy, LoginThrottled, attempt_login, client_address
from ingest.registry.fleet_status import fleet_status, search_meter_numbers
from ingest.registry.models import User
from ingest.registry.people import end_sessions
from ingest.security.audit import audit

log = logging.getLogger(__name__)
router = APIRouter(prefix=PAGES_PREFIX, include_in_schema=False)
PORTAL = "/portal"  # the residents' pages, once they exist: the way out offered to a resident here
STATIC = f"{PAGES_PREFIX}/static"
ERROR_PAGES = {404: "not_found", 409: "check_not_possible", 429: "too_many_runs", 503: "unavailable"}
router.include_router(device_pages.router)
router.include_router(discovery_page.router)
router.include_router(gateway_pages.router)
router.include_router(import_page.router)
router.include_router(invite_pages.router)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next))


@router.post("/login", dependencies=[CsrfChecked])
def login_submit(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = PAGES_PREFIX,
) -> Response:
    try:
        user = attempt_login(request, session, username=username, password=password, via="pages")
    except (LoginThrottled, LoginBusy) as exc:
        busy = isinstance(exc, LoginBusy)
        refused = render(
            request,
            "login.html",
            status_code=503 if busy else 429,
            next=safe_next(next),
            failed="login_busy" if busy else "login_throttled",
        )
        refused.headers["Retry-After"] = str(exc.retry_after_s)
        return refused
    if user is None:
        return render(
            request, "login.html", status_code=401, next=safe_next(next), failed=True, username=username
        )
    target = landing(user, safe_next(next))
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_session(request, response, get_signer(request).issue(user))
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def logout_submit(
    request: Request, user: Annotated[User | None, Depends(session_user)], session: SessionDep
) -> Response:
    """Any logged-in user (a resident who found this page too) ends their sessions."""
    if user is not None:
        end_sessions(session, user)
        audit("logout", user=user.username, client=client_address(request), via="pages")
    response = RedirectResponse(f"{PAGES_PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
    clear_session(request, response)
    return response


@router.get("/lang/{code}")
def switch_language(code: str, next: str | None = None) -> Response:
    response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    if code in LANGUAGES:
        set_language(response, code)
    return response


@router.get("")
def home(request: Request, user: StaffPage) -> HTMLResponse:
    return render(request, "home.html", user=user)


@router.get("/search")
def search(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    q: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    devices = search_meter_numbers(session, q)
    return render(request, "home.html", user=user, q=q, devices=devices, searched=True)


@router.get("/fleet")
def fleet(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    silent_after_min: Annotated[int, Query(ge=1, le=10080)] = 15,
) -> HTMLResponse:
    rows = fleet_status(session, silent_after=dt.timedelta(minutes=silent_after_min))
    try:  # what reports without being registered, counted by SQL; the fleet shows without it when unreadable
        unregistered = DiscoverySource(request).counts(session)._asdict()
    except StarletteHTTPException:
        unregistered = {"devices": 0, "topics": 0, "gateways": 0}
    return render(
        request,
        "fleet.html",
        user=user,
        rows=rows,
        silent_after_min=silent_after_min,
        unregistered=unregistered,
    )


def install(app: FastAPI) -> None:
    """Exception handlers of the pages."""

    async def to_login(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(login_url(exc.next_url), status_code=status.HTTP_303_SEE_OTHER)

    async def forbidden(request: Request, exc: Exception) -> Response:
        """A resident (or any non-staff user) gets a way out: log out, or go to the resident portal;
        a technician where only operators act is told so, with the menu."""
        assert isinstance(exc, PageForbidden)
        if exc.need == "resident":  # staff at /portal: household data is theirs in Grafana
            return render(
                request, "message.html", user=exc.user, status_code=403, text_key="portal_residents_only"
            )
        if exc.need == "operator":
            ops = request.url.path.startswith(OPS_PREFIX)
            key = "operators_only_ops" if ops else "operators_only"
            return render(request, "message.html", user=exc.user, status_code=403, text_key=key)
        portal = any(getattr(route, "path", "") == PORTAL for route in request.app.routes)
        return render(
            request, "forbidden.html", status_code=403, visitor=exc.user, portal=PORTAL if portal else None
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        """Errors of the pages as pages in their language; the API's stay JSON."""
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith(PAGES_PREFIX) or request.url.path.startswith(STATIC):
            return await http_exception_handler(request, exc)
        key = ERROR_PAGES.get(exc.status_code, "page_error")
        response = render(request, "message.html", status_code=exc.status_code, text_key=key)
        response.headers.update(exc.headers or {})
        return response

    async def csrf_refused(request: Request, _exc: Exception) -> Response:
        log.info("page form refused: CSRF token missing or wrong (%s)", request.url.path)
        return render(request, "message.html", status_code=403, text_key="csrf_refused")

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(PageForbidden, forbidden)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(CsrfRefused, csrf_refused)
