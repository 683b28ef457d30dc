"""shelly-gen1 decoder: one plain value per topic, phase or channel from the topic, Wh and Wmin -> kWh."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders import DecodeFn, DecodeInput
from ingest.decoders.shelly_gen1 import SPEC
from ingest.readings import DecodeRejected
from tests.unit.decoder_contract import decoded_or_rejected, dump, values

RECEIVED = 1_764_320_401_000_000_000


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate(options), "Europe/Berlin")


def _decode(device: str, path: str, payload: bytes, **options: Any) -> tuple[dict[str, str], dict[str, Any]]:
    _kind, channel, _ = path.split("/")
    topic = f"lab/gw/shellies/{device}/{path}"
    bindings = {"gateway": "gw", "device": device, "channel": channel}
    [reading] = _decoder(**options)(DecodeInput(topic, payload, bindings, RECEIVED))
    assert (reading.measurement, reading.time_ns, reading.time_source) == (
        "electricity",
        RECEIVED,
        "received",
    )
    assert all(type(v) is float for v in reading.fields.values())
    return reading.tags, reading.fields


@pytest.mark.parametrize(
    ("device", "path", "payload", "tags", "fields"),
    [
        ("shellyem3-1", "emeter/0/power", b"1207.45", {}, {"power_l1_w": 1207.45}),
        ("shellyem3-1", "emeter/2/power", b"-512.3", {}, {"power_l3_w": -512.3}),
        ("shellyem3-1", "emeter/1/voltage", b"231,6", {}, {"voltage_l2_v": 231.6}),  # decimal comma
        ("shellyem3-1", "emeter/1/current", b" 4.2\r\n", {}, {"current_l2_a": 4.2}),  # line end
        ("shellyem3-1", "emeter/0/pf", b"0.93", {"phase": "l1"}, {"power_factor": 0.93}),
        (
            "shellyem3-1",
            "emeter/0/total",
            b"1234567.8",
            {"phase": "l1"},
            {"energy_import_kwh": 1234.5678},
        ),  # Wh
        ("shellyem3-1", "emeter/2/total_returned", b"500", {"phase": "l3"}, {"energy_export_kwh": 0.5}),
        ("shelly3em-2", "emeter/0/power", b"1", {}, {"power_l1_w": 1.0}),
        ("shellyem-1", "emeter/1/power", b"15", {"channel": "1"}, {"power_w": 15.0}),
        ("shellyem-1", "emeter/0/voltage", b"230", {"channel": "0"}, {"voltage_l1_v": 230.0}),
        ("shellyem-1", "emeter/0/total", b"1000", {"channel": "0"}, {"energy_import_kwh": 1.0}),
        ("shellyplug-s-1", "relay/0/power", b"42", {"channel": "0"}, {"power_w": 42.0}),
        ("shellyplug-s-1", "relay/0/energy", b"60000", {"channel": "0"}, {"energy_import_kwh": 1.0}),  # Wmin
        ("shellyplug-s-1", "relay/0/power", b'"42.5"', {"channel": "0"}, {"power_w": 42.5}),  # JSON string
    ],
)
def test_values(device: str, path: str, payload: bytes, tags: dict[str, str], fields: dict[str, Any]) -> None:
    got_tags, got_fields = _decode(device, path, payload)
    assert got_tags == tags
    assert got_fields == pytest.approx(fields)


def test_mode_per_device_overrides_the_id_prefix() -> None:
    assert _decode("hausanschluss", "emeter/2/power", b"5", devices={"hausanschluss": "phases"}) == (
        {},
        {"power_l3_w": 5.0},
    )
    assert _decode("shellyem3-9", "emeter/2/power", b"5", devices={"shellyem3-9": "channels"}) == (
        {"channel": "2"},
        {"power_w": 5.0},
    )
    assert _decode("x-1", "emeter/0/power", b"5", phase_devices=["x-"]) == ({}, {"power_l1_w": 5.0})


@pytest.mark.parametrize(
    ("path", "payload", "reason"),
    [
        ("emeter/0/power", b"", "no_readings"),
        ("emeter/0/power", b"null", "no_readings"),
        ("emeter/0/power", b"overpower", "invalid_value"),
        ("emeter/0/power", b"nan", "invalid_value"),
        ("emeter/0/power", b"\xff\xfe", "invalid_utf8"),
        ("emeter/3/power", b"12", "invalid_payload"),
        ("emeter/0/reactive_power", b"12", "no_readings"),
        ("relay/0/voltage", b"230", "no_readings"),
    ],
)
def test_rejections(path: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _decode("shellyem3-1", path, payload)
    assert caught.value.reason == reason


@settings(max_examples=300)
@given(
    device=st.sampled_from(["shellyem3-1", "shellyem-1", "x"]),
    path=st.sampled_from(
        ["emeter/0/power", "emeter/7/total", "emeter/x/pf", "relay/0/energy", "relay/1/power"]
    ),
    payload=st.binary(max_size=20) | values.map(dump),
)
def test_fuzz_only_decode_rejected_escapes(device: str, path: str, payload: bytes) -> None:
    _kind, channel, _ = path.split("/")
    message = DecodeInput(
        f"lab/gw/shellies/{device}/{path}", payload, {"device": device, "channel": channel}, RECEIVED
    )
    decoded_or_rejected(lambda: _decoder()(message))
