"""Per-gateway broker accounts on a real Mosquitto with the dynamic-security plugin."""

from __future__ import annotations

import base64
import json
import queue
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.dynsec import BrokerUnavailable, CommandFailed, DynsecAdmin, DynsecBootstrap, hashed_password
from ingest.localservices import LOOPBACK, Mosquitto, mosquitto_config
from ingest.registry.fleet import broker_username
from tests.registry.mqtt_client import TestMqttClient, connect_result

pytestmark = [pytest.mark.registry, pytest.mark.integration]


@pytest.fixture
def ingester(dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap) -> Iterator[TestMqttClient]:
    assert bootstrap.ingester_password is not None
    client = TestMqttClient(dynsec_broker.port, username="ingester", password=bootstrap.ingester_password)
    assert client.connect() == "Success"
    yield client
    client.close()


def _gateway(admin: DynsecAdmin, name: str) -> str:
    password = secrets.token_urlsafe(16)
    admin.provision_gateway(gateway=name, username=broker_username(name), password=password)
    return password


def _next_message(client: TestMqttClient) -> tuple[str, bytes]:
    try:
        return client.messages.get(timeout=5)
    except queue.Empty:
        raise AssertionError("the ingester received nothing") from None


def test_gateway_publishes_under_its_prefix_only(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, ingester: TestMqttClient, unique: str
) -> None:
    mine, theirs = f"a{unique}", f"b{unique}"
    password = _gateway(broker_admin, mine)
    _gateway(broker_admin, theirs)
    ingester.subscribe(f"lab/{mine}/#")
    ingester.subscribe(f"lab/{theirs}/#")
    gateway = TestMqttClient(dynsec_broker.port, username=broker_username(mine), password=password)
    try:
        assert gateway.connect() == "Success"
        assert gateway.publish(f"lab/{theirs}/meter1/state", b"forged") == "Not authorized"
        assert gateway.publish(f"other/{mine}/meter1/state", b"outside") == "Not authorized"
        assert gateway.publish(f"lab/{mine}/meter1/state", b"genuine") == "Success"
        # one publisher's messages arrive in order: had the forged one passed, it would come first
        assert _next_message(ingester) == (f"lab/{mine}/meter1/state", b"genuine")
        assert ingester.messages.empty()
    finally:
        gateway.close()


def test_revoked_gateway_is_disconnected_and_cannot_connect(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"r{unique}"
    password = _gateway(broker_admin, name)
    connected = TestMqttClient(dynsec_broker.port, username=broker_username(name), password=password)
    try:
        assert connected.connect() == "Success"
        broker_admin.revoke_gateway(gateway=name, username=broker_username(name))
        assert connected.disconnected.wait(5), "a revoked gateway stays connected"
        assert str(connected.disconnect_reason) == "Administrative action"
    finally:
        connected.close()
    assert connect_result(dynsec_broker.port, broker_username(name), password) == "Not authorized"
    broker_admin.revoke_gateway(gateway=name, username=broker_username(name))  # idempotent


def test_rotated_password_replaces_the_old_one(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"p{unique}"
    old = _gateway(broker_admin, name)
    new = secrets.token_urlsafe(16)
    broker_admin.rotate_gateway(gateway=name, username=broker_username(name), password=new)
    assert connect_result(dynsec_broker.port, broker_username(name), old) == "Not authorized"
    assert connect_result(dynsec_broker.port, broker_username(name), new) == "Success"


def test_rotating_a_lost_account_recreates_it(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"x{unique}"  # in the registry, but the broker lost it (e.g. restored from an old backup)
    password = secrets.token_urlsafe(16)
    broker_admin.rotate_gateway(gateway=name, username=broker_username(name), password=password)
    assert connect_result(dynsec_broker.port, broker_username(name), password) == "Success"


def test_provisioning_again_replaces_leftovers(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"l{unique}"
    first = _gateway(broker_admin, name)
    second = _gateway(broker_admin, name)
    assert connect_result(dynsec_broker.port, broker_username(name), first) == "Not authorized"
    assert connect_result(dynsec_broker.port, broker_username(name), second) == "Success"


def test_anonymous_and_wrong_passwords_are_refused(dynsec_broker: Mosquitto, unique: str) -> None:
    assert connect_result(dynsec_broker.port, f"nobody{unique}", "guess") == "Not authorized"
    assert connect_result(dynsec_broker.port, "ingester", "guess") == "Not authorized"


def test_admin_errors_are_translated(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    with pytest.raises(CommandFailed, match="Client not found") as error:
        broker_admin.set_password(username=f"gw-missing{unique}", password="x" * 12)
    assert error.value.command == "setClientPassword"
    with (
        DynsecAdmin(
            host=LOOPBACK, port=dynsec_broker.port, username="admin", password="wrong", timeout=2
        ) as impostor,
        pytest.raises(BrokerUnavailable),
    ):
        impostor.set_password(username="gw-x", password="y" * 12)


def test_initial_config_and_password_hash_match_mosquitto_ctrl(
    dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap
) -> None:
    assert dynsec_broker.dynsec_config is not None
    config = json.loads(dynsec_broker.dynsec_config.read_text())
    clients = {client["username"]: client for client in config["clients"]}
    admin = clients["admin"]
    assert (
        hashed_password(
            bootstrap.admin_password, salt=base64.b64decode(admin["salt"]), iterations=admin["iterations"]
        )["password"]
        == admin["password"]
    )
    ingester_role = next(role for role in config["roles"] if role["rolename"] == "ingester")
    acls = {(acl["acltype"], acl["topic"], acl["allow"]) for acl in ingester_role["acls"]}
    assert ("subscribePattern", "lab/#", True) in acls
    assert bootstrap.admin_password not in dynsec_broker.dynsec_config.read_text()
    assert "admin_password" not in repr(bootstrap)
    assert bootstrap.admin_password not in repr(bootstrap)


def test_default_broker_config_stays_anonymous(tmp_path: Path) -> None:
    text = mosquitto_config(port=1883, data_dir=tmp_path)
    assert "allow_anonymous true" in text
    assert "plugin" not in text
    with_plugin = mosquitto_config(port=1883, data_dir=tmp_path, dynsec_config=tmp_path / "d.json")
    assert "allow_anonymous false" in with_plugin
    assert "mosquitto_dynamic_security.so" in with_plugin
    assert f"plugin_opt_config_file {tmp_path / 'd.json'}" in with_plugin
