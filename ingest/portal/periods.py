"""Periods the portal shows (day, week, month, year) in the quarter's time zone, their bars (hours,
days, months) and their neighbours; parsed strictly from query parameters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args
from zoneinfo import ZoneInfo

View = Literal["day", "week", "month", "year"]
VIEWS: tuple[str, ...] = get_args(View)
EARLIEST = dt.date(2000, 1, 1)  # nothing was measured before; a later date is refused beyond next year


class BadInput(ValueError):
    """A parameter the portal refuses: ``key`` names the problem for the page's text (``portal_err_<key>``),
    ``values`` fill it; the English message says the same."""

    def __init__(self, key: str, message: str, **values: object) -> None:
        super().__init__(message)
        self.key = key
        self.values = values


class BadPeriod(BadInput):
    """A view or date the portal does not show."""


def parse_date(text: str, *, what: str, today: dt.date) -> dt.date:
    if len(text) != 10 or not text.isascii():
        raise BadPeriod("date_format", f"{what}: a date as YYYY-MM-DD", what=what)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise BadPeriod("date_format", f"{what}: a date as YYYY-MM-DD", what=what) from exc
    latest = dt.date(today.year + 1, 12, 31)
    if day < EARLIEST or day > latest:
        raise BadPeriod(
            "date_bounds",
            f"{what}: between {EARLIEST.isoformat()} and {latest.isoformat()}",
            what=what,
            first=EARLIEST.isoformat(),
            last=latest.isoformat(),
        )
    return day


def parse_view(text: str, *, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise BadPeriod("view", f"view: one of {', '.join(allowed)}", allowed=", ".join(allowed))
    return text


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    view: View
    start: dt.date  # first local day
    tz: ZoneInfo
    fine: bool = False  # a day by quarter hours (the "now" view) instead of by hours

    @classmethod
    def containing(cls, view: View, day: dt.date, tz: ZoneInfo) -> Period:
        if view == "day":
            start = day
        elif view == "week":
            start = day - dt.timedelta(days=day.weekday())
        elif view == "month":
            start = day.replace(day=1)
        else:
            start = dt.date(day.year, 1, 1)
        return cls(view, start, tz)

    @property
    def end(self) -> dt.date:
        """The first local day after the period."""
        if self.view == "day":
            return self.start + dt.timedelta(days=1)
        if self.view == "week":
            return self.start + dt.timedelta(days=7)
        if self.view == "month":
            return _add_months(self.start, 1)
        return dt.date(self.start.year + 1, 1, 1)

    def moment(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), self.tz)

    @property
    def range(self) -> tuple[dt.datetime, dt.datetime]:
        """[local midnight of the first day, local midnight after the last), as aware datetimes."""
        return self.moment(self.start), self.moment(self.end)

    def previous(self) -> Period:
        if self.view == "day":
            return Period(self.view, self.start - dt.timedelta(days=1), self.tz)
        if self.view == "week":
            return Period(self.view, self.start - dt.timedelta(days=7), self.tz)
        if self.view == "month":
            return Period(self.view, _add_months(self.start, -1), self.tz)
        return Period(self.view, dt.date(self.start.year - 1, 1, 1), self.tz)

    def next(self) -> Period:
        return Period.containing(self.view, self.end, self.tz)

    @property
    def daily(self) -> bool:
        """Read from the daily ledger (``energy_1d``); the day view reads the quarter hours."""
        return self.view != "day"

    def bucket(self, moment: dt.datetime) -> dt.datetime:
        """The bar a ledger time belongs to: its local hour (day), day (week, month) or month (year)."""
        local = moment.astimezone(self.tz)
        if self.fine:
            return local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
        if self.view == "day":
            return local.replace(minute=0, second=0, microsecond=0)
        if self.view == "year":
            return self.moment(local.date().replace(day=1))
        return self.moment(local.date())

    def buckets(self) -> list[dt.datetime]:
        """Every bar's start, in order (a day has 23 or 25 hours when the clocks change)."""
        out: list[dt.datetime] = []
        if self.view == "day":
            start, end = self.range
            moment = start.astimezone(dt.UTC)
            step = dt.timedelta(minutes=15 if self.fine else 60)
            while moment < end:
                out.append(moment.astimezone(self.tz))
                moment += step
            return out
        day = self.start
        while day < self.end:
            out.append(self.moment(day))
            day = _add_months(day, 1) if self.view == "year" else day + dt.timedelta(days=1)
        return out
