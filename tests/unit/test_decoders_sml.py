"""sml decoder: binary SML frames built per the specification, their quirks, and fuzzing past the CRC."""

from __future__ import annotations

import textwrap
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decoders import DecodeInput
from ingest.decoders.sml import MAX_FRAMES, SPEC, SmlOptions
from ingest.readings import DecodeRejected, Reading
from tests.unit.decoder_contract import decoded_or_rejected
from tests.unit.sml_frames import (
    NONE,
    SERVER_ID,
    Entry,
    basic_frame_with_time,
    crc_x25,
    household_frame,
    message,
    octets,
    sec_index,
    seq,
    signed,
    sml_file,
    timestamp,
    transport,
    unsigned,
)

RECEIVED_NS = 1_764_320_401_000_000_000  # 2025-11-28T09:00:01Z


def decode(payload: bytes, **options: Any) -> list[Reading]:
    fn = SPEC.build(SmlOptions(**options), "Europe/Berlin")
    return fn(DecodeInput("lab/gw/sml/m", payload, {"gateway": "gw", "device": "m"}, RECEIVED_NS))


def frame(*entries: Entry, sensor_time: bytes = NONE) -> bytes:
    return transport(sml_file(SERVER_ID, list(entries), sensor_time=sensor_time))


def test_crc_x25_check_value() -> None:
    assert crc_x25(b"123456789") == 0x906E


def test_household_frame() -> None:
    (reading,) = decode(household_frame())
    assert reading.measurement == "electricity"
    assert reading.time_source == "received"  # a secIndex is no clock
    assert reading.fields == pytest.approx(
        {
            "energy_import_kwh": 12345.6789,
            "energy_export_kwh": 456.789,
            "power_w": -1234.0,
            "power_l1_w": -400.0,
            "power_l2_w": -500.0,
            "power_l3_w": -334.0,
            "voltage_l1_v": 230.1,
            "current_l1_a": 1.74,
            "frequency_hz": 49.98,
        }
    )
    assert all(isinstance(value, float) for value in reading.fields.values())


ENERGY = "0100010800ff"
POWER = "0100100700ff"

ENTRIES: list[tuple[str, list[Entry], dict[str, float]]] = [
    ("positive scaler", [Entry(ENERGY, unsigned(1234, 2), unit=30, scaler=1)], {"energy_import_kwh": 12.34}),
    ("no unit: Wh assumed", [Entry(ENERGY, unsigned(5000, 2))], {"energy_import_kwh": 5.0}),
    (
        "import and export power registers netted",
        [Entry("0100010700ff", unsigned(0, 2), unit=27), Entry("0100020700ff", unsigned(450, 2), unit=27)],
        {"power_w": -450.0},
    ),
    (
        "power factor without unit (count)",
        [Entry("01000d0700ff", unsigned(98, 1), unit=255, scaler=-2)],
        {"power_factor": 0.98},
    ),
    ("C.7.255 read as C.7.0", [Entry("01001007ffff", signed(-5, 1), unit=27)], {"power_w": -5.0}),
    (
        "64-bit counter",
        [Entry(ENERGY, unsigned(2**63 + 1, 8), unit=30, scaler=-4)],
        {"energy_import_kwh": (2**63 + 1) * 1e-7},
    ),
    (
        "billing period and other media are skipped",
        [
            Entry("010001080001", unsigned(1, 1), unit=30),
            Entry("070003000 0ff".replace(" ", ""), unsigned(1, 1)),
            Entry(POWER, signed(1, 1), unit=27),
        ],
        {"power_w": 1.0},
    ),
    (
        "escape sequence inside the frame",
        [Entry("8181c78203ff", octets(b"\x1b\x1b\x1b\x1b")), Entry(POWER, signed(-1, 2), unit=27)],
        {"power_w": -1.0},
    ),
]


@pytest.mark.parametrize(("entries", "fields"), [e[1:] for e in ENTRIES], ids=[e[0] for e in ENTRIES])
def test_entries(entries: list[Entry], fields: dict[str, float]) -> None:
    (reading,) = decode(frame(*entries))
    assert reading.fields == pytest.approx(fields)


REJECTED: list[tuple[str, list[Entry], str]] = [
    ("W where Wh belongs", [Entry(ENERGY, unsigned(1, 1), unit=27)], "invalid_value"),
    ("unknown unit code", [Entry(POWER, signed(1, 1), unit=99)], "invalid_value"),
    ("text where a number belongs", [Entry(ENERGY, octets(b"12345"), unit=30)], "invalid_value"),
    ("nothing stored", [Entry("0100000009ff", octets(b"meter"))], "no_readings"),
]


@pytest.mark.parametrize(("entries", "reason"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected_entries(entries: list[Entry], reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        decode(frame(*entries))
    assert caught.value.reason == reason, caught.value.detail


TIMES = [
    ("SML timestamp", timestamp(1_764_320_400), 1_764_320_400_000_000_000, "device"),
    ("timestamp of a clock at 1970", timestamp(86_400), RECEIVED_NS, "received"),
    ("secIndex", sec_index(3_000_000), RECEIVED_NS, "received"),
    ("no sensor time", NONE, RECEIVED_NS, "received"),
]


@pytest.mark.parametrize(
    ("sensor_time", "time_ns", "source"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES]
)
def test_sensor_time(sensor_time: bytes, time_ns: int, source: str) -> None:
    (reading,) = decode(frame(Entry(POWER, signed(1, 1), unit=27), sensor_time=sensor_time))
    assert (reading.time_ns, reading.time_source) == (time_ns, source)


def test_kermit_crc_is_an_option() -> None:
    kermit = transport(sml_file(SERVER_ID, [Entry(POWER, signed(7, 1), unit=27)]), kermit=True)
    assert decode(kermit, crc="kermit")[0].fields == {"power_w": 7.0}
    with pytest.raises(DecodeRejected) as caught:
        decode(kermit)
    assert caught.value.reason == "crc_mismatch"


def test_two_frames_in_one_payload() -> None:
    readings = decode(household_frame() + basic_frame_with_time())
    assert [r.fields.get("power_w") for r in readings] == [-1234.0, 523.0]


def test_more_frames_than_a_meter_sends_in_one_message_are_too_complex() -> None:
    assert len(decode(household_frame() * MAX_FRAMES)) == MAX_FRAMES
    with pytest.raises(DecodeRejected) as caught:
        decode(household_frame() * (MAX_FRAMES + 1))
    assert caught.value.reason == "too_complex"


def test_unknown_message_type_is_skipped() -> None:
    """smllib knew no GetProfileListResponse and fell back to an OBIS scan, losing the sensor time; the
    own parser skips the message and keeps it."""
    body = sml_file(SERVER_ID, [Entry(POWER, signed(42, 2), unit=27)], sensor_time=timestamp(1_764_320_400))
    profile_list = message(b"\x11\x09", 0x0401, seq(NONE, NONE))
    (reading,) = decode(transport(profile_list + body))
    assert (reading.fields, reading.time_source) == ({"power_w": 42.0}, "device")


def test_messages_that_do_not_parse_fall_back_to_an_obis_scan() -> None:
    body = sml_file(SERVER_ID, [Entry(POWER, signed(42, 2), unit=27)], sensor_time=timestamp(1_764_320_400))
    (reading,) = decode(transport(body + b"\x00\x00\x00\x00"))  # padding the padding count does not cut
    assert (reading.fields, reading.time_source) == ({"power_w": 42.0}, "received")


@pytest.mark.parametrize(
    "text",
    [
        basic_frame_with_time().hex().upper(),
        "\n".join(textwrap.wrap(basic_frame_with_time().hex(), 32)),
        " ".join(f"{byte:02x}" for byte in basic_frame_with_time()),
    ],
    ids=["upper case", "wrapped lines", "spaced bytes"],
)
def test_hex_text_from_a_gateway(text: str) -> None:
    assert decode(text.encode())[0].fields == {"energy_import_kwh": 9876.5432, "power_w": 523.0}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_payload"),
        (b"1b1b1b1b01010101zz", "invalid_payload"),
        (household_frame()[:-1], "invalid_payload"),
        (household_frame()[:-2] + b"\x00\x00", "crc_mismatch"),
    ],
    ids=["empty", "hex text with non-hex", "cut off", "CRC zeroed"],
)
def test_broken_transport(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        decode(payload)
    assert caught.value.reason == reason


def test_options_are_strict() -> None:
    with pytest.raises(ValueError, match="crc"):
        SmlOptions(crc="crc32")


# --- fuzz: past the CRC, into the parser -------------------------------------------------------------------

CODES = [
    ENERGY,
    "0100020800ff",
    "0100010801ff",
    POWER,
    "0100240700ff",
    "0100200700ff",
    "01000e0700ff",
    "0100000009ff",
]
values = st.one_of(
    st.builds(lambda v, n: unsigned(v % 256**n, n), st.integers(0, 2**64), st.integers(1, 8)),
    st.builds(lambda v, n: signed(v % 256**n - 256**n // 2, n), st.integers(0, 2**64), st.integers(1, 8)),
    st.binary(max_size=20).map(octets),
    st.just(NONE),
    st.just(b"\x42\x01"),
)
entries = st.builds(
    Entry,
    obis=st.sampled_from(CODES),
    value=values,
    unit=st.none() | st.sampled_from([27, 30, 33, 35, 44, 255]) | st.integers(0, 255),
    scaler=st.none() | st.integers(-128, 127),
)


def _no_escape(payload: bytes) -> None:
    decoded_or_rejected(decode, payload, floats_only=True)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(entries, max_size=6), sensor_time=st.sampled_from([NONE, sec_index(5), timestamp(1)]))
def test_fuzz_random_entries(items: list[Entry], sensor_time: bytes) -> None:
    _no_escape(frame(*items, sensor_time=sensor_time))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_body_with_valid_crc(data: st.DataObject) -> None:
    body = bytearray(
        sml_file(SERVER_ID, [Entry(ENERGY, unsigned(123, 4), unit=30), Entry(POWER, signed(-5, 2), unit=27)])
    )
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            body[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del body[position : position + data.draw(st.integers(1, 8))]
        else:
            body[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        if not body:
            break
    _no_escape(transport(bytes(body)))


def test_list_longer_than_the_frame_is_refused_before_it_is_built() -> None:
    """A list TL may claim 16^n elements over n bytes, and smllib built the list before reading it (found
    by the fuzz test: 16 million elements). Refused without building it: the decode allocates little."""
    huge_list = b"\xf1" + b"\x80" * 5 + b"\x01"  # 16^6 elements claimed in a frame of a few bytes
    body = b"\x76" + huge_list + b"\x01" * 8 + b"\x00"  # one message whose first element is that list
    tracemalloc.start()
    try:
        with pytest.raises(DecodeRejected) as rejected:
            decode(transport(body))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rejected.value.reason in ("invalid_payload", "no_readings")
    assert peak < 5_000_000  # the list alone would take 134 MB
