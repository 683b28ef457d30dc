"""Every example payload shipped in device_profiles/ decodes to exactly the readings it promises."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ingest.decode import MessageDecoder
from ingest.profiles import load_profiles
from ingest.profiles.schema import Example
from ingest.readings import DecodeRejected, Reading
from ingest.timeparse import datetime_to_ns

PROFILES_DIR = Path(__file__).resolve().parents[2] / "device_profiles"
PROFILES = load_profiles(PROFILES_DIR)
CASES = [
    pytest.param(p.id, example, id=f"{p.id}: {example.name}")
    for p in PROFILES
    for example in p.profile.examples
]


def _same(actual: object, expected: object) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
    return type(actual) is type(expected) and actual == expected


def test_every_profile_ships_examples() -> None:
    for compiled in PROFILES:
        assert compiled.profile.examples, f"{compiled.id} has no examples"
        if compiled.profile.decoder == "announcement":  # recognised, kept in quarantine, never readings
            continue
        assert any(e.readings for e in compiled.profile.examples), f"{compiled.id}: no example with readings"


@pytest.mark.parametrize(("profile_id", "example"), CASES)
def test_example_decodes_as_documented(profile_id: str, example: Example) -> None:
    decoder = MessageDecoder(PROFILES)
    received_ns = datetime_to_ns(example.received)
    if example.rejected is not None:
        with pytest.raises(DecodeRejected) as caught:
            decoder.decode(example.topic, example.payload_bytes(), received_ns)
        assert caught.value.reason == example.rejected, caught.value.detail
        return
    readings: list[Reading] = decoder.decode(example.topic, example.payload_bytes(), received_ns)
    assert len(readings) == len(example.readings), [(r.measurement, r.fields) for r in readings]
    readers = {profile_id, *PROFILES.by_id[profile_id].profile.also_read_by}
    for reading, expected in zip(readings, example.readings, strict=True):
        # a reading of a profile that read the rest of the message (also_read_by) names it
        assert reading.tags.get("profile") == expected.tags.get("profile", profile_id), "another profile's"
        assert reading.tags["profile"] in readers
        assert reading.measurement == expected.measurement
        assert reading.time_source == expected.time_source
        expected_ns = received_ns if expected.time is None else datetime_to_ns(expected.time)
        assert reading.time_ns == expected_ns
        for tag, tag_value in expected.tags.items():
            assert reading.tags.get(tag) == tag_value, f"tag {tag}"
        assert set(reading.fields) == set(expected.fields), f"fields of {reading.measurement}"
        for key, value in expected.fields.items():
            assert _same(reading.fields[key], value), (
                f"{reading.measurement}.{key}: {reading.fields[key]!r} != {value!r}"
            )
