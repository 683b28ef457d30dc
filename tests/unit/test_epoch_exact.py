"""Epochs with decimals are read from their decimal text, exactly: 1764320400.123 s is …:00.123Z to the ns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.decoders import DecodeInput
from ingest.decoders.generic_json import SPEC as GENERIC_JSON
from ingest.decoders.shelly_gen2 import SPEC as SHELLY_GEN2
from ingest.timeparse import TimeFormat, device_time, epoch_to_ns

RECEIVED = 1_764_320_401_000_000_000
ISSUE_NS = 1_764_320_400_123_000_000  # 2025-11-28T09:00:00.123Z


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (1764320400.123, "auto", ISSUE_NS),  # the issue's example, as a JSON float
        ("1764320400.123", "auto", ISSUE_NS),  # and as text
        (" 1764320400.123 ", "epoch_s", ISSUE_NS),
        (1764320400.12, "auto", 1_764_320_400_120_000_000),  # Shelly's two decimals
        (1764320400, "auto", 1_764_320_400_000_000_000),
        ("1.764320400123e9", "auto", ISSUE_NS),
        (1.764320400123e9, "epoch_s", ISSUE_NS),
        (1764320400123, "auto", ISSUE_NS),  # ms
        (1764320400123.5, "auto", 1_764_320_400_123_500_000),
        ("1764320400123", "epoch_ms", ISSUE_NS),
        (1764320400123456, "auto", 1_764_320_400_123_456_000),  # µs
        (1764320400123456.5, "epoch_us", 1_764_320_400_123_456_500),
        (1764320400123456789, "auto", 1_764_320_400_123_456_789),  # ns
        ("1764320400123456789", "epoch_ns", 1_764_320_400_123_456_789),
        (0, "auto", 0),
        (0.0, "auto", 0),
        ("-0.0", "auto", 0),
        (0.001, "epoch_s", 1_000_000),
        (-1.5, "auto", -1_500_000_000),
        ("-1764320400.123", "auto", -ISSUE_NS),
        ("1.0000000005", "epoch_s", 1_000_000_000),  # half to even below the ns
        ("1.0000000015", "epoch_s", 1_000_000_002),
        ("1.00000000051", "epoch_s", 1_000_000_001),
        (1e-300, "epoch_s", 0),
        (1764320400.123, "iso", ISSUE_NS),  # a number where ISO is expected: by magnitude
    ],
)
def test_epoch_to_ns_is_exact(value: float | int | str, fmt: TimeFormat, expected: int) -> None:
    assert epoch_to_ns(value, fmt) == expected


@pytest.mark.parametrize("value", ["abc", "", "nan", "Infinity", float("inf"), float("nan"), "1e999999999"])
def test_epoch_to_ns_refuses_no_finite_number(value: float | str) -> None:
    with pytest.raises(ValueError, match=r"not a|out of range"):
        epoch_to_ns(value)


@pytest.mark.parametrize("value", [1764320400.123, "1764320400.123", 1764320400123, "1764320400123"])
def test_device_time_keeps_the_decimals(value: float | int | str) -> None:
    assert device_time(value, received_ns=RECEIVED) == (ISSUE_NS, "device")


@pytest.mark.parametrize(
    ("decoder", "options", "topic", "document"),
    [
        (
            GENERIC_JSON,
            {
                "time_key": "ts",
                "fields": {"p": {"measurement": "electricity", "field": "power_w", "unit": "W"}},
            },
            "lab/meter",
            {"ts": 1764320400.123, "p": 5},
        ),
        (
            SHELLY_GEN2,
            {},
            "lab/gw/pro3em/events/rpc",
            {"method": "NotifyStatus", "params": {"ts": 1764320400.123, "switch:0": {"apower": 5}}},
        ),
    ],
)
def test_decoders_read_fractional_epochs_exactly(
    decoder: Any, options: dict[str, Any], topic: str, document: dict[str, Any]
) -> None:
    decode = decoder.build(decoder.options.model_validate(options), "Europe/Berlin")
    payload = json.dumps(document).encode()
    [reading] = decode(DecodeInput(topic, payload, {"gateway": "gw", "device": "pro3em"}, RECEIVED))
    assert (reading.time_ns, reading.time_source) == (ISSUE_NS, "device")


@given(
    seconds=st.integers(min_value=-(10**10), max_value=10**10),
    fraction=st.integers(min_value=0, max_value=10**9 - 1),
    places=st.integers(min_value=1, max_value=9),
)
def test_up_to_nine_decimals_is_integer_arithmetic(seconds: int, fraction: int, places: int) -> None:
    fraction %= 10**places
    sign = "-" if seconds < 0 else ""
    text = f"{sign}{abs(seconds)}.{fraction:0{places}d}"
    exact = (abs(seconds) * 10**9 + fraction * 10 ** (9 - places)) * (-1 if seconds < 0 else 1)
    assert epoch_to_ns(text, "epoch_s") == exact
    if len(text.lstrip("-").replace(".", "").lstrip("0")) <= 15:
        # ≤ 15 significant digits survive the float (JSON's number) and its shortest repr: just as exact
        assert epoch_to_ns(float(text), "epoch_s") == exact
