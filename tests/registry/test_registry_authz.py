"""Authorization matrix: every route × {anonymous, resident of A, resident of B, technician, operator}.

Allowed callers succeed (2xx); anonymous callers get 401, other roles 403. A resident's responses never
contain the other household or building. A test also checks that the matrix lists every route.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from ingest.quarantine import Quarantine, QuarantineEntry
from ingest.registry import invitations
from tests.helpers import Target
from tests.registry import factories as f
from tests.registry.world import (
    ANONYMOUS,
    CALLERS,
    OPERATOR,
    RESIDENT_A,
    RESIDENT_B,
    TECHNICIAN,
    World,
)

pytestmark = [pytest.mark.registry, pytest.mark.integration]

EVERYONE = frozenset(CALLERS)
LOGGED_IN = frozenset({RESIDENT_A, RESIDENT_B, TECHNICIAN, OPERATOR})
RESIDENTS = frozenset({RESIDENT_A, RESIDENT_B})
STAFF = frozenset({TECHNICIAN, OPERATOR})
OPERATORS = frozenset({OPERATOR})
V1 = "/api/v1"
NOW = dt.datetime.now(dt.UTC).isoformat()


@dataclass(frozen=True)
class Call:
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    allowed: frozenset[str]
    call: Callable[[World], Call]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path.removeprefix(V1)}"


def _invitation(w: World) -> int:
    invitation, _code = invitations.create(w.session, household_id=w.household_a.id, by="test")
    return invitation.id


def _deletion(w: World) -> Call:
    """A fresh household each time: the operator's call deletes it."""
    household = w.household()
    return Call(
        f"{V1}/households/{household.id}/deletion", {"confirm_name": household.name, "reason": "move-out"}
    )


def _login(w: World) -> Call:
    return Call(f"{V1}/auth/login", {"username": w.users[TECHNICIAN].username, "password": f.PASSWORD})


ROUTES = [
    Route("GET", f"{V1}/health", EVERYONE, lambda w: Call(f"{V1}/health")),
    Route("POST", f"{V1}/auth/login", EVERYONE, _login),
    Route("POST", f"{V1}/auth/logout", LOGGED_IN, lambda w: Call(f"{V1}/auth/logout")),
    Route("GET", f"{V1}/me", LOGGED_IN, lambda w: Call(f"{V1}/me")),
    Route(
        "GET",
        f"{V1}/me/household",
        RESIDENTS,
        # a parameter naming the other household must change nothing
        lambda w: Call(f"{V1}/me/household", params={"household_id": w.household_b.id}),
    ),
    # buildings
    Route("GET", f"{V1}/buildings", STAFF, lambda w: Call(f"{V1}/buildings")),
    Route("POST", f"{V1}/buildings", OPERATORS, lambda w: Call(f"{V1}/buildings", {"name": f"B {f.tag()}"})),
    Route(
        "GET", f"{V1}/buildings/{{building_id}}", STAFF, lambda w: Call(f"{V1}/buildings/{w.building_b.id}")
    ),
    Route(
        "PATCH",
        f"{V1}/buildings/{{building_id}}",
        OPERATORS,
        lambda w: Call(f"{V1}/buildings/{w.building().id}", {"notes": "n"}),
    ),
    Route(
        "DELETE",
        f"{V1}/buildings/{{building_id}}",
        OPERATORS,
        lambda w: Call(f"{V1}/buildings/{w.building().id}"),
    ),
    # households
    Route("GET", f"{V1}/households", STAFF, lambda w: Call(f"{V1}/households")),
    Route(
        "POST",
        f"{V1}/households",
        OPERATORS,
        lambda w: Call(f"{V1}/households", {"building_id": w.building_a.id, "name": f"WE {f.tag()}"}),
    ),
    Route(
        "GET",
        f"{V1}/households/{{household_id}}",
        STAFF,
        lambda w: Call(f"{V1}/households/{w.household_b.id}"),
    ),
    Route(
        "PATCH",
        f"{V1}/households/{{household_id}}",
        OPERATORS,
        lambda w: Call(f"{V1}/households/{w.household().id}", {"notes": "n"}),
    ),
    Route(
        "DELETE",
        f"{V1}/households/{{household_id}}",
        OPERATORS,
        lambda w: Call(f"{V1}/households/{w.household().id}"),
    ),
    # invitations (a resident may not invite into their own household either)
    Route(
        "POST",
        f"{V1}/households/{{household_id}}/invitations",
        OPERATORS,
        lambda w: Call(f"{V1}/households/{w.household_a.id}/invitations", {"days": 3}),
    ),
    Route("GET", f"{V1}/invitations", OPERATORS, lambda w: Call(f"{V1}/invitations")),
    Route(
        "POST",
        f"{V1}/invitations/{{invitation_id}}/revoke",
        OPERATORS,
        lambda w: Call(f"{V1}/invitations/{_invitation(w)}/revoke"),
    ),
    # a household's data (docs/privacy.md): export and deletion by operators, residents their own export
    Route(
        "GET",
        f"{V1}/households/{{household_id}}/export",
        OPERATORS,
        lambda w: Call(f"{V1}/households/{w.household_a.id}/export"),
    ),
    Route("POST", f"{V1}/households/{{household_id}}/deletion", OPERATORS, lambda w: _deletion(w)),
    Route("GET", f"{V1}/deletion-records", OPERATORS, lambda w: Call(f"{V1}/deletion-records")),
    Route("GET", f"{V1}/me/export", RESIDENTS, lambda w: Call(f"{V1}/me/export")),
    # users
    Route("GET", f"{V1}/users", OPERATORS, lambda w: Call(f"{V1}/users")),
    Route(
        "POST",
        f"{V1}/users",
        OPERATORS,
        lambda w: Call(
            f"{V1}/users", {"username": f"u{f.tag()}", "password": "a long password", "role": "technician"}
        ),
    ),
    Route(
        "GET", f"{V1}/users/{{user_id}}", OPERATORS, lambda w: Call(f"{V1}/users/{w.users[RESIDENT_B].id}")
    ),
    Route(
        "PATCH",
        f"{V1}/users/{{user_id}}",
        OPERATORS,
        lambda w: Call(f"{V1}/users/{w.user().id}", {"full_name": "Renamed"}),
    ),
    Route("DELETE", f"{V1}/users/{{user_id}}", OPERATORS, lambda w: Call(f"{V1}/users/{w.user().id}")),
    # gateways
    Route("GET", f"{V1}/gateways", STAFF, lambda w: Call(f"{V1}/gateways")),
    Route("POST", f"{V1}/gateways", STAFF, lambda w: Call(f"{V1}/gateways", {"name": f"m{f.tag()}"})),
    Route(
        "GET", f"{V1}/gateways/{{gateway_id}}", STAFF, lambda w: Call(f"{V1}/gateways/{w.gateway_row().id}")
    ),
    Route(
        "PATCH",
        f"{V1}/gateways/{{gateway_id}}",
        STAFF,
        lambda w: Call(f"{V1}/gateways/{w.gateway_row().id}", {"notes": "cellar"}),
    ),
    Route(
        "POST",
        f"{V1}/gateways/{{gateway_id}}/rotate",
        STAFF,
        lambda w: Call(f"{V1}/gateways/{w.gateway().id}/rotate"),
    ),
    Route(
        "POST",
        f"{V1}/gateways/{{gateway_id}}/revoke",
        OPERATORS,
        lambda w: Call(f"{V1}/gateways/{w.gateway().id}/revoke"),
    ),
    # devices
    Route("GET", f"{V1}/devices", STAFF, lambda w: Call(f"{V1}/devices")),
    Route(
        "POST",
        f"{V1}/devices",
        STAFF,
        lambda w: Call(
            f"{V1}/devices",
            {
                "gateway_id": w.gateway_row().id,
                "native_id": "meter1",
                "profile_id": "generic-json",
                "household_id": w.household_a.id,
            },
        ),
    ),
    Route("GET", f"{V1}/devices/{{device_id}}", STAFF, lambda w: Call(f"{V1}/devices/{w.device().id}")),
    Route(
        "GET",
        f"{V1}/devices/{{device_id}}/assignment",
        STAFF,
        lambda w: Call(f"{V1}/devices/{w.assignment().device_id}/assignment"),
    ),
    Route(
        "PATCH",
        f"{V1}/devices/{{device_id}}",
        STAFF,
        lambda w: Call(f"{V1}/devices/{w.device().id}", {"location": "Keller"}),
    ),
    Route(
        "DELETE", f"{V1}/devices/{{device_id}}", OPERATORS, lambda w: Call(f"{V1}/devices/{w.device().id}")
    ),
    # assignments
    Route("GET", f"{V1}/assignments", STAFF, lambda w: Call(f"{V1}/assignments")),
    Route(
        "POST",
        f"{V1}/assignments",
        STAFF,
        lambda w: Call(
            f"{V1}/assignments",
            {"device_id": w.device().id, "household_id": w.household_b.id, "valid_from": NOW},
        ),
    ),
    Route(
        "POST",
        f"{V1}/assignments/swap",
        STAFF,
        lambda w: Call(
            f"{V1}/assignments/swap",
            {"old_device_id": w.assignment().device_id, "new_device_id": w.device().id, "at": NOW},
        ),
    ),
    Route(
        "GET",
        f"{V1}/assignments/{{assignment_id}}",
        STAFF,
        lambda w: Call(f"{V1}/assignments/{w.assignment().id}"),
    ),
    Route(
        "PATCH",
        f"{V1}/assignments/{{assignment_id}}",
        STAFF,
        lambda w: Call(f"{V1}/assignments/{w.assignment().id}", {"note": "checked"}),
    ),
    Route(
        "DELETE",
        f"{V1}/assignments/{{assignment_id}}",
        OPERATORS,
        lambda w: Call(f"{V1}/assignments/{w.assignment().id}"),
    ),
    # field work: fleet status, profiles, device checks, commissioning
    Route("GET", f"{V1}/fleet/status", STAFF, lambda w: Call(f"{V1}/fleet/status")),
    Route("GET", f"{V1}/profiles", STAFF, lambda w: Call(f"{V1}/profiles")),
    Route(
        "POST",
        f"{V1}/devices/validate",
        STAFF,
        lambda w: Call(
            f"{V1}/devices/validate",
            {"gateway_id": w.gateway_row().id, "native_id": "m1", "profile_id": "generic-json"},
        ),
    ),
    Route(
        "POST",
        f"{V1}/devices/{{device_id}}/commissioning",
        STAFF,
        lambda w: Call(f"{V1}/devices/{w.device().id}/commissioning", {"timeout_s": 5}),
    ),
    Route(
        "GET",
        f"{V1}/devices/{{device_id}}/commissioning",
        STAFF,
        lambda w: Call(f"{V1}/devices/{w.checked_device_run()[0]}/commissioning"),
    ),
    Route(
        "GET",
        f"{V1}/commissioning/{{run_id}}",
        STAFF,
        lambda w: Call(f"{V1}/commissioning/{w.checked_device_run()[1]}"),
    ),
    Route(
        "GET",
        f"{V1}/commissioning/{{run_id}}/events",
        STAFF,
        lambda w: Call(f"{V1}/commissioning/{w.checked_device_run()[1]}/events"),
    ),
    # discovery: unregistered devices, register one
    Route("GET", f"{V1}/discovery", STAFF, lambda w: Call(f"{V1}/discovery")),
    Route(
        "POST",
        f"{V1}/discovery/register",
        STAFF,
        lambda w: _discovered_call(w),
    ),
]


def _discovered_call(w: World) -> Call:
    """Registering a device the ingester has quarantined (discovery refuses one never heard)."""
    gateway, native_id = w.gateway_row(), f"found-{f.tag()}"
    runs = w.client.app.state.runs  # type: ignore[attr-defined]
    with Quarantine(runs.commissioner.config.quarantine_path) as quarantine:
        topic = f"lab/{gateway.name}/{native_id}/state"
        quarantine.add(
            QuarantineEntry(topic, b"{}", time.time_ns(), "unknown_device", "", None, gateway.name, native_id)
        )
    body = {
        "gateway_id": gateway.id,
        "native_id": native_id,
        "profile_id": "generic-json",
        "household_id": w.household().id,
    }
    return Call(f"{V1}/discovery/register", body)


@pytest.fixture
def api_settings(api_settings: Settings, target: Target) -> Settings:
    """The export and deletion routes read InfluxDB: this test's own database on the session's server."""
    httpx.post(
        f"{target.influx_url}/query", data={"q": f'CREATE DATABASE "{target.database}"'}, trust_env=False
    )
    influx = api_settings.influx.model_copy(update={"url": target.influx_url, "database": target.database})
    return api_settings.model_copy(update={"influx": influx})


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


def test_matrix_covers_every_route(api: TestClient) -> None:
    """Every operation in the published OpenAPI document is in the matrix, and nothing else."""
    schema = api.get(f"{V1}/openapi.json").json()
    served = {(method.upper(), path) for path, operations in schema["paths"].items() for method in operations}
    assert served == {(route.method, route.path) for route in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_route_authorization(world: World, route: Route) -> None:
    for caller in CALLERS:
        call = route.call(world)
        world.client.cookies.clear()  # only the caller's own credentials count
        response = world.client.request(
            route.method, call.path, json=call.json, params=call.params, headers=world.headers(caller)
        )
        outcome = f"{route.id} as {caller}: {response.status_code} {response.text[:200]}"
        if caller in route.allowed:
            assert 200 <= response.status_code < 300, outcome
        elif caller == ANONYMOUS:
            assert response.status_code == 401, outcome
            assert response.headers.get("www-authenticate") == "Bearer"
        else:
            assert response.status_code == 403, outcome
        if caller in RESIDENTS:
            own, other = (
                (world.household_a, world.household_b)
                if caller == RESIDENT_A
                else (world.household_b, world.household_a)
            )
            other_building = world.building_b if caller == RESIDENT_A else world.building_a
            assert other.name not in response.text, outcome
            assert other_building.name not in response.text, outcome
            if route.path == f"{V1}/me/household":
                assert response.json()["id"] == own.id
                assert response.json()["name"] == own.name
