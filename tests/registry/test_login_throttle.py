"""Login throttling on both login paths (JSON API and the pages' form), against the real app: after N
failures the account is locked (429, Retry-After) before any password hash is computed, the right
password included; a client address that guesses across usernames is locked too."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.throttle import ACCOUNT_FAILURES, ADDRESS_FAILURES
from ingest.registry.models import Role, User
from ingest.registry.passwords import verify_password
from tests.registry import factories as f

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
V1 = "/api/v1"


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts every argon2 verification that login does (the real one still runs)."""
    calls: list[str] = []

    def counting(password_hash: str | None, password: str) -> bool:
        calls.append("verify")
        return verify_password(password_hash, password)

    monkeypatch.setattr("ingest.registry.people.verify_password", counting)
    return calls


@pytest.fixture
def technician(session: Session) -> User:
    return f.user(session, Role.technician)


def _api_login(client: TestClient, username: str, password: str) -> Any:
    return client.post(f"{V1}/auth/login", json={"username": username, "password": password})


def _page_login(client: TestClient, username: str, password: str) -> Any:
    page = client.get("/tech/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    form = {"username": username, "password": password, "csrf_token": found.group(1)}
    return client.post("/tech/login", data=form, follow_redirects=False)


LOGINS: dict[str, Callable[[TestClient, str, str], Any]] = {"api": _api_login, "pages": _page_login}


@pytest.mark.parametrize("path", ["api", "pages"])
def test_wrong_passwords_then_the_right_one_is_throttled_without_hashing(
    api: TestClient, technician: User, verifications: list[str], path: str
) -> None:
    login = LOGINS[path]
    for _ in range(ACCOUNT_FAILURES):
        assert login(api, technician.username, "wrong password").status_code == 401
    assert len(verifications) == ACCOUNT_FAILURES
    refused = login(api, technician.username, f.PASSWORD)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert "reallabor_session" not in refused.cookies
    if path == "pages":
        assert "Zu viele fehlgeschlagene Anmeldungen" in refused.text
    for _ in range(3):
        assert login(api, technician.username, f.PASSWORD).status_code == 429
    assert len(verifications) == ACCOUNT_FAILURES  # no argon2 hash while locked


def test_both_paths_share_the_count(api: TestClient, technician: User) -> None:
    for number in range(ACCOUNT_FAILURES):
        login = _api_login if number % 2 else _page_login
        assert login(api, technician.username, "wrong password").status_code == 401
    assert _api_login(api, technician.username, f.PASSWORD).status_code == 429
    assert _page_login(api, technician.username, f.PASSWORD).status_code == 429


def test_success_resets_the_account(api: TestClient, technician: User) -> None:
    for _ in range(3):
        for _ in range(ACCOUNT_FAILURES - 1):
            assert _api_login(api, technician.username, "wrong password").status_code == 401
        assert _api_login(api, technician.username, f.PASSWORD).status_code == 200


def test_an_address_is_throttled_across_usernames(
    api: TestClient, technician: User, verifications: list[str]
) -> None:
    for _ in range(ADDRESS_FAILURES):
        assert _api_login(api, f"guess-{uuid.uuid4().hex[:8]}", "wrong password").status_code == 401
    assert _api_login(api, technician.username, f.PASSWORD).status_code == 429
    assert _page_login(api, technician.username, f.PASSWORD).status_code == 429
    assert len(verifications) == ADDRESS_FAILURES
    other = TestClient(api.app, client=("127.0.0.2", 50000))
    assert _api_login(other, technician.username, f.PASSWORD).status_code == 200
