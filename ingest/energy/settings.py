"""The ledger's settings beyond validation: the window as a duration, the InfluxDB user it runs as."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.config import Settings

_WINDOW = re.compile(r"^([1-9][0-9]{0,3})([hd])$")
MIN_WINDOW = dt.timedelta(hours=1)
MAX_WINDOW = dt.timedelta(days=31)


def parse_window(text: str) -> dt.timedelta:
    """``energy.window``: whole hours or days (``36h``, ``2d``), from 1h to 31d."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError("a whole number of hours or days, e.g. 1d or 36h")
    window = dt.timedelta(hours=int(match[1]) * (24 if match[2] == "d" else 1))
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ValueError("from 1h to 31d (older late data: reallabor energy rollup --since)")
    return window


def ledger_auth(settings: Settings) -> tuple[str, str] | None:
    """``energy.username``/``password``, else the settings' InfluxDB user (it must read and write)."""
    energy, influx = settings.energy, settings.influx
    if energy.username is not None:
        return (energy.username, energy.password.get_secret_value() if energy.password else "")
    if influx.username is not None:
        return (influx.username, influx.password.get_secret_value() if influx.password else "")
    return None
