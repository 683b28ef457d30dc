"""ttn-v3 decoder: decoded_payload mapping, network time, radio health from the best gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.decoders import DecodeFn, DecodeInput
from ingest.decoders.ttn import SPEC
from ingest.readings import DecodeRejected, Reading
from tests.unit.decoder_contract import decoded_or_rejected, values

RECEIVED = 1_764_320_402_000_000_000
AT_0900 = 1_764_320_400_000_000_000
FIELDS = {
    "temperature": {"measurement": "environment", "field": "temperature_c", "unit": "degC"},
    "battery": {"measurement": "device_health", "field": "battery_v", "unit": "V"},
    "phases.1": {"measurement": "electricity", "field": "power_l2_w", "unit": "W"},
    "charging": {"measurement": "ev_charger", "field": "charging"},
}


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate({"fields": FIELDS, **options}), "Europe/Berlin")


def _uplink(decoded: Any, *, rx: Any = None, uplink_time: Any = "2025-11-28T09:00:00Z", **top: Any) -> bytes:
    uplink: dict[str, Any] = {"f_port": 1, "received_at": uplink_time}
    if decoded is not None:
        uplink["decoded_payload"] = decoded
    if rx is not None:
        uplink["rx_metadata"] = rx
    return json.dumps({"end_device_ids": {"device_id": "s1"}, "uplink_message": uplink, **top}).encode()


def _decode(payload: bytes, device: str = "s1", **options: Any) -> list[Reading]:
    topic = f"lab/gw/v3/app@ttn/devices/{device}/up"
    return _decoder(**options)(DecodeInput(topic, payload, {"gateway": "gw", "device": device}, RECEIVED))


@pytest.mark.parametrize(
    ("quirk", "decoded", "expected"),
    [
        ("numbers", {"temperature": 8.4}, [("environment", {"temperature_c": 8.4})]),
        ("number as string", {"temperature": "8.4"}, [("environment", {"temperature_c": 8.4})]),
        ("decimal comma", {"temperature": "8,4"}, [("environment", {"temperature_c": 8.4})]),
        ("null", {"temperature": None, "battery": 3}, [("device_health", {"battery_v": 3.0})]),
        ("bool field", {"charging": "false"}, [("ev_charger", {"charging": False})]),
        ("bool from 1", {"charging": 1}, [("ev_charger", {"charging": True})]),
    ],
)
def test_decoded_payload(
    quirk: str, decoded: dict[str, Any], expected: list[tuple[str, dict[str, Any]]]
) -> None:
    readings = _decode(_uplink(decoded), radio_health=False)
    assert [(r.measurement, r.fields) for r in readings] == expected, quirk
    assert all(type(v) in (float, bool) for r in readings for v in r.fields.values())


@pytest.mark.parametrize(
    ("quirk", "decoded", "expected"),
    [
        ("one channel", {"temperature_1": 8.4}, [("environment", {"temperature_c": 8.4}, {"channel": "1"})]),
        (
            "two channels of one type",
            {"temperature_3": 27.2, "temperature_5": 25.5},
            [
                ("environment", {"temperature_c": 27.2}, {"channel": "3"}),
                ("environment", {"temperature_c": 25.5}, {"channel": "5"}),
            ],
        ),
        ("leading zero", {"battery_07": 3.6}, [("device_health", {"battery_v": 3.6}, {"channel": "7"})]),
        (
            "beside an unsuffixed key",
            {"temperature": 8.0, "temperature_2": 9.0},
            [
                ("environment", {"temperature_c": 8.0}, {}),
                ("environment", {"temperature_c": 9.0}, {"channel": "2"}),
            ],
        ),
        (
            "unmapped types and objects left out",
            {
                "analog_in_4": 3.61,
                "digital_in_6": 1,
                "gps_7": {"latitude": 1},
                "temperature_8": None,
                "charging_9": "true",
            },
            [("ev_charger", {"charging": True}, {"channel": "9"})],
        ),
    ],
)
def test_cayenne_lpp_channels(
    quirk: str, decoded: dict[str, Any], expected: list[tuple[str, dict[str, Any], dict[str, str]]]
) -> None:
    readings = _decode(_uplink(decoded), radio_health=False)
    assert [(r.measurement, r.fields, r.tags) for r in readings] == expected, quirk


def test_cayenne_lpp_key_that_is_itself_mapped_is_not_split() -> None:
    fields = {**FIELDS, "pm_10": {"measurement": "environment", "field": "pm10_ugm3", "unit": "ug/m3"}}
    [reading] = _decode(_uplink({"pm_10": 20.1}), radio_health=False, fields=fields)
    assert (reading.fields, reading.tags) == ({"pm10_ugm3": 20.1}, {})


def test_duplicate_keys_in_the_raw_json() -> None:
    payload = b'{"uplink_message":{"decoded_payload":{"temperature":1,"temperature":2}}}'
    [reading] = _decode(payload, radio_health=False)
    assert reading.fields == {"temperature_c": 1.0}


def test_per_phase_array_by_index_path() -> None:
    [reading] = _decode(_uplink({"phases": [100, "-250,5", 0]}), radio_health=False)
    assert (reading.measurement, reading.fields) == ("electricity", {"power_l2_w": -250.5})


def test_radio_health_from_the_best_gateway() -> None:
    rx = [
        {"gateway_ids": {"gateway_id": "a"}, "rssi": -110, "snr": -3.5},
        {"gateway_ids": {"gateway_id": "b"}, "channel_rssi": -97, "snr": "6,25"},
        {"gateway_ids": {"gateway_id": "c"}},
        "junk",
    ]
    readings = _decode(_uplink({"temperature": 8.4, "battery": 3.6}, rx=rx))
    assert [(r.measurement, r.fields) for r in readings] == [
        ("environment", {"temperature_c": 8.4}),
        ("device_health", {"battery_v": 3.6, "rssi_dbm": -97.0, "snr_db": 6.25}),
    ]


@pytest.mark.parametrize(
    ("uplink_time", "top_time", "expected"),
    [
        ("2025-11-28T09:00:00.123456789Z", None, (AT_0900 + 123_456_000, "device")),  # ns precision cut
        ("2025-11-28T10:00:00+01:00", None, (AT_0900, "device")),
        (None, "2025-11-28T09:00:00Z", (AT_0900, "device")),  # only the top-level time
        (None, None, (RECEIVED, "received")),
        ("1970-01-01T00:00:00Z", None, (RECEIVED, "received")),
        ("yesterday", None, (RECEIVED, "received")),
    ],
)
def test_time(uplink_time: Any, top_time: Any, expected: tuple[int, str]) -> None:
    top = {"received_at": top_time} if top_time else {}
    [reading] = _decode(_uplink({"temperature": 1}, uplink_time=uplink_time, **top), radio_health=False)
    assert (reading.time_ns, reading.time_source) == expected


def test_device_mapping_over_the_profile() -> None:
    options = {
        "devices": {"s9": {"bme.t": {"measurement": "environment", "field": "temperature_c", "unit": "degC"}}}
    }
    [reading] = _decode(_uplink({"bme": {"t": "7,9"}}), "s9", radio_health=False, **options)
    assert reading.fields == {"temperature_c": pytest.approx(7.9)}
    with pytest.raises(DecodeRejected):
        _decode(_uplink({"bme": {"t": "7,9"}}), "s1", radio_health=False, **options)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_uplink(None), "no_readings"),  # no payload formatter
        (_uplink({"unknown": 1}), "no_readings"),
        (_uplink({"temperature": {"value": 1}}), "no_readings"),  # an object where a value belongs
        (_uplink({"temperature": [1, 2]}), "invalid_value"),
        (_uplink({"temperature": "hot"}), "invalid_value"),
        (_uplink("AVQDLQ=="), "no_readings"),
        (b'{"join_accept":{}}', "invalid_payload"),
        (b'{"uplink_message":', "invalid_json"),
        (b'{"uplink_message":{"decoded_payload":{"temperature":"\xe9"}}}', "invalid_utf8"),
    ],
)
def test_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _decode(payload)
    assert caught.value.reason == reason


def test_fields_are_required() -> None:
    with pytest.raises(ValidationError):
        SPEC.options.model_validate({"fields": {}})


@settings(max_examples=300)
@given(
    decoded=st.dictionaries(
        st.sampled_from(["temperature", "battery", "phases", "charging", "x"]), values, max_size=4
    )
    | values,
    rx=st.lists(
        st.dictionaries(st.sampled_from(["rssi", "channel_rssi", "snr"]), values, max_size=3) | values,
        max_size=3,
    )
    | values,
    uplink_time=values,
)
def test_fuzz_only_decode_rejected_escapes(decoded: Any, rx: Any, uplink_time: Any) -> None:
    decoded_or_rejected(lambda: _decode(_uplink(decoded, rx=rx, uplink_time=uplink_time)))
