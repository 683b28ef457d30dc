"""The production broker as shipped: deploy/mosquitto.conf, bootstrapped by ``reallabor broker init``,
started with Debian's Mosquitto (Docker does not run here), and docker-compose.yml that mounts it.

Only what differs between the image and this machine is substituted: the listener (a free loopback port),
the state paths (a temp dir) and the plugin's path (the image's /usr/lib, Debian's multiarch dir).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from ingest.dynsec import DynsecAdmin, plugin_path
from ingest.localservices import LOOPBACK, LocalService, free_port, mosquitto_config
from ingest.registry.cli import add_subcommands
from ingest.registry.fleet import broker_username, gateway_client_id
from tests.registry.mqtt_client import TestMqttClient, connect_result

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "mosquitto.conf"
COMPOSE = REPO / "docker-compose.yml"
IMAGE_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"  # eclipse-mosquitto:2
INGESTER_ID = "reallabor-ingest"
# the settings a loss-free pipeline needs from the broker (docs/broker.md), as `reallabor up` has them
PIPELINE_KEYS = (
    "persistence",
    "autosave_interval",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "message_size_limit",
    "per_listener_settings",
    "allow_anonymous",
)


def directives(text: str) -> dict[str, list[str]]:
    """Mosquitto config lines as name -> values (a name may repeat)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            found.setdefault(name, []).append(value.strip())
    return found


def only(config: dict[str, list[str]], name: str) -> str:
    values = config.get(name, [])
    assert len(values) == 1, f"deploy/mosquitto.conf: expected one {name!r}, found {values}"
    return values[0]


def render(text: str, *, port: int, tls_port: int, state: Path) -> str:
    """The shipped config with this machine's ports, paths and plugin; everything else as shipped."""
    config = directives(text)
    assert config["listener"] == ["1883", "8883"]
    dynsec_file = only(config, "plugin_opt_config_file")
    data = only(config, "persistence_location")
    substitutions = {
        "listener 1883": f"listener {port} {LOOPBACK}",
        "listener 8883": f"listener {tls_port} {LOOPBACK}",
        f"certfile {only(config, 'certfile')}": f"certfile {state / 'certs' / 'server.crt'}",
        f"keyfile {only(config, 'keyfile')}": f"keyfile {state / 'certs' / 'server.key'}",
        f"plugin {only(config, 'plugin')}": f"plugin {plugin_path()}",
        f"plugin_opt_config_file {dynsec_file}": (
            f"plugin_opt_config_file {state / 'dynsec' / Path(dynsec_file).name}"
        ),
        f"persistence_location {data}": f"persistence_location {state / 'data'}/",
    }
    lines = []
    for line in text.splitlines():
        lines.append(substitutions.get(line.strip(), line))
    rendered = "\n".join(lines) + "\n"
    # started as root, Mosquitto drops to user mosquitto, who cannot read our 0600 file (the image's
    # entrypoint chowns /mosquitto to that user instead)
    return ("user root\n" if os.geteuid() == 0 else "") + rendered


def self_signed(directory: Path) -> None:
    """server.crt and server.key for 127.0.0.1, as an operator's CA would issue them (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(directory / "server.key"),
            "-out",
            str(directory / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )


class ShippedBroker(LocalService):
    name = "mosquitto"

    def __init__(self, directory: Path, text: str) -> None:
        super().__init__(directory)
        self.text = text
        self.tls_port = 0  # chosen at start, like the plain port

    def command(self) -> list[str]:
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self.tls_port = free_port()
        self_signed(self.directory / "certs")
        config = self.directory / "mosquitto.conf"
        config.write_text(render(self.text, port=self.port, tls_port=self.tls_port, state=self.directory))
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [binary, "-c", str(config)]

    def is_ready(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((LOOPBACK, self.port)) == 0


INIT_VARIABLES = (
    "REALLABOR_BROKER_ADMIN__PASSWORD",
    "REALLABOR_MQTT__USERNAME",
    "REALLABOR_MQTT__PASSWORD",
    "REALLABOR_MQTT__CLIENT_ID",
)


def broker_init(out: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``reallabor broker init --out OUT`` with exactly ``env`` of the variables it reads."""
    for key in INIT_VARIABLES:
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)
    root = argparse.ArgumentParser(prog="reallabor")
    add_subcommands(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(["broker", "init", "--out", str(out)])
    code: int = args.func(args)
    return code


def lab_messages(client: TestMqttClient, *, wait_s: float = 2.0) -> list[tuple[str, bytes]]:
    """What ``client`` received under lab/ within ``wait_s`` (the broker's $SYS counters aside)."""
    received = []
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            topic, payload = client.messages.get(timeout=left)
        except queue.Empty:
            break
        if topic.startswith("lab/"):
            received.append((topic, payload))
    return received


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def passwords() -> dict[str, str]:
    return {"admin": secrets.token_urlsafe(24), "ingester": secrets.token_urlsafe(24)}


@pytest.fixture
def shipped(
    tmp_path: Path,
    passwords: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[ShippedBroker]:
    state = tmp_path / "broker"
    env = {
        "REALLABOR_BROKER_ADMIN__PASSWORD": passwords["admin"],
        "REALLABOR_MQTT__USERNAME": "ingester",
        "REALLABOR_MQTT__PASSWORD": passwords["ingester"],
    }
    assert broker_init(state / "dynsec" / "dynamic-security.json", env, monkeypatch) == 0
    printed = capsys.readouterr()
    assert not any(p in printed.out + printed.err for p in passwords.values())
    with ShippedBroker(state, CONF.read_text()) as broker:
        yield broker


def test_the_shipped_config_keeps_the_pipeline_settings(tmp_path: Path) -> None:
    shipped, local = directives(CONF.read_text()), directives(mosquitto_config(port=1883, data_dir=tmp_path))
    for key in PIPELINE_KEYS:
        if key == "allow_anonymous":
            assert shipped[key] == ["false"]
        else:
            assert shipped.get(key) == local.get(key), key
    assert only(shipped, "plugin") == IMAGE_PLUGIN
    assert "password_file" not in shipped  # accounts and ACLs are the plugin's, one place


def test_the_shipped_broker_enforces_accounts_and_acls(
    shipped: ShippedBroker, passwords: dict[str, str], unique: str
) -> None:
    port = shipped.port
    anonymous = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"anon-{unique}", protocol=paho.MQTTv5)
    refused: list[str] = []
    anonymous.on_connect = lambda _c, _u, _f, reason, _p: refused.append(str(reason))
    anonymous.connect(LOOPBACK, port)
    for _ in range(50):
        anonymous.loop(0.1)
        if refused:
            break
    anonymous.disconnect()
    assert refused == ["Not authorized"], "anonymous clients must be refused"
    assert connect_result(port, "ingester", "wrong password", client_id=INGESTER_ID) == "Not authorized"
    assert (
        connect_result(port, "ingester", passwords["ingester"], client_id=f"x-{unique}") == "Not authorized"
    )

    ingester = TestMqttClient(
        port, username="ingester", password=passwords["ingester"], client_id=INGESTER_ID
    )
    assert ingester.connect() == "Success"
    try:
        assert ingester.subscribe("lab/#") == "Granted QoS 1"
        assert ingester.subscribe("$SYS/broker/publish/messages/dropped") == "Granted QoS 1"

        with DynsecAdmin(
            host=LOOPBACK, port=port, username="admin", password=passwords["admin"], timeout=5
        ) as admin:
            mine, theirs = f"a{unique}", f"b{unique}"
            password = secrets.token_urlsafe(16)
            for name in (mine, theirs):
                admin.provision_gateway(
                    gateway=name,
                    username=broker_username(name),
                    password=password,
                    client_id=gateway_client_id(name),
                )
        saved = shipped.directory / "dynsec" / "dynamic-security.json"  # the plugin saved the change
        clients = {client["username"]: client for client in json.loads(saved.read_text())["clients"]}
        assert clients[broker_username(mine)]["clientid"] == gateway_client_id(mine)
        assert saved.stat().st_mode & 0o777 == 0o600  # rewritten by the broker, still private
        gateway = TestMqttClient(
            port, username=broker_username(mine), password=password, client_id=gateway_client_id(mine)
        )
        assert gateway.connect() == "Success"
        try:
            assert gateway.subscribe("lab/#") == "Not authorized"
            assert gateway.subscribe(f"lab/{theirs}/#") == "Not authorized"
            assert gateway.publish(f"lab/{theirs}/meter/state", b"forged") == "Not authorized"
            assert gateway.publish(f"lab/{mine}/meter/state", b"genuine") == "Success"
        finally:
            gateway.close()
        assert lab_messages(ingester) == [
            (f"lab/{mine}/meter/state", b"genuine")
        ]  # the forged one never came
        # the gateways' TLS listener: the same accounts and ACLs, the certificate from the mounted files
        context = ssl.create_default_context(cafile=str(shipped.directory / "certs" / "server.crt"))
        with (
            socket.create_connection((LOOPBACK, shipped.tls_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=LOOPBACK) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls_gateway = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=gateway_client_id(mine), protocol=paho.MQTTv5
        )
        tls_gateway.tls_set_context(context)
        tls_gateway.username_pw_set(broker_username(mine), password)
        results: list[str] = []
        tls_gateway.on_connect = lambda _c, _u, _f, reason, _p: results.append(str(reason))
        tls_gateway.connect(LOOPBACK, shipped.tls_port)
        for _ in range(50):
            tls_gateway.loop(0.1)
            if results:
                break
        tls_gateway.disconnect()
        assert results == ["Success"]
        with socket.create_connection((LOOPBACK, shipped.tls_port), timeout=5) as plain:
            plain.sendall(bytes.fromhex("100c00044d5154540402003c0000"))  # a plain CONNECT
            plain.settimeout(5)
            try:
                answer = plain.recv(4)
            except OSError:  # reset: the listener speaks TLS only
                answer = b""
            assert not answer.startswith(b"\x20"), answer  # no CONNACK without TLS
    finally:
        ingester.close()


def test_broker_init_writes_a_private_file_and_refuses_weak_input(
    tmp_path: Path,
    passwords: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "dynsec" / "dynamic-security.json"
    base = {
        "REALLABOR_BROKER_ADMIN__PASSWORD": passwords["admin"],
        "REALLABOR_MQTT__USERNAME": "ingester",
        "REALLABOR_MQTT__PASSWORD": passwords["ingester"],
    }
    for weak in ("short", "changeme12345678", "abababababababab", "Ingest-Password-Long-1"):
        assert broker_init(out, {**base, "REALLABOR_MQTT__PASSWORD": weak}, monkeypatch) == 2
        assert "REALLABOR_MQTT__PASSWORD" in capsys.readouterr().err  # the rule of production settings
        assert not out.exists()
    assert broker_init(out, {**base, "REALLABOR_MQTT__CLIENT_ID": "gw-x"}, monkeypatch) == 2
    assert "belong to gateways" in capsys.readouterr().err
    assert broker_init(out, base, monkeypatch) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    text = out.read_text()
    assert not any(p in text for p in passwords.values())
    clients = {client["username"]: client for client in json.loads(text)["clients"]}
    assert clients["ingester"]["clientid"] == INGESTER_ID
    assert "clientid" not in clients["admin"]
    assert broker_init(out, base, monkeypatch) == 1  # never overwrites the broker's accounts
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == text


def test_compose_mounts_the_broker_config_and_has_no_secret_defaults() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    mosquitto = compose["services"]["mosquitto"]
    assert mosquitto["image"] == "eclipse-mosquitto:2"
    mounts = {}
    for volume in mosquitto["volumes"]:
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode)
    assert mounts["/mosquitto/config/mosquitto.conf"] == ("./deploy/mosquitto.conf", ["ro"])
    conf = directives(CONF.read_text())
    dynsec_dir = str(Path(only(conf, "plugin_opt_config_file")).parent)
    assert mounts[dynsec_dir][1] == [], "the plugin writes its file (and a .new beside it): mount it writable"
    assert (REPO / mounts[dynsec_dir][0]).is_dir()
    assert only(conf, "persistence_location").rstrip("/") in mounts
    assert only(conf, "plugin") == IMAGE_PLUGIN

    text = COMPOSE.read_text()
    variables = re.findall(r"\$\{([^}]*)\}", text)
    assert variables, "secrets come from the environment"
    for variable in variables:
        name = re.split(r"[:?\-]", variable, maxsplit=1)[0]
        if re.search(r"PASSWORD|TOKEN|SECRET|KEY", name):
            assert variable.startswith(f"{name}:?"), f"${{{variable}}}: a secret must not have a default"
    ingest_env = compose["services"]["ingest"]["environment"]
    assert ingest_env["REALLABOR_MQTT__CLIENT_ID"] == INGESTER_ID  # what `reallabor broker init` binds
    assert "REALLABOR_BROKER_ADMIN__PASSWORD" not in ingest_env  # the ingester needs no admin rights
    # /metrics on by default, on a fixed port, published to the host's loopback only
    port = int(ingest_env["REALLABOR_INGEST__METRICS_PORT"])
    assert f"127.0.0.1:{port}:{port}" in compose["services"]["ingest"]["ports"]


def test_broker_init_makes_an_account_per_ingester_instance(
    tmp_path: Path,
    passwords: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With ingest.instances 3 each instance logs in as <username>-K, bound to its client id <id>-K
    (ingest/config.py Settings.as_instance); the single account is not made."""
    out = tmp_path / "dynsec" / "dynamic-security.json"
    monkeypatch.setenv("REALLABOR_INGEST__INSTANCES", "3")
    env = {
        "REALLABOR_BROKER_ADMIN__PASSWORD": passwords["admin"],
        "REALLABOR_MQTT__USERNAME": "ingester",
        "REALLABOR_MQTT__PASSWORD": passwords["ingester"],
    }
    assert broker_init(out, env, monkeypatch) == 0
    assert "ingester-2, client id " + INGESTER_ID + "-2 only" in capsys.readouterr().out
    clients = {client["username"]: client for client in json.loads(out.read_text())["clients"]}
    assert {name: client.get("clientid") for name, client in clients.items()} == {
        "admin": None,
        **{f"ingester-{k}": f"{INGESTER_ID}-{k}" for k in range(3)},
    }
