"""``opendata`` settings: where the open-data export writes, when its daily run starts, how strictly it
suppresses cells (docs/opendata.md).

Kept free of :mod:`ingest.config` (which embeds this model as ``Settings.opendata``) so that importing it
never runs into an import cycle.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["OpenDataSettings", "parse_daily_at"]

_DAILY_AT = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_daily_at(text: str) -> dt.time:
    """``opendata.daily_at``: a local wall-clock time ``HH:MM`` (24 hours)."""
    match = _DAILY_AT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a local time HH:MM (00:00 to 23:59), e.g. 03:30")
    return dt.time(int(match[1]), int(match[2]))


def _http_url(value: str | None, key: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key} {value!r} is not an http:// or https:// address with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{key} {value!r}: no query, fragment or user name, only scheme, host, port, path")
    return value.strip().rstrip("/")


class OpenDataSettings(BaseModel):
    """The open-data export (``reallabor opendata export``/``run``) and its public page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    out_dir: Path = Field(
        Path("state/opendata"),
        description="where the files go: <out_dir>/<dataset-id>/<dataset-id>_<YYYY-MM>.csv|.json and "
        "<out_dir>/catalog.jsonld",
    )
    base_url: str | None = Field(
        None,
        description="public address under which out_dir is served (https://… in production); the catalogue's "
        "download links start with it. None: development, links relative to the catalogue",
    )
    publisher_name: str = Field(
        "Reallabor Quartier",
        min_length=1,
        max_length=200,
        description="publisher named in the catalogue (dct:publisher)",
    )
    publisher_url: str | None = Field(None, description="the publisher's web address (http:// or https://)")
    contributor_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]+$",
        description="DCAT-AP.de contributor id assigned by GovData "
        "(http://dcat-ap.de/def/contributors/<id>); needed only when GovData harvests the catalogue directly",
    )
    spatial_label: str = Field(
        "Reallabor Quartier",
        min_length=1,
        max_length=200,
        description="the area the data covers, as the catalogue names it (dct:spatial)",
    )
    street_building: str = Field(
        "Quartiersplatz",
        min_length=1,
        max_length=100,
        description="the registry building whose sensors stand outdoors: its environment sensors assigned to "
        "the building without a household are the street stations; every other environment sensor counts "
        "as indoor and is never published",
    )
    daily_at: str = Field(
        "03:30",
        description="local time (HH:MM, Europe/Berlin) at which `reallabor opendata run` exports the days "
        "that have become final (the energy ledger no longer rewrites them: a day's end + energy.window)",
    )
    cache_s: int = Field(60, gt=0, le=86400, description="how long the public page may be cached (seconds)")
    min_households: int = Field(
        5,
        ge=2,
        description="a cell is published only if at least this many households contribute to it",
    )
    dominance_percent: float = Field(
        85.0,
        ge=50,
        lt=100,
        description="a cell is suppressed if one household contributes more than this share of its total",
    )

    @field_validator("daily_at")
    @classmethod
    def _daily_at(cls, value: str) -> str:
        parse_daily_at(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _http_url(value, "base_url")

    @field_validator("publisher_url")
    @classmethod
    def _publisher_url(cls, value: str | None) -> str | None:
        return _http_url(value, "publisher_url")

    @property
    def daily_time(self) -> dt.time:
        """``daily_at`` as a time of day."""
        return parse_daily_at(self.daily_at)
