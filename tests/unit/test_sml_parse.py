"""The own SML parser: smllib as the oracle of the sml decoder's readings, the fast path against the
value-by-value reader, and hostile input (bounded, nothing but SmlError/DecodeRejected escapes)."""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import tracemalloc
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smllib.errors import CrcError
from smllib.reader import SmlStreamReader
from smllib.sml.response_get_list import SmlGetListResponse

from bench.gateway_frames import backlog
from ingest.checksums import crc_kermit, crc_x25
from ingest.decoders import DecodeInput
from ingest.decoders import sml_parse as parse
from ingest.decoders.obis_codes import base_unit, electricity_fields, obis_from_hex, target_unit, unit_factor
from ingest.decoders.sml import SML_UNITS, SPEC, SmlOptions
from ingest.readings import DecodeRejected
from ingest.timeparse import device_time
from simulators.formats import MeterState, sml_frame
from tests.unit.sml_frames import (
    HOUSEHOLD,
    NONE,
    SERVER_ID,
    Entry,
    basic_frame_with_time,
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

RECEIVED_NS = 1_764_320_401_000_000_000
PROFILE = Path(__file__).resolve().parents[2] / "device_profiles" / "sml.yaml"
Outcome = list[tuple[dict[str, Any], int, str]] | str  # the readings, or the reason of the rejection


# --- the oracle: the sml decoder as it was with smllib -----------------------------------------------------


def smllib_decode(payload: bytes) -> Outcome:
    reader = SmlStreamReader(crc="x25")
    reader.add(payload)
    try:
        frames = list(iter(reader.get_frame, None))
    except CrcError:
        return "crc_mismatch"
    if not frames:
        return "invalid_payload"
    readings: list[tuple[dict[str, Any], int, str]] = []
    for frame in frames:
        try:
            bodies = [m.message_body for m in frame.parse_frame()]
            lists = [b for b in bodies if isinstance(b, SmlGetListResponse)]
            entries = [e for b in lists for e in b.val_list]
            sensor_time = next((b.act_sensor_time for b in lists if b.act_sensor_time), None)
        except Exception:
            try:
                entries, sensor_time = frame.get_obis(), None
            except Exception:
                return "invalid_payload"
        values: dict[str, float] = {}
        for entry in entries:
            obis = obis_from_hex(str(entry.obis))
            target = None if obis is None else target_unit(obis.cde)
            if obis is None or target is None or obis.medium != 1 or not obis.current:
                continue
            raw = entry.value
            unit = base_unit(obis.cde) if entry.unit is None else SML_UNITS.get(entry.unit)
            if isinstance(raw, bool) or not isinstance(raw, int) or unit is None:
                return "invalid_value"
            try:
                number = float(Decimal(raw).scaleb(entry.scaler or 0)) * unit_factor(obis.cde, unit)
            except (ValueError, ArithmeticError):
                return "invalid_value"
            if not math.isfinite(number):
                return "invalid_value"
            values[obis.cde] = number
        if fields := electricity_fields(values):
            if isinstance(sensor_time, datetime):
                time = device_time(
                    int(sensor_time.timestamp()) * 10**9, received_ns=RECEIVED_NS, fmt="epoch_ns"
                )
            else:
                time = device_time(sensor_time, received_ns=RECEIVED_NS)
            readings.append((fields, *time))
    return readings or "no_readings"


DECODE = SPEC.build(SmlOptions(), "UTC")


def our_decode(payload: bytes) -> Outcome:
    try:
        readings = DECODE(DecodeInput("lab/gw/sml/m", payload, {}, RECEIVED_NS))
    except DecodeRejected as exc:
        return exc.reason
    return [(r.fields, r.time_ns, r.time_source) for r in readings]


def general_parse(body: bytes) -> tuple[list[parse.ListEntry], parse.Time]:
    """parse_messages without the fast path: every message read value by value."""
    entries: list[parse.ListEntry] = []
    sensor_time: parse.Time = None
    pos = 0
    while pos < len(body):
        if body[pos] != 0x76:
            raise parse.SmlError("no message")
        pos, time = parse._general_message(body, pos, entries)
        sensor_time = sensor_time or time
    return entries, sensor_time


def assert_same(payload: bytes) -> Outcome:
    ours = our_decode(payload)
    assert ours == smllib_decode(payload)
    if ours == "crc_mismatch":
        return ours
    for body in parse.transport_frames(payload, "x25"):
        try:
            fast = parse.parse_messages(body)
        except parse.SmlError:
            with pytest.raises(parse.SmlError):
                general_parse(body)
        else:
            assert fast == general_parse(body)
    return ours


def readings_as_smllib_reads_them(payload: bytes) -> list[tuple[dict[str, Any], int, str]]:
    outcome = assert_same(payload)
    assert isinstance(outcome, list), outcome
    return outcome


# --- frames: the profile's examples, the test frames, simulated meters -----------------------------------


def profile_payloads() -> list[bytes]:
    examples = yaml.safe_load(PROFILE.read_text())["examples"]
    return [bytes.fromhex("".join(e["payload_hex"].split())) for e in examples if "payload_hex" in e]


@pytest.mark.parametrize("payload", profile_payloads(), ids=itertools.count())
def test_profile_examples_as_smllib_reads_them(payload: bytes) -> None:
    assert_same(payload)


def test_test_frames_as_smllib_reads_them() -> None:
    assert readings_as_smllib_reads_them(household_frame())[0][0]["power_w"] == -1234.0
    assert_same(basic_frame_with_time())
    assert_same(household_frame() + basic_frame_with_time())


def test_gateway_bench_frames_as_smllib_reads_them() -> None:
    frames = [
        f.payload for f in backlog("gw", meters=10, seconds=300, start_ns=RECEIVED_NS) if f.payload[0] == 0x1B
    ]
    assert len(frames) == 2100
    for payload in frames:
        readings_as_smllib_reads_them(payload)


def test_simulated_meters_as_smllib_reads_them() -> None:
    rng = random.Random(7)
    for n in range(200):
        state = MeterState(
            time_s=1_764_320_400 - n * 900,
            import_wh=rng.uniform(0, 1e8),
            export_wh=rng.uniform(0, 1e7),
            power_w=rng.uniform(-9000, 9000),
            phases=(0.3, 0.3, 0.4),
            voltage=rng.uniform(220, 240),
            serial=f"0a01454d48{n:010x}",
        )
        payload, _, _ = sml_frame(state)
        (reading,) = readings_as_smllib_reads_them(payload)
        assert reading[1:] == (state.time_s * 10**9, "device")


# --- hypothesis: entries and sensor times built with simulators/smlframe.py ------------------------------

CODES = [
    "0100010800ff",
    "0100020801ff",
    "0100010801ff",
    "0100100700ff",
    "0100240700ff",
    "01001f0700ff",
    "0100200700ff",
    "01000e0700ff",
    "01000d0700ff",
    "0100000009ff",
    "8181c78203ff",
    "0200010800ff",
]


def local_timestamp(epoch_s: int, offset: int, season: int) -> bytes:
    return seq(unsigned(3, 1), seq(unsigned(epoch_s, 4), signed(offset, 2), signed(season, 2)))


values = st.one_of(
    st.builds(lambda v, n: unsigned(v % 256**n, n), st.integers(0, 2**64), st.integers(1, 8)),
    st.builds(lambda v, n: signed(v % 256**n - 256**n // 2, n), st.integers(0, 2**64), st.integers(1, 8)),
    st.binary(max_size=20).map(octets),
    st.just(NONE),
    st.sampled_from([b"\x42\x01", b"\x42\x00"]),
)
entries = st.builds(
    Entry,
    obis=st.sampled_from(CODES),
    value=values,
    unit=st.none() | st.sampled_from([27, 30, 33, 35, 44, 255]) | st.integers(0, 255),
    scaler=st.none() | st.integers(-128, 127) | st.integers(-3, 3),
)
sensor_times = st.one_of(
    st.just(NONE),
    st.integers(0, 2**32 - 1).map(sec_index),
    st.integers(0, 2**32 - 1).map(timestamp),
    st.builds(
        local_timestamp,
        st.integers(1_700_000_000, 1_800_000_000),
        st.sampled_from([60, 120, -300]),
        st.sampled_from([0, 60]),
    ),
    st.integers(0, 255).map(lambda n: unsigned(n, 1)),  # a bare number, as a few meters send
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(items=st.lists(entries, max_size=8), sensor_time=sensor_times)
def test_random_entries_as_smllib_reads_them(items: list[Entry], sensor_time: bytes) -> None:
    assert_same(transport(sml_file(SERVER_ID, items, sensor_time=sensor_time)))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_mutated_frames_only_sml_error_escapes(data: st.DataObject) -> None:
    """Broken message bytes (past the CRC): the parser raises SmlError or reads something; the fast path
    and the value-by-value reader agree."""
    body = bytearray(sml_file(SERVER_ID, HOUSEHOLD[:4], sensor_time=timestamp(1_764_320_400)))
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
            return
    frame = bytes(body)
    try:
        fast: object = parse.parse_messages(frame)
    except parse.SmlError:
        fast = parse.SmlError
    try:
        general: object = general_parse(frame)
    except parse.SmlError:
        general = parse.SmlError
    assert fast == general
    with contextlib.suppress(parse.SmlError):
        parse.scan_entries(frame)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=64))
def test_any_bytes_only_sml_error_escapes(data: bytes) -> None:
    for read in (parse.parse_messages, parse.scan_entries, lambda b: parse.read_value(b, 0)):
        with contextlib.suppress(parse.SmlError):
            read(b"\x76" + data)


# --- the parts -------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_transport_crcs_are_those_of_the_checksums_module(data: bytes) -> None:
    assert parse.transport_crc(data, "kermit") == crc_kermit(data)
    assert parse.transport_crc(data, "x25") == int.from_bytes(crc_x25(data).to_bytes(2, "little"), "big")


def test_transport_unescapes_and_cuts_the_padding() -> None:
    body = message(b"\x01", 0x0201, seq(octets(b"\x1b\x1b\x1b\x1b\x1a\x01")))  # an escape in the data
    payload = b"\x00garbage" + transport(body) + transport(body, kermit=False)[:-3]
    assert list(parse.transport_frames(payload, "x25")) == [body]
    with pytest.raises(parse.CrcMismatch):
        list(parse.transport_frames(transport(body, kermit=True), "x25"))
    assert list(parse.transport_frames(transport(body, kermit=True), "kermit")) == [body]


def test_list_entry_fields() -> None:
    entry_bytes = seq(
        octets(bytes.fromhex("0100010800ff")),
        unsigned(0x1820, 2),  # status
        sec_index(99),  # valTime
        unsigned(30, 1),
        signed(-1, 1),
        unsigned(123, 4),
        octets(b"sig"),
    )
    value, end = parse.read_value(entry_bytes, 0)
    assert end == len(entry_bytes)
    assert parse.list_entry(value) == parse.ListEntry(
        bytes.fromhex("0100010800ff"), 0x1820, 99, 30, -1, 123, b"sig"
    )


@pytest.mark.parametrize(
    ("sensor_time", "expected"),
    [
        (sec_index(42), 42),
        (timestamp(1_764_320_400), parse.Timestamp(1_764_320_400)),
        (local_timestamp(1_764_320_400, 60, 0), parse.Timestamp(1_764_320_400)),  # the UTC seconds
        (unsigned(7, 2), 7),
        (NONE, None),
    ],
    ids=["secIndex", "timestamp", "local timestamp", "bare number", "none"],
)
def test_sensor_time(sensor_time: bytes, expected: parse.Time) -> None:
    body = sml_file(SERVER_ID, [Entry("0100100700ff", signed(5, 1), unit=27)], sensor_time=sensor_time)
    assert parse.parse_messages(body)[1] == expected
    assert general_parse(body)[1] == expected


@pytest.mark.parametrize(
    "sensor_time",
    [
        local_timestamp(1_764_320_400, 1440, 0),  # an offset of a day
        seq(unsigned(4, 1), unsigned(1, 4)),  # no such choice
        seq(unsigned(2, 1), unsigned(2**63, 8)),  # beyond the year 9999
        octets(b"\x01\x02"),
    ],
    ids=["offset of a day", "choice 4", "year 10000+", "octets"],
)
def test_malformed_sensor_time_is_an_error(sensor_time: bytes) -> None:
    body = sml_file(SERVER_ID, [Entry("0100100700ff", signed(5, 1), unit=27)], sensor_time=sensor_time)
    with pytest.raises(parse.SmlError):
        parse.parse_messages(body)


def test_unknown_message_types_are_skipped_keeping_the_sensor_time() -> None:
    """smllib failed on message types it does not know and fell back to the scan, which loses the time."""
    profile_list = message(b"\x11\x09", 0x0401, seq(NONE, NONE))
    body = profile_list + sml_file(
        SERVER_ID, [Entry("0100100700ff", signed(5, 1), unit=27)], sensor_time=timestamp(1_764_320_400)
    )
    entries, sensor_time = parse.parse_messages(body)
    assert [e.value for e in entries] == [5]
    assert sensor_time == parse.Timestamp(1_764_320_400)


@pytest.mark.parametrize(
    "data",
    [
        b"\x7f\x01",  # a list of 15 with two bytes left
        b"\xf1" + b"\x80" * 5 + b"\x01",  # 16^6 elements claimed over multi-byte lengths
        b"\xf0" + b"\x8f" * 40,  # a length that never ends
        b"\x71" * 10_000,  # nested ten thousand deep
        b"\x6a" + b"\x00" * 9,  # an integer of nine bytes
        b"\x05ab",  # an octet string cut off
        b"\x50",  # an integer shorter than its type-length byte
        b"\x42",  # a boolean cut off
        b"\x23\x00\x00",  # no such type
    ],
    ids=[
        "list > bytes",
        "16^6 elements",
        "endless length",
        "deep",
        "int of 9",
        "cut",
        "short",
        "bool",
        "type",
    ],
)
def test_hostile_values_are_refused_without_building_them(data: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(parse.SmlError):
            parse.read_value(data, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_scan_finds_the_entries_of_a_frame_whose_messages_do_not_parse() -> None:
    body = sml_file(SERVER_ID, [Entry("0100100700ff", signed(5, 1), unit=27)]) + b"\x00\x00"  # padding left
    with pytest.raises(parse.SmlError):
        parse.parse_messages(body)
    assert [e.obis.hex() for e in parse.scan_entries(body)] == ["0100100700ff"]
    assert our_decode(transport(body)) == smllib_decode(transport(body)) != "invalid_payload"
