"""The registry API: ``create_app(settings)`` builds the FastAPI application.

At start it migrates the registry database to the newest schema. Registry errors become HTTP errors
here: :class:`Conflict` → 409, :class:`InvalidField` → 422 (same shape as FastAPI's validation errors),
broker trouble → 503. The OpenAPI document is at ``/api/v1/openapi.json``, the docs at ``/api/docs``
(outside development for operators only: ``docs.py``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from ingest.api import docs
from ingest.api.csrf import csrf_protect
from ingest.api.limits import BodyLimit
from ingest.api.pages import PAGES_PREFIX, STATIC_DIR, invite_pages, ops_page, portal_page, quarter_page
from ingest.api.pages import router as pages
from ingest.api.routes import (
    assignments,
    auth,
    buildings,
    commissioning,
    devices,
    discovery,
    fleet_routes,
    gateways,
    households,
    invitations,
    me,
    privacy,
    users,
)
from ingest.api.security import SESSION_COOKIE, TokenSigner, cookie_name
from ingest.commissioning.runner import RunManager
from ingest.commissioning.setup import make_commissioner
from ingest.config import Settings
from ingest.dynsec import BrokerUnavailable, DynsecError
from ingest.profiles.loader import ProfileSet
from ingest.registry.db import make_engine, session_factory
from ingest.registry.errors import Conflict, InvalidField, InvalidFields
from ingest.registry.fleet import BrokerAccounts
from ingest.registry.migrate import upgrade

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def _secret_key(settings: Settings) -> str:
    if settings.api.secret_key is not None:
        return settings.api.secret_key.get_secret_value()
    # Settings refuses a missing key outside development
    log.warning("api.secret_key is not set (development): sessions end when the API restarts")
    return secrets.token_urlsafe(32)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


async def _invalid_field(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidField)
    problems = exc.problems if isinstance(exc, InvalidFields) else [(exc.field, exc.message)]
    detail = [
        {"loc": ["body", field], "msg": message, "type": "invalid_field"} for field, message in problems
    ]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _broker_error(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("broker administration failed: %s", exc)
    kind = "unavailable" if isinstance(exc, BrokerUnavailable) else "refused the change"
    return JSONResponse({"detail": f"broker {kind}: {exc}"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


def create_app(
    settings: Settings,
    *,
    broker: BrokerAccounts | None = None,
    engine: Engine | None = None,
    migrate: bool = True,
    profiles: ProfileSet | None = None,
) -> FastAPI:
    """The application; ``broker`` administers gateway accounts (None: gateway writes answer 503).

    ``profiles``: the device profiles (default: loaded from ``ingest.profiles_dir`` on first use).
    A given ``engine`` or ``broker`` stays the caller's to close.
    """
    owns_engine = engine is None
    engine = engine or make_engine(settings.registry.url)
    sessions = session_factory(engine)
    commissioner = make_commissioner(settings, sessions, profiles=profiles)
    runs = RunManager(commissioner, max_active=settings.commissioning.max_active)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            upgrade(engine)
        yield
        await runs.close()
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="Reallabor registry",
        version="1",
        summary="Buildings, households, residents, gateways, devices and their assignments over time.",
        openapi_url=None,  # served by docs.install, for operators only outside development
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(csrf_protect)],  # one CSRF rule for every route (csrf.py)
    )
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.runs = runs
    app.state.commissioning_timeout_s = settings.commissioning.default_timeout_s
    app.state.registry_refresh_s = settings.registry.refresh_s  # how soon the ingester replays (discovery)
    app.state.timezone = settings.ingest.timezone  # the pages show times in the quarter's zone
    app.state.api_prefix = API_PREFIX
    app.state.public_url = settings.api.public_url  # printed on invitations (invite_pages.py)
    app.state.gateway_bundle = settings.gateway_bundle, settings.mqtt.host, settings.mqtt.port  # pages
    secure = settings.mode == "production"  # Secure, __Host- cookies (security.py)
    app.state.secure_cookies = secure
    app.state.signer = TokenSigner(
        _secret_key(settings), cookie_name=cookie_name(SESSION_COOKIE, secure=secure)
    )
    app.add_middleware(BodyLimit, signer=app.state.signer)  # before any body is read (limits.py)
    app.state.broker = broker
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(InvalidField, _invalid_field)
    app.add_exception_handler(DynsecError, _broker_error)

    api = APIRouter(prefix=API_PREFIX)

    @api.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Public: the API is up."""
        return {"status": "ok"}

    # fleet_routes before devices: POST /devices/validate is not a device id
    for module in (auth, me, buildings, households, users, gateways, fleet_routes, devices, assignments):
        api.include_router(module.router)
    api.include_router(commissioning.router)
    api.include_router(discovery.router)
    api.include_router(invitations.router)
    app.include_router(api)
    app.include_router(pages.router)
    app.include_router(invite_pages.welcome_router)  # /portal/welcome: residents redeem invitations
    app.mount(f"{PAGES_PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="static")
    pages.install(app)
    ops_page.install(app, settings.influx, timezone=settings.ingest.timezone)  # /ops: operators' charts
    portal_page.install(app, settings.influx, timezone=settings.ingest.timezone)  # /portal: residents
    quarter_page.install(  # public
        app,
        settings.influx,
        settings.opendata,
        timezone=settings.ingest.timezone,
        energy_window=settings.energy.window,  # days older are final: the page counts all their quarter hours
    )
    privacy.install(app, settings, api_prefix=API_PREFIX)  # export, deletion (docs/privacy.md)
    docs.install(app, openapi_url=f"{API_PREFIX}/openapi.json", operators_only=settings.mode != "development")
    return app
