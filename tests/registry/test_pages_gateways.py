"""A gateway's page: rotate its broker password (staff), revoke it (operators, after a confirmation),
the new password and bound client id shown once; without broker administration the buttons say why
they are disabled. Against the real dynsec broker."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from ingest.localservices import Mosquitto
from ingest.registry.fleet import create_gateway, gateway_client_id
from ingest.registry.models import Gateway, GatewayStatus, Role
from tests.registry import factories as f
from tests.registry.mqtt_client import connect_result
from tests.registry.pages_client import form_token, login

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


def _password(page: str) -> str:
    found = re.search(r'<code id="gateway-password">([^<]+)</code>', page)
    assert found, "no password on the page"
    return found.group(1)


def test_technician_rotates_the_password_and_sees_it_once(
    api: TestClient, session: Session, broker_admin: DynsecAdmin, dynsec_broker: Mosquitto, unique: str
) -> None:
    gateway, old = create_gateway(session, broker_admin, name=f"rot{unique}")
    token = login(api, f.user(session, Role.technician))
    page = api.get(f"/tech/gateways/{gateway.id}")
    assert page.status_code == 200
    assert "Passwort erneuern" in page.text
    assert 'id="rotate" aria-describedby="rotate-help">' in page.text  # enabled
    assert re.search(r'<button type="button" class="danger" id="revoke" disabled', page.text)
    assert "Nur der Betrieb (Rolle Operator) kann Gateways widerrufen." in page.text
    assert old not in page.text

    missing = api.post(f"/tech/gateways/{gateway.id}/rotate", data={}, follow_redirects=False)
    assert missing.status_code == 403  # no CSRF token, no new password
    rotated = api.post(f"/tech/gateways/{gateway.id}/rotate", data={"csrf_token": token})
    assert rotated.status_code == 200, rotated.text
    assert f"Neues Passwort für Gateway {gateway.name}" in rotated.text
    new = _password(rotated.text)
    assert new != old
    assert f'<code id="gateway-client-id">{gateway_client_id(gateway.name)}</code>' in rotated.text
    username, client_id = gateway.broker_username, gateway_client_id(gateway.name)
    assert connect_result(dynsec_broker.port, username, old, client_id=client_id) == "Not authorized"
    assert connect_result(dynsec_broker.port, username, new, client_id=client_id) == "Success"
    assert new not in api.get(f"/tech/gateways/{gateway.id}").text  # shown once

    technician_revoke = api.get(f"/tech/gateways/{gateway.id}/revoke")
    assert technician_revoke.status_code == 403
    assert "Nur der Betrieb" in technician_revoke.text


def test_operator_revokes_after_confirming(
    api: TestClient, session: Session, broker_admin: DynsecAdmin, dynsec_broker: Mosquitto, unique: str
) -> None:
    gateway, password = create_gateway(session, broker_admin, name=f"rev{unique}")
    token = login(api, f.user(session, Role.operator), lang="en")
    page = api.get(f"/tech/gateways/{gateway.id}")
    assert f'href="/tech/gateways/{gateway.id}/revoke"' in page.text
    confirm = api.get(f"/tech/gateways/{gateway.id}/revoke")
    assert confirm.status_code == 200
    assert f"Really revoke gateway {gateway.name}?" in confirm.text
    assert form_token(confirm.text) == token
    session.expire_all()
    assert session.get_one(Gateway, gateway.id).status is GatewayStatus.active  # the GET changed nothing

    done = api.post(f"/tech/gateways/{gateway.id}/revoke", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/tech/gateways/{gateway.id}?revoked=1"
    after = api.get(done.headers["location"]).text
    assert f"Gateway {gateway.name} is revoked." in after
    assert '<span class="badge revoked">revoked</span>' in after
    assert re.search(r'id="rotate"[^>]* disabled', after)
    assert "only a newly registered gateway gets new credentials" in after
    session.expire_all()
    assert session.get_one(Gateway, gateway.id).status is GatewayStatus.revoked
    client_id = gateway_client_id(gateway.name)
    result = connect_result(dynsec_broker.port, gateway.broker_username, password, client_id=client_id)
    assert result == "Not authorized"

    again = api.post(f"/tech/gateways/{gateway.id}/rotate", data={"csrf_token": token})
    assert again.status_code == 409
    assert 'id="gateway-password"' not in again.text


@pytest.fixture
def api_without_broker(engine: Engine, api_settings: Settings) -> Iterator[TestClient]:
    app = create_app(api_settings, broker=None, engine=engine, migrate=False)  # no broker administration
    with TestClient(app) as client:
        yield client


def test_without_broker_administration_the_buttons_say_why(
    api_without_broker: TestClient, session: Session
) -> None:
    api = api_without_broker
    gateway = f.gateway_row(session)
    token = login(api, f.user(session, Role.operator))
    page = api.get(f"/tech/gateways/{gateway.id}").text
    reason = "Die Broker-Verwaltung ist nicht eingerichtet: Passwörter können hier nicht erneuert"
    assert reason in page
    assert re.search(r'id="rotate"[^>]* disabled', page)
    assert re.search(r'id="revoke"[^>]* disabled', page)
    refused = api.post(f"/tech/gateways/{gateway.id}/rotate", data={"csrf_token": token})
    assert refused.status_code == 503
    assert reason in refused.text
    session.expire_all()
    assert session.get_one(Gateway, gateway.id).status is GatewayStatus.active


def test_fleet_links_to_the_gateway_page(api: TestClient, session: Session) -> None:
    gateway = f.gateway_row(session)
    login(api, f.user(session, Role.technician))
    assert f'href="/tech/gateways/{gateway.id}"' in api.get("/tech/fleet").text
    missing = api.get("/tech/gateways/999999")
    assert missing.status_code == 404
    assert "Nicht gefunden." in missing.text  # a page, not the API's JSON
    assert missing.headers["content-type"].startswith("text/html")
