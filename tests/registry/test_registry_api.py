"""The registry API end to end: login and sessions, 4xx errors, pagination, gateways on the real broker,
and no secret in the logs."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.security import SESSION_COOKIE
from ingest.dynsec import DynsecAdmin
from ingest.localservices import Mosquitto
from tests.registry import factories as f
from tests.registry.mqtt_client import TestMqttClient, connect_result
from tests.registry.world import OPERATOR, RESIDENT_A, TECHNICIAN, World

pytestmark = [pytest.mark.registry, pytest.mark.integration]
V1 = "/api/v1"


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


def _login(client: TestClient, username: str, password: str = f.PASSWORD) -> dict[str, str]:
    response = client.post(f"{V1}/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_login_cookie_and_logout(world: World) -> None:
    client, user = world.client, world.users[RESIDENT_A]
    assert (
        client.post(f"{V1}/auth/login", json={"username": user.username, "password": "wrong"}).status_code
        == 401
    )
    assert client.post(f"{V1}/auth/login", json={"username": "ghost", "password": "x"}).status_code == 401
    response = client.post(f"{V1}/auth/login", json={"username": user.username, "password": f.PASSWORD})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert client.get(f"{V1}/me").json()["username"] == user.username  # by cookie
    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    client.cookies.clear()
    assert client.get(f"{V1}/me", headers=bearer).status_code == 200
    assert client.get(f"{V1}/me", headers={"Authorization": "Bearer forged.token"}).status_code == 401
    assert client.post(f"{V1}/auth/logout", headers=bearer).status_code == 204
    assert client.get(f"{V1}/me", headers=bearer).status_code == 401  # every earlier token ended


def test_changed_password_or_deactivation_ends_sessions(world: World) -> None:
    operator = _login(world.client, world.users[OPERATOR].username)
    technician = world.users[TECHNICIAN]
    token = _login(world.client, technician.username)
    world.client.cookies.clear()
    response = world.client.patch(
        f"{V1}/users/{technician.id}", json={"password": "a brand new password"}, headers=operator
    )
    assert response.status_code == 200
    assert world.client.get(f"{V1}/me", headers=token).status_code == 401
    token = _login(world.client, technician.username, "a brand new password")
    world.client.cookies.clear()
    world.client.patch(f"{V1}/users/{technician.id}", json={"is_active": False}, headers=operator)
    assert world.client.get(f"{V1}/me", headers=token).status_code == 401
    response = world.client.post(
        f"{V1}/auth/login", json={"username": technician.username, "password": "a brand new password"}
    )
    assert response.status_code == 401


def test_validation_errors_name_the_field(world: World) -> None:
    h = world.headers(OPERATOR)
    client = world.client
    cases = [
        ("post", f"{V1}/buildings", {}, ["body", "name"]),
        ("post", f"{V1}/buildings", {"name": "B", "colour": "red"}, ["body", "colour"]),
        ("post", f"{V1}/buildings", {"name": "bad\x00name"}, ["body", "name"]),
        ("patch", f"{V1}/buildings/{world.building_a.id}", {"name": None}, ["body", "name"]),
        (
            "post",
            f"{V1}/users",
            {"username": "r", "password": "long enough pw", "role": "resident"},
            ["body"],
        ),
        ("post", f"{V1}/gateways", {"name": "lab/other"}, ["body", "name"]),
        ("post", f"{V1}/households", {"building_id": 999999, "name": "WE 9"}, ["body", "building_id"]),
        (
            "post",
            f"{V1}/assignments",
            {"device_id": 1, "household_id": 1, "valid_from": "2026-03-01T10:00:00"},
            ["body", "valid_from"],
        ),
        ("get", f"{V1}/devices", None, ["query", "limit"]),
    ]
    for method, path, body, loc in cases:
        params = {"limit": 0} if method == "get" else None
        response = client.request(method.upper(), path, json=body, headers=h, params=params)
        assert response.status_code == 422, (path, body, response.text)
        assert loc in [error["loc"] for error in response.json()["detail"]], (path, body, response.text)


def test_not_found_and_conflicts(world: World) -> None:
    h = world.headers(TECHNICIAN)
    client = world.client
    for path in ("buildings", "households", "gateways", "devices", "assignments"):
        response = client.get(f"{V1}/{path}/424242", headers=h)
        assert response.status_code == 404, response.text
    gateway = world.gateway_row()
    body = {
        "gateway_id": gateway.id,
        "native_id": "m1",
        "profile_id": "generic-json",
        "meter_number": "1EMH01",
    }
    first = client.post(f"{V1}/devices", json={**body, "household_id": world.household_a.id}, headers=h)
    assert first.status_code == 201, first.text
    duplicate = client.post(f"{V1}/devices", json={**body, "native_id": "m2"}, headers=h)
    assert duplicate.status_code == 409
    assert "meter number" in duplicate.json()["detail"]
    overlap = client.post(
        f"{V1}/assignments",
        json={
            "device_id": first.json()["id"],
            "household_id": world.household_b.id,
            "valid_from": "2030-01-01T00:00:00Z",
        },
        headers=h,
    )
    assert overlap.status_code == 409
    assert "already assigned" in overlap.json()["detail"]
    in_use = client.delete(f"{V1}/buildings/{world.building_a.id}", headers=world.headers(OPERATOR))
    assert in_use.status_code == 409


def test_pagination_and_filters(world: World) -> None:
    h = world.headers(OPERATOR)
    for _ in range(3):
        world.household()
    response = world.client.get(
        f"{V1}/households", params={"building_id": world.building_a.id, "limit": 2, "offset": 1}, headers=h
    )
    page = response.json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    device = world.assignment().device_id
    by_household = world.client.get(f"{V1}/devices", params={"household_id": world.household_a.id}, headers=h)
    assert [d["id"] for d in by_household.json()["items"]] == [device]
    by_profile = world.client.get(f"{V1}/devices", params={"profile": "no-such-profile"}, headers=h)
    assert by_profile.json()["total"] == 0


def test_gateway_lifecycle_through_the_api(
    world: World, dynsec_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = world.client
    technician = _login(client, world.users[TECHNICIAN].username)
    client.cookies.clear()
    name = f"api{f.tag()}"
    created = client.post(
        f"{V1}/gateways", json={"name": name, "building_id": world.building_a.id}, headers=technician
    )
    assert created.status_code == 201, created.text
    credentials = created.json()
    assert credentials["username"] == f"gw-{name}"
    assert credentials["topic_prefix"] == f"lab/{name}/"
    assert credentials["client_id"] == f"gw-{name}"  # the only client id the broker accepts for it
    first_password = credentials["password"]
    assert (
        "password"
        not in client.get(f"{V1}/gateways/{credentials['gateway']['id']}", headers=technician).json()
    )
    assert client.post(f"{V1}/gateways", json={"name": name}, headers=technician).status_code == 409

    client_id = credentials["client_id"]
    gateway = TestMqttClient(
        dynsec_broker.port, username=f"gw-{name}", password=first_password, client_id=client_id
    )
    try:
        assert gateway.connect() == "Success"
        assert gateway.publish(f"lab/{name}/meter1/state") in ("Success", "No matching subscribers")
        assert gateway.publish("lab/someone-else/meter1/state") == "Not authorized"
    finally:
        gateway.close()

    rotated = client.post(f"{V1}/gateways/{credentials['gateway']['id']}/rotate", headers=technician)
    assert rotated.status_code == 200
    second_password = rotated.json()["password"]
    assert rotated.json()["client_id"] == client_id
    assert connect_result(dynsec_broker.port, f"gw-{name}", first_password, client_id=client_id) == (
        "Not authorized"
    )
    assert connect_result(dynsec_broker.port, f"gw-{name}", second_password, client_id=client_id) == "Success"

    revoked = client.post(
        f"{V1}/gateways/{credentials['gateway']['id']}/revoke", headers=world.headers(OPERATOR)
    )
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert connect_result(dynsec_broker.port, f"gw-{name}", second_password, client_id=client_id) == (
        "Not authorized"
    )
    again = client.post(f"{V1}/gateways/{credentials['gateway']['id']}/rotate", headers=technician)
    assert again.status_code == 409

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"gateway.provisioned gateway={name!r}" in logged  # the audit log is on
    for secret in (first_password, second_password, f.PASSWORD, technician["Authorization"].split()[1]):
        assert secret not in logged


def test_resident_reads_own_household_with_devices(world: World) -> None:
    assignment = world.assignment()  # a device in household A, now
    response = world.client.get(f"{V1}/me/household", headers=world.headers(RESIDENT_A))
    body = response.json()
    assert body["id"] == world.household_a.id
    assert body["building"]["id"] == world.building_a.id
    assert [device["id"] for device in body["devices"]] == [assignment.device_id]


def test_openapi_is_published(world: World) -> None:
    schema = world.client.get(f"{V1}/openapi.json").json()
    assert schema["info"]["title"] == "Reallabor registry"
    assert {"HTTPBearer", "APIKeyCookie"} <= set(schema["components"]["securitySchemes"])
