"""tasmota-sml decoder: user-named groups and keys, default and overridden mappings, signed/split power."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.decoders import DecodeFn, DecodeInput
from ingest.decoders.tasmota_sml import SPEC
from ingest.readings import DecodeRejected
from tests.unit.decoder_contract import decoded_or_rejected, values

RECEIVED = 1_764_320_401_000_000_000
AT_0900 = 1_764_320_400_000_000_000


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate(options), "Europe/Berlin")


def _decode(
    payload: str | bytes, device: str = "m1", **options: Any
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    raw = payload.encode() if isinstance(payload, str) else payload
    message = DecodeInput(f"lab/gw/tele/{device}/SENSOR", raw, {"gateway": "gw", "device": device}, RECEIVED)
    return [(r.tags, r.fields) for r in _decoder(**options)(message)]


@pytest.mark.parametrize(
    ("quirk", "payload", "fields"),
    [
        (
            "doc names",
            '{"SML":{"Total_in":1.5,"Total_out":0.5,"Power_curr":100}}',
            {"energy_import_kwh": 1.5, "energy_export_kwh": 0.5, "power_w": 100.0},
        ),
        (
            "any case",
            '{"SML":{"total_IN":1.5,"POWER_CURR":100}}',
            {"energy_import_kwh": 1.5, "power_w": 100.0},
        ),
        ("empty group name", '{"":{"Total_in":1.5}}', {"energy_import_kwh": 1.5}),
        ("empty key ignored", '{"SML":{"":7,"Total_in":1.5}}', {"energy_import_kwh": 1.5}),
        (
            "numbers as strings",
            '{"SML":{"Total_in":"1.5","Power_curr":"-20"}}',
            {"energy_import_kwh": 1.5, "power_w": -20.0},
        ),
        ("decimal comma", '{"SML":{"Total_in":"12345,6789"}}', {"energy_import_kwh": 12345.6789}),
        ("null", '{"SML":{"Total_in":1.5,"Power_curr":null}}', {"energy_import_kwh": 1.5}),
        ("negative power is export", '{"SML":{"Power_curr":-830}}', {"power_w": -830.0}),
        ("split power, exporting", '{"SML":{"Power_in":0,"Power_out":1200}}', {"power_w": -1200.0}),
        ("split power, importing", '{"SML":{"power_in":300,"power_out":0}}', {"power_w": 300.0}),
        ("split power, import only", '{"SML":{"Power_in":300}}', {"power_w": 300.0}),
        (
            "meter's own power wins over split",
            '{"SML":{"Power_curr":5,"Power_in":300,"Power_out":0}}',
            {"power_w": 5.0},
        ),
        ("first of two aliases wins", '{"SML":{"Power_curr":5,"P":7}}', {"power_w": 5.0}),
        (
            "per-phase keys",
            '{"SML":{"Power_p1":1,"Power_L2":2,"P_L3":3,"Volt_p1":230,"Amperage_p3":1.5}}',
            {
                "power_l1_w": 1.0,
                "power_l2_w": 2.0,
                "power_l3_w": 3.0,
                "voltage_l1_v": 230.0,
                "current_l3_a": 1.5,
            },
        ),
        ("array where a scalar belongs", '{"SML":{"Power_curr":[100,200,-50]}}', {"power_w": 250.0}),
        (
            "unmapped keys and strings ignored",
            '{"SML":{"Meter_Id":"0a01","Total_in":2,"phase_angle_p1":12}}',
            {"energy_import_kwh": 2.0},
        ),
        ("spread over lines", '{\r\n"SML": {\r\n"Total_in": 2\r\n}\r\n}', {"energy_import_kwh": 2.0}),
    ],
)
def test_default_keys(quirk: str, payload: str, fields: dict[str, Any]) -> None:
    [(tags, got)] = _decode(payload)
    assert tags == {}
    assert got == pytest.approx(fields), quirk
    assert all(type(v) is float for v in got.values())


def test_time_local_without_zone_and_1970() -> None:
    message = DecodeInput("t", b'{"Time":"2025-11-28T10:00:00","SML":{"Total_in":1}}', {}, RECEIVED)
    [reading] = _decoder()(message)
    assert (reading.time_ns, reading.time_source) == (AT_0900, "device")
    message = DecodeInput("t", b'{"Time":"1970-01-01T00:00:05","SML":{"Total_in":1}}', {}, RECEIVED)
    [reading] = _decoder()(message)
    assert (reading.time_ns, reading.time_source) == (RECEIVED, "received")


def test_duplicate_keys_map_one_by_one_per_device() -> None:
    options = {
        "devices": {
            "ed300l": {
                "keys": {
                    "Tariflos": {"measurement": "electricity", "field": "energy_import_kwh", "unit": "kWh"},
                    "Tariflos#2": {"measurement": "electricity", "field": "energy_export_kwh", "unit": "kWh"},
                }
            }
        }
    }
    payload = '{"Haus":{"Power_curr":312,"Tariflos":4567.89,"Tariflos":123.45}}'
    assert _decode(payload, "ed300l", **options) == [
        ({}, {"power_w": 312.0, "energy_import_kwh": 4567.89, "energy_export_kwh": 123.45})
    ]
    # another device of the same profile keeps the defaults only
    assert _decode(payload, "other", **options) == [({}, {"power_w": 312.0})]


def test_profile_keys_with_units_and_no_defaults() -> None:
    options: dict[str, Any] = {
        "default_keys": False,
        "keys": {
            "Zaehler": {"measurement": "electricity", "field": "energy_import_kwh", "unit": "Wh"},
            "Gas": {"measurement": "gas", "field": "volume_m3", "unit": "m3"},
            "Leistung_kW": {"measurement": "electricity", "field": "power_w", "unit": "kW"},
            "Bezug": {"measurement": "electricity", "field": "power_import_w", "unit": "kW"},
        },
    }
    got = _decode('{"X":{"Zaehler":1234,"Gas":5.5,"Total_in":9,"Leistung_kW":1.5,"Bezug":2}}', **options)
    assert got == [({}, {"energy_import_kwh": 1.234, "power_w": 1500.0}), ({}, {"volume_m3": 5.5})]


def test_several_meters_are_tagged_with_their_group() -> None:
    got = _decode(
        '{"Time":"2025-11-28T10:00:00","Haus":{"Total_in":1},"Heizung":{"Total_in":2},"Info":{"x":1}}'
    )
    assert got == [
        ({"channel": "Haus"}, {"energy_import_kwh": 1.0}),
        ({"channel": "Heizung"}, {"energy_import_kwh": 2.0}),
    ]


def test_groups_filter() -> None:
    got = _decode('{"Haus":{"Total_in":1},"Heizung":{"Total_in":2}}', groups=["Heizung"])
    assert got == [({}, {"energy_import_kwh": 2.0})]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"Time":"2025-11-28T10:00:00"}', "invalid_payload"),
        (b'{"Zaehler":{"Stand":1}}', "no_readings"),
        (b'{"SML":{"Total_in":null}}', "no_readings"),
        (b'{"SML":{"Total_in":"viel"}}', "invalid_value"),
        (b'{"SML":{"Total_in":NaN}}', "invalid_value"),
        (b'{"SML":{"Total_in":1', "invalid_json"),
        (b'{"SML":{"Total_in":1}}\xc3', "invalid_utf8"),
    ],
)
def test_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _decode(payload)
    assert caught.value.reason == reason


def test_options_are_strict() -> None:
    with pytest.raises(ValidationError):
        SPEC.options.model_validate({"keyz": {}})
    with pytest.raises(ValidationError):
        SPEC.options.model_validate(
            {"keys": {"X": {"measurement": "electricity", "field": "power_w", "unit": "kWh"}}}
        )


@settings(max_examples=300)
@given(
    groups=st.dictionaries(
        st.sampled_from(["SML", "", "Haus", "Time"]),
        st.dictionaries(
            st.sampled_from(["Total_in", "Total_out", "Power_curr", "Power_in", "Power_out", "Volt_p1", ""]),
            values,
            max_size=5,
        )
        | values,
        max_size=3,
    ),
    time=values,
)
def test_fuzz_only_decode_rejected_escapes(groups: dict[str, Any], time: Any) -> None:
    payload = json.dumps({"Time": time, **groups}, allow_nan=True).encode()
    decoded_or_rejected(lambda: _decoder()(DecodeInput("t", payload, {"device": "d"}, RECEIVED)))


# --- the compiled plans (per key set, direct single point) against the decoder as first written --------


def _reference(options: dict[str, Any]) -> DecodeFn:
    """The tasmota-sml decoder before its plans were compiled: a look-up per key, Points per message."""
    from ingest.decoders.payloads import Points, json_object, number, per_phase
    from ingest.decoders.tasmota_sml import DEFAULT_KEYS, Plan, SmlOptions
    from ingest.timeparse import device_time

    model = SmlOptions.model_validate(options)
    base = [DEFAULT_KEYS] if model.default_keys else []
    profile_plan = Plan(*base, model.keys).targets
    device_plans = {name: Plan(*base, model.keys, d.keys).targets for name, d in model.devices.items()}

    def group(block: dict[str, Any], plan: dict[str, Any], name: str) -> dict[tuple[str, str], float]:
        found: dict[tuple[str, str], float] = {}
        for key, raw in block.items():
            target = plan.get(key.lower())
            if target is None:
                continue
            measurement, field, factor = target
            values = per_phase(raw, key=f"{name}.{key}", factor=factor)
            if values is None:
                value = number(raw, key=f"{name}.{key}", factor=factor)
            else:
                present = [v for v in values if v is not None]
                value = sum(present) if present else None
            if value is not None:
                found.setdefault((measurement, field), value)
        imported = found.pop(("electricity", "power_import_w"), None)
        exported = found.pop(("electricity", "power_export_w"), None)
        if (imported is not None or exported is not None) and ("electricity", "power_w") not in found:
            found[("electricity", "power_w")] = (imported or 0.0) - (exported or 0.0)
        return found

    def decode(message: DecodeInput) -> list[Any]:
        document = json_object(message.payload)
        device = message.bindings.get("device", "")
        plan = device_plans.get(device, profile_plan)
        groups = [(n, b) for n, b in document.items() if isinstance(b, dict)]
        if not groups:
            raise DecodeRejected("invalid_payload", "no JSON group (object) in the SENSOR message")
        mapped = [(n, b) for n, b in groups if any(k.lower() in plan for k in b)]
        points = Points()
        for name, block in mapped:
            tags = {"channel": name or "_"} if len(mapped) > 1 else {}
            for (measurement, field), value in group(block, plan, name).items():
                points.add(measurement, field, value, tags)
        time_ns, source = device_time(
            document.get("Time"), received_ns=message.received_ns, tz="Europe/Berlin"
        )
        names = ", ".join(repr(n) for n, _ in groups)
        return points.readings_or_reject(time_ns, source, detail=f"no mapped SML key in group(s) {names}")

    return decode


def _outcome(decode: DecodeFn, message: DecodeInput) -> Any:
    try:
        readings = decode(message)
    except DecodeRejected as exc:
        return (exc.reason, exc.detail)
    return [
        (
            r.measurement,
            [(k, type(v).__name__, repr(v)) for k, v in r.fields.items()],
            r.time_ns,
            r.time_source,
            r.tags,
        )
        for r in readings
    ]


ORACLE_OPTIONS: dict[str, Any] = {
    "keys": {
        "Verbrauch": {"measurement": "electricity", "field": "energy_import_kwh", "unit": "kWh"},
        "Gas": {"measurement": "gas", "field": "volume_m3", "unit": "m3"},
        "Wh": {"measurement": "electricity", "field": "energy_import_kwh", "unit": "Wh"},
    },
    "devices": {
        "split": {"keys": {"Tariflos#2": {"measurement": "electricity", "field": "power_w", "unit": "kW"}}}
    },
}
oracle_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**70, -(2**1030), 1e308, -1e308, 0.0, -0.0])
    | st.floats(allow_nan=False)
    | st.sampled_from(["12,5", "1,234.5", "", "-", "x", " 7 "])
    | st.lists(st.floats(allow_nan=False) | st.integers() | st.none(), max_size=4)
)
oracle_keys = st.sampled_from(
    [
        "Total_in",
        "total_IN",
        "E_in",
        "Total_out",
        "Power_curr",
        "P",
        "Power_in",
        "Power_out",
        "Volt_p1",
        "Verbrauch",
        "Gas",
        "Wh",
        "Tariflos",
        "Tariflos#2",
        "Meter_Id",
    ]
)


@settings(max_examples=600)
@given(
    groups=st.lists(
        st.tuples(
            st.sampled_from(["SML", "", "_", "Haus"]),
            st.lists(st.tuples(oracle_keys, oracle_values), max_size=6),
        ),
        max_size=3,
    ),
    device=st.sampled_from(["m1", "split"]),
    time=st.sampled_from(["2025-11-28T10:00:00.123", None, 1764320400, "1970-01-01T00:00:00"]),
)
def test_compiled_plans_decode_as_before(
    groups: list[tuple[str, list[tuple[str, Any]]]], device: str, time: Any
) -> None:
    document = {"Time": time}
    for name, pairs in groups:
        block: dict[str, Any] = {}
        for key, value in pairs:
            block.setdefault(key, value)
        document[name] = block
    payload = json.dumps(document).encode()
    message = DecodeInput(
        f"lab/gw/tele/{device}/SENSOR", payload, {"gateway": "gw", "device": device}, RECEIVED
    )
    decoder = _decoder(**ORACLE_OPTIONS)
    for _ in range(2):  # the second time through the cached plan
        assert _outcome(decoder, message) == _outcome(_reference(ORACLE_OPTIONS), message)
