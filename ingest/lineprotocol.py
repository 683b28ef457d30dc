"""InfluxDB line protocol, built straight from readings without per-point objects.

Escaping follows InfluxDB's rules (and influxdb-client's serializer, our test oracle):
measurement escapes comma and space; tag keys, tag values and field keys escape comma, equals sign and
space; string field values escape double quote and backslash. Control characters that would end the
line are written as ``\\n``/``\\r``/``\\t``. Tags are sorted by key, as InfluxDB prefers. Integers get the
``i`` suffix, booleans are ``true``/``false``, non-finite floats and None are left out, timestamps are
nanoseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ingest.readings import FieldValue, Reading

_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


def escape_measurement(name: str) -> str:
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_key(key: str) -> str:
    return key.translate(_ESCAPE_KEY)


def escape_tag_value(value: str) -> str:
    escaped = value.translate(_ESCAPE_KEY)
    # A trailing backslash would escape the separator that follows it.
    return escaped + " " if escaped.endswith("\\") else escaped


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
        return '"' + value.translate(_ESCAPE_STRING) + '"'
    return None


# Devices send the same measurement, tags and field names message after message, so the escaped
# "measurement,tag=value…" head and the sorted, escaped "field=" keys are built once per distinct set and
# looked up afterwards. Both caches are bounded: when one is full it starts over (a flood of distinct
# tag values costs the escaping again, never memory).
CACHE_SIZE = 16_384
_heads: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}
_field_keys: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


def _head(measurement: str, tags: Mapping[str, str]) -> str:
    key = (measurement, tuple(tags), tuple(tags.values()))  # two flat tuples: cheaper than the pairs
    head = _heads.get(key)
    if head is None:
        head = escape_measurement(measurement)
        for name in sorted(tags):
            value = tags[name]
            if name and value:
                head += f",{escape_key(name)}={escape_tag_value(value)}"
        if len(_heads) >= CACHE_SIZE:
            _heads.clear()
        _heads[key] = head
    return head


def _sorted_field_keys(fields: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """(name, escaped name + "=") in the order the line writes them (sorted by name)."""
    names = tuple(fields)
    found = _field_keys.get(names)
    if found is None:
        found = tuple((name, escape_key(name) + "=") for name in sorted(names))
        if len(_field_keys) >= CACHE_SIZE:
            _field_keys.clear()
        _field_keys[names] = found
    return found


def format_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], time_ns: int | None
) -> str:
    """One point as a line (no newline). Returns "" when no field can be written."""
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
    if time_ns is None:
        return f"{_head(measurement, tags)} {','.join(parts)}"
    return f"{_head(measurement, tags)} {','.join(parts)} {time_ns}"


def reading_line(reading: Reading) -> str:
    return format_line(reading.measurement, reading.tags, reading.fields, reading.time_ns)


def encode(readings: Iterable[Reading]) -> bytes:
    """A write body: one line per reading that has a writable field."""
    lines = [line for line in map(reading_line, readings) if line]
    return ("\n".join(lines) + "\n").encode() if lines else b""
