"""The helpers the device decoders share: strict text, tolerant JSON, per-phase values, point assembly."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.decoders.payloads import Points, json_object, number, parse_json, per_phase, plain_value
from ingest.readings import DecodeRejected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'{"a": 1, "a": 2, "a": 3}', {"a": 1, "a#2": 2, "a#3": 3}),  # duplicates kept, first plain
        (b'{"": {"x": 1}}', {"": {"x": 1}}),  # empty key
        (b'{\r\n  "a": 1,\r\n  "b": [1, 2]\r\n}\r\n', {"a": 1, "b": [1, 2]}),  # spread over lines
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # UTF-8 BOM
        (b'{"a": 1}\x00', {"a": 1}),  # C-string terminator
        (b'{"a": null}', {"a": None}),
        (b'{"a": {"b": 1, "b": 2}}', {"a": {"b": 1, "b#2": 2}}),  # nested duplicates too
    ],
)
def test_json_object_is_tolerant(payload: bytes, expected: dict[str, Any]) -> None:
    assert json_object(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"a": 1', "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"a": "\xc3\x28"}', "invalid_utf8"),
        (b"[1, 2]", "invalid_payload"),
        (b'"text"', "invalid_payload"),
        (b"[" * 100_000, "invalid_json"),  # nesting deeper than the recursion limit
        (b"1" * 5000, "invalid_json"),  # an integer longer than Python converts
    ],
)
def test_json_object_rejects(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        json_object(payload)
    assert caught.value.reason == reason


def test_parse_json_accepts_any_value() -> None:
    assert parse_json(b'"online"') == "online"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"21.5", "21.5"), (b" 21,5 \n", "21,5"), (b'"21.5"', "21.5"), (b"online\r\n", "online")],
)
def test_plain_value(payload: bytes, expected: str) -> None:
    assert plain_value(payload) == expected


@pytest.mark.parametrize(
    ("raw", "factor", "expected"),
    [(5, 1.0, 5.0), ("12,5", 1.0, 12.5), ("1234", 0.001, 1.234), (None, 1.0, None), ("", 1.0, None)],
)
def test_number_is_float_in_the_canonical_unit(raw: object, factor: float, expected: float | None) -> None:
    value = number(raw, key="k", factor=factor)
    assert value == pytest.approx(expected) if expected is not None else value is None
    assert value is None or type(value) is float


def test_per_phase() -> None:
    assert per_phase([230, "231,5", None], key="V") == [230.0, 231.5, None]
    assert per_phase(230, key="V") is None
    with pytest.raises(DecodeRejected):
        per_phase([230, {"x": 1}], key="V")


def test_points_group_by_measurement_and_tags_in_first_seen_order() -> None:
    points = Points()
    points.add("electricity", "power_w", 1.0)
    points.add("environment", "temperature_c", 20.0, {"sensor": "a"})
    points.add("electricity", "voltage_l1_v", 230.0)
    points.add("electricity", "current_l1_a", None)  # nothing
    readings = points.readings(5, "received")
    assert [(r.measurement, r.fields, r.tags) for r in readings] == [
        ("electricity", {"power_w": 1.0, "voltage_l1_v": 230.0}, {}),
        ("environment", {"temperature_c": 20.0}, {"sensor": "a"}),
    ]
    with pytest.raises(DecodeRejected) as caught:
        Points().readings_or_reject(5, "received", detail="x")
    assert caught.value.reason == "no_readings"
