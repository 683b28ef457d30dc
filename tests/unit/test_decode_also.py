"""A Tasmota SENSOR message with Tasmota's own groups (ENERGY, environment sensors) and a meter script's:
tasmota reads its groups, tasmota-sml the rest (``also_read_by``), nothing twice, nothing lost.

Before, tasmota decoded such a message and the script's meter readings were dropped without a word."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.decode import MessageDecoder
from ingest.profiles import load_profiles
from ingest.profiles.loader import ProfileError
from ingest.readings import DecodeRejected, Reading

PROFILES_DIR = Path(__file__).resolve().parents[2] / "device_profiles"
PROFILES = load_profiles(PROFILES_DIR)
TOPIC = "lab/gw-01/tele/hh-006/SENSOR"
TIME = "2025-11-28T10:00:00"
ENERGY = {"Total": 52.117, "Power": 1850, "Voltage": 229, "Current": 8.166, "Frequency": 50}
SCRIPT = {"Total_in": 12345.6789, "Total_out": 42.1234, "Power_curr": 2310}


def _decode(document: dict[str, Any], topic: str = TOPIC) -> list[Reading]:
    return MessageDecoder(PROFILES).decode(topic, json.dumps(document).encode(), 1_764_320_401_000_000_000)


def _by_profile(readings: list[Reading]) -> dict[str, list[tuple[str, dict[str, str], dict[str, Any]]]]:
    found: dict[str, list[tuple[str, dict[str, str], dict[str, Any]]]] = {}
    for r in readings:
        extra = {k: v for k, v in r.tags.items() if k not in ("gateway", "device", "profile")}
        found.setdefault(r.tags["profile"], []).append((r.measurement, extra, r.fields))
    return found


def test_energy_and_a_script_group_are_both_read_once() -> None:
    """Frequency is a key tasmota-sml maps by default: read from ENERGY by tasmota only, never twice."""
    readings = _by_profile(_decode({"Time": TIME, "ENERGY": ENERGY, "SML": SCRIPT}))
    assert readings == {
        "tasmota": [
            (
                "electricity",
                {},
                {
                    "energy_import_kwh": 52.117,
                    "power_w": 1850.0,
                    "voltage_l1_v": 229.0,
                    "current_l1_a": 8.166,
                    "frequency_hz": 50.0,
                },
            )
        ],
        "tasmota-sml": [
            (
                "electricity",
                {"channel": "SML"},
                {"energy_import_kwh": 12345.6789, "energy_export_kwh": 42.1234, "power_w": 2310.0},
            )
        ],
    }


def test_stat_status10_reads_both_too() -> None:
    document = {"StatusSNS": {"Time": TIME, "ENERGY": ENERGY, "Haus": SCRIPT}}
    readings = _by_profile(_decode(document, "lab/gw-01/stat/hh-006/STATUS10"))
    assert [tags for _, tags, _ in readings["tasmota-sml"]] == [{"channel": "Haus"}]
    assert len(readings["tasmota"]) == 1


def test_a_sensor_group_beside_a_script_keeps_the_script_untagged() -> None:
    document = {"Time": TIME, "DS18B20": {"Id": "01144A0CB2AA", "Temperature": 21.4}, "": SCRIPT}
    readings = _by_profile(_decode(document))
    assert readings["tasmota"] == [("environment", {"sensor": "DS18B20"}, {"temperature_c": 21.4})]
    assert readings["tasmota-sml"][0][1] == {}


def test_a_plain_plug_message_is_tasmotas_alone_and_parsed_once(json_parses: list[bytes]) -> None:
    readings = _decode({"Time": TIME, "ENERGY": ENERGY})
    assert [r.tags["profile"] for r in readings] == ["tasmota"]
    assert len(json_parses) == 1


def test_an_unmapped_script_group_beside_energy_loses_nothing_of_energy() -> None:
    readings = _decode({"Time": TIME, "ENERGY": ENERGY, "Zaehler": {"Stand": 1.0}})
    assert [r.tags["profile"] for r in readings] == ["tasmota"]


@pytest.mark.parametrize(
    ("script", "reason"),
    [({"Power_curr": 2147483647}, "implausible_value"), ({"Total_in": "E-42"}, "invalid_value")],
)
def test_a_bad_script_value_rejects_the_whole_message(script: dict[str, Any], reason: str) -> None:
    """Written whole or quarantined whole: replay then decodes both parts again."""
    with pytest.raises(DecodeRejected) as caught:
        _decode({"Time": TIME, "ENERGY": ENERGY, "SML": script})
    assert (caught.value.reason, caught.value.profile) == (reason, "tasmota-sml")


@pytest.mark.parametrize(
    "energy",
    [{"TotalStartTime": "2024-03-01T12:00:00", "Yesterday": 1.2, "Today": 0.8}, {}],
    ids=["counters-only", "empty"],
)
def test_a_script_group_is_read_when_energy_maps_nothing(energy: dict[str, Any]) -> None:
    """ENERGY right after a reset (or a dummy driver) holds nothing tasmota maps: the meter is still read."""
    readings = _by_profile(_decode({"Time": TIME, "ENERGY": energy, "SML": SCRIPT}))
    assert readings == {
        "tasmota-sml": [
            (
                "electricity",
                {"channel": "SML"},
                {"energy_import_kwh": 12345.6789, "energy_export_kwh": 42.1234, "power_w": 2310.0},
            )
        ]
    }


def test_nothing_mapped_on_either_side_is_no_readings_of_tasmota() -> None:
    with pytest.raises(DecodeRejected) as caught:
        _decode({"Time": TIME, "ENERGY": {"Today": 0.8}, "Zaehler": {"Stand": 1.0}})
    assert (caught.value.reason, caught.value.profile) == ("no_readings", "tasmota")


def test_a_script_nan_rejects_the_whole_message_and_says_where() -> None:
    """All or none (the choice: replay restores both parts; a partial write would lose which part is
    missing): the detail names the group and value, the profile that read it and what went with it."""
    with pytest.raises(DecodeRejected) as caught:
        _decode({"Time": TIME, "ENERGY": ENERGY, "SML": {"Total_in": "nan", "Power_curr": 300}})
    rejected = caught.value
    assert (rejected.reason, rejected.profile) == ("invalid_value", "tasmota-sml")
    for part in ("SML.Total_in", "'nan'", "beside tasmota", "quarantined whole, 1 reading(s) of tasmota"):
        assert part in rejected.detail


def test_also_read_by_must_name_another_profile(tmp_path: Path) -> None:
    for name in ("tasmota", "tasmota-sml"):
        (tmp_path / f"{name}.yaml").write_text((PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    data = yaml.safe_load((tmp_path / "tasmota.yaml").read_text(encoding="utf-8"))
    for wrong in (["tasmota-smll"], ["tasmota"]):
        data["also_read_by"] = wrong
        (tmp_path / "tasmota.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        with pytest.raises(ProfileError, match="also_read_by"):
            load_profiles(tmp_path)
