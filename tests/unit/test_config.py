"""Settings: refused at start with key path and value (exit 2); secrets only default in development."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import secrets
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.config import ConfigError, load_settings
from ingest.security.strength import placeholder_problem, weakness

API_KEY = secrets.token_urlsafe(32)
GOOD_PRODUCTION = f"""\
mode: production
mqtt: {{username: ingest, password: "{secrets.token_urlsafe(18)}"}}
influx: {{password: "{secrets.token_urlsafe(18)}", username: ingest}}
api: {{secret_key: "{API_KEY}"}}
"""
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


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
        ("mqtt: {hots: broker}\n", "mqtt.hots: unknown key"),
        ("influx: {batch_size: lots}\n", "influx.batch_size: Input should be a valid integer"),
        (
            "influx: {batch_size: 0}\n",
            "influx.batch_size: Input should be greater than or equal to 1 (got 0)",
        ),
        ("mqtt: {port: 70000}\n", "mqtt.port"),
        (
            "mqtt: {receive_maximum: 40000}\n",
            "mqtt.receive_maximum: Input should be less than or equal to 32767 (got 40000)",
        ),
        ("influx: {url: 'ftp://x'}\n", "influx.url"),
        ("influx: {api: v2}\n", "influx: api v2 needs org and bucket"),
        ("mode: staging\n", "mode: Input should be 'development' or 'production' (got 'staging')"),
        ("colour: blue\n", "colour: unknown key"),
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
    result = check(tmp_path, GOOD_PRODUCTION.replace(API_KEY, "changeme"))
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
    result = check(tmp_path, text, env={"REALLABOR_API__SECRET_KEY": secrets.token_urlsafe(32)})
    assert result.returncode == 0, result.stderr
    result = check(tmp_path, text, env={"REALLABOR_API__SECRET_KEY": "from-the-environment-42"})
    assert result.returncode == 2
    assert "api.secret_key: too short" in result.stderr


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


SECRET_PATHS = ["api.secret_key", "mqtt.password", "influx.password", "influx.token", "broker_admin.password"]
PLACEHOLDERS = ["changeme", "CHANGE-ME", "change_me", " password ", "<your secret>", "${TOKEN}", "xxxxxxxx"]


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("REALLABOR_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def refusal(tmp_path: Path) -> Callable[[str], str]:
    """The ConfigError message for a settings file (in-process; the CLI path is tested apart)."""

    def load(text: str) -> str:
        path = tmp_path / "refused.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_settings(path)
        return str(caught.value)

    return load


def _yaml_with(path: str, value: str, base: str = "") -> str:
    section, key = path.split(".")
    return f"{base}{section}: {{{key}: {value!r}}}\n"


@pytest.mark.parametrize("path", SECRET_PATHS)
@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_development_refuses_placeholder_secrets(
    refusal: Callable[[str], str], path: str, value: str
) -> None:
    message = refusal(_yaml_with(path, value))
    assert f"{path}: placeholder value refused in mode 'development'" in message
    assert value.strip() not in message.replace(path, "")


@pytest.mark.parametrize("path", ["api.secret_key", "broker_admin.password"])
def test_cli_refuses_placeholder_in_development_with_the_key_path(tmp_path: Path, path: str) -> None:
    result = check(tmp_path, _yaml_with(path, "changeme"))
    assert result.returncode == 2, result.stderr
    assert f"{path}: placeholder value refused in mode 'development'" in result.stderr
    assert "changeme" not in result.stderr
    assert "Traceback" not in result.stderr


def test_development_takes_unset_or_random_secrets(tmp_path: Path) -> None:
    assert check(tmp_path, "influx: {database: lab}\n").returncode == 0  # the API makes an ephemeral key
    text = "".join(_yaml_with(path, secrets.token_urlsafe(8)) for path in SECRET_PATHS[:2])
    text += f"influx: {{password: {secrets.token_urlsafe(8)}, token: {secrets.token_urlsafe(8)}}}\n"
    text += _yaml_with("broker_admin.password", secrets.token_urlsafe(8))
    result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr


def _production_with_key(key: str) -> str:
    return GOOD_PRODUCTION.replace(API_KEY, key)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("a-long-random-signing-key", "too short (25 characters"),
        (secrets.token_urlsafe(31), "too short (42 characters"),
        (secrets.token_hex(30), "too short (60 hex digits"),
        ("ab" * 40, "not random"),
    ],
    ids=["25-chars", "urlsafe-31-bytes", "hex-30-bytes", "repeated"],
)
def test_production_secret_key_needs_32_random_bytes(
    refusal: Callable[[str], str], key: str, problem: str
) -> None:
    message = refusal(_production_with_key(key))
    assert f"api.secret_key: {problem}" in message
    assert MAKE_A_KEY in message
    assert key not in message


def test_cli_refuses_a_short_secret_key_in_production(tmp_path: Path) -> None:
    result = check(tmp_path, _production_with_key("a-long-random-signing-key"))
    assert result.returncode == 2, result.stderr
    assert "api.secret_key: too short (25 characters" in result.stderr
    assert MAKE_A_KEY in result.stderr
    assert "a-long-random-signing-key" not in result.stderr


@pytest.mark.parametrize(
    "key",
    [secrets.token_urlsafe(32), secrets.token_hex(32), secrets.token_urlsafe(64)],
    ids=["urlsafe-32-bytes", "hex-32-bytes", "urlsafe-64-bytes"],
)
def test_production_takes_a_random_secret_key(tmp_path: Path, key: str) -> None:
    settings = load_settings(_write(tmp_path, _production_with_key(key)))
    assert settings.api.secret_key is not None
    assert settings.api.secret_key.get_secret_value() == key


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('mqtt: {username: ingest, password: "short-pw-1"}', "mqtt.password"),
        ('influx: {password: "short-pw-2", username: ingest}', "influx.password"),
        ('influx: {api: v2, org: lab, bucket: b, token: "short-token"}', "influx.token"),
        ('broker_admin: {password: "short-pw-3"}', "broker_admin.password"),
    ],
    ids=["mqtt", "influx-v1", "influx-v2", "broker-admin"],
)
def test_production_refuses_short_secrets(refusal: Callable[[str], str], text: str, path: str) -> None:
    section = text.split(":")[0]
    lines = [line for line in GOOD_PRODUCTION.splitlines() if not line.startswith(section + ":")]
    message = refusal("\n".join([*lines, text]) + "\n")
    assert f"{path}: too short (10 characters" in message or f"{path}: too short (11 characters" in message
    assert "at least 16 characters" in message
    assert "short-" not in message


def test_production_secrets_of_sane_length_pass(tmp_path: Path) -> None:
    text = GOOD_PRODUCTION + f'broker_admin: {{password: "{secrets.token_urlsafe(12)}"}}\n'
    settings = load_settings(_write(tmp_path, text))
    assert settings.broker_admin.password is not None


# ---------------------------------------------------------------- weak secrets (security review B)

RANDOM_PASSWORD = "f2h_nS99jRJfvDP8Co1ySA"  # token_urlsafe(16), fixed: the test ids stay the same
RANDOM_KEY = "ZuDVWHnmtdK0dZ1lAFEoM0eIZY2ywGsgmmAsqmklY9"  # token_urlsafe(32) less its last character
WEAK_IN_PRODUCTION = [
    # the review's values
    ("api.secret_key", " " * 31 + "abcdefghijkl", "leading or trailing whitespace refused"),
    ("api.secret_key", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", "not random (a run of 26 consecutive"),
    ("api.secret_key", "changeme" * 4 + "0123456789a", "contains a placeholder word"),
    ("api.secret_key", "0123456789abcdef" * 4, "not random (repeats a pattern of 16 characters)"),
    ("api.secret_key", "${API_SECRET_KEY}-please-change-0123456789", "placeholder value refused"),
    ("mqtt.password", "changeme12345678", "contains a placeholder word"),
    ("mqtt.password", "\u0441hangeme\u0441hangeme", "characters outside printable ASCII"),
    ("mqtt.password", "abababababababab", "not random (repeats a pattern of 2 characters)"),
    ("mqtt.password", "\uff43\uff48\uff41\uff4e\uff47\uff45\uff4d\uff45", "placeholder value refused"),
    ("mqtt.password", "change\u200bme", "placeholder value refused"),
    ("mqtt.password", "\u00a0changeme\u00a0", "placeholder value refused"),
    # more of the kind
    ("api.secret_key", "correct horse battery staple, and some more words", "not a generated key (it"),
    ("api.secret_key", "a" * 20 + "Kq3Zx9Lw2Vb7Nm5Rt8Yh4Jd6Pf1Sg0Tc_", "not random (a run of 20 consecutive"),
    ("api.secret_key", "LLKx2wLxw9VZ23x3qVx27V3xq7qb9w2q9L9VbZ2ww2xK2Kq7", "not random (about 3.5 bits"),
    ("api.secret_key", RANDOM_KEY + "\u0430", "characters outside printable ASCII"),  # Cyrillic a
    ("influx.password", "Ingest-Password-Long-1", "contains a placeholder word"),
    ("influx.password", "Zq8!abcdefghijkl", "not random (a run of 12 consecutive"),
    ("broker_admin.password", "aabbaabbccddccdd", "not random (only 4 different characters)"),
    ("broker_admin.password", RANDOM_PASSWORD + "\n", "leading or trailing whitespace refused"),
    ("influx.password", "xY1!xY1!xY1!xY1!x", "not random (repeats a pattern of 4 characters)"),
    ("influx.password", "Reallabor-Admin-2026", "contains a placeholder word"),
    ("mqtt.password", "98765432" + "Qz!k" * 2, "not random (a run of 8 consecutive"),
]


def _production_with(path: str, value: str) -> str:
    """GOOD_PRODUCTION with ``path`` set to ``value`` (JSON quoting: YAML reads its escapes)."""
    section, key = path.split(".")
    lines = [line for line in GOOD_PRODUCTION.splitlines() if not line.startswith(f"{section}:")]
    kept = {
        "mqtt": f"mqtt: {{username: ingest, {key}: {json.dumps(value)}}}",
        "influx": f"influx: {{username: ingest, {key}: {json.dumps(value)}}}",
        "api": f"api: {{{key}: {json.dumps(value)}}}",
        "broker_admin": f"broker_admin: {{{key}: {json.dumps(value)}}}",
    }
    return "\n".join([*lines, kept[section]]) + "\n"


@pytest.mark.parametrize(("path", "value", "problem"), WEAK_IN_PRODUCTION)
def test_production_refuses_weak_secrets(
    refusal: Callable[[str], str], path: str, value: str, problem: str
) -> None:
    message = refusal(_production_with(path, value))
    assert f"{path}: {problem}" in message, message
    assert value.strip() not in message
    assert value.strip()[:12] not in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f" {RANDOM_PASSWORD}", "leading or trailing whitespace refused in mode 'development'"),
        (f"{RANDOM_PASSWORD}\t", "leading or trailing whitespace refused in mode 'development'"),
        (RANDOM_PASSWORD + "\u200b", "characters outside printable ASCII"),
        ("\u0441hangeme\u0441hangeme", "characters outside printable ASCII"),
        ("${MQTT_PASSWORD}", "placeholder value refused in mode 'development'"),
        (f"${{MQTT_PASSWORD}}{RANDOM_PASSWORD}", "placeholder value refused in mode 'development'"),
    ],
)
def test_every_mode_refuses_padding_look_alikes_and_unexpanded_variables(
    refusal: Callable[[str], str], value: str, problem: str
) -> None:
    message = refusal(f"mqtt: {{username: ingest, password: {json.dumps(value)}}}\n")
    assert f"mqtt.password: {problem}" in message, message
    assert RANDOM_PASSWORD not in message


def test_cli_refuses_a_weak_secret_from_the_environment(tmp_path: Path) -> None:
    """The environment wins over the file, and is checked the same way."""
    result = check(tmp_path, GOOD_PRODUCTION, env={"REALLABOR_MQTT__PASSWORD": "changeme12345678"})
    assert result.returncode == 2, result.stderr
    assert "mqtt.password: contains a placeholder word" in result.stderr
    assert "changeme12345678" not in result.stderr


def _b64(rng: random.Random, nbytes: int) -> str:
    return base64.b64encode(rng.randbytes(nbytes)).decode()


def _urlsafe(rng: random.Random, nbytes: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(nbytes)).rstrip(b"=").decode()


def _chosen(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


_SYMBOLS = string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~"
GENERATED: dict[str, tuple[Callable[[random.Random], str], bool]] = {
    # name: (generator, is api.secret_key); each the shape of a common generator's output
    "token_urlsafe(32)": (lambda rng: _urlsafe(rng, 32), True),
    "token_hex(32)": (lambda rng: rng.randbytes(32).hex(), True),
    "token_urlsafe(64)": (lambda rng: _urlsafe(rng, 64), True),
    "openssl rand -base64 32": (lambda rng: _b64(rng, 32), True),
    "token_urlsafe(16)": (lambda rng: _urlsafe(rng, 16), False),
    "token_urlsafe(12)": (lambda rng: _urlsafe(rng, 12), False),
    "openssl rand -base64 24": (lambda rng: _b64(rng, 24), False),
    "openssl rand -hex 8": (lambda rng: rng.randbytes(8).hex(), False),
    "openssl rand -hex 16": (lambda rng: rng.randbytes(16).hex(), False),
    "pwgen -s 20": (lambda rng: _chosen(rng, string.ascii_letters + string.digits, 20), False),
    "password manager, 20 with symbols": (lambda rng: _chosen(rng, _SYMBOLS, 20), False),
}


@pytest.mark.parametrize("kind", GENERATED)
def test_thousands_of_generated_secrets_pass_in_production(kind: str) -> None:
    """No false positives: the rule refuses made-up values, not random ones (seeded: reproducible)."""
    generate, api_key = GENERATED[kind]
    rng = random.Random(kind)
    for _ in range(5000):
        value = generate(rng)
        assert placeholder_problem(value) is None, (kind, value)
        assert weakness(value, api_key=api_key) is None, (kind, value)


@pytest.mark.parametrize("kind", [name for name, (_, api_key) in GENERATED.items() if api_key])
def test_generated_keys_and_passwords_pass_through_the_settings(tmp_path: Path, kind: str) -> None:
    key = GENERATED[kind][0](random.Random())
    text = _production_with("api.secret_key", key)
    text += f"broker_admin: {{password: {json.dumps(secrets.token_urlsafe(16))}}}\n"
    settings = load_settings(_write(tmp_path, text))
    assert settings.api.secret_key is not None
    assert settings.api.secret_key.get_secret_value() == key


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("quartier.example", "not an http:// or https:// address"),
        ("ftp://quartier.example", "not an http:// or https:// address"),
        ("https://quartier.example/?x=1", "no query, fragment or user name"),
        ("https://me@quartier.example", "no query, fragment or user name"),
    ],
)
def test_api_public_url_is_checked(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"api.public_url(.|\n)*{re.escape(problem)}"):
        load_settings(api={"public_url": value})
    assert load_settings(api={"public_url": "https://quartier.example/energie/"}).api.public_url == (
        "https://quartier.example/energie"
    )
