"""obis-json decoder: key spellings, values as strings, units per code, one value per topic, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.decoders import DecodeInput
from ingest.decoders.dsmr import DsmrOptions
from ingest.decoders.obis import SPEC, ObisJsonOptions
from ingest.decoders.obis_codes import check_units, electricity_fields, parse_obis
from ingest.readings import DecodeRejected, NotThisProfile, Reading
from tests.unit.decoder_contract import decoded_or_rejected, values

RECEIVED_NS = 1_764_320_402_000_000_000  # 2025-11-28T09:00:02Z
WH = {"1.8.0": "Wh", "2.8.0": "Wh"}


def decode(payload: str | bytes, *, obis: str | None = None, **options: Any) -> list[Reading]:
    fn = SPEC.build(ObisJsonOptions(**options), "Europe/Berlin")
    data = payload.encode() if isinstance(payload, str) else payload
    bindings = {"gateway": "gw", "device": "m"} | ({"obis": obis} if obis else {})
    return fn(DecodeInput("lab/gw/obis/m", data, bindings, RECEIVED_NS))


@pytest.mark.parametrize(
    ("text", "cde", "medium", "billing"),
    [
        ("1.8.0", "1.8.0", 1, 255),
        ("1-0:1.8.0", "1.8.0", 1, 255),
        ("1-0:1.8.0*255", "1.8.0", 1, 255),
        ("1-0:1.8.0.255", "1.8.0", 1, 255),
        ("1-0:1.8.0*01", "1.8.0", 1, 1),
        ("7-0:3.0.0", "3.0.0", 7, 255),
        ("1-0:21.7.255*255", "21.7.0", 1, 255),
        (" 1-0:16.7.0 ", "16.7.0", 1, 255),
    ],
)
def test_obis_spellings(text: str, cde: str, medium: int, billing: int) -> None:
    obis = parse_obis(text)
    assert obis is not None
    assert (obis.cde, obis.medium, obis.billing) == (cde, medium, billing)


@pytest.mark.parametrize("text", ["", "1.8", "time", "1-0:1.8.0*255*1", "a-b:1.8.0", "1.8.0.0.0"])
def test_not_obis(text: str) -> None:
    assert parse_obis(text) is None


def test_totals_win_and_powers_net() -> None:
    assert electricity_fields({"1.8.0": 5.0, "1.8.1": 2.0, "2.8.1": 1.0, "2.8.2": 2.0}) == {
        "energy_import_kwh": 5.0,
        "energy_export_kwh": 3.0,
    }
    assert electricity_fields({"16.7.0": -3.0, "1.7.0": 9.0, "21.7.0": 1.0, "22.7.0": 4.0}) == {
        "power_w": -3.0,
        "power_l1_w": -3.0,
    }


KEYS = ["1.8.0", "1-0:1.8.0", "1-0:1.8.0*255", "1-0:1.8.0.255", "0100010800ff", "0100010800FF"]


@pytest.mark.parametrize("key", KEYS)
def test_key_spellings(key: str) -> None:
    (reading,) = decode(json.dumps({key: "12570070"}), units=WH)
    assert reading.fields == {"energy_import_kwh": 12570.07}


VALUES: list[tuple[str, Any, dict[str, str], float]] = [
    ("number", 1500, {}, 1.5),
    ("text", "1500", {}, 1.5),
    ("decimal comma", "1500,5", {}, 1.5005),
    ("unit in the value wins", "1,5*kWh", {"1.8.0": "Wh"}, 1.5),
    ("value object with unit", {"value": "2.5", "unit": "kWh"}, {}, 2.5),
    ("value object without unit: base unit Wh", {"value": 2500}, {}, 2.5),
    ("configured unit", "3", {"1.8.0": "kWh"}, 3.0),
    ("MWh", "0.004*MWh", {}, 4.0),
    ("padded", "  0001500  ", {}, 1.5),
]


@pytest.mark.parametrize(("raw", "units", "kwh"), [v[1:] for v in VALUES], ids=[v[0] for v in VALUES])
def test_values_and_units(raw: Any, units: dict[str, str], kwh: float) -> None:
    (reading,) = decode(json.dumps({"1.8.0": raw}), units=units)
    assert reading.fields["energy_import_kwh"] == pytest.approx(kwh)
    assert isinstance(reading.fields["energy_import_kwh"], float)


REJECTED: list[tuple[str, str | bytes, str]] = [
    ("not a number", '{"1.8.0": "E-42"}', "invalid_value"),
    ("NaN text", '{"1.8.0": "NaN"}', "invalid_value"),
    ("bool", '{"16.7.0": true}', "invalid_value"),
    ("per-phase array", '{"32.7.0": [230, 231, 229]}', "invalid_value"),
    ("unit of another quantity", '{"1.8.0": "12*V"}', "invalid_value"),
    ("unknown unit", '{"1.8.0": "12*furlongs"}', "invalid_value"),
    ("unit not text", '{"1.8.0": {"value": 1, "unit": 5}}', "invalid_value"),
    ("only nulls and empty text", '{"1.8.0": null, "2.8.0": "", "16.7.0": "-"}', "no_readings"),
    ("billing period only", '{"1-0:1.8.0*01": "5"}', "no_readings"),
    ("a list", "[1, 2]", "invalid_payload"),
    ("not JSON", "1.8.0=5", "invalid_json"),
    ("invalid UTF-8", b'{"1.8.0": "\xff"}', "invalid_utf8"),
    ("invalid UTF-8 outside a string", b"\xff12", "invalid_utf8"),
    ("one code twice, different values", '{"1.8.0": "1000", "1.8.0": "2000"}', "invalid_payload"),
    (
        "one code in two spellings, different values",
        '{"1.8.0": 1000, "1-0:1.8.0*255": 2000}',
        "invalid_payload",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected(payload: str | bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        decode(payload)
    assert caught.value.reason == reason, caught.value.detail


def test_a_repeated_key_is_named_as_sent() -> None:
    """The detail names the key the meter repeated (generic-json's wording), not the parse's "1.8.0#2";
    a key sent as "1.8.0#2" is no OBIS code (before: read as a second 1.8.0)."""
    with pytest.raises(DecodeRejected, match=r"duplicate key '1\.8\.0' with different values \(1\.0, 2\.0\)"):
        decode('{"1.8.0": "1000", "1.8.0": "2000"}')
    (reading,) = decode('{"1.8.0": "1000", "1.8.0#2": "2000"}')
    assert reading.fields == {"energy_import_kwh": 1.0}


def test_duplicate_and_empty_keys() -> None:
    """A code repeated with the same value is one reading; different values are refused (REJECTED)."""
    (reading,) = decode('{"": 1, "1.8.0": "1000", "1.8.0": "1000", "1-0:1.8.0*255": 1000, "16.7.0": 5}')
    assert reading.fields == {"energy_import_kwh": 1.0, "power_w": 5.0}


def test_channels_are_different_quantities() -> None:
    """B is the input of a multi-input device: 1-1:1.8.0 and 1-2:1.8.0 are both read, tagged apart."""
    readings = decode('{"1-1:1.8.0": "100*kWh", "1-2:1.8.0": "5*kWh", "1-2:16.7.0": 40}')
    assert [(r.tags, r.fields) for r in readings] == [
        ({"channel": "1"}, {"energy_import_kwh": 100.0}),
        ({"channel": "2"}, {"energy_import_kwh": 5.0, "power_w": 40.0}),
    ]
    (alone,) = decode('{"1-1:1.8.0": "100*kWh"}')
    assert alone.tags == {}


def test_one_register_in_two_units_is_the_same_value() -> None:
    """Converted floats one rounding apart are one value, not "a second, different value"."""
    assert 1000002 * 0.001 != 1000.002  # Wh -> kWh: the two differ in the last bit
    (reading,) = decode('{"1.8.0": "1000.002*kWh", "1-0:1.8.0*255": "1000002*Wh"}')
    assert reading.fields["energy_import_kwh"] == pytest.approx(1000.002, rel=1e-12)


def test_a_different_value_in_the_same_channel_is_still_refused() -> None:
    with pytest.raises(DecodeRejected, match=r"of 1-1:1\.8\.0") as caught:
        decode('{"1-1:1.8.0": "100*kWh", "1-1:1.8.0*255": "100.001*kWh"}')
    assert caught.value.reason == "invalid_payload"


TIMES = [
    ("epoch ms", 1_764_320_400_000, 1_764_320_400_000_000_000, "device"),
    ("ISO with offset", "2025-11-28T10:00:00+01:00", 1_764_320_400_000_000_000, "device"),
    ("local time without zone", "2025-11-28 10:00:00", 1_764_320_400_000_000_000, "device"),
    ("clock at 1970", 12, RECEIVED_NS, "received"),
    ("missing", None, RECEIVED_NS, "received"),
]


@pytest.mark.parametrize(("raw", "time_ns", "source"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_device_time(raw: Any, time_ns: int, source: str) -> None:
    (reading,) = decode(json.dumps({"16.7.0": 1, "meta": {"ts": raw}}), time_key="meta.ts")
    assert (reading.time_ns, reading.time_source) == (time_ns, source)


# --- one value per topic --------------------------------------------------------------------------------

TOPIC_VALUES: list[tuple[str, str, bytes, dict[str, float]]] = [
    ("import register", "1-0:1.8.0", b"12570070", {"energy_import_kwh": 12570.07}),
    ("signed power, quoted, comma", "1-0:16.7.0", b'"-12,5"', {"power_w": -12.5}),
    ("import power stays its own field", "1-0:1.7.0", b"0", {"power_import_w": 0.0}),
    ("phase export power", "1-0:42.7.0", b"0.2*kW", {"power_l2_export_w": 200.0}),
    ("JSON object", "1-0:32.7.0", b'{"value": "230,1", "unit": "V"}', {"voltage_l1_v": 230.1}),
    ("trailing newline", "1-0:14.7.0", b"49.98\n", {"frequency_hz": 49.98}),
]


@pytest.mark.parametrize(
    ("obis", "payload", "fields"), [t[1:] for t in TOPIC_VALUES], ids=[t[0] for t in TOPIC_VALUES]
)
def test_one_value_per_topic(obis: str, payload: bytes, fields: dict[str, float]) -> None:
    (reading,) = decode(payload, obis=obis, units=WH)
    assert reading.fields == pytest.approx(fields)
    assert reading.time_source == "received"


@pytest.mark.parametrize(
    ("obis", "payload", "reason"),
    [
        ("1-0:1.8.0", b"\xff\xfe", "invalid_utf8"),
        ("1-0:1.8.0", b"", "no_readings"),
        ("1-0:1.8.0", b"{broken", "invalid_json"),
        ("1-0:1.8.0", b"abc", "invalid_value"),
        ("1-0:96.1.0", b"123", "no_readings"),
    ],
)
def test_one_value_rejected(obis: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        decode(payload, obis=obis)
    assert caught.value.reason == reason


def test_topic_level_that_is_no_obis_code_hands_over() -> None:
    with pytest.raises(NotThisProfile):
        decode(b"5", obis="power")


@pytest.mark.parametrize(
    "options",
    [{"units": {"1.8.0": "W"}}, {"units": {"0.0.0": "Wh"}}, {"units": {"energy": "Wh"}}, {"fields": {}}],
)
def test_options_are_strict(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ObisJsonOptions(**options)


@pytest.mark.parametrize("units", [{"1.8.0": "W"}, {"0.0.0": "Wh"}, {"energy": "Wh"}])
def test_dsmr_and_obis_json_check_units_alike(units: dict[str, str]) -> None:
    """One validator (obis_codes.check_units) for both profiles' ``units`` option."""
    with pytest.raises(ValidationError) as obis_json:
        ObisJsonOptions(units=units)
    with pytest.raises(ValidationError) as dsmr:
        DsmrOptions(units=units)
    assert obis_json.value.errors()[0]["msg"] == dsmr.value.errors()[0]["msg"]
    assert obis_json.value.errors()[0]["msg"] == f"Value error, {_units_error(units)}"


def _units_error(units: dict[str, str]) -> str:
    try:
        check_units(units)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{units} accepted")


# --- fuzz ------------------------------------------------------------------------------------------------

keys = st.sampled_from(
    [*KEYS, "1-0:16.7.0", "32.7.0", "1-0:2.8.1*255", "1-0:1.8.0*01", "time", ""]
) | st.text(max_size=12)
# the shared fuzz values, and obis-json's {"value": …, "unit": …} shape around them
raw_values: st.SearchStrategy[Any] = values | st.fixed_dictionaries(
    {"value": values, "unit": st.none() | st.text(max_size=5) | st.sampled_from(["kWh", "Wh", "W", "kW"])}
)


def _no_escape(payload: bytes, obis: str | None) -> None:
    decoded_or_rejected(lambda: decode(payload, obis=obis, time_key="time"), floats_only=True)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(keys, raw_values, max_size=6))
def test_fuzz_documents(document: dict[str, Any]) -> None:
    _no_escape(json.dumps(document, allow_nan=True).encode(), None)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(obis=keys, payload=st.binary(max_size=20) | raw_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_one_value(obis: str, payload: bytes) -> None:
    _no_escape(payload, obis or "x")
