"""Grafana's expansion of an InfluxQL panel query: macros, interval and template variables.

What Grafana (10/11, InfluxDB data source, InfluxQL, raw query mode) does before it sends a query:

- ``$timeFilter`` becomes ``time >= <from>ms and time <= <to>ms`` (both ends inclusive);
- ``$__interval`` / ``$__interval_ms``: the range divided by the panel's max data points, rounded by
  Grafana's ``roundInterval`` table, and never below the panel's min interval (``interval``);
- ``$__from`` / ``${__from}`` / ``$__to`` / ``${__to}``: the range's ends in epoch milliseconds;
- a template variable (``$name``, ``${name}``, ``[[name]]``): a single-value variable as its raw value; a
  multi-value or include-all variable regex-escaped, several values as ``(a|b)`` (for ``=~ /^$name$/``);
  "All" without a custom all value means every option.

Used by the tests (every panel query runs against the real InfluxDB) and later by the /ops page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

BUILTINS = frozenset({"timeFilter", "__interval", "__interval_ms", "__from", "__to"})
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+)\]\]|\$\{(\w+)\}")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")

# Grafana's roundInterval (public/app/core/utils/kbn / @grafana/data rangeutil): (below, use) in ms
_ROUND = (
    (15, 10), (35, 20), (75, 50), (150, 100), (250, 200), (350, 300), (450, 400), (750, 500),
    (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000),
    (45000, 30000), (90000, 60000), (180000, 120000), (450000, 300000), (750000, 600000),
    (1050000, 900000), (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (24300000, 21600000), (32400000, 28800000), (86400000, 43200000),
    (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000),
)  # fmt: skip


class UndefinedVariable(KeyError):
    """A ``$name`` in a query that is neither a Grafana macro nor a variable of the dashboard."""


@dataclass(frozen=True)
class Variable:
    """A template variable's selection: ``values`` chosen; ``multi``: multi-value or include-all."""

    values: tuple[str, ...]
    multi: bool = False


def round_interval(interval_ms: float) -> int:
    if interval_ms < 10:
        return 1
    for below, use in _ROUND:
        if interval_ms < below:
            return use
    return 31_536_000_000


def duration_ms(text: str) -> int:
    """An InfluxQL/Grafana duration (``15m``, ``1d``, ``1w``) in milliseconds."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def interval_text(interval_ms: int) -> str:
    """As Grafana writes ``$__interval``: the largest unit that divides it (``15m``, ``1h``, ``1d``)."""
    for unit, size in _UNITS:
        if interval_ms % size == 0:
            return f"{interval_ms // size}{unit}"
    return f"{interval_ms}ms"


def interval_ms(
    from_ms: int, to_ms: int, *, max_data_points: int = 1000, min_interval: str | None = None
) -> int:
    raw = (to_ms - from_ms) / max_data_points
    lowest = duration_ms(min_interval) if min_interval else 1
    return max(round_interval(raw), lowest)


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda match: "\\" + match.group(0), value)


def expand(
    query: str,
    *,
    from_ms: int,
    to_ms: int,
    variables: Mapping[str, Variable] | None = None,
    max_data_points: int = 1000,
    min_interval: str | None = None,
) -> str:
    """``query`` as Grafana sends it to InfluxDB for the range [from_ms, to_ms]."""
    variables = variables or {}
    step = interval_ms(from_ms, to_ms, max_data_points=max_data_points, min_interval=min_interval)
    builtins = {
        "timeFilter": f"time >= {from_ms}ms and time <= {to_ms}ms",
        "__interval": interval_text(step),
        "__interval_ms": str(step),
        "__from": str(from_ms),
        "__to": str(to_ms),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise UndefinedVariable(name)
        variable = variables[name]
        if not variable.multi:
            return variable.values[0] if variable.values else ""
        escaped = [regex_escape(value) for value in variable.values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return _VARIABLE.sub(replace, query)


def variables_used(query: str) -> set[str]:
    """Names of the template variables ``query`` uses (Grafana's macros left out)."""
    names = {a or b or c for a, b, c in _VARIABLE.findall(query)}
    return names - BUILTINS
