"""Pydantic validation errors as lines an operator can act on: key path, message, offending value.

The value of an unknown key is never shown: a mistyped key (``passwort:``) may hold a secret, and these
lines reach terminals and, through a restarting service, its journal.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_SECRET_WORDS = ("password", "secret", "token")


def describe_errors(exc: ValidationError, *, prefix: tuple[Any, ...] = ()) -> list[str]:
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in (*prefix, *err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        value = err.get("input")
        show_value = (
            err["type"] not in ("missing", "extra_forbidden") and not isinstance(value, dict | list) and path
        )
        if show_value:
            shown = "<hidden>" if any(word in path for word in _SECRET_WORDS) else repr(value)
            message = f"{message} (got {shown})"
        elif err["type"] == "list_type" and isinstance(value, dict):  # what was found, never its values
            message = f"{message} (got a mapping: each entry of a list starts with '- ')"
        elif err["type"] in ("dict_type", "model_type") and isinstance(value, list):
            message = f"{message} (got a list: a mapping's keys have no '- ' in front)"
        lines.append(f"{path}: {message}" if path else message)
    return lines
