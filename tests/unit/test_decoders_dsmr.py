"""dsmr decoder: P1 (DSMR 4/5, e-MUCS) and D0 telegrams, their quirks, and dsmr-parser as an oracle."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dsmr_parser import telegram_specifications
from dsmr_parser.exceptions import InvalidChecksumError
from dsmr_parser.parsers import TelegramParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.decoders import DecodeInput
from ingest.decoders.dsmr import MAX_LINES, SPEC, DsmrOptions, crc16_arc
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected, Reading
from tests.unit.decoder_contract import decoded_or_rejected

RECEIVED_NS = 1_764_320_400_000_000_000  # 2025-11-28T09:00:00Z
PROFILE = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles").by_id["dsmr"]


def example(prefix: str) -> str:
    found = [e for e in PROFILE.profile.examples if e.name.startswith(prefix)]
    assert len(found) == 1, prefix
    assert found[0].payload is not None
    return found[0].payload


def decode(payload: str | bytes, **options: Any) -> list[Reading]:
    fn = SPEC.build(DsmrOptions(**options), "Europe/Berlin")
    data = payload.encode() if isinstance(payload, str) else payload
    return fn(DecodeInput("lab/gw/dsmr/p1", data, {"gateway": "gw", "device": "p1"}, RECEIVED_NS))


def telegram(*lines: str, crc: bool = True, eol: str = "\r\n") -> str:
    """A telegram around ``lines`` with the CRC a meter computes (over CR LF line ends)."""
    body = "\r\n".join(["/TST5\\2TEST-METER", "", *lines]) + "\r\n!"
    check = f"{crc16_arc(body.encode()):04X}" if crc else ""
    return (body + check + "\r\n").replace("\r\n", eol)


def utc(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


def test_crc16_arc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D


# --- dsmr-parser as the oracle: same CRC verdict, same values ------------------------------------------

ORACLE_CASES = [
    ("DSMR 5.0.2", telegram_specifications.V5),
    ("e-MUCS", telegram_specifications.BELGIUM_FLUVIUS),
    ("DSMR 4.2", telegram_specifications.V4),
]


@pytest.mark.parametrize(("prefix", "specification"), ORACLE_CASES)
def test_values_agree_with_dsmr_parser(prefix: str, specification: dict[str, Any]) -> None:
    text = example(prefix)
    text = text[: text.index("!") + 5]  # without the gateway garbage dsmr-parser cannot skip
    if "\r" not in text:
        text = text.replace("\n", "\r\n")
    oracle = TelegramParser(specification).parse(text)
    electricity, *mbus = decode(text)
    used = oracle.ELECTRICITY_USED_TARIFF_1.value + oracle.ELECTRICITY_USED_TARIFF_2.value
    delivered = oracle.ELECTRICITY_DELIVERED_TARIFF_1.value + oracle.ELECTRICITY_DELIVERED_TARIFF_2.value
    net_kw = oracle.CURRENT_ELECTRICITY_USAGE.value - oracle.CURRENT_ELECTRICITY_DELIVERY.value
    assert electricity.fields["energy_import_kwh"] == pytest.approx(float(used))
    assert electricity.fields["energy_export_kwh"] == pytest.approx(float(delivered))
    assert electricity.fields["power_w"] == pytest.approx(float(net_kw) * 1000)
    stamp: datetime = oracle.P1_MESSAGE_TIMESTAMP.value
    assert electricity.time_ns == int(stamp.timestamp()) * 1_000_000_000
    name = "HOURLY_GAS_METER_READING" if specification is telegram_specifications.V4 else "MBUS_METER_READING"
    oracle_mbus = getattr(oracle, name)
    for value in oracle_mbus if isinstance(oracle_mbus, list) else [oracle_mbus]:
        ours = [(r.fields["volume_m3"], r.time_ns) for r in mbus]
        stamp_ns = int(value.datetime.timestamp()) * 1_000_000_000
        assert any(v == pytest.approx(float(value.value)) and t == stamp_ns for v, t in ours), ours


def test_crc_mismatch_agrees_with_dsmr_parser() -> None:
    text = example("CRC mismatch")
    with pytest.raises(InvalidChecksumError):
        TelegramParser.validate_checksum(text)
    with pytest.raises(DecodeRejected) as caught:
        decode(text)
    assert caught.value.reason == "crc_mismatch"


# --- quirks, table-driven --------------------------------------------------------------------------------

QUIRKS: list[tuple[str, str, dict[str, Any], dict[str, float]]] = [
    (
        "Wh instead of kWh",
        telegram("1-0:1.8.1(001234567*Wh)", "1-0:1.8.2(000000500*Wh)"),
        {},
        {"energy_import_kwh": 1235.067},
    ),
    (
        "a total register wins over the sum of tariffs",
        telegram("1-0:1.8.0(000100.000*kWh)", "1-0:1.8.1(000060.000*kWh)", "1-0:1.8.2(000039.000*kWh)"),
        {},
        {"energy_import_kwh": 100.0},
    ),
    (
        "billing period values (F != 255) are history, not the current reading",
        telegram("1-0:1.8.0*255(000100.000*kWh)", "1-0:1.8.0*01(000090.000*kWh)", crc=False),
        {},
        {"energy_import_kwh": 100.0},
    ),
    (
        "lower-case CRC digits",
        telegram("1-0:1.8.1(000002.000*kWh)").replace("!8E88", "!8e88"),
        {},
        {"energy_import_kwh": 2.0},
    ),
    (
        "LF line ends from a gateway, CRC computed by the meter over CR LF",
        telegram("1-0:1.8.1(000001.000*kWh)", eol="\n"),
        {},
        {"energy_import_kwh": 1.0},
    ),
    (
        "tail of the previous telegram before the header, garbage after the CRC",
        "0*kW)\r\n!1A2B\r\n" + telegram("1-0:2.7.0(00.250*kW)") + "\x00\xff garbage ! (1-0:1.8.1(9*kWh))",
        {},
        {"power_w": -250.0},
    ),
    (
        "a value without unit, the unit configured",
        telegram("1-0:1.8.0(000100.5)", crc=False),
        {"units": {"1-0:1.8.0": "kWh"}},
        {"energy_import_kwh": 100.5},
    ),
    (
        "DSMR 2.2 telegram without CRC (no version line)",
        "/ISk5\\2MT382-1004\r\n\r\n0-0:96.1.1(5A424556303035303933313934353132)\r\n"
        "1-0:1.8.1(00001.001*kWh)\r\n1-0:1.8.2(00001.001*kWh)\r\n1-0:1.7.0(0000.12*kW)\r\n!\r\n",
        {},
        {"energy_import_kwh": 2.002, "power_w": 120.0},
    ),
    (
        "decimal comma from a non-standard gateway",
        telegram("1-0:32.7.0(230,5*V)", crc=False),
        {},
        {"voltage_l1_v": 230.5},
    ),
]


@pytest.mark.parametrize(
    ("payload", "options", "fields"), [q[1:] for q in QUIRKS], ids=[q[0] for q in QUIRKS]
)
def test_quirks(payload: str, options: dict[str, Any], fields: dict[str, float]) -> None:
    readings = decode(payload, **options)
    assert readings[0].measurement == "electricity"
    assert readings[0].fields == pytest.approx(fields)
    assert all(isinstance(value, float) for value in readings[0].fields.values())


REJECTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    ("value is not a number", telegram("1-0:1.8.1(12a.5*kWh)"), {}, "invalid_value"),
    ("NaN", telegram("1-0:1.8.1(nan*kWh)"), {}, "invalid_value"),
    ("unit of another quantity", telegram("1-0:1.8.1(12*V)"), {}, "invalid_value"),
    ("no unit and none configured", telegram("1-0:1.8.0(000100.5)"), {}, "invalid_value"),
    ("CRC cut short", telegram("1-0:1.8.1(000001.000*kWh)")[:-4] + "\r\n", {}, "crc_mismatch"),
    (
        "D0 without CRC when CRC is required",
        telegram("1-0:1.8.1(1*kWh)", crc=False),
        {"require_crc": True},
        "crc_mismatch",
    ),
    ("e-MUCS without CRC", telegram("0-0:96.1.4(50217)", "1-0:1.8.1(1*kWh)", crc=False), {}, "crc_mismatch"),
    ("nothing stored", telegram("0-0:96.1.1(4B38)", "0-0:96.14.0(0002)"), {}, "no_readings"),
    ("empty payload", "", {}, "invalid_payload"),
    ("header only", "/TST5\\2TEST-METER\r\n\r\n1-0:1.8.1(0", {}, "invalid_payload"),
    (
        "more lines than a telegram has",
        telegram(*["1-0:1.8.1(1.000*kWh)"] * (MAX_LINES + 1)),
        {},
        "too_complex",
    ),
]


@pytest.mark.parametrize(
    ("payload", "options", "reason"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_rejections(payload: str, options: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        decode(payload, **options)
    assert caught.value.reason == reason, caught.value.detail


# --- time ------------------------------------------------------------------------------------------------

TIMES = [
    ("winter time", "101209113020W", "2010-12-09T10:30:20", "device"),
    ("summer time", "200512135409S", "2020-05-12T11:54:09", "device"),
    ("repeated hour at the end of DST, first pass (S)", "211031023000S", "2021-10-31T00:30:00", "device"),
    ("repeated hour at the end of DST, second pass (W)", "211031023000W", "2021-10-31T01:30:00", "device"),
    ("no W/S flag: local time", "250115120000", "2025-01-15T11:00:00", "device"),
    ("clock not set (2000-01-01)", "000101000001W", None, "received"),
    ("unreadable", "999999999999W", None, "received"),
    ("more than a day ahead", "261231235959W", None, "received"),
]


@pytest.mark.parametrize(("stamp", "expected", "source"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_telegram_time(stamp: str, expected: str | None, source: str) -> None:
    (reading,) = decode(telegram(f"0-0:1.0.0({stamp})", "1-0:1.8.1(1*kWh)"))
    assert reading.time_source == source
    assert reading.time_ns == (RECEIVED_NS if expected is None else utc(expected))


# --- M-Bus channels --------------------------------------------------------------------------------------

MBUS = [
    (
        "gas by device type",
        ["0-1:24.1.0(003)", "0-1:24.2.1(251128095500W)(00123.456*m3)"],
        {},
        [("gas", 123.456)],
    ),
    (
        "water by device type",
        ["0-2:24.1.0(007)", "0-2:24.2.1(251128095500W)(00012.5*m3)"],
        {},
        [("water", 12.5)],
    ),
    ("no device type line: gas", ["0-1:24.2.1(251128095500W)(00001.000*m3)"], {}, [("gas", 1.0)]),
    (
        "medium configured",
        ["0-1:24.2.1(251128095500W)(00001.000*m3)"],
        {"mbus": {1: "water"}},
        [("water", 1.0)],
    ),
    ("water in litres", ["0-2:24.1.0(007)", "0-2:24.2.1(251128095500W)(12345*l)"], {}, [("water", 12.345)]),
    ("heat meter in GJ is not a volume", ["0-3:24.1.0(004)", "0-3:24.2.1(251128095500W)(1.5*GJ)"], {}, []),
    (
        "24.2.1 wins over 24.2.3 on one channel",
        ["0-1:24.2.3(251128095500W)(00002.000*m3)", "0-1:24.2.1(251128095500W)(00001.000*m3)"],
        {},
        [("gas", 1.0)],
    ),
]


@pytest.mark.parametrize(("lines", "options", "expected"), [m[1:] for m in MBUS], ids=[m[0] for m in MBUS])
def test_mbus_channels(lines: list[str], options: dict[str, Any], expected: list[tuple[str, float]]) -> None:
    readings = decode(telegram("1-0:1.8.1(1*kWh)", *lines), **options)
    assert [r.measurement for r in readings[1:]] == [medium for medium, _ in expected]
    assert [r.fields["volume_m3"] for r in readings[1:]] == pytest.approx([volume for _, volume in expected])
    for reading in readings[1:]:
        assert reading.time_ns == utc("2025-11-28T08:55:00")


@pytest.mark.parametrize(
    "options",
    [
        {"units": {"1.8.0": "V"}},
        {"units": {"0.0.0": "kWh"}},
        {"units": {"x": "kWh"}},
        {"mbus": {1: "heat"}},
        {"crc": 1},
    ],
)
def test_options_are_strict(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DsmrOptions(**options)


# --- fuzz ------------------------------------------------------------------------------------------------

lines = st.one_of(
    st.sampled_from(
        [
            "1-0:1.8.1(000001.000*kWh)",
            "0-0:1.0.0(251128095500W)",
            "0-1:24.1.0(003)",
            "0-1:24.2.1(251128095500W)(00001.000*m3)",
            "1-3:0.2.8(50)",
            "0-0:96.1.4(50217)",
        ]
    ),
    st.from_regex(
        r"[01]-[0-9]:[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,3}(\*[0-9]{1,3})?(\([0-9a-zA-Z.,*:+-]{0,12}\)){1,3}",
        fullmatch=True,
    ),
    st.text(max_size=30),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(lines, max_size=8),
    crc=st.booleans(),
    mode_c=st.booleans(),
    options=st.sampled_from([{}, {"require_crc": True}, {"units": {"1.8.0": "Wh"}}]),
)
def test_fuzz_no_exception_escapes(body: list[str], crc: bool, mode_c: bool, options: dict[str, Any]) -> None:
    text = telegram(*body, crc=crc)
    if mode_c:
        text = text.replace("\r\n\r\n", "\r\n\x02", 1).replace("!", "!\r\n\x03", 1)
    decoded_or_rejected(lambda: decode(text.encode("utf-8", "surrogatepass"), **options), floats_only=True)
