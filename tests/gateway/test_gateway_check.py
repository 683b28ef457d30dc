"""``reallabor-gateway check --config`` as a technician meets it: a mistyped password key never shows the
password, the bundle's CHANGE-ME placeholder port is refused (exit 2, key path), an unplugged head and an
account the registry did not make for this gateway are warnings, YAML errors name the file, line and column
with a hint, and baud rates are real serial rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.gateway.cli import main

SECRET = "_t3h9NHN36k6kqbhdOPqzw_f6pwGxc3Z"


def _config(directory: Path, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "gateway": "haus-b",
        "central": {
            "brokers": ["127.0.0.1:8883"],
            "username": "gw-haus-b",
            "password": SECRET,
            "client_id": "gw-haus-b",
        },
        "outbox": {"directory": str(directory / "outbox")},
        "meters": [],
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section][name] = value
        else:
            data[section] = value
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(["check", "--config", str(path)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_mistyped_password_key_never_shows_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("password:", "passwort:"))
    code, out, err = _check(path, capsys)
    assert code == 2
    assert "central.passwort: unknown key" in err
    assert "central.password: Field required" in err
    assert SECRET not in out + err
    path.write_text(yaml.safe_dump({**yaml.safe_load(_config(tmp_path).read_text()), "tokn": SECRET}))
    code, out, err = _check(path, capsys)
    assert (code, "tokn: unknown key" in err, SECRET in out + err) == (2, True, False)


def test_the_placeholder_port_is_refused_a_missing_port_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    placeholder = {"device": "hh-1-ehz", "port": "/dev/serial/by-id/CHANGE-ME-hh-1-ehz", "protocol": "sml"}
    code, out, err = _check(_config(tmp_path, meters=[placeholder]), capsys)
    assert code == 2, out + err
    assert "meters.0.port: /dev/serial/by-id/CHANGE-ME-hh-1-ehz is the bundle's placeholder" in err
    assert "ok" not in out

    unplugged = {**placeholder, "port": str(tmp_path / "usb-head-if00-port0")}
    code, out, err = _check(_config(tmp_path, meters=[unplugged]), capsys)
    assert code == 0, err
    assert f"warning: meters.0.port (hh-1-ehz): {tmp_path / 'usb-head-if00-port0'} is not there now" in err
    assert "gateway.yaml: ok (gateway haus-b, 1 meter(s)" in out


def test_an_account_of_another_gateway_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _check(_config(tmp_path), capsys)
    assert (code, err) == (0, "")
    code, _, err = _check(_config(tmp_path, gateway="haus-b2"), capsys)
    assert code == 0, err
    assert "central.username: 'gw-haus-b' is not gateway haus-b2's broker account ('gw-haus-b2')" in err
    assert "only lab/haus-b/..., so every frame will be refused" in err
    assert "warning: central.client_id: 'gw-haus-b'" in err


@pytest.mark.parametrize(
    ("meters", "expected"),
    [
        (
            "meters:\n  - device: hh-1\n    port: /dev/ttyUSB0\n     protocol: sml\n",
            (4, "column 14: not valid YAML: mapping values are not allowed here", "hint: the keys of one"),
        ),
        ("meters:\n\t- device: hh-1\n", (2, "column 1: not valid YAML", "hint: indent with spaces")),
    ],
)
def test_yaml_errors_name_the_file_line_and_column_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], meters: str, expected: tuple[int, str, str]
) -> None:
    path = _config(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["meters"]
    head = yaml.safe_dump(data)
    path.write_text(head + meters)
    code, _, err = _check(path, capsys)
    line, where, hint = expected
    assert code == 2
    assert "<unicode string>" not in err
    assert f"{path}, line {head.count(chr(10)) + line}, {where}" in err
    assert hint in err


@pytest.mark.parametrize(
    ("meter", "error"),
    [
        ({"protocol": "sml", "baud": 9601}, "meters.0.baud: not a serial rate: one of 300, 600"),
        ({"protocol": "sml", "baud": 0}, "meters.0.baud: not a serial rate"),
        ({"protocol": "sml", "baud": 460800}, "meters.0.baud: not a serial rate"),
        ({"protocol": "d0", "d0_max_baud": 9000}, "meters.0.d0_max_baud: not a serial rate"),
        ({"protocol": "dsmr", "baud": 460800}, None),
        ({"protocol": "d0", "baud": 300, "d0_max_baud": 19200}, None),
    ],
)
def test_baud_rates_are_real_serial_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], meter: dict[str, Any], error: str | None
) -> None:
    port = tmp_path / "ttyUSB0"
    port.touch()
    code, _, err = _check(_config(tmp_path, meters=[{"device": "hh-1", "port": str(port), **meter}]), capsys)
    if error is None:
        assert (code, err) == (0, "")
    else:
        assert code == 2
        assert error in err


def test_a_list_written_as_a_mapping_says_what_was_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = {"device": "hh-1", "port": "/dev/ttyUSB0", "protocol": "sml"}
    code, _, err = _check(_config(tmp_path, meters=meter), capsys)
    assert code == 2
    assert "meters: Input should be a valid list (got a mapping: each entry of a list starts with" in err
    code, _, err = _check(_config(tmp_path, outbox=[{"directory": "o"}]), capsys)
    assert code == 2
    assert "outbox: Input should be a valid dictionary or instance of Outbox (got a list" in err
