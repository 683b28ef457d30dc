"""zigbee2mqtt decoder: exposes by name, battery vs mains voltage, last_seen, bridge state JSON and text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders import DecodeFn, DecodeInput
from ingest.decoders.zigbee2mqtt import SPEC
from ingest.readings import DecodeRejected, Reading
from tests.unit.decoder_contract import decoded_or_rejected, values

RECEIVED = 1_764_320_401_000_000_000
AT_0900 = 1_764_320_400_000_000_000


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate(options), "Europe/Berlin")


def _device(payload: bytes, name: str = "Living Room TH", **options: Any) -> list[Reading]:
    bindings = {"gateway": "gw", "device": name}
    return _decoder(**options)(DecodeInput(f"lab/gw/zigbee2mqtt/{name}", payload, bindings, RECEIVED))


def _bridge(payload: bytes, **options: Any) -> list[Reading]:
    return _decoder(**options)(
        DecodeInput("lab/gw/zigbee2mqtt/bridge/state", payload, {"gateway": "gw"}, RECEIVED)
    )


def _by_measurement(readings: list[Reading]) -> dict[str, dict[str, Any]]:
    return {r.measurement: r.fields for r in readings}


@pytest.mark.parametrize(
    ("quirk", "payload", "expected"),
    [
        (
            "plain numbers",
            b'{"temperature":21.37,"humidity":48}',
            {"environment": {"temperature_c": 21.37, "humidity_pct": 48.0}},
        ),
        (
            "numbers as strings",
            b'{"temperature":"21.37","co2":"612"}',
            {"environment": {"temperature_c": 21.37, "co2_ppm": 612.0}},
        ),
        ("decimal comma", b'{"formaldehyd":"0,012"}', {"environment": {"formaldehyde_mgm3": 0.012}}),
        ("null", b'{"temperature":null,"humidity":50}', {"environment": {"humidity_pct": 50.0}}),
        (
            "duplicate keys: first counts",
            b'{"temperature":20,"temperature":99}',
            {"environment": {"temperature_c": 20.0}},
        ),
        ("empty key ignored", b'{"":5,"pressure":1013}', {"environment": {"pressure_hpa": 1013.0}}),
        (
            "battery voltage in mV",
            b'{"battery":97,"voltage":3015}',
            {"device_health": {"battery_pct": 97.0, "battery_v": 3.015}},
        ),
        (
            "mains voltage of a plug",
            b'{"power":118,"voltage":231,"current":0.52,"energy":"12,5","state":"ON"}',
            {
                "electricity": {
                    "power_w": 118.0,
                    "voltage_l1_v": 231.0,
                    "current_l1_a": 0.52,
                    "energy_import_kwh": 12.5,
                }
            },
        ),
        (
            "nested objects ignored",
            b'{"update":{"state":"idle"},"linkquality":120}',
            {"device_health": {"link_quality": 120.0}},
        ),
        ("old illuminance name", b'{"illuminance_lux":320}', {"environment": {"illuminance_lx": 320.0}}),
        ("spread over lines", b'{\n  "temperature": 20.5\n}\n', {"environment": {"temperature_c": 20.5}}),
    ],
)
def test_exposes(quirk: str, payload: bytes, expected: dict[str, dict[str, Any]]) -> None:
    readings = _device(payload)
    got = _by_measurement(readings)
    assert got.keys() == expected.keys(), quirk
    for measurement, fields in expected.items():
        assert got[measurement] == pytest.approx(fields), quirk
    assert all(r.tags == {} for r in readings)
    assert all(type(v) is float for r in readings for v in r.fields.values())


@pytest.mark.parametrize(
    ("last_seen", "expected"),
    [
        ('"2025-11-28T10:00:00+01:00"', (AT_0900, "device")),  # ISO_8601 with offset
        ('"2025-11-28T09:00:00.000Z"', (AT_0900, "device")),
        ('"2025-11-28T10:00:00"', (AT_0900, "device")),  # local time without zone
        ("1764320400000", (AT_0900, "device")),  # epoch ms
        ("1764320400", (AT_0900, "device")),  # epoch s
        ("12000", (RECEIVED, "received")),  # coordinator clock not set
        ("null", (RECEIVED, "received")),
    ],
)
def test_last_seen_is_the_time(last_seen: str, expected: tuple[int, str]) -> None:
    [reading] = _device(f'{{"temperature":20,"last_seen":{last_seen}}}'.encode())
    assert (reading.time_ns, reading.time_source) == expected


def test_profile_and_device_mappings() -> None:
    options: dict[str, Any] = {
        "fields": {"noise": {"measurement": "environment", "field": "noise_dba", "unit": "dBA"}},
        "devices": {
            "Water": {"water_consumed": {"measurement": "water", "field": "volume_m3", "unit": "l"}},
            "Solar plug": {"voltage": {"measurement": "electricity", "field": "voltage_l1_v", "unit": "V"}},
        },
    }
    assert _by_measurement(_device(b'{"noise":40}', **options)) == {"environment": {"noise_dba": 40.0}}
    water = _device(b'{"water_consumed":1500}', "Water", **options)
    assert _by_measurement(water) == {"water": {"volume_m3": 1.5}}
    plug = _device(b'{"voltage":230}', "Solar plug", **options)  # no power key, still mains by mapping
    assert _by_measurement(plug) == {"electricity": {"voltage_l1_v": 230.0}}


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b'{"state":"online"}', True),
        (b'{"state":"offline"}', False),
        (b"online", True),
        (b"offline\n", False),
        (b'"online"', True),
        (b'{"state":"ONLINE"}', True),
    ],
)
def test_bridge_state(payload: bytes, online: bool) -> None:
    [reading] = _bridge(payload, bridge_device="z2m-gw")
    assert (reading.measurement, reading.fields, reading.tags) == (
        "device_health",
        {"online": online},
        {"device": "z2m-gw"},
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"state":"starting"}', "invalid_value"),
        (b"", "invalid_value"),
        (b"\xff", "invalid_utf8"),
        (b'{"state":', "invalid_json"),
    ],
)
def test_bridge_state_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _bridge(payload)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"temperature":"warm"}', "invalid_value"),
        (b'{"state":"ON","brightness":254}', "no_readings"),
        (b'{"temperature":21', "invalid_json"),
        (b"ON", "invalid_json"),
        (b"[21]", "invalid_payload"),
        (b'{"temperature":21,"name":"\xc3\x28"}', "invalid_utf8"),
    ],
)
def test_device_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _device(payload)
    assert caught.value.reason == reason


keys = st.sampled_from(
    ["temperature", "humidity", "voltage", "power", "battery", "last_seen", "formaldehyd", "state", ""]
)


@settings(max_examples=300)
@given(document=st.dictionaries(keys, values, max_size=6) | values, bridge=st.booleans())
def test_fuzz_only_decode_rejected_escapes(document: Any, bridge: bool) -> None:
    payload = json.dumps(document, allow_nan=True).encode()
    decoded_or_rejected(lambda: _bridge(payload) if bridge else _device(payload))
