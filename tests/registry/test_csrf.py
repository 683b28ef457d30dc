"""CSRF: every state-changing request that the session cookie authenticates needs more than the cookie.

It must send ``Content-Type: application/json`` (no cross-site form can), or the CSRF token (the
``X-CSRF-Token`` header or the pages' ``csrf_token`` field) bound to that session: an HMAC of the session
token under the API's secret key. SameSite=Strict alone is not enough: a sibling subdomain is the same
site, and can set (toss) cookies for ours, so a token merely equal to a cookie proves nothing (the review
started a commissioning run so). In production both cookies carry the ``__Host-`` prefix, which no other
host can set. Bearer clients carry no ambient credential.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.api.cookies import CSRF_COOKIE
from ingest.api.csrf import CSRF_HEADER
from ingest.api.security import SESSION_COOKIE, TokenSigner
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from ingest.registry.models import Building, Device, Role
from tests.registry import factories as f
from tests.registry.world import OPERATOR, TECHNICIAN, World

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
V1 = "/api/v1"
EVIL = "A" * 43  # the attacker's own CSRF value, tossed as a cookie and sent along


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


def _form_token(client: TestClient) -> str:
    """The CSRF token the pages put in their forms for this browser."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/tech/login").text)
    assert found is not None
    return found.group(1)


def _cookie_session(world: World, caller: str) -> str:
    """The browser of ``caller``: a session cookie, nothing else; the CSRF token the pages give it."""
    user = world.users[caller]
    world.session.refresh(user)
    signer: TokenSigner = world.client.app.state.signer  # type: ignore[attr-defined]
    world.client.cookies.clear()
    world.client.cookies.set(SESSION_COOKIE, signer.issue(user))
    return _form_token(world.client)


def test_bodyless_rotate_by_cookie_needs_the_token(world: World) -> None:
    gateway = world.gateway()
    token = _cookie_session(world, TECHNICIAN)
    url = f"{V1}/gateways/{gateway.id}/rotate"
    bare = world.client.post(url)
    assert bare.status_code == 403, bare.text
    assert "CSRF" in bare.json()["detail"]
    wrong = world.client.post(url, headers={CSRF_HEADER: "x" * 43})
    assert wrong.status_code == 403
    form = world.client.post(url, data={"anything": "1"})  # what a cross-site form can send
    assert form.status_code == 403
    with_token = world.client.post(url, headers={CSRF_HEADER: token})
    assert with_token.status_code == 200, with_token.text
    as_json = world.client.post(url, headers={"Content-Type": "application/json"})
    assert as_json.status_code == 200, as_json.text


def test_bearer_clients_need_no_token(world: World) -> None:
    gateway = world.gateway()
    world.client.cookies.clear()
    response = world.client.post(f"{V1}/gateways/{gateway.id}/rotate", headers=world.headers(TECHNICIAN))
    assert response.status_code == 200, response.text


def test_logout_by_cookie_needs_the_token(world: World) -> None:
    token = _cookie_session(world, OPERATOR)
    refused = world.client.post(f"{V1}/auth/logout")
    assert refused.status_code == 403
    assert world.client.get(f"{V1}/me").status_code == 200  # the session was not ended
    done = world.client.post(f"{V1}/auth/logout", headers={CSRF_HEADER: token})
    assert done.status_code == 204, done.text


def test_every_state_change_by_cookie_is_covered(world: World) -> None:
    """DELETE and PATCH too; JSON bodies pass (the page's validation-as-you-type sends JSON)."""
    token = _cookie_session(world, OPERATOR)
    building = world.building()
    assert world.client.delete(f"{V1}/buildings/{building.id}").status_code == 403
    patch = world.client.patch(
        f"{V1}/buildings/{building.id}", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert patch.status_code == 403
    assert world.client.patch(f"{V1}/buildings/{building.id}", json={"notes": "ok"}).status_code == 200
    deleted = world.client.delete(f"{V1}/buildings/{building.id}", headers={CSRF_HEADER: token})
    assert deleted.status_code == 204, deleted.text


def test_page_logout_needs_the_form_token(world: World) -> None:
    token = _cookie_session(world, TECHNICIAN)
    assert world.client.post("/tech/logout", follow_redirects=False).status_code == 403
    assert world.client.get(f"{V1}/me").status_code == 200
    done = world.client.post("/tech/logout", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303


def test_the_login_forms_cookie_is_for_the_whole_host(world: World) -> None:
    """Path=/ (required for the __Host- prefix in production), HttpOnly, SameSite=Strict."""
    world.client.cookies.clear()
    cookie = SimpleCookie(world.client.get("/tech/login").headers["set-cookie"])
    assert cookie[CSRF_COOKIE]["path"] == "/"
    assert cookie[CSRF_COOKIE]["httponly"]
    assert cookie[CSRF_COOKIE]["samesite"].lower() == "strict"


# ---------------------------------------------------------------- the token is bound to the session


def _tossed(world: World, caller: str, csrf_cookie: str) -> dict[str, str]:
    """The Cookie header of ``caller``'s browser after a sibling subdomain set ``csrf_cookie`` in it
    (sent after the browser's own, so it is the one read)."""
    user = world.users[caller]
    world.session.refresh(user)
    signer: TokenSigner = world.client.app.state.signer  # type: ignore[attr-defined]
    world.client.cookies.clear()
    own = "o" * 43
    return {
        "Cookie": f"{SESSION_COOKIE}={signer.issue(user)}; {CSRF_COOKIE}={own}; {CSRF_COOKIE}={csrf_cookie}"
    }


def test_a_tossed_csrf_cookie_with_its_own_value_is_refused(world: World) -> None:
    """The review: a sibling subdomain sets reallabor_csrf=<its value> in the technician's browser and
    posts the same value; the double submit accepted it and started a commissioning run."""
    device = world.device()
    cookies = _tossed(world, TECHNICIAN, EVIL)
    form = {"csrf_token": EVIL}
    commission = world.client.post(
        f"/tech/devices/{device.id}/commission", data=form, headers=cookies, follow_redirects=False
    )
    assert commission.status_code == 403, (commission.status_code, commission.headers.get("location"))
    new = {"gateway_id": str(device.gateway_id), "native_id": "tossed", "profile_id": "generic-json"}
    created = world.client.post(
        "/tech/devices", data={**new, **form}, headers=cookies, follow_redirects=False
    )
    assert created.status_code == 403, (created.status_code, created.headers.get("location"))
    assert world.session.scalar(select(Device).where(Device.native_id == "tossed")) is None
    api = world.client.post(
        f"{V1}/buildings",
        content=b'{"name": "tossed"}',
        headers={**cookies, CSRF_HEADER: EVIL, "Content-Type": "text/plain"},
    )
    assert api.status_code == 403, api.text
    assert world.session.scalar(select(Building).where(Building.name == "tossed")) is None


def test_a_token_of_another_session_is_refused(world: World) -> None:
    """The attacker logs in itself and gets a genuine token (and CSRF cookie) for its own session; tossed
    into the victim's browser, neither is worth anything there."""
    attacker_token = _cookie_session(world, OPERATOR)
    attacker_cookie = world.client.cookies.get(CSRF_COOKIE) or attacker_token
    cookies = _tossed(world, TECHNICIAN, attacker_cookie)
    form = world.client.post(
        "/tech/logout", data={"csrf_token": attacker_token}, headers=cookies, follow_redirects=False
    )
    assert form.status_code == 403, form.status_code
    api = world.client.post(f"{V1}/auth/logout", headers={**cookies, CSRF_HEADER: attacker_token})
    assert api.status_code == 403, api.status_code
    me = world.client.get(f"{V1}/me", headers=cookies)
    assert me.json()["username"] == world.users[TECHNICIAN].username  # still logged in


def test_the_login_forms_token_does_not_carry_over_into_the_session(world: World, session: Session) -> None:
    """The login form (no session yet) keeps the double submit; once logged in, only the session's
    own token counts, so a pre-session token that an attacker planted is worth nothing."""
    world.client.cookies.clear()
    before = _form_token(world.client)
    user = world.users[TECHNICIAN]
    form = {"username": user.username, "password": f.PASSWORD, "csrf_token": before}
    assert world.client.post("/tech/login", data=form, follow_redirects=False).status_code == 303
    after = _form_token(world.client)
    assert after != before
    assert world.client.post("/tech/logout", data={"csrf_token": before}).status_code == 403
    assert (
        world.client.post("/tech/logout", data={"csrf_token": after}, follow_redirects=False).status_code
        == 303
    )


# ---------------------------------------------------------------- production: __Host- cookies


@pytest.fixture
def production(engine: Engine, broker_admin: DynsecAdmin, api_settings: Settings) -> Iterator[TestClient]:
    mqtt, ingest = api_settings.mqtt, api_settings.ingest
    settings = Settings(
        mode="production",
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": "sqlite://"},
        mqtt={"port": mqtt.port, "username": mqtt.username, "password": mqtt.password},
        influx={"password": secrets.token_urlsafe(16)},
        ingest={"profiles_dir": ingest.profiles_dir, "state_dir": ingest.state_dir},
    )
    app = create_app(settings, broker=broker_admin, engine=engine, migrate=False)
    with TestClient(app, base_url="https://testserver") as client:
        yield client


def _set_cookies(response: object) -> dict[str, str]:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return {header.split("=", 1)[0]: header for header in headers}


def test_production_cookies_carry_the_host_prefix(production: TestClient, session: Session) -> None:
    user = f.user(session, Role.technician)
    page = production.get("/tech/login")
    csrf = _set_cookies(page)[f"__Host-{CSRF_COOKIE}"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"username": user.username, "password": f.PASSWORD, "csrf_token": token.group(1)}
    login = production.post("/tech/login", data=form, follow_redirects=False)
    assert login.status_code == 303, login.text
    cookie = _set_cookies(login)[f"__Host-{SESSION_COOKIE}"]
    for header in (csrf, cookie):
        attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
        assert {"secure", "httponly", "path", "samesite"} <= attributes, header
        assert "domain" not in attributes, header
        assert "path=/;" in header.lower() + ";", header
    assert production.get(f"{V1}/me").status_code == 200
    api_login = production.post(f"{V1}/auth/login", json={"username": user.username, "password": f.PASSWORD})
    assert f"__Host-{SESSION_COOKIE}" in _set_cookies(api_login)
    logout = production.post(
        "/tech/logout", data={"csrf_token": _form_token(production)}, follow_redirects=False
    )
    assert logout.status_code == 303
    cleared = _set_cookies(logout)[f"__Host-{SESSION_COOKIE}"]
    assert "secure" in cleared.lower()  # a browser refuses to clear a __Host- cookie without it


def test_production_ignores_cookies_without_the_prefix(production: TestClient, session: Session) -> None:
    """A sibling subdomain can set reallabor_session (its own session: login CSRF) but not __Host-."""
    user = f.user(session, Role.technician)
    signer: TokenSigner = production.app.state.signer  # type: ignore[attr-defined]
    production.cookies.set(SESSION_COOKIE, signer.issue(user))
    assert production.get(f"{V1}/me").status_code == 401
    assert production.get("/tech", follow_redirects=False).status_code == 303  # to the login
    production.cookies.clear()
    production.cookies.set(f"__Host-{SESSION_COOKIE}", signer.issue(user))
    assert production.get(f"{V1}/me").status_code == 200
