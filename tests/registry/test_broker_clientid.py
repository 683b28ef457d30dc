"""Client ids bound to broker accounts (dynamic security): nobody takes over another account's session.

Mosquitto hands a persistent session to whoever connects with its client id. Unbound, a gateway's
account could connect as ``reallabor-ingest`` and receive (and ack away) every household's readings.
"""

from __future__ import annotations

import asyncio
import html
import queue
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.commissioning.errors import BrokerUnavailable
from ingest.commissioning.listener import next_message
from ingest.commissioning.setup import broker_access
from ingest.config import MqttSettings, Settings
from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.localservices import Mosquitto
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import create_gateway
from ingest.registry.migrate import upgrade
from ingest.registry.models import Role
from tests.registry import factories as f
from tests.registry.cli_runner import run_cli
from tests.registry.mqtt_client import TestMqttClient, connect_result

pytestmark = [pytest.mark.registry, pytest.mark.integration]
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the broker is what is tested
INGESTER_ID = MqttSettings().client_id  # the documented default, "reallabor-ingest"
SESSION_EXPIRY_S = 3600


@pytest.fixture
def ingester(dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap) -> Iterator[TestMqttClient]:
    """The ingester as it runs: its own client id, a persistent session (clean start off, expiry > 0)."""
    assert bootstrap.ingester_password is not None
    client = TestMqttClient(
        dynsec_broker.port, username="ingester", password=bootstrap.ingester_password, client_id=INGESTER_ID
    )
    assert client.connect(clean_start=False, session_expiry_s=SESSION_EXPIRY_S) == "Success"
    yield client
    client.close()


def _received(client: TestMqttClient, count: int) -> list[bytes]:
    payloads = []
    for _ in range(count):
        try:
            payloads.append(client.messages.get(timeout=5)[1])
        except queue.Empty:
            break
    return payloads


@SQLITE
def test_a_gateway_cannot_take_over_the_ingesters_session(
    dynsec_broker: Mosquitto,
    bootstrap: DynsecBootstrap,
    broker_admin: DynsecAdmin,
    session: Session,
    ingester: TestMqttClient,
    unique: str,
) -> None:
    assert bootstrap.ingester_password is not None
    meter, meter_password = create_gateway(session, broker_admin, name=f"m{unique}")  # whose readings
    attacker, attacker_password = create_gateway(session, broker_admin, name=f"t{unique}")
    topic = f"lab/{meter.name}/meter-1/state"
    ingester.subscribe(f"lab/{meter.name}/#")

    def take_over() -> str:
        thief = TestMqttClient(
            dynsec_broker.port,
            username=attacker.broker_username,
            password=attacker_password,
            client_id=INGESTER_ID,
        )
        try:
            return thief.connect(clean_start=False, session_expiry_s=SESSION_EXPIRY_S)
        finally:
            thief.close()

    # live: the ingester is connected
    assert take_over() == "Not authorized"
    assert not ingester.disconnected.wait(0.5), f"the ingester lost its session: {ingester.disconnect_reason}"
    publisher = TestMqttClient(
        dynsec_broker.port,
        username=meter.broker_username,
        password=meter_password,
        client_id=meter.broker_username,
    )
    assert publisher.connect() == "Success"
    try:
        assert publisher.publish(topic, b"live") == "Success"
        assert _received(ingester, 1) == [b"live"]

        # queued: the ingester is away, its session keeps the readings for it
        ingester.close()
        for n in range(3):
            assert publisher.publish(topic, f"queued-{n}".encode()) == "Success"
        assert take_over() == "Not authorized"
    finally:
        publisher.close()
    back = TestMqttClient(
        dynsec_broker.port, username="ingester", password=bootstrap.ingester_password, client_id=INGESTER_ID
    )
    try:
        assert back.connect(clean_start=False, session_expiry_s=SESSION_EXPIRY_S) == "Success"
        assert _received(back, 3) == [b"queued-0", b"queued-1", b"queued-2"]
    finally:
        back.close()


@SQLITE
def test_b_a_gateway_cannot_use_another_gateways_client_id(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, session: Session, unique: str
) -> None:
    mine, mine_password = create_gateway(session, broker_admin, name=f"a{unique}")
    theirs, theirs_password = create_gateway(session, broker_admin, name=f"b{unique}")
    port = dynsec_broker.port
    assert (
        connect_result(port, mine.broker_username, mine_password, client_id=mine.broker_username) == "Success"
    )
    assert (
        connect_result(port, mine.broker_username, mine_password, client_id=theirs.broker_username)
        == "Not authorized"
    )
    assert connect_result(port, mine.broker_username, mine_password) == "Not authorized"  # a random id
    assert (
        connect_result(port, theirs.broker_username, theirs_password, client_id=theirs.broker_username)
        == "Success"
    )


def test_c_the_ingester_cannot_connect_with_another_id(
    dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap, unique: str
) -> None:
    assert bootstrap.ingester_password is not None
    password = bootstrap.ingester_password
    assert connect_result(dynsec_broker.port, "ingester", password, client_id=f"other-{unique}") == (
        "Not authorized"
    )
    assert connect_result(dynsec_broker.port, "ingester", password, client_id=INGESTER_ID) == "Success"


def _legacy_account(admin: DynsecAdmin, username: str, password: str, *, role: str | None = None) -> None:
    """An account as provisioned before client ids were bound: createClient without a clientid."""
    admin.execute(
        [
            {
                "command": "createClient",
                "username": username,
                "password": password,
                "roles": [{"rolename": role}] if role else [],
            }
        ]
    )


def test_d_the_migration_binds_accounts_made_before(
    dynsec_broker: Mosquitto,
    bootstrap: DynsecBootstrap,
    broker_admin: DynsecAdmin,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    unique: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as session:
        gateway = f.gateway_row(session)
        name, username = gateway.name, gateway.broker_username
    engine.dispose()
    port, password = dynsec_broker.port, secrets.token_urlsafe(16)
    _legacy_account(broker_admin, username, password)
    ingester, ingester_id = f"ingester{unique}", f"ingest-{unique}"
    _legacy_account(broker_admin, ingester, password, role="ingester")
    stranger = f"legacy{unique}"  # an account nobody told us about
    _legacy_account(broker_admin, stranger, password)
    for key, value in {
        "REGISTRY__URL": url,
        "MQTT__PORT": str(port),
        "MQTT__USERNAME": ingester,
        "MQTT__CLIENT_ID": ingester_id,
        "BROKER_ADMIN__PASSWORD": bootstrap.admin_password,
    }.items():
        monkeypatch.setenv(f"REALLABOR_{key}", value)
    try:
        assert connect_result(port, username, password) == "Success"  # any id: the hole
        assert connect_result(port, username, password, client_id=MqttSettings().client_id) == "Success"

        assert run_cli("gateways", "bind-client-ids", "--dry-run") == 1
        report = capsys.readouterr().out
        assert f"would bind {username} -> client id {username}" in report
        assert f"would bind {ingester} -> client id {ingester_id}" in report
        assert f"UNBOUND    {stranger}:" in report
        assert connect_result(port, username, password) == "Success"  # a dry run changes nothing

        assert run_cli("gateways", "bind-client-ids") == 1  # the stranger is still unbound
        report = capsys.readouterr().out
        assert f"bound      {username} -> client id {username}" in report
        assert connect_result(port, username, password, client_id=username) == "Success"
        assert connect_result(port, username, password) == "Not authorized"
        assert connect_result(port, username, password, client_id=MqttSettings().client_id) == (
            "Not authorized"
        )
        assert connect_result(port, ingester, password, client_id=ingester_id) == "Success"
        assert connect_result(port, ingester, password) == "Not authorized"
        assert connect_result(port, stranger, password) == "Success"  # reported, never guessed at

        broker_admin.execute([{"command": "deleteClient", "username": stranger}])
        assert run_cli("gateways", "bind-client-ids") == 0  # idempotent: nothing left to bind
        report = capsys.readouterr().out
        assert f"ok         {username} -> client id {username}" in report
        assert "bound " not in report
        assert "admin" not in report  # the admin may use any id: it can rebind anything anyway
    finally:
        for account in (username, ingester, stranger):
            broker_admin.revoke_gateway(gateway=name, username=account)


def test_the_commissioning_check_listens_as_the_admin(
    dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap, unique: str
) -> None:
    """Each check connects with a fresh client id: the ingester's bound account cannot, the admin can."""
    mqtt = {"port": dynsec_broker.port, "username": "ingester", "password": bootstrap.ingester_password}
    as_ingester = broker_access(Settings(mqtt=mqtt))
    with pytest.raises(BrokerUnavailable, match=r"Not authorized.*REALLABOR_BROKER_ADMIN__PASSWORD"):
        asyncio.run(next_message(as_ingester, [f"lab/{unique}/#"], timeout_s=1))
    as_admin = broker_access(Settings(mqtt=mqtt, broker_admin={"password": bootstrap.admin_password}))
    assert as_admin.username == "admin"
    assert asyncio.run(next_message(as_admin, [f"lab/{unique}/#"], timeout_s=0.5)) is None  # listened


@SQLITE
def test_the_technician_page_shows_the_client_id_once(
    api: TestClient, session: Session, dynsec_broker: Mosquitto, unique: str
) -> None:
    technician = f.user(session, Role.technician)
    page = api.get("/tech/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = {"username": technician.username, "password": f.PASSWORD, "csrf_token": token.group(1)}
    assert api.post("/tech/login", data=form, follow_redirects=False).status_code == 303
    token = re.search(r'name="csrf_token" value="([^"]+)"', api.get("/tech/gateways/new").text)
    assert token is not None  # the session's own token
    name = f"p{unique}"
    created = api.post("/tech/gateways", data={"name": name, "csrf_token": token.group(1)})
    assert created.status_code == 200, created.text

    def shown(element: str) -> str:
        found = re.search(rf'<code id="{element}">([^<]*)</code>', created.text)
        assert found, f"#{element} is not on the page"
        return html.unescape(found.group(1))

    client_id, password = shown("gateway-client-id"), shown("gateway-password")
    assert client_id == f"gw-{name}"
    assert connect_result(dynsec_broker.port, f"gw-{name}", password, client_id=client_id) == "Success"
