"""Turning what devices send into numbers: tolerant of strings, decimal commas and nulls."""

from __future__ import annotations

import math
from typing import Any

from ingest.readings import DecodeRejected


def to_number(value: Any, *, key: str) -> float | None:
    """A finite float from a number or numeric text ("12,5" too); None for null and empty text.

    Raises DecodeRejected("invalid_value") for anything else (NaN and infinities included).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in ("null", "none", "n/a", "-"):
            return None
        if "," in text:
            # decimal comma ("12,5"); a comma next to a dot is a thousands separator ("1,234.5")
            text = text.replace(",", "") if "." in text else text.replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            raise DecodeRejected("invalid_value", f"{key}: {value[:40]!r} is not a number") from None
    else:
        raise DecodeRejected("invalid_value", f"{key}: expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise DecodeRejected("invalid_value", f"{key}: {value!r} is not a finite number")
    return number


def to_bool(value: Any, *, key: str) -> bool | None:
    """A bool from true/false, 1/0, on/off and their text forms; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "on", "1", "yes"):
            return True
        if text in ("false", "off", "0", "no"):
            return False
        if not text:
            return None
    raise DecodeRejected("invalid_value", f"{key}: {str(value)[:40]!r} is not a boolean")


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path ("ENERGY.Total", "phases.0"), or None when any part is missing."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node
