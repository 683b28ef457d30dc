"""The registry's one rule for free text (names, addresses, locations, meter numbers, notes), used by the
JSON API's schemas, the pages' forms, the CLI's arguments and the CSV import alike; as pydantic types
(``Name``, ``ShortText``, ``Notes``, ``Key``, ``NativeId``) at the end; a device id has a rule of its own
on top (:func:`native_id_problem`: topic levels).

Refused, with the reason:

- control characters: every one in single-line fields (tab and line breaks too, and the Unicode line and
  paragraph separators); in multi-line fields (notes) every one but tab, CR and LF. NUL always.
- invisible format characters (Unicode category Cf) in single-line fields: the bidirectional controls
  (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C) make an id render as another ("unicode-\\u202egnp.exe"
  shows as "unicode-exe.png"), zero-width spaces, soft hyphens and the BOM make two ids look the same.
  Only the joiners U+200C and U+200D stay allowed (emoji sequences, scripts that need them). In notes the
  bidirectional controls are refused, other format characters are allowed.
- lone surrogates (JSON can carry ``"\\ud800"``; no database column should hold one).
- a leading ``=``, ``+``, ``-`` or ``@``: a spreadsheet opening an export runs such a cell as a formula
  (CSV injection). A plain number such as ``-1`` or ``+3,5`` is a number there, not a formula: allowed.

Surrounding whitespace is trimmed after the control characters are checked, so ``"gw1\\n"`` is refused
rather than silently stored as ``gw1``; the formula check applies to the trimmed value, as stored.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BeforeValidator, Field

FORMULA_START = frozenset("=+-@")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")
_MULTILINE_ALLOWED = frozenset("\t\r\n")
_SEPARATORS = frozenset({"Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")  # format characters that shape text, never reorder or hide it
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be stored (its control characters and surrogates), or None."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            return "lone surrogates are not allowed"
        if category == "Cc" and not (multiline and char in _MULTILINE_ALLOWED):
            rule = "only tab and line breaks" if multiline else "one line: no tab or line break"
            return f"control character U+{ord(char):04X} is not allowed ({rule})"
        if category in _SEPARATORS and not multiline:
            return f"control character U+{ord(char):04X} is not allowed (one line: no line break)"
        if char in BIDI_CONTROLS:
            return (
                f"invisible character U+{ord(char):04X} is not allowed "
                "(it changes the direction of the text, so it would show as something else)"
            )
        if category == "Cf" and not multiline and char not in _JOINERS:
            return f"invisible character U+{ord(char):04X} is not allowed (a format character)"
    return None


def formula_problem(value: str) -> str | None:
    """Why the (trimmed) ``value`` would run as a spreadsheet formula once exported, or None."""
    if value[:1] in FORMULA_START and not _NUMBER.fullmatch(value):
        return (
            f"must not start with {value[0]!r}: a spreadsheet would run it as a formula "
            "(start with a letter or digit instead)"
        )
    return None


def check_text(value: str, *, multiline: bool = False) -> str:
    """``value`` trimmed of surrounding whitespace, or :class:`ValueError` saying what is wrong."""
    problem = text_problem(value, multiline=multiline)
    if problem is None:
        value = value.strip()
        problem = formula_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def single_line(value: object) -> object:
    """Before pydantic trims: a trailing newline is refused, not trimmed away (non-text: pydantic's)."""
    return check_text(value) if isinstance(value, str) else value


def _notes(value: object) -> object:
    return check_text(value, multiline=True) if isinstance(value, str) else value


# pydantic's ``pattern`` is a Rust regex: its ``$`` matches only at the very end (a test holds it to that)
Name = Annotated[str, Field(min_length=1, max_length=100), BeforeValidator(single_line)]
ShortText = Annotated[str, Field(max_length=200), BeforeValidator(single_line)]
Notes = Annotated[str, Field(max_length=4000), BeforeValidator(_notes)]
Key = Annotated[str, Field(min_length=1, max_length=64), BeforeValidator(single_line)]
NATIVE_ID_MAX = 128  # the registry's column (String(128)); Shelly allows a 300-character topic prefix


def native_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a device id as it appears in topics, or None.

    One topic level (``boiler``) or several joined by ``/`` (a Shelly Gen2 prefix the user set,
    ``home/floor1/pm``; the topic templates' ``{device:path}``): no level empty (so no leading, trailing or
    double ``/``), no MQTT wildcard ``+`` or ``#``, at most :data:`NATIVE_ID_MAX` characters. The device's
    topics stay under ``lab/<gateway>/`` whatever its id: the gateway prefixes them.
    """
    if not value:
        return "required"
    if len(value) > NATIVE_ID_MAX:
        return f"longer than {NATIVE_ID_MAX} characters"
    if "+" in value or "#" in value:
        return "no '+' or '#' (MQTT wildcards)"
    if not all(value.split("/")):
        return "topic levels joined by '/', none empty (no leading, trailing or double '/')"
    return None


def _native_id(value: object) -> object:
    if not isinstance(value, str):
        return value
    value = check_text(value)
    problem = native_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


NativeId = Annotated[
    str,
    Field(min_length=1, max_length=NATIVE_ID_MAX, pattern=r"^[^/+#]+(/[^/+#]+)*$"),
    BeforeValidator(_native_id),
]
