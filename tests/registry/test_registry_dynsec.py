"""Per-gateway broker accounts on a real Mosquitto with the dynamic-security plugin."""

from __future__ import annotations

import base64
import json
import queue
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.dynsec import (
    BrokerUnavailable,
    CommandFailed,
    DynsecAdmin,
    DynsecBootstrap,
    DynsecError,
    hashed_password,
    write_initial_config,
)
from ingest.localservices import LOOPBACK, Mosquitto, mosquitto_config
from ingest.registry.fleet import broker_username, gateway_client_id
from tests.registry.mqtt_client import TestMqttClient, connect_result

pytestmark = [pytest.mark.registry, pytest.mark.integration]


@pytest.fixture
def ingester(dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap) -> Iterator[TestMqttClient]:
    assert bootstrap.ingester_password is not None
    client = TestMqttClient(
        dynsec_broker.port,
        username="ingester",
        password=bootstrap.ingester_password,
        client_id=bootstrap.ingester_client_id,
    )
    assert client.connect() == "Success"
    yield client
    client.close()


def _gateway(admin: DynsecAdmin, name: str) -> str:
    password = secrets.token_urlsafe(16)
    admin.provision_gateway(
        gateway=name, username=broker_username(name), password=password, client_id=gateway_client_id(name)
    )
    return password


def _connect(port: int, name: str, password: str) -> str:
    """Log in as gateway ``name``, with its own client id."""
    return connect_result(port, broker_username(name), password, client_id=gateway_client_id(name))


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
    gateway = TestMqttClient(
        dynsec_broker.port,
        username=broker_username(mine),
        password=password,
        client_id=gateway_client_id(mine),
    )
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
    connected = TestMqttClient(
        dynsec_broker.port,
        username=broker_username(name),
        password=password,
        client_id=gateway_client_id(name),
    )
    try:
        assert connected.connect() == "Success"
        broker_admin.revoke_gateway(gateway=name, username=broker_username(name))
        assert connected.disconnected.wait(5), "a revoked gateway stays connected"
        assert str(connected.disconnect_reason) == "Administrative action"
    finally:
        connected.close()
    assert _connect(dynsec_broker.port, name, password) == "Not authorized"
    broker_admin.revoke_gateway(gateway=name, username=broker_username(name))  # idempotent


def test_rotated_password_replaces_the_old_one(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"p{unique}"
    old = _gateway(broker_admin, name)
    new = secrets.token_urlsafe(16)
    broker_admin.rotate_gateway(
        gateway=name, username=broker_username(name), password=new, client_id=gateway_client_id(name)
    )
    assert _connect(dynsec_broker.port, name, old) == "Not authorized"
    assert _connect(dynsec_broker.port, name, new) == "Success"


def test_rotating_a_lost_account_recreates_it(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"x{unique}"  # in the registry, but the broker lost it (e.g. restored from an old backup)
    password = secrets.token_urlsafe(16)
    broker_admin.rotate_gateway(
        gateway=name, username=broker_username(name), password=password, client_id=gateway_client_id(name)
    )
    assert _connect(dynsec_broker.port, name, password) == "Success"


def test_rotation_binds_the_client_id(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"u{unique}"  # provisioned before client ids were bound: any id was let in
    old = secrets.token_urlsafe(16)
    broker_admin.execute([{"command": "createClient", "username": broker_username(name), "password": old}])
    try:
        assert connect_result(dynsec_broker.port, broker_username(name), old) == "Success"
        new = secrets.token_urlsafe(16)
        broker_admin.rotate_gateway(
            gateway=name, username=broker_username(name), password=new, client_id=gateway_client_id(name)
        )
        assert broker_admin.client_ids()[broker_username(name)] == gateway_client_id(name)
        assert connect_result(dynsec_broker.port, broker_username(name), new) == "Not authorized"
        assert _connect(dynsec_broker.port, name, new) == "Success"
    finally:
        broker_admin.revoke_gateway(gateway=name, username=broker_username(name))


def test_provisioning_again_replaces_leftovers(
    dynsec_broker: Mosquitto, broker_admin: DynsecAdmin, unique: str
) -> None:
    name = f"l{unique}"
    first = _gateway(broker_admin, name)
    second = _gateway(broker_admin, name)
    assert _connect(dynsec_broker.port, name, first) == "Not authorized"
    assert _connect(dynsec_broker.port, name, second) == "Success"


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
    assert clients["ingester"]["clientid"] == bootstrap.ingester_client_id == "reallabor-ingest"
    ingester_role = next(role for role in config["roles"] if role["rolename"] == "ingester")
    acls = {(acl["acltype"], acl["topic"], acl["allow"]) for acl in ingester_role["acls"]}
    assert ("subscribePattern", "lab/#", True) in acls
    assert ("subscribeLiteral", "$SYS/broker/publish/messages/dropped", True) in acls
    assert dynsec_broker.dynsec_config.stat().st_mode & 0o777 == 0o600
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


def test_initial_config_is_what_mosquitto_ctrl_init_writes(tmp_path: Path) -> None:
    """Our admin and defaults equal ``mosquitto_ctrl dynsec init``'s (which takes the password on argv)."""
    ctrl = shutil.which("mosquitto_ctrl")
    if ctrl is None:
        pytest.skip("mosquitto_ctrl is not installed (Debian's mosquitto-clients)")
    theirs_path = tmp_path / "theirs.json"
    subprocess.run(
        [ctrl, "dynsec", "init", str(theirs_path), "admin", "x" * 20], check=True, capture_output=True
    )
    theirs = json.loads(theirs_path.read_text())
    ours_path = tmp_path / "ours.json"
    write_initial_config(ours_path, DynsecBootstrap(admin_password="y" * 20))
    ours = json.loads(ours_path.read_text())
    assert ours["defaultACLAccess"] == theirs["defaultACLAccess"]
    assert ours["roles"][0] == theirs["roles"][0]  # the admin role
    salted = {"password", "salt"}
    assert {k: v for k, v in ours["clients"][0].items() if k not in salted} == {
        k: v for k, v in theirs["clients"][0].items() if k not in salted
    }
    with pytest.raises(DynsecError, match="exists"):  # it holds every gateway's account
        write_initial_config(ours_path, DynsecBootstrap(admin_password="z" * 20))
    assert json.loads(ours_path.read_text()) == ours
