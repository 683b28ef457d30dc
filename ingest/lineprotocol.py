r"""InfluxDB line protocol, built straight from readings without per-point objects.

Escaping follows InfluxDB's rules (and influxdb-client's serializer, our test oracle):
measurement escapes comma and space; tag keys, tag values and field keys escape comma, equals sign and
space; string field values escape double quote and backslash. Tags are sorted by key, as InfluxDB prefers.
Integers get the ``i`` suffix, booleans are ``true``/``false``, non-finite floats and None are left out,
timestamps are nanoseconds.

A backslash or a control character in a measurement, tag or field name is refused
(:class:`UnwritableName`, a rejection of the message): InfluxDB 1.x reads the character after any
backslash there as escaped, while its line splitter reads ``\\`` as one escaped backslash, so a name such
as ``x\ y\="`` split the batch in the wrong places and InfluxDB refused every line of it; a trailing
backslash escaped the separator; and a newline cannot be written at all. No escaping carries these
unaltered through InfluxDB 1.x, 2.x and 3.x alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

from ingest.readings import DecodeRejected, FieldValue, Reading

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
_UNWRITABLE = re.compile("[\\\\\x00-\x1f\x7f\ud800-\udfff]")  # backslash, controls, lone surrogates
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TAG_VALUE = 256  # device ids, group names: longer is no device's, and would bloat series keys


class UnwritableName(DecodeRejected):
    """A measurement, tag or field name with a character line protocol cannot carry unaltered."""

    def __init__(self, kind: str, name: str) -> None:
        found = _UNWRITABLE.search(name)
        assert found is not None
        super().__init__("invalid_name", f"{kind} {name[:80]!r} contains {found.group()!r}")


def _writable(kind: str, name: str) -> str:
    if _UNWRITABLE.search(name) is not None:
        raise UnwritableName(kind, name)
    return name


def escape_measurement(name: str) -> str:
    return _writable("measurement", name).translate(_ESCAPE_MEASUREMENT)


def escape_key(key: str, *, kind: str = "key") -> str:
    return _writable(kind, key).translate(_ESCAPE_KEY)


def escape_tag_value(value: str) -> str:
    if len(value) > MAX_TAG_VALUE:
        raise DecodeRejected("invalid_name", f"tag value {value[:40]!r}… is {len(value)} characters long")
    return _writable("tag value", value).translate(_ESCAPE_KEY)


def format_field_value(value: FieldValue) -> str | None:
    """The line-protocol text of one field value, or None when the value cannot be written."""
    if type(value) is float:  # by far the most common: checked first, same result as below
        if not math.isfinite(value):
            return None
        return repr(value).removesuffix(".0")
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return repr(value).removesuffix(".0")
    if isinstance(value, str):
        if _SURROGATE.search(value):  # cannot be encoded: the whole write would fail
            raise DecodeRejected("invalid_value", f"string {value[:40]!r} holds a lone surrogate")
        return '"' + value.translate(_ESCAPE_STRING) + '"'
    return None


# Devices send the same measurement, tags and field names message after message, so the escaped
# "measurement,tag=value…" head and the sorted, escaped "field=" keys are built once per distinct set and
# looked up afterwards. Both caches are bounded: when one is full it starts over (a flood of distinct
# tag values costs the escaping again, never memory).
CACHE_SIZE = 16_384
_heads: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}
_field_keys: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


NewSeries = Callable[[str, Mapping[str, str]], None]


def _head(measurement: str, tags: Mapping[str, str], on_new: NewSeries | None) -> str:
    key = (measurement, tuple(tags), tuple(tags.values()))  # two flat tuples: cheaper than the pairs
    head = _heads.get(key)
    if head is None:
        head = escape_measurement(measurement)
        for name in sorted(tags):
            value = tags[name]
            if name and value:
                head += f",{escape_key(name, kind='tag key')}={escape_tag_value(value)}"
        if on_new is not None:
            on_new(head, tags)  # before caching: a head it refuses is asked about again next time
        if len(_heads) >= CACHE_SIZE:
            _heads.clear()
        _heads[key] = head
    return head


def _sorted_field_keys(fields: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """(name, escaped name + "=") in the order the line writes them (sorted by name)."""
    names = tuple(fields)
    found = _field_keys.get(names)
    if found is None:
        found = tuple((name, escape_key(name, kind="field key") + "=") for name in sorted(names))
        if len(_field_keys) >= CACHE_SIZE:
            _field_keys.clear()
        _field_keys[names] = found
    return found


def format_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    time_ns: int | None,
    *,
    on_new_series: NewSeries | None = None,
) -> str:
    """One point as a line (no newline). Returns "" when no field can be written; raises
    :class:`UnwritableName` for a name with a backslash or a control character.

    ``on_new_series(head, tags)`` is called for a series (measurement and tags, as the line's escaped
    head) not among the recently written ones; it may raise DecodeRejected to refuse it.
    """
    parts = []
    for name, prefix in _sorted_field_keys(fields):
        value = fields[name]
        if type(value) is float and value - value == 0.0:  # a finite float, inline: most fields are
            parts.append(prefix + repr(value).removesuffix(".0"))
            continue
        if value is None:
            continue
        formatted = format_field_value(value)
        if formatted is not None:
            parts.append(prefix + formatted)
    if not parts:
        return ""
    head = _head(measurement, tags, on_new_series)
    if time_ns is None:
        return f"{head} {','.join(parts)}"
    return f"{head} {','.join(parts)} {time_ns}"


def reading_line(reading: Reading, *, on_new_series: NewSeries | None = None) -> str:
    return format_line(
        reading.measurement, reading.tags, reading.fields, reading.time_ns, on_new_series=on_new_series
    )


def encode(readings: Iterable[Reading]) -> bytes:
    """A write body: one line per reading that has a writable field."""
    lines = [line for line in map(reading_line, readings) if line]
    return ("\n".join(lines) + "\n").encode() if lines else b""
