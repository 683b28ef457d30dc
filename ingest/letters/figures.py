"""What a letter says, as numbers: :class:`LetterFigures`, independent of where the figures come from
(:mod:`ingest.letters.source` fills them from the portal's data layer), and the month it is about."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("import", "export", "pv", "heat", "ev")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


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

    def last_twelve(self) -> list[Month]:
        """The twelve months ending with this one, oldest first."""
        return [self.shift(k) for k in range(-11, 1)]


@dataclass(frozen=True)
class Community:
    """The energy community (the quarter) in the month, as the portal shows it (docs/portal.md, "What
    residents see of others"): no total, no count; present only with at least five households.

    ``typical_consumption_kwh``: a typical household's consumption (mean of the middle half, rounded).
    Shares are 0..1, rounded to whole percent, None without consumption or with fewer than five PV
    installations. ``self_sufficiency``: the part of the quarter's consumption its own PV covered, per
    quarter hour; ``pv_share``: the quarter's PV generation over its consumption; ``household_covered``:
    the part of this household's consumption covered by its own PV and the quarter's surplus.
    """

    typical_consumption_kwh: float | None
    self_sufficiency: float | None
    pv_share: float | None
    household_covered: float | None = None


@dataclass(frozen=True)
class LetterFigures:
    """One household's letter for one month. kWh by kind holds only kinds with measurements in the month.

    ``history`` is the grid import of the twelve months ending with ``month`` (oldest first; None where
    nothing was measured); ``previous_import`` the month before's; ``typical_import`` a typical household's
    import in the quarter this month (None below five households: the portal's rule); ``community`` None
    below five households.
    """

    household: str
    address: str
    month: Month
    building: str = ""
    kwh: dict[str, float] = field(default_factory=dict)
    history: list[tuple[Month, float | None]] = field(default_factory=list)
    previous_import: float | None = None
    typical_import: float | None = None
    community: Community | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.kwh)
