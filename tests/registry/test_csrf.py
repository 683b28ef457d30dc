"""CSRF: every state-changing request that the session cookie authenticates needs more than the cookie.

It must send ``Content-Type: application/json`` (no cross-site form can), or the CSRF token (the
``X-CSRF-Token`` header or the pages' ``csrf_token`` field, equal to the CSRF cookie). SameSite=Strict
alone is not enough: a sibling subdomain is the same site. Bearer clients carry no ambient credential.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.csrf import CSRF_HEADER
from ingest.api.pages.web import CSRF_COOKIE
from ingest.api.security import SESSION_COOKIE, TokenSigner
from ingest.dynsec import DynsecAdmin
from ingest.registry.models import User
from tests.registry.world import OPERATOR, TECHNICIAN, World

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
V1 = "/api/v1"
TOKEN = "t" * 43


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


def _cookie_session(world: World, caller: str) -> User:
    """The browser of ``caller``: a session cookie and a CSRF cookie, nothing else."""
    user = world.users[caller]
    world.session.refresh(user)
    signer: TokenSigner = world.client.app.state.signer  # type: ignore[attr-defined]
    world.client.cookies.clear()
    world.client.cookies.set(SESSION_COOKIE, signer.issue(user))
    world.client.cookies.set(CSRF_COOKIE, TOKEN)
    return user


def test_bodyless_rotate_by_cookie_needs_the_token(world: World) -> None:
    gateway = world.gateway()
    _cookie_session(world, TECHNICIAN)
    url = f"{V1}/gateways/{gateway.id}/rotate"
    bare = world.client.post(url)
    assert bare.status_code == 403, bare.text
    assert "CSRF" in bare.json()["detail"]
    wrong = world.client.post(url, headers={CSRF_HEADER: "x" * 43})
    assert wrong.status_code == 403
    form = world.client.post(url, data={"anything": "1"})  # what a cross-site form can send
    assert form.status_code == 403
    with_token = world.client.post(url, headers={CSRF_HEADER: TOKEN})
    assert with_token.status_code == 200, with_token.text
    as_json = world.client.post(url, headers={"Content-Type": "application/json"})
    assert as_json.status_code == 200, as_json.text


def test_bearer_clients_need_no_token(world: World) -> None:
    gateway = world.gateway()
    world.client.cookies.clear()
    response = world.client.post(f"{V1}/gateways/{gateway.id}/rotate", headers=world.headers(TECHNICIAN))
    assert response.status_code == 200, response.text


def test_logout_by_cookie_needs_the_token(world: World) -> None:
    _cookie_session(world, OPERATOR)
    refused = world.client.post(f"{V1}/auth/logout")
    assert refused.status_code == 403
    assert world.client.get(f"{V1}/me").status_code == 200  # the session was not ended
    done = world.client.post(f"{V1}/auth/logout", headers={CSRF_HEADER: TOKEN})
    assert done.status_code == 204, done.text


def test_every_state_change_by_cookie_is_covered(world: World) -> None:
    """DELETE and PATCH too; JSON bodies pass (the page's validation-as-you-type sends JSON)."""
    _cookie_session(world, OPERATOR)
    building = world.building()
    assert world.client.delete(f"{V1}/buildings/{building.id}").status_code == 403
    patch = world.client.patch(
        f"{V1}/buildings/{building.id}", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert patch.status_code == 403
    assert world.client.patch(f"{V1}/buildings/{building.id}", json={"notes": "ok"}).status_code == 200
    deleted = world.client.delete(f"{V1}/buildings/{building.id}", headers={CSRF_HEADER: TOKEN})
    assert deleted.status_code == 204, deleted.text


def test_page_logout_needs_the_form_token(world: World) -> None:
    _cookie_session(world, TECHNICIAN)
    assert world.client.post("/tech/logout", follow_redirects=False).status_code == 403
    assert world.client.get(f"{V1}/me").status_code == 200
    done = world.client.post("/tech/logout", data={"csrf_token": TOKEN}, follow_redirects=False)
    assert done.status_code == 303


def test_the_csrf_cookie_reaches_the_api(world: World) -> None:
    """The header is compared with the CSRF cookie, so the cookie must be sent to /api/v1 too."""
    world.client.cookies.clear()
    cookie = SimpleCookie(world.client.get("/tech/login").headers["set-cookie"])
    assert cookie[CSRF_COOKIE]["path"] == "/"
