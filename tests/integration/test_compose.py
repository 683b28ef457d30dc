"""docker-compose.yml, the production stack, as Debian's docker-compose (1.29) reads it: accepted with
.env.example, refused without any one secret, and shaped as README.md "Production" says (Docker itself
does not run here, so `docker-compose config` is as far as the stack goes in tests). The same for the
scale-out override docker-compose.scale.yml: three EMQX nodes in one cluster, three ingesters.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.config import Component, ConfigError, MqttSettings, load_settings
from ingest.deploy_preflight import SECRETS, problems

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / ".env.example"
LONG_RUNNING = ("mosquitto", "influxdb", "postgres", "api", "ingest", "grafana")
REQUIRED = (*SECRETS, "MQTT_INGEST_USER", "INFLUX_ADMIN_USER", "MQTT_TLS_CERT_FILE", "MQTT_TLS_KEY_FILE")
SCALE = (REPO / "docker-compose.yml", REPO / "docker-compose.scale.yml")
SCALE_REQUIRED = ("EMQX_NODE_COOKIE", "EMQX_DASHBOARD_PASSWORD", "EMQX_ACCOUNTS_FILE")
SCALE_EXAMPLE = {
    "EMQX_NODE_COOKIE": "<generate: openssl rand -base64 24>",
    "EMQX_DASHBOARD_PASSWORD": "<generate: openssl rand -base64 24>",
    "EMQX_ACCOUNTS_FILE": "./deploy/emqx/accounts.csv",
}
EMQX_NODES = ("emqx-0", "emqx-1", "emqx-2")
INGESTERS = ("ingest-0", "ingest-1", "ingest-2")
EMQX_DIR = REPO / "deploy" / "emqx"


def compose_config(env_file: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of ``files`` (default docker-compose.yml), only ``env_file``'s variables."""
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is missing: make deps installs it"
    # only the env file speaks: none of the stack's variables from this process's environment
    env = {key: value for key, value in os.environ.items() if key not in (*REQUIRED, *SCALE_REQUIRED)}
    chosen = [argument for file in files for argument in ("-f", str(file))]
    return subprocess.run(
        [binary, "--project-directory", str(REPO), "--env-file", str(env_file), *chosen, "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def example_values() -> dict[str, str]:
    values = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    result = compose_config(EXAMPLE)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_the_example_env_names_every_variable_and_none_starts(stack: dict[str, Any]) -> None:
    values = example_values()
    assert set(REQUIRED) <= set(values)
    # docker-compose accepts the placeholders; the preflight service, which every service waits for,
    # refuses each of them
    refused = problems(values)
    assert [line.split(":")[0] for line in refused] == list(SECRETS)
    services = stack["services"]
    for name, service in services.items():
        if name != "preflight":
            assert service["depends_on"]["preflight"] == {"condition": "service_completed_successfully"}, name
    assert services["preflight"]["command"] == ["python", "-m", "ingest.deploy_preflight"]
    assert set(services["preflight"]["environment"]) == set(SECRETS)


def test_each_missing_secret_is_refused(tmp_path: Path) -> None:
    lines = EXAMPLE.read_text().splitlines()
    for name in REQUIRED:
        env_file = tmp_path / f"{name}.env"
        env_file.write_text("\n".join(line for line in lines if not line.startswith(f"{name}=")) + "\n")
        result = compose_config(env_file)
        assert result.returncode != 0, f"accepted without {name}"
        assert f"set {name}" in result.stderr, (name, result.stderr[-300:])


def test_the_stack(stack: dict[str, Any]) -> None:
    services = stack["services"]
    # energy and opendata: loops, no port
    assert set(services) == {"preflight", *LONG_RUNNING, "energy", "opendata", "simulator"}
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "unless-stopped", name
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"].startswith("influxdb:2")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    named = set(stack["volumes"])

    def volumes(service: str) -> list[tuple[str, str]]:
        """(source, target) of each volume, as docker-compose 1.29 prints them (short syntax)."""
        return [tuple(volume.split(":")[:2]) for volume in services[service].get("volumes", [])]

    for name in ("mosquitto", "influxdb", "postgres", "ingest", "grafana"):
        sources = {source for source, _ in volumes(name) if not source.startswith("/")}
        assert sources, name
        assert sources <= named, name

    def mounts(service: str) -> dict[str, str]:
        return {target: source for source, target in volumes(service) if source.startswith("/")}

    # TLS for gateways: certificate and key from the environment, only 8883 open beyond loopback
    tls = mounts("mosquitto")
    assert tls["/mosquitto/certs/server.crt"] == str(REPO / "deploy" / "certs" / "server.crt")
    assert tls["/mosquitto/certs/server.key"] == str(REPO / "deploy" / "certs" / "server.key")
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # 1.29 prints a port without host address in long syntax
                port = f"{port.get('host_ip', '0.0.0.0')}:{port['published']}:{port['target']}"
            public = not port.startswith("127.0.0.1:")
            assert not public or (name, port) == ("mosquitto", "0.0.0.0:8883:8883"), (name, port)
    # InfluxDB 2 with the DBRP init script; Grafana provisioned from deploy/grafana and dashboards/
    assert mounts("influxdb")["/docker-entrypoint-initdb.d"] == str(REPO / "deploy" / "influx2")
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == str(REPO / "deploy" / "grafana" / "provisioning")
    assert grafana["/var/lib/grafana/dashboards"] == str(REPO / "dashboards")
    assert set(services["grafana"]["environment"]) >= {"INFLUX_GRAFANA_PASSWORD", "GRAFANA_ALERT_WEBHOOK_URL"}
    # the registry in PostgreSQL for the API (which migrates it) and the ingester (which enriches from it)
    for name in ("api", "ingest"):
        url = services[name]["environment"]["REALLABOR_REGISTRY__URL"]
        assert url.startswith("postgresql+psycopg://reallabor:")
        assert url.endswith("@postgres:5432/reallabor")
        assert services[name]["environment"]["REALLABOR_MODE"] == "production"
    assert services["ingest"]["depends_on"]["api"] == {"condition": "service_healthy"}
    assert services["api"]["command"][:2] == ["reallabor", "api"]


def test_the_open_data_run_shares_its_files_with_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review18 M10: a service runs `reallabor opendata run`, writing to a named volume that the API
    mounts read-only at its opendata.out_dir; both read the ledger's energy.window, as the ledger does
    (a day is published once the ledger no longer rewrites it); it reads InfluxDB as the read-only user."""
    result = compose_config(random_env(tmp_path))  # generated secrets: production settings load
    assert result.returncode == 0, result.stderr
    stack = yaml.safe_load(result.stdout)
    services = stack["services"]
    run, api, ledger = services["opendata"], services["api"], services["energy"]
    assert run["command"] == ["reallabor", "opendata", "run"]
    assert run["restart"] == "unless-stopped"
    assert run["depends_on"]["api"] == {"condition": "service_healthy"}  # the registry is migrated
    assert run["build"] == api["build"]
    assert "opendata" in stack["volumes"]

    def mounted(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
        out = {}
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            out[source] = (target, mode[0] if mode else "rw")
        return out

    written_at, written_mode = mounted(run)["opendata"]
    served_at, served_mode = mounted(api)["opendata"]
    assert (written_mode, served_mode) == ("rw", "ro")

    def settings_of(service: dict[str, Any]) -> Any:
        for name in [name for name in os.environ if name.startswith("REALLABOR_")]:
            monkeypatch.delenv(name)
        for name, value in service["environment"].items():
            monkeypatch.setenv(name, str(value))
        return load_settings(None)

    ours = settings_of(run)
    assert str(ours.opendata.out_dir) == written_at
    assert ours.energy.window == ledger["environment"]["REALLABOR_ENERGY__WINDOW"] == "1d"
    assert ours.influx.read_username == "reader"
    assert ours.influx.username is None  # no write credential
    assert ours.registry.url.endswith("@postgres:5432/reallabor")
    assert str(settings_of(api).opendata.out_dir) == served_at


def random_env(tmp_path: Path) -> Path:
    """.env.example with every placeholder replaced by a generated secret, as an operator fills it."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        key, _, value = line.partition("=")
        if value.startswith("<"):
            secret = secrets.token_urlsafe(32)
            value = secret if key == "API_SECRET_KEY" else secret[:24]
        lines.append(f"{key}={value}" if key and not line.startswith("#") else line)
    env_file = tmp_path / "good.env"
    env_file.write_text("\n".join(lines) + "\n")
    return env_file


@pytest.mark.parametrize(
    ("service", "component"), [("ingest", "ingest"), ("api", "api"), ("energy", "energy")]
)
def test_each_part_starts_with_its_own_secrets_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str, component: Component
) -> None:
    result = compose_config(random_env(tmp_path))
    assert result.returncode == 0, result.stderr
    stack = yaml.safe_load(result.stdout)["services"]
    assert not problems(stack["preflight"]["environment"])  # generated secrets pass the preflight
    environment: dict[str, str] = stack[service]["environment"]
    for name in [name for name in os.environ if name.startswith("REALLABOR_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = load_settings(None)
    assert settings.mode == "production"
    settings.check_production(component)  # what `reallabor <part>` checks before it starts
    others = {"ingest": "REALLABOR_MQTT__PASSWORD", "api": "REALLABOR_API__SECRET_KEY"}
    held = {name for part, name in others.items() if name in environment and part != component}
    assert not held, f"{service} holds another part's secret: {held}"
    # and without its own secret it refuses, naming the key
    own = {"ingest": "REALLABOR_MQTT__USERNAME", "api": "REALLABOR_API__SECRET_KEY"}
    if component in own:
        monkeypatch.delenv(own[component])
        with pytest.raises(ConfigError, match="required in mode 'production'"):
            load_settings(None).check_production(component)


# ---------------------------------------------------------------- docker-compose.scale.yml


def scale_env(tmp_path: Path, base: Path = EXAMPLE, *, leave_out: str = "") -> Path:
    """``base`` plus the scale file's variables (placeholders as .env.example has them), but ``leave_out``."""
    lines = [line for line in base.read_text().splitlines() if line.strip() and not line.startswith("#")]
    lines += [f"{key}={value}" for key, value in SCALE_EXAMPLE.items()]
    env_file = tmp_path / f"scale-{leave_out or 'all'}.env"
    env_file.write_text("\n".join(line for line in lines if not line.startswith(f"{leave_out}=")) + "\n")
    return env_file


@pytest.fixture(scope="module")
def scale_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # as an operator fills .env: the default stack's secrets generated (the EMQX ones as placeholders)
    directory = tmp_path_factory.mktemp("scale")
    result = compose_config(scale_env(directory, random_env(directory)), *SCALE)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def emqx_setting(key: str) -> str:
    """The value of ``key = ...`` in deploy/emqx/emqx.conf (HOCON; the lines this test reads are simple)."""
    found = re.search(rf"^\s*{re.escape(key)}\s*=\s*(.+?)\s*$", (EMQX_DIR / "emqx.conf").read_text(), re.M)
    assert found, f"{key} not set in deploy/emqx/emqx.conf"
    return str(found.group(1))


def named_volume(service: dict[str, Any], target: str) -> str:
    volumes: list[str] = service["volumes"]
    sources = [v.split(":")[0] for v in volumes if v.split(":")[1] == target]
    assert len(sources) == 1, (target, service["volumes"])
    return sources[0]


def test_the_scale_file_needs_its_secrets_and_the_default_stack_does_not(
    tmp_path: Path, stack: dict[str, Any]
) -> None:
    # the default stack, read without any EMQX variable (the `stack` fixture), is as it was
    assert not {name for name in stack["services"] if name.startswith(("emqx", "ingest-"))}
    for name in SCALE_REQUIRED:
        result = compose_config(scale_env(tmp_path, leave_out=name), *SCALE)
        assert result.returncode != 0, f"accepted without {name}"
        assert f"set {name}" in result.stderr, (name, result.stderr[-300:])


def test_the_scale_file_runs_three_emqx_nodes_in_one_cluster(scale_stack: dict[str, Any]) -> None:
    services, env = scale_stack["services"], SCALE_EXAMPLE
    nodes = [services[name] for name in EMQX_NODES]
    # pinned below 5.9, whose licence (BSL, a community licence for one node) allows no cluster
    for node in nodes:
        version = re.fullmatch(r"emqx/emqx:(\d+)\.(\d+)\.(\d+)", node["image"])
        assert version, node["image"]
        assert (int(version[1]), int(version[2])) < (5, 9), node["image"]
        assert node["restart"] == "unless-stopped"
        assert node["healthcheck"]["test"] == ["CMD", "emqx", "ctl", "status"]
        assert node["depends_on"]["preflight"] == {"condition": "service_completed_successfully"}
        # the secrets from the environment, as given, no default
        assert node["environment"]["EMQX_NODE__COOKIE"] == env["EMQX_NODE_COOKIE"]
        assert node["environment"]["EMQX_DASHBOARD__DEFAULT_PASSWORD"] == env["EMQX_DASHBOARD_PASSWORD"]
    # one cluster: each node's name is one of the static seeds and resolvable (its network alias)
    names = [node["environment"]["EMQX_NODE__NAME"] for node in nodes]
    assert len(set(names)) == 3
    assert emqx_setting("discovery_strategy") == "static"
    seeds = re.search(r"static\.seeds = \[(.*?)\]", (EMQX_DIR / "emqx.conf").read_text(), re.S)
    assert seeds
    assert set(re.findall(r'"([^"]+)"', seeds[1])) == set(names)
    for node, name in zip(nodes, names, strict=True):
        assert node["networks"]["default"]["aliases"] == [name.split("@")[1]]
        assert node["hostname"] == name.split("@")[1]
    # each node its own data volume, all declared; the same configuration, ACL and accounts mounted
    data = [named_volume(node, "/opt/emqx/data") for node in nodes]
    assert len(set(data)) == 3
    assert set(data) <= set(scale_stack["volumes"])
    for node in nodes:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in node["volumes"]}
        assert mounts["/opt/emqx/etc/emqx.conf"] == str(EMQX_DIR / "emqx.conf")
        assert mounts["/opt/emqx/etc/reallabor/acl.conf"] == str(EMQX_DIR / "acl.conf")
        assert mounts["/opt/emqx/etc/reallabor/accounts.csv"] == str(EMQX_DIR / "accounts.csv")
        assert mounts["/opt/emqx/etc/certs/server.crt"] == str(REPO / "deploy" / "certs" / "server.crt")
    # gateways: TLS on each node, each on a host port of its own; the dashboard on loopback only
    published = {}
    for name, node in zip(EMQX_NODES, nodes, strict=True):
        for port in node["ports"]:
            if isinstance(port, dict):
                published[port["published"]] = (name, port["target"], port.get("host_ip", "0.0.0.0"))
            else:
                host_ip, host_port, target = port.removesuffix("/tcp").split(":")
                published[int(host_port)] = (name, int(target), host_ip)
    public = {port: where for port, where in published.items() if where[2] != "127.0.0.1"}
    assert sorted(where[:2] for where in public.values()) == [(name, 8883) for name in EMQX_NODES]
    assert published[18083] == ("emqx-0", 18083, "127.0.0.1")
    assert set(public).isdisjoint({8883})  # Mosquitto keeps 8883: the API depends on it


def test_emqx_matches_the_ingesters_session_settings() -> None:
    defaults = MqttSettings()
    assert emqx_setting("shared_subscription_strategy") == "hash_clientid"
    # EMQX grants min(Receive Maximum, max_inflight): the ingester's must not be cut
    assert int(emqx_setting("max_inflight")) >= defaults.receive_maximum
    assert int(emqx_setting("max_mqueue_len")) >= 2_000_000  # as Mosquitto's max_queued_messages
    assert emqx_setting("session_expiry_interval") == f"{defaults.session_expiry_s // 86400}d"
    assert emqx_setting("user_id_type") == "clientid"  # a password is good for one client id only
    assert emqx_setting("no_match") == "deny"


@pytest.mark.parametrize("instance", range(3))
def test_the_scale_file_runs_three_ingesters_each_with_its_own_identity(
    scale_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, instance: int
) -> None:
    services = scale_stack["services"]
    assert services["ingest"]["profiles"] == ["single"]  # the default stack's one ingester stays out
    ingesters = [services[name] for name in INGESTERS]
    assert [service["command"] for service in ingesters] == [
        ["reallabor", "ingest", "--instance", str(k), "--of", "3"] for k in range(3)
    ]
    state = [named_volume(service, "/var/lib/reallabor") for service in ingesters]
    assert len(set(state)) == 3
    assert set(state) <= set(scale_stack["volumes"])
    assert set(state).isdisjoint({named_volume(services["ingest"], "/var/lib/reallabor")})
    service = ingesters[instance]
    # the default stack's ingester but for the broker's addresses: nothing drifts apart
    environment: dict[str, str] = service["environment"]
    base = {k: v for k, v in services["ingest"]["environment"].items() if k != "REALLABOR_MQTT__HOST"}
    own_keys = {"REALLABOR_MQTT__BROKERS", "REALLABOR_INGEST__SPOOL_MAX_BYTES"}
    assert {k: v for k, v in environment.items() if k not in own_keys} == base
    # the settings it starts with: --instance K --of 3 as ingest.instance and ingest.instances
    for name in [name for name in os.environ if name.startswith("REALLABOR_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("REALLABOR_INGEST__INSTANCE", service["command"][3])
    monkeypatch.setenv("REALLABOR_INGEST__INSTANCES", service["command"][5])
    settings = load_settings(None)
    settings.check_production("ingest")
    own = settings.as_instance()
    assert own.mqtt.client_id == f"reallabor-ingest-{instance}"
    # the spool outlasts an InfluxDB outage of hours at the city's 15 s (docs/scaling.md: 3,340 msg/s per
    # instance, ~251 B per message), not the default's ~21 min
    assert own.ingest.spool_max_bytes / (3_340 * 251) > 5 * 3600
    assert own.mqtt.shared_group  # $share/<group>/...: hash_clientid spreads the gateways over the group
    # its own node first, then the others: every node of the cluster
    addresses = own.mqtt.addresses()
    assert addresses[0] == (EMQX_NODES[instance], 1883)
    assert sorted(addresses) == [(name, 1883) for name in EMQX_NODES]
    assert service["depends_on"][EMQX_NODES[instance]] == {"condition": "service_healthy"}
    assert own.ingest.state_dir == Path(f"/var/lib/reallabor/instance-{instance}")
    port = own.ingest.metrics_port
    assert port == 9108 + instance
    assert service["ports"] == [f"127.0.0.1:{port}:{port}/tcp"]
    assert f"http://127.0.0.1:{port}/metrics" in service["healthcheck"]["test"][-1]
    # and the ACL lets exactly this client id read the gateways' topics
    acl = (EMQX_DIR / "acl.conf").read_text()
    rule = re.search(r'\{allow, \{clientid, \{re, "([^"]+)"\}\}, subscribe', acl)
    assert rule
    assert re.fullmatch(rule[1], own.mqtt.client_id)
    assert not re.fullmatch(rule[1], f"gw-{own.mqtt.client_id}")


def test_the_ingester_accounts_file_holds_salted_hashes_emqx_checks(tmp_path: Path) -> None:
    script = EMQX_DIR / "ingester-accounts.sh"
    password = secrets.token_urlsafe(18)
    env = {"PATH": os.environ["PATH"], "MQTT_INGEST_PASSWORD": password}
    result = subprocess.run([script, "3"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["user_id"] for row in rows] == [f"reallabor-ingest-{k}" for k in range(3)]
    assert len({row["salt"] for row in rows}) == 3
    for row in rows:
        # EMQX's sha256 with salt_position prefix: hex(sha256(salt ++ password)), emqx_passwd in 5.8
        assert row["password_hash"] == hashlib.sha256((row["salt"] + password).encode()).hexdigest()
        assert row["is_superuser"] == "false"
    for arguments, environment, says in (
        (["0"], env, "INSTANCES must be a whole number from 1"),
        (["3"], {"PATH": os.environ["PATH"]}, "set MQTT_INGEST_PASSWORD"),
    ):
        refused = subprocess.run(
            [script, *arguments], capture_output=True, text=True, env=environment, timeout=30, check=False
        )
        assert refused.returncode == 2, arguments
        assert says in refused.stderr
        assert not refused.stdout


def test_the_preflight_refuses_placeholder_emqx_secrets(scale_stack: dict[str, Any]) -> None:
    environment = scale_stack["services"]["preflight"]["environment"]
    assert {"EMQX_NODE_COOKIE", "EMQX_DASHBOARD_PASSWORD"} <= set(environment)
    refused = {line.split(":")[0] for line in problems(environment)}
    assert {"EMQX_NODE_COOKIE", "EMQX_DASHBOARD_PASSWORD"} <= refused
