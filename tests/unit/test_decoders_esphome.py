"""esphome decoder: plain values, sensor mapping per node / profile / by ending, nan and unmapped sensors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders import DecodeFn, DecodeInput
from ingest.decoders.esphome import SPEC
from ingest.readings import DecodeRejected
from tests.unit.decoder_contract import decoded_or_rejected, dump, values

RECEIVED = 1_764_320_401_000_000_000
HEAT = {"measurement": "heat", "field": "flow_temp_c", "unit": "degC"}


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate(options), "Europe/Berlin")


def _decode(sensor: str, payload: bytes, node: str = "node-1", **options: Any) -> tuple[str, dict[str, Any]]:
    bindings = {"gateway": "gw", "device": node, "sensor": sensor}
    topic = f"lab/gw/{node}/sensor/{sensor}/state"
    [reading] = _decoder(**options)(DecodeInput(topic, payload, bindings, RECEIVED))
    assert reading.tags == {"sensor": sensor}
    assert (reading.time_ns, reading.time_source) == (RECEIVED, "received")
    assert all(type(v) is float for v in reading.fields.values())
    return reading.measurement, reading.fields


@pytest.mark.parametrize(
    ("sensor", "payload", "measurement", "fields"),
    [
        ("temperature", b"21.50", "environment", {"temperature_c": 21.5}),
        ("humidity", b"45,5", "environment", {"humidity_pct": 45.5}),  # decimal comma
        ("co2", b"612", "environment", {"co2_ppm": 612.0}),  # integer text
        ("pm_2_5", b" 7.0\n", "environment", {"pm25_ugm3": 7.0}),
        ("wifi_signal", b"-67", "device_health", {"rssi_dbm": -67.0}),
        ("uptime", b"86400.5", "device_health", {"uptime_s": 86400.5}),
        ("living_room_temperature", b"20.1", "environment", {"temperature_c": 20.1}),  # by its ending
        ("esp_battery_voltage", b"3.71", "device_health", {"battery_v": 3.71}),  # longest ending wins
        ("garage_power", b'"120"', "electricity", {"power_w": 120.0}),  # quoted value
    ],
)
def test_default_names(sensor: str, payload: bytes, measurement: str, fields: dict[str, Any]) -> None:
    got_measurement, got = _decode(sensor, payload)
    assert got_measurement == measurement
    assert got == pytest.approx(fields)


def test_mapping_order_node_then_profile_then_ending() -> None:
    options = {
        "sensors": {"vorlauf": {"measurement": "heat", "field": "return_temp_c", "unit": "degC"}},
        "devices": {
            "hp-01": {
                "vorlauf": HEAT,
                "zaehler": {"measurement": "heat", "field": "energy_kwh", "unit": "Wh"},
            }
        },
    }
    assert _decode("vorlauf", b"35.2", "hp-01", **options) == ("heat", {"flow_temp_c": 35.2})
    assert _decode("vorlauf", b"35.2", "hp-02", **options) == ("heat", {"return_temp_c": 35.2})
    assert _decode("zaehler", b"1234567", "hp-01", **options) == (
        "heat",
        {"energy_kwh": pytest.approx(1234.567)},
    )
    assert _decode("kessel_vorlauf", b"60", "hp-02", **options) == ("heat", {"return_temp_c": 60.0})


@pytest.mark.parametrize(
    ("sensor", "payload", "options", "reason"),
    [
        ("temperature", b"nan", {}, "no_readings"),
        ("temperature", b"NaN", {}, "no_readings"),
        ("temperature", b"", {}, "no_readings"),
        ("fan_speed", b"1200", {}, "no_readings"),
        ("living_room_temperature", b"20", {"suffix_match": False}, "no_readings"),
        ("temperature", b"20", {"default_sensors": False}, "no_readings"),
        ("co2", b"warming up", {}, "invalid_value"),
        ("temperature", b"inf", {}, "invalid_value"),
        ("temperature", b"2\xff", {}, "invalid_utf8"),
    ],
)
def test_rejections(sensor: str, payload: bytes, options: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _decode(sensor, payload, **options)
    assert caught.value.reason == reason


@settings(max_examples=300)
@given(
    sensor=st.sampled_from(["temperature", "x_temperature", "wifi_signal", "fan", ""]),
    payload=st.binary(max_size=20) | values.map(dump),
)
def test_fuzz_only_decode_rejected_escapes(sensor: str, payload: bytes) -> None:
    message = DecodeInput("t", payload, {"device": "n", "sensor": sensor}, RECEIVED)
    decoded_or_rejected(lambda: _decoder()(message))
