"""``reallabor gateways bundle`` (issue 15): a gateway provisioned through the registry, its bundle made and
unpacked, gateway.yaml loaded back, and the gateway started with it against a dynamic-security broker over
TLS: its health and a local device's message arrive; its credentials publish under its own prefix only,
with its own client id only; a newer bundle makes the older one useless."""

from __future__ import annotations

import json
import logging
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ingest import __version__
from ingest.dynsec import DynsecBootstrap
from ingest.gateway.bundle import (
    DEVICES_USER,
    BundleSettings,
    gateway_config,
    pack,
    uncommented_meters,
)
from ingest.gateway.config import GatewayConfig, Meter, load_gateway_config
from ingest.localservices import LOOPBACK
from tests.gateway.bundle_world import (
    BundledLocalBroker,
    CentralBroker,
    new_bootstrap,
    registry_settings,
    tls_client,
    tls_login,
    unpack,
)
from tests.helpers import wait_for
from tests.registry.cli_runner import run_cli
from tests.registry.mqtt_client import TestMqttClient, connect_result

pytestmark = [pytest.mark.registry, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
FILES = {
    "gateway.yaml": 0o600,
    "ca.crt": 0o644,
    "mosquitto-local.conf": 0o644,
    "mosquitto-passwd": 0o600,
    "mosquitto-acl": 0o644,
    "local-devices.txt": 0o600,
    "reallabor-gateway.service": 0o644,
    "mosquitto-reallabor.conf": 0o644,
    "install.sh": 0o755,
    "README.txt": 0o644,
    "requirements-gateway.txt": 0o644,
}


@pytest.fixture(scope="module")
def bootstrap() -> DynsecBootstrap:
    return new_bootstrap()


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory, bootstrap: DynsecBootstrap) -> Iterator[CentralBroker]:
    with CentralBroker(tmp_path_factory.mktemp("central"), bootstrap=bootstrap) as broker:
        yield broker


@pytest.fixture
def ingester(central: CentralBroker, bootstrap: DynsecBootstrap) -> Iterator[TestMqttClient]:
    assert bootstrap.ingester_password is not None
    client = TestMqttClient(
        central.port,
        username=bootstrap.ingester_username,
        password=bootstrap.ingester_password,
        client_id=bootstrap.ingester_client_id,
    )
    assert client.connect() == "Success"
    yield client
    client.close()


@pytest.fixture
def settings_file(tmp_path: Path, central: CentralBroker) -> Path:
    return registry_settings(tmp_path, central=central, ca_file=central.cert)


def _cli(settings_file: Path, *argv: str) -> int:
    return run_cli(*argv[:2], "--config", str(settings_file), *argv[2:])


def _config(folder: Path) -> GatewayConfig:
    return load_gateway_config(folder / "gateway.yaml")


def test_bundle_holds_a_gateway_that_publishes_under_its_own_prefix_only(
    tmp_path: Path,
    settings_file: Path,
    central: CentralBroker,
    ingester: TestMqttClient,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reallabor.audit")
    name, other = f"haus-{tmp_path.name[-6:].lower()}", f"nachbar-{tmp_path.name[-6:].lower()}"
    name, other = name.replace("_", "-"), other.replace("_", "-")
    assert _cli(settings_file, "gateways", "add", name) == 0
    assert _cli(settings_file, "gateways", "add", other) == 0
    meter = ["--gateway", name, "--native-id", "hh-101-ehz", "--profile", "sml"]
    assert _cli(settings_file, "devices", "add", *meter) == 0
    plug = ["--gateway", name, "--native-id", "plug-1", "--profile", "tasmota"]
    assert _cli(settings_file, "devices", "add", *plug) == 0
    capsys.readouterr()

    out = tmp_path / "first.tar.gz"
    assert _cli(settings_file, "gateways", "bundle", name, "--out", str(out)) == 0
    audited = [getattr(r, "audit", {}) for r in caplog.records]
    bundled = [a for a in audited if a.get("event") == "gateway.bundled"]
    assert [(b["gateway"], b["actor"].startswith("cli:")) for b in bundled] == [(name, True)]  # who made it
    printed = capsys.readouterr()
    assert out.stat().st_mode & 0o777 == 0o600
    modes = unpack(out.read_bytes(), tmp_path / "first")
    folder = tmp_path / "first" / f"reallabor-gateway-{name}"
    assert modes == {folder.name: 0o700} | {f"{folder.name}/{file}": mode for file, mode in FILES.items()}

    config = _config(folder)
    password = config.central.password.get_secret_value()
    assert password not in printed.out + printed.err  # only inside the bundle
    assert (config.gateway, config.central.brokers) == (name, [f"{LOOPBACK}:{central.tls_port}"])
    assert (config.central.username, config.central.client_id) == (f"gw-{name}", f"gw-{name}")
    assert config.central.tls is not None
    assert config.central.tls.ca_file == folder / "ca.crt"
    assert (folder / "ca.crt").read_bytes() == central.cert.read_bytes()
    assert str(config.outbox.directory) == "/var/lib/reallabor-gateway/outbox"
    assert config.meters == []  # the technician completes them (README.txt, step 2)
    completed = folder / "completed.yaml"
    completed.write_text(uncommented_meters((folder / "gateway.yaml").read_text()))
    meters = load_gateway_config(completed).meters
    assert [(m.device, m.protocol) for m in meters] == [("hh-101-ehz", "sml")]  # the plug is no serial meter

    ca, login = folder / "ca.crt", {"username": f"gw-{name}", "password": password}
    gateway = tls_client(central.tls_port, ca, client_id=f"gw-{name}", **login)
    ingester.subscribe(f"lab/{name}/#")
    ingester.subscribe(f"lab/{other}/#")
    try:
        assert gateway.connect() == "Success"
        assert gateway.publish(f"lab/{other}/health", b"{}") == "Not authorized"
        assert gateway.publish(f"lab/{other}/sml/hh-101-ehz", b"forged") == "Not authorized"
        assert gateway.publish(f"lab/{name}/sml/hh-101-ehz", b"genuine") == "Success"
        # one publisher's messages arrive in order: had a forged one passed, it would come first
        assert ingester.messages.get(timeout=5) == (f"lab/{name}/sml/hh-101-ehz", b"genuine")
    finally:
        gateway.close()
    assert tls_login(central.tls_port, ca, client_id=f"gw-{other}", **login) == "Not authorized"
    assert tls_login(central.tls_port, ca, client_id="any-other-id", **login) == "Not authorized"

    # never overwritten; a new bundle revokes the old password
    assert _cli(settings_file, "gateways", "bundle", name, "--out", str(out)) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert unpack(out.read_bytes(), tmp_path / "again")  # still the first bundle, whole
    second = tmp_path / "second.tar.gz"
    assert _cli(settings_file, "gateways", "bundle", name, "--out", str(second)) == 0
    unpack(second.read_bytes(), tmp_path / "second")
    newer = _config(tmp_path / "second" / folder.name).central.password.get_secret_value()
    assert newer != password
    assert tls_login(central.tls_port, ca, client_id=f"gw-{name}", **login) == "Not authorized"
    assert tls_login(central.tls_port, ca, client_id=f"gw-{name}", username=f"gw-{name}", password=newer) == (
        "Success"
    )

    # unknown and revoked gateways: exit 2, no file
    capsys.readouterr()
    assert _cli(settings_file, "gateways", "bundle", f"nobody-{name}", "--out", str(tmp_path / "x.tgz")) == 2
    assert "no gateway of that name" in capsys.readouterr().err
    assert _cli(settings_file, "gateways", "revoke", other) == 0
    assert _cli(settings_file, "gateways", "bundle", other, "--out", str(tmp_path / "y.tgz")) == 2
    assert "it is revoked" in capsys.readouterr().err
    assert not (tmp_path / "x.tgz").exists()
    assert not (tmp_path / "y.tgz").exists()


def _exec_start(unit: Path) -> list[str]:
    """The unit's command, run here with this venv's console script instead of the Pi's venv."""
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    command = line.removeprefix("ExecStart=").split()
    assert command[0] == "/opt/reallabor-gateway/venv/bin/reallabor-gateway"
    return [str(Path(sys.executable).parent / "reallabor-gateway"), *command[1:]]


def test_gateway_runs_from_its_bundle(
    tmp_path: Path, settings_file: Path, central: CentralBroker, ingester: TestMqttClient
) -> None:
    """The unit's command with the bundle's gateway.yaml (only the outbox and the local broker's port moved
    here): the gateway's health and a Wi-Fi plug's message via the bundle's local Mosquitto arrive."""
    name = f"run-{tmp_path.name[-6:].lower().replace('_', '-')}"
    assert _cli(settings_file, "gateways", "add", name) == 0
    out = tmp_path / "bundle.tar.gz"
    assert _cli(settings_file, "gateways", "bundle", name, "--out", str(out)) == 0
    unpack(out.read_bytes(), tmp_path)
    folder = tmp_path / f"reallabor-gateway-{name}"
    lines = (folder / "local-devices.txt").read_text().splitlines()
    devices = dict(line.split() for line in lines if line.startswith("  ") and len(line.split()) == 2)
    assert devices["user"] == DEVICES_USER

    with BundledLocalBroker(tmp_path / "local", bundle=folder) as local:
        shipped = yaml.safe_load((folder / "gateway.yaml").read_text())
        shipped["outbox"]["directory"] = str(tmp_path / "outbox")
        shipped["local_broker"]["port"] = local.port
        shipped["health_interval_s"] = 1.0
        (folder / "gateway.yaml").write_text(yaml.safe_dump(shipped))
        assert connect_result(local.port, "anybody", "guess") == "Not authorized"  # no anonymous access

        ingester.subscribe(f"lab/{name}/#")
        command = [*_exec_start(folder / "reallabor-gateway.service")]
        command[command.index("--config") + 1] = str(folder / "gateway.yaml")
        service = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            plug = TestMqttClient(local.port, username=DEVICES_USER, password=devices["password"])
            try:
                assert plug.connect() == "Success"

                def forwarded() -> bool:  # "No matching subscribers" until the service has subscribed
                    assert service.poll() is None, "the gateway service ended"
                    return plug.publish("tele/plug-1/SENSOR", b'{"ENERGY":{"Power":42}}') == "Success"

                wait_for(
                    forwarded, timeout=20, interval=0.3, what="the service's forwarder on the local broker"
                )
            finally:
                plug.close()
            wanted = {f"lab/{name}/health", f"lab/{name}/tele/plug-1/SENSOR"}
            seen = _receive(ingester, wanted, timeout=20)
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                _, errors = service.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                service.kill()
                _, errors = service.communicate()
        log = errors.decode(errors="replace")
        assert seen.keys() == wanted, log[-3000:]
        assert seen[f"lab/{name}/tele/plug-1/SENSOR"] == b'{"ENERGY":{"Power":42}}'
        assert json.loads(seen[f"lab/{name}/health"])  # the service's own health, decoded centrally elsewhere
        assert shipped["central"]["password"] not in log  # never logged
        assert service.returncode == 0, log[-3000:]


def _receive(client: TestMqttClient, topics: set[str], *, timeout: float) -> dict[str, bytes]:
    """The first message of each of ``topics`` that came within ``timeout`` (others are skipped)."""
    seen: dict[str, bytes] = {}
    deadline = time.monotonic() + timeout
    while topics - seen.keys():
        left = deadline - time.monotonic()
        try:
            topic, payload = client.messages.get(timeout=max(left, 0.01))
        except queue.Empty:
            break
        if topic in topics:
            seen.setdefault(topic, payload)
    return seen


def test_install_script_units_and_a_bundle_without_ca(tmp_path: Path) -> None:
    """install.sh passes bash -n and shellcheck, the unit systemd-analyze; without a CA the gateway speaks
    plain MQTT, and the README and the warnings say so."""
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None, brokers_set=False)
    config = gateway_config("haus-c", username="gw-haus-c", password="a password", settings=settings)
    example = [Meter(device="hh-1", port=Path("/dev/ttyUSB0"), protocol="d0")]
    unpack(pack(config, meters=example, settings=settings), tmp_path)
    folder = tmp_path / "reallabor-gateway-haus-c"
    assert not (folder / "ca.crt").exists()
    loaded = _config(folder)
    assert loaded.central.tls is None
    assert loaded.central.password.get_secret_value() == "a password"
    assert "WARNING: no CA certificate" in (folder / "README.txt").read_text()
    assert [w.split(":")[0] for w in settings.warnings()] == [
        "no gateway_bundle.ca_file",
        "no gateway_bundle.brokers",
    ]

    script = folder / "install.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    # install.sh's check of gateway.yaml:
    assert '/venv/bin/reallabor-gateway" check \\\n' in script.read_text()
    gateway_command = str(Path(sys.executable).parent / "reallabor-gateway")
    check = [gateway_command, "check", "--config", str(folder / "gateway.yaml")]
    checked_config = subprocess.run(check, capture_output=True, text=True, cwd="/", timeout=60)
    assert checked_config.returncode == 0, checked_config.stderr
    assert "gateway.yaml: ok (gateway haus-c, 0 meter(s)" in checked_config.stdout
    assert shutil.which("shellcheck"), "make deps installs shellcheck"
    checked = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout
    unit = (folder / "reallabor-gateway.service").read_text()
    for directive in (
        "Restart=always",
        "User=reallabor-gw",
        "SupplementaryGroups=dialout",
        "StateDirectory=reallabor-gateway",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/reallabor-gateway",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "StartLimitIntervalSec=0",
    ):
        assert f"\n{directive}\n" in unit, directive
    if shutil.which("systemd-analyze"):
        testable = tmp_path / "reallabor-gateway.service"  # its ExecStart exists only on the Pi
        testable.write_text(
            "\n".join(
                "ExecStart=/bin/true" if line.startswith("ExecStart=") else line for line in unit.splitlines()
            )
        )
        verified = subprocess.run(
            ["systemd-analyze", "verify", str(testable)], capture_output=True, text=True, timeout=60
        )
        assert (verified.returncode, verified.stderr.strip()) == (0, "")


def test_install_script_refuses_before_it_changes_anything(tmp_path: Path) -> None:
    """Without a wheel or an index, or with an unknown argument, install.sh stops (exit 2) before its first
    change to the system; with a wheel, that first change is apt-get. Every command that changes the
    system is a stub here that fails, so nothing on this machine can be touched."""
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None)
    config = gateway_config("haus-d", username="gw-haus-d", password="a password", settings=settings)
    unpack(pack(config, meters=[], settings=settings), tmp_path)
    folder = tmp_path / "reallabor-gateway-haus-d"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for command in ("apt-get", "useradd", "usermod", "install", "systemctl", "runuser", "python3", "cp"):
        (stubs / command).write_text(f'#!/bin/sh\necho STUB {command} "$@"\nexit 99\n')
        (stubs / command).chmod(0o755)
    (stubs / "id").write_text("#!/bin/sh\necho 0\n")  # as root, also where the tests run as a user
    (stubs / "id").chmod(0o755)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": f"{stubs}:/usr/bin:/bin", "LANG": "C"}
        return subprocess.run(
            ["bash", str(folder / "install.sh"), *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=30,
        )

    bare = run()
    assert (bare.returncode, bare.stdout) == (2, "")
    assert "put reallabor_ingest-" in bare.stderr
    unknown = run("--bogus")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "unknown argument: --bogus" in unknown.stderr
    (folder / f"reallabor_ingest-{__version__}-py3-none-any.whl").write_bytes(b"not installed here")
    with_wheel = run()
    assert with_wheel.returncode == 99
    assert with_wheel.stdout.splitlines()[-1] == "STUB apt-get update -qq"


def test_local_broker_keeps_qos0_messages_for_the_resting_forwarder(tmp_path: Path) -> None:
    """The bundle's local Mosquitto as shipped: no anonymous login; a device's QoS 0 message published
    while the forwarder's persistent session is offline (the service restarting) waits for it."""
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None)
    config = gateway_config("haus-e", username="gw-haus-e", password="a password", settings=settings)
    unpack(pack(config, meters=[], settings=settings), tmp_path)
    folder = tmp_path / "reallabor-gateway-haus-e"
    lines = (folder / "local-devices.txt").read_text().splitlines()
    devices = dict(line.split() for line in lines if line.startswith("  ") and len(line.split()) == 2)
    local = config.local_broker
    assert local is not None
    assert local.username is not None
    assert local.password is not None
    assert local.client_id is None  # the forwarder makes its own at its first start (ingest/gateway/local.py)
    forwarder = {"username": local.username, "password": local.password.get_secret_value()}
    with BundledLocalBroker(tmp_path / "local", bundle=folder) as broker:
        assert connect_result(broker.port, "anybody", "guess") == "Not authorized"
        session = TestMqttClient(
            broker.port, client_id="reallabor-haus-e-forwarder-0123456789abcdef", **forwarder
        )
        assert session.connect(clean_start=False, session_expiry_s=600) == "Success"
        assert session.subscribe("tele/#") == "Granted QoS 1"
        session.close()  # the service restarts

        device = TestMqttClient(broker.port, username=DEVICES_USER, password=devices["password"])
        assert device.connect() == "Success"
        device.client.publish("tele/plug-2/SENSOR", b"qos0", qos=0).wait_for_publish(5)
        assert device.publish("tele/plug-2/STATE", b"qos1") == "Success"
        device.close()

        back = TestMqttClient(
            broker.port, client_id="reallabor-haus-e-forwarder-0123456789abcdef", **forwarder
        )
        assert back.connect(clean_start=False, session_expiry_s=600) == "Success"
        try:
            got = [back.messages.get(timeout=5) for _ in range(2)]
        finally:
            back.close()
        assert sorted(got) == [("tele/plug-2/SENSOR", b"qos0"), ("tele/plug-2/STATE", b"qos1")]
