"""A browser for the technician pages without a browser: log in through the form, read CSRF tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ingest.api.security import SESSION_COOKIE
from ingest.registry.models import User
from tests.registry import factories as f


def form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF field in the form"
    return found.group(1)


def login(api: TestClient, user: User, *, lang: str = "de") -> str:
    """Log in through the page (the language switch's cookie set to ``lang``); the session's CSRF token."""
    api.cookies.set("reallabor_lang", lang)
    page = api.get("/tech/login")
    data = {"username": user.username, "password": f.PASSWORD, "csrf_token": form_token(page.text)}
    response = api.post("/tech/login", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert SESSION_COOKIE in response.cookies
    return form_token(api.get("/tech").text)
