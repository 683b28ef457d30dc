"""The household's own ledger rows as CSV, for a range of local days chosen on the page: validated
strictly (dates, order, length), so a range can neither reach another household nor load InfluxDB."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ingest.portal.periods import BadInput, BadPeriod, parse_date
from ingest.portal.reader import Row

MAX_DAYS = {"15m": 31, "1d": 366}  # quarter hours for a month, days for a year
HEADER = ("time_local", "time_utc", "device", "kind", "kwh")


class BadRange(BadInput):
    """What is wrong with the requested range."""


@dataclass(frozen=True)
class CsvRange:
    first: dt.date
    last: dt.date  # inclusive
    resolution: str

    @property
    def daily(self) -> bool:
        return self.resolution == "1d"

    def bounds(self, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        end = self.last + dt.timedelta(days=1)
        return dt.datetime.combine(self.first, dt.time(), tz), dt.datetime.combine(end, dt.time(), tz)

    @property
    def filename(self) -> str:
        return f"energie-{self.first.isoformat()}-{self.last.isoformat()}-{self.resolution}.csv"


def parse_range(first: str, last: str, resolution: str, *, today: dt.date) -> CsvRange:
    if resolution not in MAX_DAYS:
        raise BadRange("resolution", "resolution: 15m or 1d")
    try:
        start = parse_date(first, what="from", today=today)
        end = parse_date(last, what="to", today=today)
    except BadPeriod as exc:
        raise BadRange(exc.key, str(exc), **exc.values) from exc
    if end < start:
        raise BadRange("order", "to: on or after from")
    if end > today:
        raise BadRange("future", "to: today at the latest")
    days = (end - start).days + 1
    limit = MAX_DAYS[resolution]
    if days > limit:
        raise BadRange(
            "too_long", f"at most {limit} days at resolution {resolution}, not {days}", limit=limit, days=days
        )
    return CsvRange(start, end, resolution)


def csv_text(rows: list[Row], tz: ZoneInfo) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        kwh = row.values.get("kwh")
        if not isinstance(kwh, int | float):
            continue
        writer.writerow(
            (
                row.time.astimezone(tz).isoformat(),
                row.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                _cell(row.tags.get("device", "")),
                row.tags.get("kind", ""),
                f"{float(kwh):.6f}",
            )
        )
    return out.getvalue()


def _cell(text: str) -> str:
    """No formula injection when the file is opened in a spreadsheet."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
