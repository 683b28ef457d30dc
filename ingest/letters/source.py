"""The figures of a month's letters from the portal's data layer (:mod:`ingest.portal.data`), so that a
letter and the resident's portal say the same numbers: the household's totals by kind, the month before,
the last twelve months' import (two calendar years of monthly bars), a typical household of the quarter
and the energy-community figures (only with five households or more, as on the portal).

No InfluxQL here: every statement is the portal's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from zoneinfo import ZoneInfo

from ingest.letters.figures import Community, LetterFigures, Month
from ingest.letters.recipients import Recipient
from ingest.portal.data import Household, PortalData
from ingest.portal.periods import Period


def _month(month: Month, tz: ZoneInfo) -> Period:
    return Period("month", dt.date(month.year, month.month, 1), tz)


def _imports_by_month(
    data: PortalData, household: Household, months: list[Month], tz: ZoneInfo
) -> dict[Month, float | None]:
    """Each month's grid import from the portal's year bars (one query per calendar year shown)."""
    out: dict[Month, float | None] = {}
    for year in sorted({month.year for month in months}):
        bars = data.bars(household, Period("year", dt.date(year, 1, 1), tz))
        imports = bars.kinds.get("import", [None] * len(bars.buckets))
        for bucket, value in zip(bars.buckets, imports, strict=True):
            out[Month(bucket.year, bucket.month)] = value
    return {month: out.get(month) for month in months}


def letter_figures(
    data: PortalData, recipients: Sequence[Recipient], month: Month, tz: ZoneInfo
) -> Iterator[LetterFigures]:
    """Each recipient's figures, one after another (a household's five small queries each)."""
    period = _month(month, tz)
    for recipient in recipients:
        household = Household(recipient.id, recipient.household, recipient.building)
        totals = data.totals(household, period)
        previous = data.totals(household, period.previous()).get("import")
        shown = month.last_twelve()
        imports = _imports_by_month(data, household, shown, tz)
        quarter = data.community(household, period, totals)
        community: Community | None = None
        if quarter.quarter.enough:
            community = Community(
                typical_consumption_kwh=quarter.quarter.typical.get("consumption"),
                self_sufficiency=quarter.quarter.self_sufficiency,
                pv_share=quarter.quarter.pv_share,
                household_covered=quarter.quarter_pv_covered if "import" in totals else None,
            )
        yield LetterFigures(
            household=recipient.household,
            address=recipient.address,
            building=recipient.building,
            month=month,
            kwh=totals,
            history=[(shown_month, imports[shown_month]) for shown_month in shown],
            previous_import=previous,
            typical_import=quarter.quarter.typical.get("import"),
            community=community,
        )
