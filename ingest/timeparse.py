"""Device timestamps: epoch s/ms/µs/ns, ISO 8601 with or without zone, and clocks that are not set.

Tolerant by design: a time that cannot be read or is not believable (a clock at 1970, seconds since
boot before NTP, far in the future) falls back to the receive time and says so (``time_source``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from ingest.readings import TimeSource

TimeFormat = Literal["auto", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "iso"]

NS_PER_S = 1_000_000_000
EARLIEST_NS = 946_684_800 * NS_PER_S  # 2000-01-01T00:00:00Z: anything earlier is an unset clock
MAX_AHEAD_NS = 24 * 3600 * NS_PER_S  # a device clock more than a day ahead is not believed
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_SCALE = {"epoch_s": NS_PER_S, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _epoch_to_ns(number: float, fmt: TimeFormat) -> int:
    if fmt == "auto":
        magnitude = abs(number)
        if magnitude < 1e11:
            fmt = "epoch_s"
        elif magnitude < 1e14:
            fmt = "epoch_ms"
        elif magnitude < 1e17:
            fmt = "epoch_us"
        else:
            fmt = "epoch_ns"
    if fmt == "epoch_ns" and isinstance(number, int):
        return number
    return round(number * _EPOCH_SCALE[fmt])


def _text_to_ns(text: str, fmt: TimeFormat, tz: str) -> int | None:
    text = text.strip()
    if fmt != "iso":
        try:
            return _epoch_to_ns(float(text) if any(c in text for c in ".eE") else int(text), fmt)
        except ValueError:
            if fmt != "auto":
                return None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz))
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def device_time(
    value: object, *, received_ns: int, tz: str = "Europe/Berlin", fmt: TimeFormat = "auto"
) -> tuple[int, TimeSource]:
    """The reading's time in ns and where it came from: the device, or the receive time as fallback."""
    time_ns: int | None = None
    try:
        if isinstance(value, bool) or value is None:
            time_ns = None
        elif isinstance(value, int | float):
            time_ns = _epoch_to_ns(value, "auto" if fmt == "iso" else fmt)
        elif isinstance(value, str):
            time_ns = _text_to_ns(value, fmt, tz)
    except (OverflowError, ValueError):  # inf/NaN ("1e999", JSON Infinity) or a product beyond float range
        time_ns = None
    if time_ns is None or time_ns < EARLIEST_NS or time_ns > received_ns + MAX_AHEAD_NS:
        return received_ns, "received"
    return time_ns, "device"
