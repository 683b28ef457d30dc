"""A logged-in resident on the technicians' pages gets a page in their language saying whom the area is
for, with a way out: log out (POST with CSRF), and the resident portal once it exists. Not a bare 403."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.security import SESSION_COOKIE
from ingest.registry.models import Role
from tests.registry import factories as f
from tests.registry.pages_client import form_token, login

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


@pytest.mark.parametrize("path", ["/tech", "/tech/fleet", "/tech/devices/new", "/tech/gateways/1"])
def test_resident_gets_a_way_out(api: TestClient, session: Session, path: str) -> None:
    resident = f.user(session, Role.resident, f.household(session).id)
    api.cookies.set("reallabor_lang", "de")
    token = form_token(api.get("/tech/login").text)
    data = {"username": resident.username, "password": f.PASSWORD, "csrf_token": token}
    assert api.post("/tech/login", data=data, follow_redirects=False).status_code == 303

    page = api.get(path)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert f"Dieser Bereich ist für Technik und Betrieb. Sie sind als {resident.username} angemeldet." in text
    assert 'action="/tech/logout"' in text
    assert "Abmelden" in text
    assert "/portal" not in text  # no resident portal in this app (yet): only the logout
    assert "Flottenstatus" not in text  # no technician menu
    api.cookies.set("reallabor_lang", "en")
    english = api.get(path)
    assert "This area is for technicians and operators." in english.text

    out = api.post("/tech/logout", data={"csrf_token": form_token(text)}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/tech/login"
    api.cookies.delete(SESSION_COOKIE)
    assert api.get(path, follow_redirects=False).status_code == 303  # logged out: to the login


def test_resident_is_offered_the_portal_when_there_is_one(api: TestClient, session: Session) -> None:
    app = api.app
    assert isinstance(app, FastAPI)
    app.add_api_route("/portal", lambda: PlainTextResponse("portal"), methods=["GET"])
    resident = f.user(session, Role.resident, f.household(session).id)
    login_page = api.get("/tech/login")
    data = {"username": resident.username, "password": f.PASSWORD, "csrf_token": form_token(login_page.text)}
    api.post("/tech/login", data=data, follow_redirects=False)
    api.cookies.set("reallabor_lang", "en")
    page = api.get("/tech")
    assert page.status_code == 403
    assert '<a class="button" href="/portal" id="to-portal">To the resident portal</a>' in page.text
    assert "Log out" in page.text


def test_technician_still_sees_the_pages(api: TestClient, session: Session) -> None:
    login(api, f.user(session, Role.technician))
    assert api.get("/tech").status_code == 200
