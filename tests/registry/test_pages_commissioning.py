"""The commissioning check on the pages, for a device that sends nothing: a plain 'no message received
in N s' outcome in the page's language, and nothing in the API's log that looks like a failure (a
'Future exception was never retrieved' traceback came with every such check)."""

from __future__ import annotations

import gc
import logging
import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.dynsec import DynsecAdmin
from ingest.registry.fleet import create_device, create_gateway
from ingest.registry.models import Role
from tests.helpers import wait_for
from tests.registry import factories as f
from tests.registry.pages_client import login

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


def test_a_silent_device_gives_no_message_and_a_clean_log(
    api: TestClient,
    session: Session,
    broker_admin: DynsecAdmin,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    technician = f.user(session, Role.technician)
    gateway, _password = create_gateway(session, broker_admin, name=f"q{unique}")
    device = create_device(session, gateway_id=gateway.id, native_id="still-1", profile_id="generic-json")
    token = login(api, technician, lang="de")
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    response = api.post(
        f"/tech/devices/{device.id}/commission",
        data={"timeout_s": "5", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    run_page = response.headers["location"]

    def finished() -> str | None:
        page = api.get(run_page).text
        return page if 'class="verdict' in page else None

    page = wait_for(finished, timeout=20, what="the check to finish")
    assert 5 <= time.monotonic() - started < 15
    gc.collect()  # an unretrieved future's traceback is logged when the future is collected
    assert "Keine Nachricht in 5 s empfangen." in page
    assert "nicht bestanden" in page
    assert f"lab/{gateway.name}/still-1/state" in page  # where it listened
    assert not re.search(r"no message|within|Traceback", page)
    api.cookies.set("reallabor_lang", "en")
    english = api.get(run_page).text
    assert "No message received in 5 s." in english
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
    assert any("no_message" in r.getMessage() for r in caplog.records)  # the run was logged, plainly
