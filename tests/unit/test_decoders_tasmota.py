"""tasmota decoder: ENERGY blocks old and new, per-phase arrays, sensor groups, STATE, and their quirks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decode import MessageDecoder
from ingest.decoders import DecodeFn, DecodeInput
from ingest.decoders.tasmota import SPEC
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected, NotThisProfile
from tests.unit.decoder_contract import decoded_or_rejected, values

RECEIVED = 1_764_320_401_000_000_000  # 2025-11-28T09:00:01Z
AT_0900 = 1_764_320_400_000_000_000  # 2025-11-28T09:00:00Z = 10:00 in Berlin
SENSOR = "lab/gw/tele/plug/SENSOR"


def _decoder(**options: Any) -> DecodeFn:
    return SPEC.build(SPEC.options.model_validate(options), "Europe/Berlin")


def _decode(
    payload: bytes, topic: str = SENSOR, **options: Any
) -> list[tuple[str, dict[str, Any], int, str]]:
    device = topic.split("/")[3]
    message = DecodeInput(topic, payload, {"gateway": "gw", "device": device}, RECEIVED)
    return [(r.measurement, r.fields, r.time_ns, r.time_source) for r in _decoder(**options)(message)]


ENERGY = '"Total":1.5,"Power":20,"Voltage":230,"Current":0.1'


@pytest.mark.parametrize(
    ("quirk", "payload", "fields", "time"),
    [
        (
            "integers and floats",
            '{"ENERGY":{"Total":1,"Power":20.0}}',
            {"energy_import_kwh": 1.0, "power_w": 20.0},
            None,
        ),
        (
            "numbers as strings",
            '{"ENERGY":{"Total":"1.5","Power":"20"}}',
            {"energy_import_kwh": 1.5, "power_w": 20.0},
            None,
        ),
        ("decimal comma", '{"ENERGY":{"Total":"1,5"}}', {"energy_import_kwh": 1.5}, None),
        ("null", '{"ENERGY":{"Total":1.5,"Power":null}}', {"energy_import_kwh": 1.5}, None),
        ("duplicate key: the first counts", '{"ENERGY":{"Power":20,"Power":99}}', {"power_w": 20.0}, None),
        (
            "local time without zone",
            '{"Time":"2025-11-28T10:00:00","ENERGY":{"Power":1}}',
            {"power_w": 1.0},
            AT_0900,
        ),
        (
            "ISO with offset",
            '{"Time":"2025-11-28T09:00:00+00:00","ENERGY":{"Power":1}}',
            {"power_w": 1.0},
            AT_0900,
        ),
        ("epoch seconds", '{"Time":1764320400,"ENERGY":{"Power":1}}', {"power_w": 1.0}, AT_0900),
        ("epoch ms", '{"Time":1764320400000,"ENERGY":{"Power":1}}', {"power_w": 1.0}, AT_0900),
        ("epoch ns", '{"Time":1764320400000000000,"ENERGY":{"Power":1}}', {"power_w": 1.0}, AT_0900),
        ("1970 clock", '{"Time":"1970-01-01T00:00:42","ENERGY":{"Power":1}}', {"power_w": 1.0}, None),
        ("spread over lines", '{\n "ENERGY": {\n  "Power": 1\n }\n}\n', {"power_w": 1.0}, None),
        (
            "per-phase arrays",
            '{"ENERGY":{"Total":[1,2,3],"Power":[10,-20,null],"Voltage":[230,231,232],"Frequency":[50,50,50]}}',
            {
                "energy_import_kwh": 6.0,
                "power_w": -10.0,
                "power_l1_w": 10.0,
                "power_l2_w": -20.0,
                "voltage_l1_v": 230.0,
                "voltage_l2_v": 231.0,
                "voltage_l3_v": 232.0,
                "frequency_hz": 50.0,
            },
            None,
        ),
        (
            "export counter",
            '{"ENERGY":{"Total":5,"ExportActive":[1,2,0]}}',
            {"energy_import_kwh": 5.0, "energy_export_kwh": 3.0},
            None,
        ),
    ],
)
def test_energy_quirks(quirk: str, payload: str, fields: dict[str, Any], time: int | None) -> None:
    [(measurement, got, time_ns, source)] = _decode(payload.encode())
    assert measurement == "electricity"
    assert got == pytest.approx(fields), quirk
    assert all(type(v) is float for v in got.values())
    assert (time_ns, source) == ((time, "device") if time else (RECEIVED, "received"))


def test_arrays_as_channels_per_device() -> None:
    payload = b'{"ENERGY":{"Total":[1,2],"Power":[10,0],"Voltage":230}}'
    readings = _decoder(devices={"dual": {"arrays": "channels"}})(
        DecodeInput("lab/gw/tele/dual/SENSOR", payload, {"device": "dual"}, RECEIVED)
    )
    assert [(r.tags, r.fields) for r in readings] == [
        ({"channel": "0"}, {"energy_import_kwh": 1.0, "power_w": 10.0}),
        ({"channel": "1"}, {"energy_import_kwh": 2.0, "power_w": 0.0}),
        ({}, {"voltage_l1_v": 230.0}),
    ]


def test_old_energy_topic_has_the_block_at_the_top() -> None:
    [(_, fields, _, _)] = _decode(f"{{{ENERGY}}}".encode(), "lab/gw/tele/pow/ENERGY")
    assert fields == {"energy_import_kwh": 1.5, "power_w": 20.0, "voltage_l1_v": 230.0, "current_l1_a": 0.1}


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        (
            '{"UptimeSec":93784,"Wifi":{"RSSI":76,"Signal":-62}}',
            {"uptime_s": 93784.0, "rssi_dbm": -62.0, "link_quality": 76.0},
        ),
        ('{"Uptime":"1T02:03:04","Wifi":{"RSSI":44}}', {"uptime_s": 93784.0, "link_quality": 44.0}),
        ('{"Uptime":15}', {"uptime_s": 54000.0}),  # firmware before 5.x: hours
        ('{"Uptime":"garbage","Wifi":{"RSSI":"50"}}', {"link_quality": 50.0}),
    ],
)
def test_state_old_and_new(payload: str, fields: dict[str, Any]) -> None:
    [(measurement, got, _, _)] = _decode(payload.encode(), "lab/gw/tele/plug/STATE")
    assert (measurement, got) == ("device_health", fields)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        (
            '{"AM2301":{"Temperature":21.3,"Humidity":45.6,"DewPoint":9.1},"TempUnit":"C"}',
            {"temperature_c": 21.3, "humidity_pct": 45.6},
        ),
        ('{"DS18B20":{"Id":"01","Temperature":50},"TempUnit":"F"}', {"temperature_c": 10.0}),
        (
            '{"BMP280":{"Temperature":20,"Pressure":760},"PressureUnit":"mmHg"}',
            {"temperature_c": 20.0, "pressure_hpa": 1013.25},
        ),
        (
            '{"SCD30":{"CarbonDioxide":"612","eCO2":600,"Temperature":22,"Humidity":40}}',
            {"co2_ppm": 612.0, "temperature_c": 22.0, "humidity_pct": 40.0},
        ),
    ],
)
def test_environment_groups(payload: str, fields: dict[str, Any]) -> None:
    [(measurement, got, _, _)] = _decode(payload.encode())
    assert measurement == "environment"
    assert got == pytest.approx(fields, rel=1e-4)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"Time":"2025-11-28T10:00:00","SML":{"Total_in":1.0,"Power_curr":5}}',
        b'{"Time":"2025-11-28T10:00:00","":{"Total_in":1.0}}',
        b'{"mod1":{"Temperature":40,"Output_Power":1200}}',  # a script group with a temperature in it
        b"{}",
    ],
)
def test_sensor_messages_of_meter_scripts_go_to_tasmota_sml(payload: bytes) -> None:
    with pytest.raises(NotThisProfile):
        _decode(payload)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"ENERGY":"error"}', "invalid_payload"),
        (b'{"ENERGY":{"Power":"lots"}}', "invalid_value"),
        (b'{"ENERGY":{"Power":[1,{"a":2}]}}', "invalid_value"),
        (b'{"ENERGY":{"Today":1.5}}', "no_readings"),
        (b'{"ENERGY":{"Power":1', "invalid_json"),
        (b'{"ENERGY":{"Power":1}}\xff', "invalid_utf8"),
        (b"ON", "invalid_json"),
        (b"[1]", "invalid_payload"),
    ],
)
def test_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        _decode(payload)
    assert caught.value.reason == reason


PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"ENERGY":{"Voltage":2301}}', "implausible_value"),
        (b'{"ENERGY":{"Power":[1,2,30000]}}', "implausible_value"),
        (b'{"ENERGY":{"Power":1}}' + b" " * 300_000, "oversized_payload"),
    ],
)
def test_profile_level_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        MessageDecoder(PROFILES).decode("lab/gw/tele/plug/SENSOR", payload, RECEIVED)
    assert caught.value.reason == reason


times = (
    st.none()
    | st.integers()
    | st.floats()
    | st.sampled_from(["2025-11-28T10:00:00", "1970-01-01T00:00:00", "x", "0T00:00:01"])
)
energy_keys = st.sampled_from(
    ["Total", "ExportActive", "Power", "Voltage", "Current", "Factor", "Frequency", "Today"]
)
groups = st.dictionaries(
    st.sampled_from(["Temperature", "Humidity", "Pressure", "CarbonDioxide", "Id", "Total_in"]),
    values,
    max_size=4,
)


@settings(max_examples=300)
@given(
    kind=st.sampled_from(["SENSOR", "STATE", "ENERGY"]),
    energy=st.dictionaries(energy_keys, values, max_size=6) | values,
    group=groups,
    time=times,
    unit=st.sampled_from(["C", "F", None, 3]),
    uptime=values,
    wifi=st.dictionaries(st.sampled_from(["RSSI", "Signal"]), values) | values,
    arrays=st.sampled_from(["phases", "channels"]),
)
def test_fuzz_only_decode_rejected_escapes(
    kind: str, energy: Any, group: Any, time: Any, unit: Any, uptime: Any, wifi: Any, arrays: str
) -> None:
    document = {"Time": time, "ENERGY": energy, "AM2301": group, "TempUnit": unit, "PressureUnit": unit}
    document |= {"UptimeSec": uptime, "Uptime": uptime, "Wifi": wifi}
    payload = json.dumps(energy if kind == "ENERGY" else document, allow_nan=True).encode()
    decoded_or_rejected(
        lambda: _decoder(arrays=arrays)(
            DecodeInput(f"lab/gw/tele/d/{kind}", payload, {"device": "d"}, RECEIVED)
        )
    )


STATUS10 = "lab/gw/stat/plug/STATUS10"
SENSOR_ENERGY = {"energy_import_kwh": 1.5, "power_w": 20.0, "voltage_l1_v": 230.0, "current_l1_a": 0.1}


@pytest.mark.parametrize(
    ("quirk", "sensors", "expected"),
    [
        (
            "ENERGY block",
            '{"Time":"2025-11-28T10:00:00","ENERGY":{' + ENERGY + "}}",
            [("tasmota", "electricity", {}, SENSOR_ENERGY, "device")],
        ),
        (
            "sensor group, 1970 clock",
            '{"Time":"1970-01-01T00:12:34","DS18B20":{"Id":"01144A0CB2AA","Temperature":22.4},"TempUnit":"C"}',
            [("tasmota", "environment", {"sensor": "DS18B20"}, {"temperature_c": 22.4}, "received")],
        ),
        (
            "SML group without a name, 1970 clock",
            '{"Time":"1970-01-01T00:12:34","":{"Total_in":12345.6851,"Power_curr":-312}}',
            [
                (
                    "tasmota-sml",
                    "electricity",
                    {},
                    {"energy_import_kwh": 12345.6851, "power_w": -312.0},
                    "received",
                )
            ],
        ),
        (
            "two SML meters",
            '{"Time":"2025-11-28T10:00:00","":{"Total_in":1.5},"WP":{"Total_in":2.5}}',
            [
                ("tasmota-sml", "electricity", {"channel": "_"}, {"energy_import_kwh": 1.5}, "device"),
                ("tasmota-sml", "electricity", {"channel": "WP"}, {"energy_import_kwh": 2.5}, "device"),
            ],
        ),
    ],
)
def test_status10_reads_like_sensor(
    quirk: str, sensors: str, expected: list[tuple[str, str, dict[str, str], dict[str, Any], str]]
) -> None:
    """The answer to Status 10 is a SENSOR message wrapped in StatusSNS, routed as SENSOR is."""
    payload = ('{"StatusSNS":' + sensors + "}").encode()
    readings = MessageDecoder(PROFILES).decode(STATUS10, payload, RECEIVED)
    got = [
        (
            r.tags["profile"],
            r.measurement,
            {k: v for k, v in r.tags.items() if k in ("sensor", "channel")},
            r.fields,
            r.time_source,
        )
        for r in readings
    ]
    assert got == expected, quirk
    assert all(r.time_ns == (RECEIVED if r.time_source == "received" else AT_0900) for r in readings)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"Command":"Unknown"}',
        b'{"StatusSNS":"error"}',
        b'{"Time":"2025-11-28T10:00:00","ENERGY":{"Power":1}}',
    ],
)
def test_status10_without_status_sns_object(payload: bytes) -> None:
    with pytest.raises(DecodeRejected) as caught:
        MessageDecoder(PROFILES).decode(STATUS10, payload, RECEIVED)
    assert caught.value.reason == "invalid_payload"
