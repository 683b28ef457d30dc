"""Security events go through one logger, ``reallabor.audit``, with who and from where, and no record of
any logger holds a password or token; ``reallabor api`` writes them to stderr."""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.throttle import ACCOUNT_FAILURES
from ingest.registry.models import Role
from ingest.security.audit import AUDIT_LOGGER
from tests.registry import factories as f

pytestmark = [pytest.mark.registry, pytest.mark.integration]
V1 = "/api/v1"
REPO = Path(__file__).resolve().parents[2]


def _events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [getattr(record, "audit") for record in caplog.records if record.name == AUDIT_LOGGER]  # noqa: B009


def _event(caplog: pytest.LogCaptureFixture, name: str) -> dict[str, Any]:
    found = [event for event in _events(caplog) if event["event"] == name]
    assert found, f"no {name} event in {[event['event'] for event in _events(caplog)]}"
    return found[-1]


def _page_login(api: TestClient, username: str, password: str) -> str:
    page = api.get("/tech/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    form = {"username": username, "password": password, "csrf_token": found.group(1)}
    assert api.post("/tech/login", data=form, follow_redirects=False).status_code == 303
    in_session = re.search(r'name="csrf_token" value="([^"]+)"', api.get("/tech").text)
    assert in_session is not None
    return in_session.group(1)  # the session's token, for its forms


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_security_events_are_audited_without_secrets(
    api: TestClient, session: Session, caplog: pytest.LogCaptureFixture, unique: str
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: nothing may carry a secret
    operator = f.user(session, Role.operator)
    wrong = f"wrong-{secrets.token_urlsafe(8)}"
    new_password = f"pw-{secrets.token_urlsafe(12)}"
    changed_password = f"pw-{secrets.token_urlsafe(12)}"

    refused = api.post(f"{V1}/auth/login", json={"username": operator.username, "password": wrong})
    assert refused.status_code == 401
    assert _event(caplog, "login.refused") == {
        "event": "login.refused",
        "user": operator.username,
        "client": "testclient",
        "via": "api",
    }
    login = api.post(f"{V1}/auth/login", json={"username": operator.username, "password": f.PASSWORD})
    token = login.json()["access_token"]
    api.cookies.clear()
    assert _event(caplog, "login.ok")["role"] == "operator"
    h = {"Authorization": f"Bearer {token}"}

    created = api.post(
        f"{V1}/users",
        json={"username": f"au{unique}", "password": new_password, "role": "technician"},
        headers=h,
    ).json()
    assert _event(caplog, "user.created") == {
        "event": "user.created",
        "user": f"au{unique}",
        "role": "technician",
        "by": operator.username,
    }
    changes = {"role": "operator", "password": changed_password}
    assert api.patch(f"{V1}/users/{created['id']}", json=changes, headers=h).status_code == 200
    changed = _event(caplog, "user.changed")
    assert changed["fields"] == ["password", "role"]
    assert changed["role"] == "technician->operator"
    assert api.delete(f"{V1}/users/{created['id']}", headers=h).status_code == 204
    assert _event(caplog, "user.deleted")["by"] == operator.username

    gateway = api.post(f"{V1}/gateways", json={"name": f"au{unique}"}, headers=h).json()
    gateway_id = gateway["gateway"]["id"]
    rotated = api.post(f"{V1}/gateways/{gateway_id}/rotate", headers=h).json()
    assert api.post(f"{V1}/gateways/{gateway_id}/revoke", headers=h).status_code == 200
    for name in ("gateway.provisioned", "gateway.rotated", "gateway.revoked"):
        assert _event(caplog, name)["gateway"] == f"au{unique}"

    device = f.device(session)
    started = api.post(f"{V1}/devices/{device.id}/commissioning", json={"timeout_s": 5}, headers=h)
    assert started.status_code == 202, started.text
    assert _event(caplog, "commissioning.started")["by"] == operator.username

    csrf = _page_login(api, operator.username, f.PASSWORD)
    assert _event(caplog, "login.ok")["via"] == "pages"
    data = f"gateway,native_id,profile\n{device.gateway.name},audit-{unique},generic-json\n".encode()
    imported = api.post(
        "/tech/import", data={"csrf_token": csrf}, files={"file": ("d.csv", data, "text/csv")}
    )
    assert imported.status_code == 200, imported.text
    assert _event(caplog, "devices.imported") | {"client": None} == {
        "event": "devices.imported",
        "by": operator.username,
        "client": None,
        "rows": 1,
        "ok": True,
        "written": True,
    }
    assert api.post(f"{V1}/auth/logout", headers=h).status_code == 204
    assert _event(caplog, "logout")["user"] == operator.username

    for _ in range(ACCOUNT_FAILURES):
        api.post(f"{V1}/auth/login", json={"username": operator.username, "password": wrong})
    api.post(f"{V1}/auth/login", json={"username": operator.username, "password": f.PASSWORD})
    assert _event(caplog, "login.throttled")["retry_after_s"] >= 1

    secrets_seen = [
        f.PASSWORD,
        wrong,
        new_password,
        changed_password,
        gateway["password"],
        rotated["password"],
        token,
        token.split(".")[0],
    ]
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        for secret in secrets_seen:
            assert secret not in text, f"a secret in a {record.name} record: {record.getMessage()}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("REALLABOR_")}
    env |= {
        "REALLABOR_REGISTRY__URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "REALLABOR_INGEST__STATE_DIR": str(tmp_path / "state"),
        "REALLABOR_API__SECRET_KEY": secrets.token_urlsafe(32),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


def test_reallabor_api_writes_audit_events_to_stderr(api_process: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = api_process
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}{V1}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, "the API stopped"
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.2)
    wrong = f"wrong-{secrets.token_urlsafe(8)}"
    response = httpx.post(f"{url}{V1}/auth/login", json={"username": "mallory", "password": wrong})
    assert response.status_code == 401
    process.terminate()
    _out, err = process.communicate(timeout=10)
    assert re.search(r"INFO reallabor\.audit: login\.refused user='mallory' client='127\.0\.0\.1'", err), err
    assert wrong not in err


def test_registry_commands_write_audit_events_to_stderr(tmp_path: Path) -> None:
    """``reallabor users add`` leaves a trace like the API does (the password read from stdin never)."""
    password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "REALLABOR_REGISTRY__URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "REALLABOR_INGEST__STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest.cli",
            "users",
            "add",
            "ops1",
            "--role",
            "operator",
            "--password-stdin",
        ],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"INFO reallabor\.audit: user\.created user='ops1' role='operator'", done.stderr), (
        done.stderr
    )
    assert password not in done.stderr + done.stdout
