"""A login flood against ``reallabor api`` in a child process (uvicorn, as in production): 40 logins at
once. No more than the throttle's limit of guesses reaches the argon2 hash (64 MiB each), and the process's
peak memory (VmHWM) grows by no more than the argon2 verifications allowed at once.

Each test sends from a loopback address of its own (127.0.0.x), so the address locks stay apart.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ingest.api.throttle import ACCOUNT_FAILURES, ADDRESS_FAILURES, VERIFY_SLOTS
from ingest.registry.models import Role
from tests.registry import factories as f
from tests.registry.api_process import V1, ApiProcess, registry_with_users, running_api

pytestmark = [pytest.mark.registry, pytest.mark.integration]

MIB = 1024 * 1024
ARGON2_MIB = 64  # the hasher's memory_cost (argon2-cffi's default, ingest/registry/passwords.py)
AT_ONCE = 40
# what the verifications allowed at once may take, plus one for the allocator and the threads
MAX_GROWTH = (VERIFY_SLOTS + 1) * ARGON2_MIB * MIB


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiProcess, str, str]]:
    """The API process, the username of a technician whose password is guessed, and another's."""
    root = tmp_path_factory.mktemp("login-flood")
    url, (technician, operator) = registry_with_users(root, [Role.technician, Role.operator])
    with running_api(root, url) as api:
        yield api, technician, operator


def _flood(api: ApiProcess, source: str, logins: list[tuple[str, str]]) -> tuple[list[httpx.Response], int]:
    """``logins`` sent at once from ``source``; the answers and the growth of the peak RSS meanwhile."""
    transport = httpx.HTTPTransport(local_address=source)
    limits = httpx.Limits(max_connections=len(logins))
    with httpx.Client(base_url=api.url, transport=transport, limits=limits, timeout=60, trust_env=False) as c:
        c.get(f"{V1}/health")
        before = api.status("VmRSS")
        api.reset_peak()

        def send(login: tuple[str, str]) -> httpx.Response:
            return c.post(f"{V1}/auth/login", json={"username": login[0], "password": login[1]})

        with ThreadPoolExecutor(len(logins)) as pool:
            answers = list(pool.map(send, logins))
        return answers, api.status("VmHWM") - before


def test_concurrent_guesses_for_one_account_hash_at_most_the_limit(
    flood: tuple[ApiProcess, str, str],
) -> None:
    api, technician, _ = flood
    guesses = [(technician, f"guess-{secrets.token_hex(4)}") for _ in range(AT_ONCE)]
    answers, growth = _flood(api, "127.0.0.2", guesses)
    statuses = Counter(answer.status_code for answer in answers)
    hashed = statuses[401]
    figures = f"statuses {dict(statuses)}, peak RSS +{growth // MIB} MiB (limit {MAX_GROWTH // MIB})"
    assert hashed <= ACCOUNT_FAILURES, f"{hashed} guesses hashed (limit {ACCOUNT_FAILURES}): {figures}"
    assert growth < MAX_GROWTH, figures
    assert set(statuses) <= {401, 429, 503}, statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code in (429, 503))
    with httpx.Client(
        base_url=api.url, transport=httpx.HTTPTransport(local_address="127.0.0.9"), trust_env=False
    ) as c:
        right = c.post(f"{V1}/auth/login", json={"username": technician, "password": f.PASSWORD})
    if hashed == ACCOUNT_FAILURES:
        assert right.status_code == 429, right.text  # locked, the right password too


def test_a_flood_across_usernames_keeps_memory_bounded(flood: tuple[ApiProcess, str, str]) -> None:
    api, _, _ = flood
    guesses = [(f"nobody{number}-{secrets.token_hex(3)}", "guess") for number in range(AT_ONCE)]
    answers, growth = _flood(api, "127.0.0.3", guesses)
    statuses = Counter(answer.status_code for answer in answers)
    figures = f"statuses {dict(statuses)}, peak RSS +{growth // MIB} MiB (limit {MAX_GROWTH // MIB})"
    assert growth < MAX_GROWTH, figures
    assert statuses[401] <= ADDRESS_FAILURES, figures
    assert set(statuses) <= {401, 429, 503}, statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code in (429, 503))


def test_a_bystander_logs_in_after_the_floods(flood: tuple[ApiProcess, str, str]) -> None:
    api, _, bystander = flood
    with httpx.Client(
        base_url=api.url, transport=httpx.HTTPTransport(local_address="127.0.0.4"), trust_env=False
    ) as c:
        response = c.post(f"{V1}/auth/login", json={"username": bystander, "password": f.PASSWORD})
    assert response.status_code == 200, response.text
