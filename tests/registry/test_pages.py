"""The technician pages without a browser: login with CSRF, language, device form and its validation
route, CSV upload report. SQLite only (the registry itself is tested on both backends elsewhere)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.api.cookies import CSRF_COOKIE
from ingest.api.security import SESSION_COOKIE
from ingest.registry.models import Device, Role, User
from tests.registry import factories as f

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
V1 = "/api/v1"


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF field in the form"
    return found.group(1)


def _login(api: TestClient, user: User) -> str:
    """Log in through the page; the CSRF token for later forms (the session's, not the login form's)."""
    page = api.get("/tech/login")
    token = _token(page.text)
    response = api.post(
        "/tech/login",
        data={"username": user.username, "password": f.PASSWORD, "next": "/tech/fleet", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/tech/fleet"
    assert SESSION_COOKIE in response.cookies
    return _token(api.get("/tech").text)


@pytest.fixture
def technician(session: Session) -> User:
    return f.user(session, Role.technician)


def test_login_needs_the_csrf_token(api: TestClient, technician: User) -> None:
    api.get("/tech/login")  # sets the CSRF cookie
    assert api.cookies.get(CSRF_COOKIE)
    form = {"username": technician.username, "password": f.PASSWORD}
    missing = api.post("/tech/login", data=form, follow_redirects=False)
    assert missing.status_code == 403
    wrong = api.post("/tech/login", data={**form, "csrf_token": "x" * 43}, follow_redirects=False)
    assert wrong.status_code == 403
    assert SESSION_COOKIE not in wrong.cookies


def test_forms_of_a_logged_in_technician_need_the_token_too(
    api: TestClient, technician: User, session: Session
) -> None:
    _login(api, technician)
    gateway = f.gateway_row(session)
    form = {"gateway_id": str(gateway.id), "native_id": "forged", "profile_id": "generic-json"}
    response = api.post("/tech/devices", data=form, follow_redirects=False)
    assert response.status_code == 403
    assert session.scalar(select(Device).where(Device.native_id == "forged")) is None


def test_wrong_password_and_open_redirect(api: TestClient, technician: User) -> None:
    token = _token(api.get("/tech/login").text)
    refused = api.post(
        "/tech/login", data={"username": technician.username, "password": "nope", "csrf_token": token}
    )
    assert refused.status_code == 401
    data = {
        "username": technician.username,
        "password": f.PASSWORD,
        "csrf_token": token,
        "next": "//evil.example",
    }
    response = api.post("/tech/login", data=data, follow_redirects=False)
    assert response.headers["location"] == "/tech"


def test_language_from_header_and_switch(api: TestClient, technician: User) -> None:
    _login(api, technician)
    assert "Flottenstatus" in api.get("/tech", headers={"Accept-Language": "fr, de;q=0.8"}).text
    english = api.get("/tech", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    assert "Fleet status" in english.text
    assert english.headers["content-language"] == "en"
    api.get("/tech/lang/de?next=/tech", follow_redirects=False)
    api.cookies.set("reallabor_lang", "de")
    assert "Flottenstatus" in api.get("/tech", headers={"Accept-Language": "en"}).text


def test_register_device_through_the_form(api: TestClient, technician: User, session: Session) -> None:
    token = _login(api, technician)
    gateway = f.gateway_row(session)
    household = f.household(session)
    page = api.get(f"/tech/devices/new?gateway_id={gateway.id}")
    assert f'value="{gateway.id}" selected' in page.text
    form = {
        "gateway_id": str(gateway.id),
        "native_id": "hh-7-em",
        "profile_id": "generic-json",
        "meter_number": "1ESY-77",
        "household_id": str(household.id),
        "csrf_token": token,
    }
    response = api.post("/tech/devices", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    device = session.scalar(select(Device).where(Device.native_id == "hh-7-em"))
    assert device is not None
    assert response.headers["location"] == f"/tech/devices/{device.id}?created=1"
    again = api.post("/tech/devices", data={**form, "native_id": "a//b"})
    assert again.status_code == 422
    assert 'id="native_id"' in again.text
    assert 'aria-invalid="true"' in again.text
    taken = api.post("/tech/devices", data={**form, "native_id": "hh-8-em"})
    assert taken.status_code == 422
    assert "1ESY-77" in taken.text  # the meter number is taken


def test_validate_route_names_fields(api: TestClient, technician: User, session: Session) -> None:
    signer = api.app.state.signer  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {signer.issue(technician)}"}
    gateway = f.gateway_row(session)
    taken = f.device(session, gateway.id, meter_number="M-1")
    body = {"gateway_id": gateway.id, "native_id": "new", "profile_id": "generic-json"}
    assert api.post(f"{V1}/devices/validate", json=body, headers=headers).json() == {"valid": True}
    bad = {**body, "native_id": taken.native_id, "profile_id": "nope", "meter_number": "M-1"}
    response = api.post(f"{V1}/devices/validate", json=bad, headers=headers)
    assert response.status_code == 422
    fields = {item["loc"][-1] for item in response.json()["detail"]}
    assert fields == {"native_id", "profile_id", "meter_number"}
    syntax = api.post(f"{V1}/devices/validate", json={**body, "native_id": "a#b"}, headers=headers)
    assert syntax.status_code == 422
    assert syntax.json()["detail"][0]["loc"] == ["body", "native_id"]


def test_csv_upload_report(api: TestClient, technician: User, session: Session) -> None:
    token = _login(api, technician)
    gateway = f.gateway_row(session)
    data = f"gateway,native_id,profile\n{gateway.name},u1,generic-json\n{gateway.name},u2,bogus\n".encode()
    response = api.post(
        "/tech/import", data={"csrf_token": token}, files={"file": ("d.csv", data, "text/csv")}
    )
    assert response.status_code == 422
    assert "Unbekanntes Geräteprofil „bogus“." in response.text  # the page's language (German here)
    assert "unknown profile" not in response.text
    assert session.scalar(select(Device).where(Device.native_id == "u1")) is None
    fixed = data.replace(b"bogus", b"tasmota-sml")
    response = api.post(
        "/tech/import", data={"csrf_token": token}, files={"file": ("d.csv", fixed, "text/csv")}
    )
    assert response.status_code == 200
    assert "2 Geräte angelegt" in response.text
