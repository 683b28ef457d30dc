"""The one way InfluxQL is written from values: identifiers, string, regex, time and number literals
quoted here, and :func:`statement`, which binds every value through them.

InfluxDB 1.x scans ``"…"`` (identifiers) and ``'…'`` (strings) alike: a backslash escapes ``\\``, the
quote and ``n``; anything else after a backslash, or a raw line break, is a syntax error. So a value is
written with its backslashes and quotes escaped, and control characters (line breaks, NUL, …) are
refused: no tag, field, measurement or user input here needs them, and refusing is clearer than
rewriting. Regex literals (``/…/``) escape ``/``; :func:`regex_exact` matches a text literally.

A template given to :func:`statement` is code, never input: its ``{name}`` placeholders take values,
each quoted by its type (:class:`Ident` → identifier, ``str`` → string literal, ``datetime`` → time
literal, ``int``/``float`` → number, :class:`Regex` → regex literal, :class:`Raw` only for fragments
built here). A value of any other type is refused.
"""

from __future__ import annotations

import datetime as dt
import math
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_FORMATTER = string.Formatter()
_REGEX_META = frozenset("\\.+*?()|[]{}^$")  # what Go's regexp.QuoteMeta escapes
_DURATION_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class InfluxQLValueError(ValueError):
    """A value that cannot be written into InfluxQL (a control character, a naive time, NaN …)."""


def _checked(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise InfluxQLValueError(f"{what} must be text, not {type(text).__name__}")
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise InfluxQLValueError(f"{what} holds control character U+{ord(char):04X}")
    return text


def ident(name: str) -> str:
    """An identifier (measurement, retention policy, database, tag or field key) in double quotes."""
    text = _checked(name, "identifier")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def idents(*names: str) -> str:
    """A qualified name: ``"db"."rp"."measurement"``."""
    if not names:
        raise InfluxQLValueError("a qualified name needs at least one part")
    return ".".join(ident(name) for name in names)


def string_literal(text: str) -> str:
    """A string literal in single quotes (tag values, time strings)."""
    checked = _checked(text, "string")
    return "'" + checked.replace("\\", "\\\\").replace("'", "\\'") + "'"


def regex_literal(pattern: str) -> str:
    """A regular expression (RE2 syntax) as a ``/…/`` literal; ``/`` is the only character escaped, so the
    pattern means what it says (use :func:`regex_exact` for a text to match literally)."""
    checked = _checked(pattern, "regex")
    out = []
    for index, char in enumerate(checked):
        if char == "/":
            out.append("\\/")
        elif char == "\\" and index == len(checked) - 1:
            raise InfluxQLValueError("regex ends in a lone backslash")
        else:
            out.append(char)
    return "/" + "".join(out) + "/"


def regex_exact(text: str) -> str:
    """A regex literal matching exactly ``text`` (anchored, every metacharacter escaped)."""
    body = "".join("\\" + char if char in _REGEX_META else char for char in _checked(text, "regex"))
    return regex_literal(f"^{body}$")


def time_literal(moment: dt.datetime) -> str:
    """An aware datetime as an RFC 3339 UTC string literal (naive times are refused: which zone?)."""
    if not isinstance(moment, dt.datetime):
        raise InfluxQLValueError(f"a time must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InfluxQLValueError(f"naive datetime {moment.isoformat()}: give it a time zone")
    utc = moment.astimezone(dt.UTC)
    return "'" + utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def number_literal(value: int | float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InfluxQLValueError(f"a number must be int or float, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InfluxQLValueError(f"{value} is not a finite number")
    return repr(value) if isinstance(value, float) else str(value)


def duration_literal(span: dt.timedelta) -> str:
    """A positive whole-second duration: ``15m``, ``1d``, ``90s``."""
    seconds = span.total_seconds()
    if seconds <= 0 or seconds != int(seconds):
        raise InfluxQLValueError(f"a duration must be a positive whole number of seconds, not {span}")
    whole = int(seconds)
    for unit, size in _DURATION_UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    raise AssertionError("unreachable: seconds divide every whole number")


@dataclass(frozen=True)
class Ident:
    """A value for :func:`statement` to write as an identifier (or a qualified name of several parts)."""

    parts: tuple[str, ...]

    def __init__(self, *parts: str) -> None:
        object.__setattr__(self, "parts", parts)


@dataclass(frozen=True)
class Regex:
    pattern: str
    exact: bool = False


@dataclass(frozen=True)
class Duration:
    span: dt.timedelta


@dataclass(frozen=True)
class Raw:
    """A fragment already written by this module (e.g. :func:`any_of`); never wrap input in it."""

    text: str


Value = Ident | Regex | Duration | Raw | str | int | float | dt.datetime


def literal(value: Value) -> str:
    """``value`` as InfluxQL, by its type."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Ident):
        return idents(*value.parts)
    if isinstance(value, Regex):
        return regex_exact(value.pattern) if value.exact else regex_literal(value.pattern)
    if isinstance(value, Duration):
        return duration_literal(value.span)
    if isinstance(value, dt.datetime):
        return time_literal(value)
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_literal(value)
    raise InfluxQLValueError(f"no InfluxQL literal for {type(value).__name__}")


def any_of(key: str, values: Iterable[str]) -> Raw:
    """``("key" = 'a' OR "key" = 'b')``: a tag equal to one of the values."""
    chosen = [f"{ident(key)} = {string_literal(value)}" for value in values]
    if not chosen:
        raise InfluxQLValueError(f"{key}: no values to choose from")
    return Raw("(" + " OR ".join(chosen) + ")")


def statement(template: str, **values: Value) -> str:
    """The template with each ``{name}`` replaced by its value's literal; every placeholder must have a
    value and every value a placeholder; format specs and conversions are refused."""
    out: list[str] = []
    used: set[str] = set()
    for text, name, spec, conversion in _FORMATTER.parse(template):
        out.append(text)
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise InfluxQLValueError(f"placeholder {{{name}}}: plain names only")
        if name not in values:
            raise InfluxQLValueError(f"no value for {{{name}}}")
        out.append(literal(values[name]))
        used.add(name)
    unused = set(values) - used
    if unused:
        raise InfluxQLValueError(f"values without a placeholder: {', '.join(sorted(unused))}")
    return "".join(out)
