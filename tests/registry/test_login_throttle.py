"""Login throttling on both login paths (JSON API and the pages' form), against the real app: after N
failures the account is locked (429, Retry-After) before any password hash is computed, the right
password included; a client address that guesses across usernames is locked too. Concurrent guesses
count before they are hashed, and only a few argon2 verifications (64 MiB each) run at once."""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.throttle import ACCOUNT_FAILURES, ADDRESS_FAILURES, VERIFY_SLOTS
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


@dataclass
class Verifying:
    """Argon2 verifications done by login: how many, and the most at once."""

    count: int = 0
    running: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def verifying(monkeypatch: pytest.MonkeyPatch) -> Verifying:
    stats = Verifying()

    def counting(password_hash: str | None, password: str) -> bool:
        with stats.lock:
            stats.count += 1
            stats.running += 1
            stats.most = max(stats.most, stats.running)
        try:
            return verify_password(password_hash, password)
        finally:
            with stats.lock:
                stats.running -= 1

    monkeypatch.setattr("ingest.registry.people.verify_password", counting)
    return stats


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


AT_ONCE = 40


@pytest.mark.parametrize("path", ["api", "pages"])
def test_concurrent_guesses_for_one_account_hash_at_most_the_limit(
    api: TestClient, technician: User, verifying: Verifying, path: str
) -> None:
    """The review's race: 40 wrong passwords at once all passed the lock check before the first failure
    was counted, and all 40 were hashed. An attempt counts as soon as it is let through."""
    if path == "api":
        send = lambda password: _api_login(api, technician.username, password)  # noqa: E731
    else:
        found = re.search(r'name="csrf_token" value="([^"]+)"', api.get("/tech/login").text)
        assert found is not None
        form = {"username": technician.username, "csrf_token": found.group(1)}
        send = lambda password: api.post("/tech/login", data={**form, "password": password})  # noqa: E731
    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(pool.map(send, [f"guess-{number}" for number in range(AT_ONCE)]))
    statuses = Counter(answer.status_code for answer in answers)
    assert verifying.count <= ACCOUNT_FAILURES, f"{verifying.count} guesses hashed: {dict(statuses)}"
    assert statuses[401] == verifying.count
    assert set(statuses) <= {401, 429, 503}, statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code != 401)
    if verifying.count == ACCOUNT_FAILURES:  # else some were turned away busy, and did not count
        assert _api_login(api, technician.username, f.PASSWORD).status_code == 429


def test_argon2_verifications_at_once_are_bounded(api: TestClient, verifying: Verifying) -> None:
    """40 logins for 40 usernames at once: at most VERIFY_SLOTS hash at a time (memory: 64 MiB each), the
    address's limit bounds how many hash at all; the rest wait briefly or get 503 with Retry-After."""
    names = [f"guess-{number}-{uuid.uuid4().hex[:6]}" for number in range(AT_ONCE)]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(pool.map(lambda name: _api_login(api, name, "wrong password"), names))
    statuses = Counter(answer.status_code for answer in answers)
    assert verifying.most <= VERIFY_SLOTS, f"{verifying.most} verifications at once: {dict(statuses)}"
    assert verifying.count <= ADDRESS_FAILURES, f"{verifying.count} hashed: {dict(statuses)}"
    assert set(statuses) <= {401, 429, 503}, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) >= 1
            assert "busy" in answer.json()["detail"]
