"""What a letter says, as numbers: :class:`LetterFigures`, independent of where the figures come from.

Months are calendar months in Europe/Berlin: the energy ledger's days start at local midnight.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Europe/Berlin")  # the ledger's day: local midnight to local midnight
KINDS = ("import", "export", "pv", "heat", "ev")
MIN_HOUSEHOLDS_FOR_MEDIAN = 5  # fewer: a "median" would be close to one neighbour's figure
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class BadMonth(ValueError):
    """A month that is not ``YYYY-MM`` (or is out of range)."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.fullmatch(text.strip())
        if found is None:
            raise BadMonth(f"month {text!r}: expected YYYY-MM, e.g. 2026-11")
        year, month = int(found[1]), int(found[2])
        if not 1 <= month <= 12 or not 2000 <= year <= 2100:
            raise BadMonth(f"month {text!r}: no such month (YYYY-MM, month 01 to 12, year 2000 to 2100)")
        return cls(year, month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shift(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def start(self) -> dt.datetime:
        """Local midnight of the month's first day, as an aware datetime in UTC."""
        return dt.datetime(self.year, self.month, 1, tzinfo=ZONE).astimezone(dt.UTC)

    def end(self) -> dt.datetime:
        """Local midnight of the next month's first day (exclusive), in UTC."""
        return self.shift(1).start()

    def last_twelve(self) -> list[Month]:
        """The twelve months ending with this one, oldest first."""
        return [self.shift(k) for k in range(-11, 1)]


@dataclass(frozen=True)
class Community:
    """The energy community (the quarter) in the month: its households' totals and two shares (0..1)."""

    households: int
    import_kwh: float
    pv_kwh: float
    self_sufficiency: float | None  # share of the quarter's use covered by its own PV
    pv_share: float | None  # share of the PV generated that was used in the quarter


@dataclass(frozen=True)
class LetterFigures:
    """One household's letter for one month. kWh by kind holds only kinds with measurements in the month.

    ``history`` is the grid import of the twelve months ending with ``month`` (oldest first; None where
    nothing was measured); ``previous_import`` the month before's; ``median_import`` the median household's
    import in the quarter this month (None below :data:`MIN_HOUSEHOLDS_FOR_MEDIAN` households).
    """

    household: str
    address: str
    month: Month
    kwh: dict[str, float] = field(default_factory=dict)
    history: list[tuple[Month, float | None]] = field(default_factory=list)
    previous_import: float | None = None
    median_import: float | None = None
    community: Community | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.kwh)
