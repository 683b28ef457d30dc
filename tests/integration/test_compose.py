"""docker-compose.yml, the production stack, as Debian's docker-compose (1.29) reads it: accepted with
.env.example, refused without any one secret, and shaped as README.md "Production" says (Docker itself
does not run here, so `docker-compose config` is as far as the stack goes in tests).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.config import Component, ConfigError, load_settings
from ingest.deploy_preflight import SECRETS, problems

pytestmark = [pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / ".env.example"
LONG_RUNNING = ("mosquitto", "influxdb", "postgres", "api", "ingest", "grafana")
REQUIRED = (*SECRETS, "MQTT_INGEST_USER", "INFLUX_ADMIN_USER", "MQTT_TLS_CERT_FILE", "MQTT_TLS_KEY_FILE")


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "Debian's docker-compose is missing: make deps installs it"
    # only the env file speaks: none of the stack's variables from this process's environment
    env = {key: value for key, value in os.environ.items() if key not in REQUIRED}
    return subprocess.run(
        [binary, "--project-directory", str(REPO), "--env-file", str(env_file), "config"],
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
    assert set(services) == {"preflight", *LONG_RUNNING, "energy", "simulator"}  # energy: a loop, no port
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
