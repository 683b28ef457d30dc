"""Zone-less local device times around the 2025 DST switches in Europe/Berlin (the offset is cached per
local hour, so the hours at and next to a switch are where a shortcut would go wrong)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import timeparse
from ingest.timeparse import device_time

BERLIN = ZoneInfo("Europe/Berlin")
RECEIVED = 1_900_000_000 * 1_000_000_000


def _utc_ns(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        # 2025-03-30: 02:00 CET -> 03:00 CEST; the missing hour is read with the offset before (fold 0)
        ("2025-03-30T00:59:59", "2025-03-29T23:59:59"),
        ("2025-03-30T01:59:59.999", "2025-03-30T00:59:59.999"),
        ("2025-03-30T02:00:00", "2025-03-30T01:00:00"),
        ("2025-03-30T02:30:00", "2025-03-30T01:30:00"),
        ("2025-03-30T02:59:59.999", "2025-03-30T01:59:59.999"),
        ("2025-03-30T03:00:00", "2025-03-30T01:00:00"),
        ("2025-03-30 03:00:00.001", "2025-03-30T01:00:00.001"),
        ("2025-03-30T04:00:00", "2025-03-30T02:00:00"),
        # 2025-10-26: 03:00 CEST -> 02:00 CET; the repeated hour is read as its first occurrence (fold 0)
        ("2025-10-26T01:59:59", "2025-10-25T23:59:59"),
        ("2025-10-26T02:00:00", "2025-10-26T00:00:00"),
        ("2025-10-26T02:30:00", "2025-10-26T00:30:00"),
        ("2025-10-26T02:59:59.999", "2025-10-26T00:59:59.999"),
        ("2025-10-26T03:00:00", "2025-10-26T02:00:00"),
        ("2025-10-26T03:59:59", "2025-10-26T02:59:59"),
        # with an explicit offset the zone is not consulted
        ("2025-10-26T02:30:00+01:00", "2025-10-26T01:30:00"),
    ],
)
def test_local_time_around_dst_switches(local: str, utc: str) -> None:
    for _ in range(2):  # the second read comes from the offset cache
        assert device_time(local, received_ns=RECEIVED, tz="Europe/Berlin") == (_utc_ns(utc), "device")


@pytest.mark.parametrize("day", ["2025-03-29", "2025-03-30", "2025-03-31", "2025-10-25", "2025-10-26"])
def test_every_minute_matches_zoneinfo(day: str) -> None:
    timeparse._offsets.clear()
    start = datetime.fromisoformat(f"{day}T00:00:00")
    for minute in range(0, 24 * 60, 7):
        local = start + timedelta(minutes=minute, seconds=13, milliseconds=250)
        expected = (
            (local.replace(tzinfo=BERLIN) - datetime(1970, 1, 1, tzinfo=UTC))
            // timedelta(microseconds=1)
            * 1000
        )
        text = local.isoformat(timespec="milliseconds")
        assert device_time(text, received_ns=RECEIVED, tz="Europe/Berlin") == (expected, "device")


def test_offset_cache_is_bounded() -> None:
    timeparse._offsets.clear()
    start = datetime(2024, 1, 1)
    for hour in range(timeparse.OFFSET_CACHE_SIZE + 10):
        text = (start + timedelta(hours=hour)).isoformat()
        device_time(text, received_ns=RECEIVED, tz="Europe/Berlin")
    assert len(timeparse._offsets) <= timeparse.OFFSET_CACHE_SIZE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1764320400", 1_764_320_400 * 1_000_000_000),
        ("1764320400123", 1_764_320_400_123 * 1_000_000),
        ("1.7643204e9", 1_764_320_400 * 1_000_000_000),
        ("2025-11-28", _utc_ns("2025-11-27T23:00:00")),
    ],
)
def test_auto_format_numbers_and_dates(value: str, expected: int) -> None:
    assert device_time(value, received_ns=RECEIVED, tz="Europe/Berlin") == (expected, "device")


# Tasmota-shaped texts take a per-second cache (timeparse._second_to_ns); every other text the full parse.
# Near-misses: one character replaced by one that may or may not keep the text valid ISO 8601.
_TIMES = st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 1))
_ODD = st.sampled_from(["0", "2", "4", "9", "x", " ", "+", "-", "Z", ",", ".", ":", "T", "٣", "²"])


@st.composite
def _tasmota_texts(draw: st.DrawFn) -> str:
    moment = draw(_TIMES | st.sampled_from([datetime(2025, 3, 30, 2, 30), datetime(2025, 10, 26, 2, 30)]))
    text = f"{moment:%Y-%m-%dT%H:%M:%S}" + draw(st.sampled_from(["", f".{moment.microsecond // 1000:03d}"]))
    if draw(st.booleans()):
        index = draw(st.integers(0, len(text) - 1))
        text = text[:index] + draw(_ODD) + text[index + 1 :]
    return draw(st.sampled_from(["", " "])) + text + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=2000)
@given(
    text=_tasmota_texts(),
    fmt=st.sampled_from(["auto", "iso", "epoch_ms"]),
    tz=st.sampled_from(["Europe/Berlin", "UTC", "America/New_York"]),
)
def test_second_cache_is_the_full_parse(text: str, fmt: timeparse.TimeFormat, tz: str) -> None:
    expected = timeparse._parse_text(text.strip(), fmt, tz)
    for _ in range(2):  # the second read comes from the cache
        assert timeparse._text_to_ns(text, fmt, tz) == expected


def test_second_cache_adds_milliseconds_and_is_bounded() -> None:
    timeparse._seconds.clear()
    start = datetime(2024, 1, 1)
    for second in range(timeparse.SECOND_CACHE_SIZE + 10):
        text = f"{start + timedelta(seconds=second):%Y-%m-%dT%H:%M:%S}.250"
        expected = _utc_ns(text) - 3600 * 1_000_000_000  # CET
        assert device_time(text, received_ns=RECEIVED, tz="Europe/Berlin") == (expected, "device")
    assert len(timeparse._seconds) <= timeparse.SECOND_CACHE_SIZE
    assert device_time("2024-01-01T24:00:00.000", received_ns=RECEIVED) == (RECEIVED, "received")
