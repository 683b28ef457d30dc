"""Authorization of the technician pages: every page route × {anonymous, resident A/B, technician, operator}.

Pages use the cookie session. Anonymous callers are sent to the login (303), residents get 403, staff
succeed (2xx, or 303 after a form post). Every form post carries a valid CSRF token here (the session's,
or the login form's double submit for anonymous callers), so that only the role decides; CSRF refusal has
its own tests (test_csrf.py). A test checks that the matrix lists every page route.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.cookies import CSRF_COOKIE
from ingest.api.pages import device_pages, gateway_pages, import_page, invite_pages
from ingest.api.pages import router as pages
from ingest.api.pages.web import CSRF_FIELD, PAGES_PREFIX
from ingest.api.security import SESSION_COOKIE, TokenSigner
from ingest.dynsec import DynsecAdmin
from ingest.registry import invitations
from tests.registry import factories as f
from tests.registry.world import ANONYMOUS, CALLERS, OPERATOR, RESIDENT_A, RESIDENT_B, TECHNICIAN, World

pytestmark = [pytest.mark.registry, pytest.mark.integration]

P = PAGES_PREFIX
EVERYONE = frozenset(CALLERS)
STAFF = frozenset({TECHNICIAN, OPERATOR})
OPERATORS = frozenset({OPERATOR})
PRE_SESSION_CSRF = "c" * 43
WELCOME = "/portal/welcome"


@dataclass(frozen=True)
class Call:
    path: str
    form: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    json: dict[str, str] | None = None


@dataclass(frozen=True)
class Page:
    method: str
    path: str
    allowed: frozenset[str]
    call: Callable[[World], Call]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _invitation(w: World) -> tuple[int, str]:
    """A fresh invitation (for a third household: its code shows that household's name, rightly)."""
    invitation, code = invitations.create(w.session, household_id=w.household().id, by="test")
    return invitation.id, code


def _csv(w: World) -> dict[str, tuple[str, bytes, str]]:
    gateway = w.gateway_row()
    data = f"gateway,native_id,profile\n{gateway.name},imp{f.tag()},generic-json\n".encode()
    return {"file": ("devices.csv", data, "text/csv")}


PAGES = [
    Page("GET", f"{P}/login", EVERYONE, lambda w: Call(f"{P}/login")),
    Page(
        "POST",
        f"{P}/login",
        EVERYONE,
        lambda w: Call(f"{P}/login", {"username": w.users[TECHNICIAN].username, "password": f.PASSWORD}),
    ),
    Page("POST", f"{P}/logout", EVERYONE, lambda w: Call(f"{P}/logout", {})),
    Page("GET", f"{P}/lang/{{code}}", EVERYONE, lambda w: Call(f"{P}/lang/en")),
    Page("GET", P, STAFF, lambda w: Call(P)),
    Page("GET", f"{P}/search", STAFF, lambda w: Call(f"{P}/search?q=1")),
    Page("GET", f"{P}/fleet", STAFF, lambda w: Call(f"{P}/fleet")),
    Page("GET", f"{P}/gateways/new", STAFF, lambda w: Call(f"{P}/gateways/new")),
    Page("POST", f"{P}/gateways", STAFF, lambda w: Call(f"{P}/gateways", {"name": f"p{f.tag()}"})),
    Page("GET", f"{P}/gateways/{{gateway_id}}", STAFF, lambda w: Call(f"{P}/gateways/{w.gateway_row().id}")),
    Page(
        "POST",
        f"{P}/gateways/{{gateway_id}}/rotate",
        STAFF,
        lambda w: Call(f"{P}/gateways/{w.gateway().id}/rotate", {}),
    ),
    Page(
        "POST",
        f"{P}/gateways/{{gateway_id}}/bundle",
        STAFF,
        lambda w: Call(f"{P}/gateways/{w.gateway().id}/bundle", {"stops_sending": "yes"}),
    ),
    Page(
        "GET",
        f"{P}/gateways/{{gateway_id}}/revoke",
        OPERATORS,
        lambda w: Call(f"{P}/gateways/{w.gateway_row().id}/revoke"),
    ),
    Page(
        "POST",
        f"{P}/gateways/{{gateway_id}}/revoke",
        OPERATORS,
        lambda w: Call(f"{P}/gateways/{w.gateway().id}/revoke", {}),
    ),
    Page("GET", f"{P}/devices/new", STAFF, lambda w: Call(f"{P}/devices/new")),
    Page(
        "POST",
        f"{P}/devices/validate",
        STAFF,
        lambda w: Call(
            f"{P}/devices/validate",
            json={"gateway_id": str(w.gateway_row().id), "native_id": "m1", "profile_id": "generic-json"},
        ),
    ),
    Page(
        "POST",
        f"{P}/devices",
        STAFF,
        lambda w: Call(
            f"{P}/devices",
            {"gateway_id": str(w.gateway_row().id), "native_id": "m1", "profile_id": "generic-json"},
        ),
    ),
    Page(
        "GET", f"{P}/devices/{{device_id}}", STAFF, lambda w: Call(f"{P}/devices/{w.checked_device_run()[0]}")
    ),
    Page(
        "POST",
        f"{P}/devices/{{device_id}}/commission",
        STAFF,
        lambda w: Call(f"{P}/devices/{w.device().id}/commission", {"timeout_s": "5"}),
    ),
    Page("GET", f"{P}/runs/{{run_id}}", STAFF, lambda w: Call(f"{P}/runs/{w.checked_device_run()[1]}")),
    Page("GET", f"{P}/import", STAFF, lambda w: Call(f"{P}/import")),
    Page("POST", f"{P}/import", STAFF, lambda w: Call(f"{P}/import", {}, _csv(w))),
    # residents' access (issue 14): operators invite, anyone with a code redeems it
    Page("GET", f"{P}/invitations", OPERATORS, lambda w: Call(f"{P}/invitations")),
    Page(
        "POST",
        f"{P}/invitations",
        OPERATORS,
        lambda w: Call(f"{P}/invitations", {"household_id": str(w.household_a.id), "days": "3"}),
    ),
    Page(
        "POST",
        f"{P}/invitations/{{invitation_id}}/revoke",
        OPERATORS,
        lambda w: Call(f"{P}/invitations/{_invitation(w)[0]}/revoke", {}),
    ),
    Page("GET", f"{WELCOME}", EVERYONE, lambda w: Call(WELCOME)),
    Page("POST", f"{WELCOME}", EVERYONE, lambda w: Call(WELCOME, {"code": _invitation(w)[1]})),
]


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


def _login_cookie(w: World, caller: str) -> str:
    """The browser of ``caller`` (cookies); the CSRF token its forms carry."""
    w.client.cookies.clear()
    w.client.cookies.set(CSRF_COOKIE, PRE_SESSION_CSRF)
    if caller == ANONYMOUS:
        return PRE_SESSION_CSRF
    user = w.users[caller]
    w.session.refresh(user)
    signer: TokenSigner = w.client.app.state.signer  # type: ignore[attr-defined]
    token = signer.issue(user)
    w.client.cookies.set(SESSION_COOKIE, token)
    return signer.csrf_token(token)


def _routes(router: APIRouter, prefix: str) -> set[tuple[str, str]]:
    return {(m, prefix + r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods or ()}


def test_matrix_covers_every_page() -> None:
    """The page routers' routes (the main one has the prefix, the included ones get it) are the matrix."""
    served = _routes(pages.router, "")
    for module in (device_pages, gateway_pages, import_page, invite_pages):
        served |= _routes(module.router, P)
    served |= _routes(invite_pages.welcome_router, "")  # /portal/welcome, its own prefix
    assert served == {(page.method, page.path) for page in PAGES}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.id)
def test_page_authorization(world: World, page: Page) -> None:
    for caller in CALLERS:
        call = page.call(world)
        csrf = _login_cookie(world, caller)
        if page.method == "GET":
            response = world.client.get(call.path, follow_redirects=False)
        elif call.json is not None:  # validation as you type: JSON, the app-wide CSRF rule's way
            response = world.client.post(call.path, json=call.json, follow_redirects=False)
        else:
            form = {**(call.form or {}), CSRF_FIELD: csrf}
            response = world.client.post(
                call.path, data=form, files=call.files or None, follow_redirects=False
            )
        outcome = f"{page.id} as {caller}: {response.status_code} {response.text[:300]}"
        if caller in page.allowed:
            assert 200 <= response.status_code < 300 or response.status_code == 303, outcome
        elif caller == ANONYMOUS:
            assert response.status_code == 303, outcome
            assert response.headers["location"].startswith(f"{P}/login?next="), outcome
        else:
            assert response.status_code == 403, outcome
        if caller in (RESIDENT_A, RESIDENT_B):
            assert world.household_b.name not in response.text, outcome
            assert world.household_a.name not in response.text, outcome
