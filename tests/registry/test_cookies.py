"""Every cookie the app sets, exactly, in development and in production: the session (API and page
logins, logouts), the login form's CSRF token and the language switches of /tech and /portal. One
helper (:mod:`ingest.api.cookies`) sets them all; these are the attributes it must keep."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.registry.models import Role
from tests.registry import factories as f

pytestmark = pytest.mark.registry
V1 = "/api/v1"
PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
STRICT = "HttpOnly; Path=/; SameSite=strict"
SESSION = "HttpOnly; Max-Age=43200; Path=/; SameSite=strict"
CLEARED = "expires=*; HttpOnly; Max-Age=0; Path=/; SameSite=strict"
LANG = "Max-Age=31536000; Path=/; SameSite=lax"


@pytest.fixture(params=["development", "production"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        mode=request.param,
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": f"sqlite:///{tmp_path}/registry.sqlite3"},
        mqtt={"port": 1, "username": "ingest", "password": secrets.token_urlsafe(16)},
        influx={"password": secrets.token_urlsafe(16)},
        ingest={
            "profiles_dir": PROFILES,
            "state_dir": tmp_path,
        },
    )
    https = request.param == "production"
    with TestClient(create_app(settings), base_url="https://testserver" if https else "http://t") as client:
        yield client


def _cookies(response: Response) -> list[str]:
    """The Set-Cookie headers with the values and dates starred."""
    shown = []
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        rest = re.sub(r"expires=[^;]+", "expires=*", rest.partition(";")[2].strip())
        shown.append(f"{name}=*; {rest}")
    return shown


def _form_token(page: Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_every_cookie_keeps_its_attributes(client: TestClient) -> None:
    secure = client.base_url.scheme == "https"
    host, tls = ("__Host-", "; Secure") if secure else ("", "")
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        username = f.user(session, Role.technician).username

    login_page = client.get("/tech/login")
    assert _cookies(login_page) == [f"{host}reallabor_csrf=*; {STRICT}{tls}"]
    form = {"username": username, "password": f.PASSWORD, "csrf_token": _form_token(login_page)}
    login = client.post("/tech/login", data=form, follow_redirects=False)
    assert _cookies(login) == [f"{host}reallabor_session=*; {SESSION}{tls}"]
    home = client.get("/tech")
    logout = client.post("/tech/logout", data={"csrf_token": _form_token(home)}, follow_redirects=False)
    assert _cookies(logout) == [f"{host}reallabor_session=*; {CLEARED}{tls}"]

    api_login = client.post(f"{V1}/auth/login", json={"username": username, "password": f.PASSWORD})
    assert _cookies(api_login) == [f"{host}reallabor_session=*; {SESSION}{tls}"]
    api_logout = client.post(f"{V1}/auth/logout", json={})
    assert api_logout.status_code == 204, api_logout.text
    assert _cookies(api_logout) == [f"{host}reallabor_session=*; {CLEARED}{tls}"]

    for switch in ("/tech/lang/en?next=/tech", "/portal/lang/en"):
        assert _cookies(client.get(switch, follow_redirects=False)) == [f"reallabor_lang=*; {LANG}"]
    assert _cookies(client.get("/tech/lang/xx", follow_redirects=False)) == []
