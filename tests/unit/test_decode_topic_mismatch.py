"""A profile asked for by name refuses a topic outside its templates (``topic_mismatch``), CLI and decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import EXIT_REJECTED, main
from ingest.decode import MessageDecoder
from ingest.profiles import load_profiles
from ingest.readings import REASONS, DecodeRejected

REPO = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO / "device_profiles"
PROFILES = load_profiles(PROFILES_DIR)
SHELLY = PROFILES.by_id["shelly-gen2"]
SHELLY_EM = next(e for e in SHELLY.profile.examples if e.topic.endswith("/status/em:0"))
RECEIVED = 1_764_320_401_000_000_000
FOREIGN = ["x/status/em:0", "lab/gw-03/dev/other/em:0", "tele/dose/SENSOR", "lab"]


def _bindings(topic: str) -> dict[str, str]:
    return next((found for t in SHELLY.templates if (found := t.match(topic)) is not None), {})


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, Any]:
    payload = tmp_path / "payload"
    payload.write_bytes(SHELLY_EM.payload_bytes())
    code = main(["profiles", "decode", "--dir", str(PROFILES_DIR), *argv, str(payload)])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_the_reason_is_in_the_vocabulary() -> None:
    assert "topic_mismatch" in REASONS


@pytest.mark.parametrize("topic", FOREIGN)
def test_decode_with_refuses_a_foreign_topic_naming_the_templates(topic: str) -> None:
    decoder = MessageDecoder(PROFILES)
    with pytest.raises(DecodeRejected) as caught:
        decoder.decode_with(SHELLY, topic, SHELLY_EM.payload_bytes(), RECEIVED, _bindings(topic))
    assert caught.value.reason == "topic_mismatch"
    assert caught.value.profile == "shelly-gen2"
    assert repr(topic) in caught.value.detail
    for template in SHELLY.templates:
        assert template.template in caught.value.detail


@pytest.mark.parametrize(
    ("topic", "bindings"),
    [
        (SHELLY_EM.topic, _bindings(SHELLY_EM.topic)),  # a topic of the profile: decoded
        ("", {"gateway": "gw-03", "device": "pro3em", "component": "em:0"}),  # no topic: bindings as given
    ],
)
def test_decode_with_decodes_a_topic_of_the_profile_or_none(topic: str, bindings: dict[str, str]) -> None:
    readings = MessageDecoder(PROFILES).decode_with(
        SHELLY, topic, SHELLY_EM.payload_bytes(), RECEIVED, bindings
    )
    assert [r.measurement for r in readings] == [r.measurement for r in SHELLY_EM.readings]


def test_cli_refuses_a_topic_outside_the_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, output = _run(capsys, tmp_path, "--profile", "shelly-gen2", "--topic", "x/status/em:0")
    assert code == EXIT_REJECTED == 3
    assert output["rejected"]["reason"] == "topic_mismatch"
    assert "'x/status/em:0'" in output["rejected"]["detail"]
    assert all(t.template in output["rejected"]["detail"] for t in SHELLY.templates)


def test_cli_decodes_a_topic_of_the_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, output = _run(capsys, tmp_path, "--profile", "shelly-gen2", "--topic", SHELLY_EM.topic)
    assert code == 0
    assert [r["measurement"] for r in output["readings"]] == [r.measurement for r in SHELLY_EM.readings]
