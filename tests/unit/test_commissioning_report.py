"""The commissioning verdict (pure) and the topic filters of one device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.commissioning.report import Limits, Observed, QuarantineHit, Target, evaluate, no_message
from ingest.decode import MessageDecoder
from ingest.profiles.fill import device_topic_filters, fill_template, filter_matches
from ingest.profiles.loader import load_profiles
from ingest.profiles.topics import TopicTemplate

PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")
DECODER = MessageDecoder(PROFILES)
TARGET = Target(device_id=1, gateway="gw-1", native_id="m1", profile_id="generic-json")
NOW_NS = 1_764_320_400_000_000_000
TOPIC = "lab/gw-1/m1/state"


def _message(**body: object) -> Observed:
    return Observed(TOPIC, json.dumps(body).encode(), NOW_NS)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("lab/{gateway}/{device}/state", "lab/gw-1/m1/state"),
        ("lab/{gateway}/{device}/sensor/{sensor}/state", "lab/gw-1/m1/sensor/+/state"),
        ("lab/{gateway}/v3/+/devices/{device}/#", "lab/gw-1/v3/+/devices/m1/#"),
    ],
)
def test_fill_template(template: str, expected: str) -> None:
    assert fill_template(TopicTemplate(template), {"gateway": "gw-1", "device": "m1"}) == expected


def test_fill_refuses_wildcards_and_skips_templates_without_device() -> None:
    with pytest.raises(ValueError, match="single topic level"):
        fill_template(TopicTemplate("lab/{gateway}/x"), {"gateway": "a/b"})
    z2m = PROFILES.by_id["zigbee2mqtt"]
    assert device_topic_filters(z2m, gateway="g", device="d", prefix="p/") == ["p/lab/g/zigbee2mqtt/d"]


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("a/#", "a", True), ("a/b", "a/b/c", False)],
)
def test_filter_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert filter_matches(topic_filter, topic) is matches


def test_device_clock_far_off_fails() -> None:
    report = evaluate(
        DECODER, TARGET, _message(ts=NOW_NS // 10**6 - 3_600_000, power_w=5), hits=[], started_ns=NOW_NS
    )
    assert [r["code"] for r in report["reasons"]] == ["clock_offset"]
    assert report["clock"]["offset_s"] == -3600
    relaxed = evaluate(
        DECODER,
        TARGET,
        _message(ts=NOW_NS // 10**6 - 3_600_000, power_w=5),
        hits=[],
        started_ns=NOW_NS,
        limits=Limits(max_clock_offset_s=7200),
    )
    assert relaxed["passed"] is True


def test_missing_device_time_is_a_warning() -> None:
    report = evaluate(DECODER, TARGET, _message(power_w=5), hits=[], started_ns=NOW_NS)
    assert report["passed"] is True
    assert report["clock"]["time_source"] == "received"
    assert [w["code"] for w in report["warnings"]] == ["no_device_time"]


def test_undecodable_payload_fails_with_the_reason() -> None:
    report = evaluate(DECODER, TARGET, Observed(TOPIC, b"ERROR 42", NOW_NS), hits=[], started_ns=NOW_NS)
    assert report["outcome"] == "failed"
    assert report["reasons"][0]["code"] == "invalid_json"
    assert report["message"]["payload"] == "ERROR 42"


def test_profile_mismatch_fails() -> None:
    target = Target(device_id=1, gateway="gw-1", native_id="m1", profile_id="tasmota")
    report = evaluate(DECODER, target, _message(power_w=5), hits=[], started_ns=NOW_NS)
    assert "profile_mismatch" in [r["code"] for r in report["reasons"]]


def test_quarantine_during_the_check_fails() -> None:
    hits = [
        QuarantineHit(7, TOPIC, "invalid_value", "power_w: 'x'", NOW_NS + 1),
        QuarantineHit(3, TOPIC, "invalid_json", "", NOW_NS - 10**12),
    ]
    report = evaluate(DECODER, TARGET, _message(power_w=5), hits=hits, started_ns=NOW_NS)
    assert [r["code"] for r in report["reasons"]] == ["quarantined"]
    assert [(q["id"], q["during_check"]) for q in report["quarantine"]] == [(7, True), (3, False)]
    timed_out = no_message(5, hits=hits[1:], started_ns=NOW_NS, topics=[TOPIC])
    assert timed_out["outcome"] == "no_message"
    assert [w["code"] for w in timed_out["warnings"]] == ["quarantine_pending"]
