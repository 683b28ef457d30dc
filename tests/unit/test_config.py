"""Settings: refused at start with key path and value (exit 2); secrets only default in development."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.config import ConfigError, load_settings

GOOD_PRODUCTION = """\
mode: production
mqtt: {username: ingest, password: "s3cret-mqtt-Pw"}
influx: {password: "s3cret-influx-Pw", username: ingest}
api: {secret_key: "a-long-random-signing-key"}
"""


def check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env={**clean_env, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: {hots: broker}\n", "mqtt.hots: unknown key (got 'broker')"),
        ("influx: {batch_size: lots}\n", "influx.batch_size: Input should be a valid integer"),
        (
            "influx: {batch_size: 0}\n",
            "influx.batch_size: Input should be greater than or equal to 1 (got 0)",
        ),
        ("mqtt: {port: 70000}\n", "mqtt.port"),
        ("influx: {url: 'ftp://x'}\n", "influx.url"),
        ("influx: {api: v2}\n", "influx: api v2 needs org and bucket"),
        ("mode: staging\n", "mode: Input should be 'development' or 'production' (got 'staging')"),
        ("colour: blue\n", "colour: unknown key (got 'blue')"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("mqtt: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_exits_2_with_key_path(tmp_path: Path, text: str, expected: str) -> None:
    result = check(tmp_path, text)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_good_development_config(tmp_path: Path) -> None:
    result = check(tmp_path, "influx: {database: lab}\n")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("api: {secret_key", "api.secret_key: required in mode 'production'"),
        ("influx: {password", "influx.password: required in mode 'production'"),
        ("mqtt: {username", "mqtt.username: required in mode 'production'"),
    ],
)
def test_production_refuses_missing_secrets(tmp_path: Path, drop: str, expected: str) -> None:
    text = "\n".join(line for line in GOOD_PRODUCTION.splitlines() if not line.startswith(drop))
    result = check(tmp_path, text)
    assert result.returncode == 2
    assert expected in result.stderr


def test_production_refuses_placeholders_and_hides_secrets(tmp_path: Path) -> None:
    result = check(tmp_path, GOOD_PRODUCTION.replace("a-long-random-signing-key", "changeme"))
    assert result.returncode == 2
    assert "api.secret_key: placeholder value refused" in result.stderr
    assert "changeme" not in result.stderr
    assert check(tmp_path, GOOD_PRODUCTION).returncode == 0


def test_environment_overrides_file_and_is_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("influx: {database: from_file, batch_size: 10}\n")
    os.environ["REALLABOR_INFLUX__DATABASE"] = "from_env"
    try:
        settings = load_settings(path)
    finally:
        del os.environ["REALLABOR_INFLUX__DATABASE"]
    assert settings.influx.database == "from_env"
    assert settings.influx.batch_size == 10
    result = check(tmp_path, "influx: {database: x}\n", env={"REALLABOR_MQTT__PORT": "not-a-port"})
    assert result.returncode == 2
    assert "mqtt.port" in result.stderr


def test_secret_from_environment_in_production(tmp_path: Path) -> None:
    text = "\n".join(line for line in GOOD_PRODUCTION.splitlines() if not line.startswith("api:"))
    result = check(tmp_path, text, env={"REALLABOR_API__SECRET_KEY": "from-the-environment-42"})
    assert result.returncode == 0, result.stderr


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")
