"""Device timestamps: epoch s/ms/µs/ns, ISO 8601 with or without zone, and clocks that are not set.

Tolerant by design: a time that cannot be read or is not believable (a clock at 1970, seconds since
boot before NTP, far in the future) falls back to the receive time and says so (``time_source``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from ingest.readings import TimeSource

TimeFormat = Literal["auto", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "iso"]

NS_PER_S = 1_000_000_000
EARLIEST_NS = 946_684_800 * NS_PER_S  # 2000-01-01T00:00:00Z: anything earlier is an unset clock
MAX_AHEAD_NS = 24 * 3600 * NS_PER_S  # a device clock more than a day ahead is not believed
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_EPOCH_DIGITS = {"epoch_s": 9, "epoch_ms": 6, "epoch_us": 3, "epoch_ns": 0}  # log10 of the scale to ns
_EPOCH_SCALE: dict[str, int] = {name: 10**digits for name, digits in _EPOCH_DIGITS.items()}
_MAX_DIGITS = 40  # more significant digits than any epoch has: refused rather than computed
_EXACT_FLOAT_INT = 2**53  # every whole float below this is exactly that int


def _auto_format(magnitude: int | Decimal) -> TimeFormat:
    """s, ms, µs or ns by the epoch's size (anything from 1973 on in the unit below would be larger)."""
    if magnitude < 100_000_000_000:
        return "epoch_s"
    if magnitude < 100_000_000_000_000:
        return "epoch_ms"
    if magnitude < 100_000_000_000_000_000:
        return "epoch_us"
    return "epoch_ns"


def epoch_to_ns(value: float | int | str, fmt: TimeFormat = "auto") -> int:
    """An epoch (s, ms, µs or ns; ``auto`` by magnitude) as int ns, exact for its decimal text.

    A float is read as its shortest round-trip text (``repr``), which is the number the device sent up to
    17 significant digits, so ``1764320400.123`` is ``1764320400123000000`` and not the binary float's
    ``…122999808``. Beyond ns the value is rounded half to even. Raises ValueError for text that is no
    finite number, or a number far beyond any clock.
    """
    if fmt == "iso":
        fmt = "auto"
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT_INT:
        value = int(value)  # a whole float is exact as it is: the fast integer path
    elif isinstance(value, str) and value.isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int):
        if fmt == "auto":
            fmt = _auto_format(abs(value))
        return value * _EPOCH_SCALE[fmt]
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except ArithmeticError as exc:  # decimal.InvalidOperation: no number
        raise ValueError(f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) > _MAX_DIGITS or exponent + len(digits) > _MAX_DIGITS:
        raise ValueError(f"epoch out of range: {value!r}")
    if fmt == "auto":
        fmt = _auto_format(number.copy_abs())  # copy_abs: no context, exact
    mantissa = int("".join(map(str, digits)))
    ns: int
    shift = exponent + _EPOCH_DIGITS[fmt]
    if shift >= 0:
        ns = mantissa * 10**shift
    elif -shift > len(digits) + 1:  # below 0.01 ns
        ns = 0
    else:
        ns, rest = divmod(mantissa, 10**-shift)
        twice = 2 * rest
        if twice > 10**-shift or (twice == 10**-shift and ns % 2):
            ns += 1
    return -ns if sign else ns


_EPOCH_NAIVE = datetime(1970, 1, 1)
_HOUR_US = 3_600_000_000
_ONE_US = timedelta(microseconds=1)
# (zone, local hour since the epoch) -> that hour's UTC offset in µs. Devices send local time without
# zone on every message; the offset changes only at DST switches, so it is looked up once per zone and
# hour instead of through ZoneInfo per message. Bounded: starts over when full.
OFFSET_CACHE_SIZE = 4_096
_offsets: dict[tuple[str, int], int] = {}


def datetime_to_ns(moment: datetime) -> int:
    """``moment`` as int ns since the epoch, exact to the µs (no float); a naive datetime is taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _ONE_US * 1000


def _hour_offset_us(tz: str, hour: int) -> int | None:
    """The UTC offset of every local time in ``hour`` (fold 0), None if it changes within the hour."""
    key = (tz, hour)
    offset = _offsets.get(key)
    if offset is None:
        start = (_EPOCH_NAIVE + timedelta(hours=hour)).replace(tzinfo=zone(tz))
        first = start.utcoffset()
        last = (start + timedelta(microseconds=_HOUR_US - 1)).utcoffset()
        if first is None or first != last:  # a switch inside this local hour: no shortcut
            return None
        offset = first // _ONE_US
        if len(_offsets) >= OFFSET_CACHE_SIZE:
            _offsets.clear()
        _offsets[key] = offset
    return offset


def _local_to_ns(moment: datetime, tz: str) -> int:
    """A zone-less local time in ns, as ``moment.replace(tzinfo=zone(tz))`` gives it (fold 0)."""
    local_us = (moment - _EPOCH_NAIVE) // _ONE_US
    offset = _offsets.get((tz, local_us // _HOUR_US))  # the cache of _hour_offset_us, looked at inline
    if offset is None:
        offset = _hour_offset_us(tz, local_us // _HOUR_US)
    if offset is None:
        return datetime_to_ns(moment.replace(tzinfo=zone(tz)))
    return (local_us - offset) * 1000


# Tasmota's Time: local "YYYY-MM-DDTHH:MM:SS", some firmwares add ".mmm". Devices in step send the same
# second again and again, so its ns (the full parse) is remembered per (zone, second) and the milliseconds
# are added. Exact: with 'T' and ':' where this shape has them, datetime.fromisoformat reads the first 19
# characters as a date and HH:MM:SS (hours 00-23) or rejects them, with or without the fraction; '.' and
# three ASCII digits are that many ms; no zone's offset changes within a second. Bounded: starts over
# when full.
SECOND_CACHE_SIZE = 4_096
_seconds: dict[tuple[str, str], int | None] = {}
_ISO = ("auto", "iso")  # the formats that read such a text as ISO 8601 ("YYYY-…T…:…" is no number)


def _text_to_ns(text: str, fmt: TimeFormat, tz: str) -> int | None:
    text = text.strip()
    size = len(text)
    if (size == 19 or size == 23) and text[10] == "T" and text[13] == text[16] == ":" and fmt in _ISO:
        return _second_to_ns(text, fmt, tz)
    return _parse_text(text, fmt, tz)


def _second_to_ns(text: str, fmt: TimeFormat, tz: str) -> int | None:
    """:func:`_text_to_ns` of a text in Tasmota's shape (19 or 23 characters, 'T' at 10, ':' at 13, 16)."""
    ms = 0
    if len(text) == 23:
        fraction = text[20:]
        if text[19] != "." or not (fraction.isdigit() and fraction.isascii()):
            return _parse_text(text, fmt, tz)
        ms = int(fraction)
    key = (tz, text[:19])
    second = _seconds.get(key, False)
    if second is False:
        if text[11:13] >= "24":  # never cached: hour 24 is read differently across Python versions
            return _parse_text(text, fmt, tz)
        second = _parse_text(key[1], "iso", tz)
        if len(_seconds) >= SECOND_CACHE_SIZE:
            _seconds.clear()
        _seconds[key] = second
    return None if second is None else second + ms * 1_000_000


def _parse_text(text: str, fmt: TimeFormat, tz: str) -> int | None:
    # "YYYY-…" cannot be a number (a '-' after four digits is no exponent): skip the epoch attempt.
    if fmt != "iso" and not (fmt == "auto" and text[4:5] == "-" and text[:4].isdigit()):
        try:
            return epoch_to_ns(text, fmt)
        except ValueError:
            if fmt != "auto":
                return None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return _local_to_ns(moment, tz)
    return datetime_to_ns(moment)


def device_time(
    value: object, *, received_ns: int, tz: str = "Europe/Berlin", fmt: TimeFormat = "auto"
) -> tuple[int, TimeSource]:
    """The reading's time in ns and where it came from: the device, or the receive time as fallback."""
    time_ns: int | None = None
    try:
        if type(value) is str:  # the usual case, checked first
            time_ns = _text_to_ns(value, fmt, tz)
        elif isinstance(value, bool) or value is None:
            time_ns = None
        elif isinstance(value, int | float):
            time_ns = epoch_to_ns(value, fmt)
        elif isinstance(value, str):
            time_ns = _text_to_ns(value, fmt, tz)
    except (OverflowError, ValueError):  # inf/NaN ("1e999", JSON Infinity) or a product beyond float range
        time_ns = None
    if time_ns is None or time_ns < EARLIEST_NS or time_ns > received_ns + MAX_AHEAD_NS:
        return received_ns, "received"
    return time_ns, "device"
