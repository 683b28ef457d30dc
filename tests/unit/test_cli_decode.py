"""``reallabor profiles decode``: readings JSON and exit 0, rejection JSON and exit 3, usage errors exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from ingest.profiles import load_profiles
from ingest.profiles.schema import Example
from tests.unit.sml_frames import household_frame

REPO = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO / "device_profiles"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
MINE = ("sml", "dsmr", "obis-json")
CASES = [
    pytest.param(p.id, example, id=f"{p.id}: {example.name}")
    for p in load_profiles(PROFILES_DIR)
    if p.id in MINE
    for example in p.profile.examples
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(["profiles", "decode", "--dir", str(PROFILES_DIR), *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


@pytest.mark.parametrize(("profile_id", "example"), CASES)
def test_every_meter_example_through_the_cli(
    profile_id: str, example: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "payload"
    if example.payload_hex is not None:
        path.write_text(example.payload_hex)
        code, output = run(capsys, "--topic", example.topic, "--hex", str(path))
    else:
        path.write_bytes(example.payload_bytes())
        code, output = run(capsys, "--topic", example.topic, str(path))
    if example.rejected is not None:
        assert code == 3
        assert output["rejected"]["reason"] == example.rejected
        assert output["rejected"]["detail"]
        return
    assert code == 0
    readings = output["readings"]
    assert [r["measurement"] for r in readings] == [r.measurement for r in example.readings]
    for actual, expected in zip(readings, example.readings, strict=True):
        assert RFC3339_UTC.match(actual["time"]), actual["time"]
        assert actual["time_source"] == expected.time_source
        if expected.time is not None:
            assert actual["time"] == expected.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert actual["fields"] == pytest.approx(expected.fields)
        assert actual["tags"]["profile"] == profile_id
        assert set(actual) == {"measurement", "time", "time_source", "tags", "fields"}


def test_explicit_profile_without_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "frame.bin"
    path.write_bytes(household_frame())
    code, output = run(capsys, "--profile", "sml", str(path))
    assert code == 0
    (reading,) = output["readings"]
    assert reading["tags"] == {"profile": "sml"}
    assert reading["fields"]["energy_import_kwh"] == pytest.approx(12345.6789)


def test_explicit_profile_binds_the_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "value"
    path.write_text("-523")
    topic = "lab/gw-9/hh-9/obis/1-0:16.7.0/255/value"
    code, output = run(capsys, "--profile", "obis-json", "--topic", topic, str(path))
    assert code == 0
    (reading,) = output["readings"]
    assert reading["tags"] == {"gateway": "gw-9", "device": "hh-9", "profile": "obis-json"}
    assert reading["fields"] == {"power_w": -523.0}


def test_topic_without_profile_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "payload"
    path.write_text("{}")
    code, output = run(capsys, "--topic", "nowhere/at/all", str(path))
    assert code == 3
    assert output["rejected"]["reason"] == "no_profile"


@pytest.mark.parametrize(
    "argv",
    [
        ["--profile", "no-such-profile", "PAYLOAD"],
        ["PAYLOAD"],  # neither --profile nor --topic
        ["--profile", "sml", "--hex", "NOT_HEX"],
        ["--profile", "sml", "MISSING"],
    ],
    ids=["unknown profile", "no profile or topic", "not a hex dump", "missing file"],
)
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "PAYLOAD").write_text("x")
    (tmp_path / "NOT_HEX").write_text("1b1b zz")
    argv = [str(tmp_path / a) if a in ("PAYLOAD", "NOT_HEX", "MISSING") else a for a in argv]
    code, output = run(capsys, *argv)
    assert code == 2
    assert output is None


def test_hex_dump_from_stdin_via_the_installed_command() -> None:
    """The command exactly as the issue writes it, from the repository root, payload on stdin."""
    spaced = " ".join(f"{byte:02x}" for byte in household_frame())
    command = Path(sys.executable).parent / "reallabor"
    result = subprocess.run(
        [str(command), "profiles", "decode", "--topic", "lab/gw-1/sml/hh-1", "--hex", "-"],
        input=spaced.encode(),
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (reading,) = json.loads(result.stdout)["readings"]
    assert reading["tags"] == {"gateway": "gw-1", "device": "hh-1", "profile": "sml"}
    assert reading["fields"]["power_w"] == -1234.0
