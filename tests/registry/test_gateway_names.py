"""A new gateway's name must be one a Pi can run under (gateway.yaml's rule: lower-case letters, digits,
'-', '_'): the JSON API, the pages, the CLI and the registry refuse others at creation; a gateway with an
older capitalised name stays in the registry and is still found by its name."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.dynsec import DynsecAdmin
from ingest.gateway.accounts import GATEWAY_NAME
from ingest.gateway.bundle import GATEWAY_NAME as BUNDLE_GATEWAY_NAME
from ingest.gateway.config import _NAME as GATEWAY_YAML_NAME
from ingest.registry.errors import InvalidField
from ingest.registry.fleet import broker_username, create_gateway
from ingest.registry.models import Gateway, GatewayStatus
from tests.registry.cli_runner import run_cli
from tests.registry.world import TECHNICIAN, World

pytestmark = [pytest.mark.registry, pytest.mark.integration]


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


def test_one_name_rule_for_the_registry_the_bundle_and_gateway_yaml() -> None:
    assert GATEWAY_NAME.pattern == GATEWAY_YAML_NAME.pattern == BUNDLE_GATEWAY_NAME.pattern


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_new_gateways_need_a_lower_case_name_everywhere(
    world: World, session: Session, broker_admin: DynsecAdmin, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"Haus-{unique}"
    with pytest.raises(InvalidField, match="lower-case letters"):
        create_gateway(session, broker_admin, name=name)
    session.rollback()

    response = world.client.post("/api/v1/gateways", json={"name": name}, headers=world.headers(TECHNICIAN))
    assert response.status_code == 422, response.text
    assert "lower-case" in response.text

    client, user = world.client, world.users[TECHNICIAN]
    session.refresh(user)
    signer = client.app.state.signer  # type: ignore[attr-defined]
    token = signer.issue(user)
    client.cookies.set("reallabor_session", token)
    page = client.post("/tech/gateways", data={"name": name, "csrf_token": signer.csrf_token(token)})
    assert page.status_code == 422, page.text[:300]
    client.cookies.delete("reallabor_session")

    # the CLI refuses before it reads any settings or reaches the broker
    assert run_cli("gateways", "add", name, "--config", "/nonexistent/settings.yaml") == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert session.scalar(select(Gateway).where(Gateway.name == name)) is None

    # an older capitalised gateway stays and is found by its name
    older = Gateway(name=name, status=GatewayStatus.active, broker_username=broker_username(name), notes="")
    session.add(older)
    session.commit()
    listed = world.client.get("/api/v1/gateways", params={"name": name}, headers=world.headers(TECHNICIAN))
    assert listed.status_code == 200, listed.text
    assert [g["name"] for g in listed.json()["items"]] == [name]
    lower, _password = create_gateway(session, broker_admin, name=name.lower())
    assert lower.broker_username == f"gw-{name.lower()}"
