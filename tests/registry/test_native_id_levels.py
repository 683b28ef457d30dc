"""A device id of several topic levels (a Shelly Gen2 prefix the user set, ``home/floor1/pm``) is registered
on every way in: the JSON API, the technician form, the CSV import, the discovery page; and its pages work.
Before, ``NativeId`` and the CSV import refused any ``/``, so such a device stayed unknown for good."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.device_import import import_devices
from ingest.registry.models import Device, Role
from ingest.registry.text import NativeId
from tests.registry import factories as f
from tests.registry.test_pages import _login

pytestmark = [pytest.mark.registry]
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

V1 = "/api/v1"
ACCEPTED = ["boiler", "home/floor1/pm", "shellies/plus1pm", "a b/c-d_e", "x" * 128]
REFUSED = {
    "/pm": "none empty",
    "pm/": "none empty",
    "home//pm": "none empty",
    "/": "none empty",
    "home/+/pm": "wildcards",
    "home/#": "wildcards",
    "x" * 129: "128",
    "home/pm\n": "control character",
}


@pytest.mark.parametrize("value", ACCEPTED)
def test_a_native_id_is_one_or_more_topic_levels(value: str) -> None:
    assert TypeAdapter(NativeId).validate_python(value) == value


@pytest.mark.parametrize(("value", "reason"), REFUSED.items())
def test_a_native_id_with_an_empty_level_or_a_wildcard_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        TypeAdapter(NativeId).validate_python(value)


@pytest.mark.integration
@SQLITE
def test_the_api_registers_it_and_its_pages_show_it(api: TestClient, session: Session) -> None:
    technician = f.user(session, Role.technician)
    gateway = f.gateway_row(session)
    token = _login(api, technician)
    body = {"gateway_id": gateway.id, "native_id": "home/floor1/pm", "profile_id": "shelly-gen2"}
    created = api.post(f"{V1}/devices", json=body)
    assert created.status_code == 201, created.text
    device_id = created.json()["id"]
    assert api.get(f"{V1}/devices/{device_id}").json()["native_id"] == "home/floor1/pm"
    listed = api.get(f"{V1}/devices", params={"native_id": "home/floor1/pm"})
    assert [d["id"] for d in listed.json()["items"]] == [device_id]
    refused = api.post(f"{V1}/devices", json={**body, "native_id": "home//pm"})
    assert refused.status_code == 422
    # the technician's pages: the device (its URL has the integer id) and the gateway's list linking to it
    page = api.get(f"/tech/devices/{device_id}")
    assert page.status_code == 200
    assert "home/floor1/pm" in page.text
    gateway_page = api.get(f"/tech/gateways/{gateway.id}")
    assert f'href="/tech/devices/{device_id}"' in gateway_page.text
    assert "home/floor1/pm" in gateway_page.text
    # the form
    form = {"gateway_id": str(gateway.id), "native_id": "shellies/plus1pm", "profile_id": "shelly-gen2"}
    posted = api.post("/tech/devices", data={**form, "csrf_token": token}, follow_redirects=False)
    assert posted.status_code == 303, posted.text
    assert session.scalar(select(Device.id).where(Device.native_id == "shellies/plus1pm")) is not None
    # levels for a profile whose topics take one level: registered, but its check says why it cannot run
    wrong = api.post(f"{V1}/devices", json={**body, "native_id": "a/b", "profile_id": "generic-json"})
    assert wrong.status_code == 201, wrong.text
    check = api.post(f"{V1}/devices/{wrong.json()['id']}/commissioning", json={"timeout_s": 5})
    assert check.status_code == 409, check.text
    assert "does not fit the topics of profile generic-json" in check.json()["detail"]


@pytest.mark.integration
@SQLITE
def test_the_csv_import_takes_it(session: Session) -> None:
    gateway = f.gateway_row(session)
    data = "\n".join(
        [
            "gateway,native_id,profile",
            f"{gateway.name},home/floor1/pm,shelly-gen2",
            f"{gateway.name},home//pm,shelly-gen2",
            f"{gateway.name},home/+,shelly-gen2",
        ]
    ).encode()
    report = import_devices(session, data, profiles={"shelly-gen2"})
    by_row = {r.row: dict(r.errors) for r in report.rows}
    assert by_row[2] == {}
    assert "none empty" in by_row[3]["native_id"]
    assert "wildcards" in by_row[4]["native_id"]
    assert not report.written  # all or nothing
    fixed = import_devices(session, data.rsplit(b"\n", 2)[0], profiles={"shelly-gen2"})
    assert fixed.written, fixed.as_json()
    device = session.get(Device, fixed.rows[0].device_id)
    assert device is not None
    assert device.native_id == "home/floor1/pm"
