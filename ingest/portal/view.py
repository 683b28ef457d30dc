"""What the portal page shows, assembled from the data layer: bars as table rows and as chart columns,
the comparison, the community figures; labels in the page's language (German or English)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ingest.months import MONTHS, SHORT_MONTHS
from ingest.portal.data import BUILDING_PV, KINDS, Bars, Community, consumption
from ingest.portal.periods import Period

WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
COLORS = {
    "import": "#0b5cad",
    "export": "#15803d",
    "pv": "#a16207",
    BUILDING_PV: "#a16207",
    "heat": "#c2410c",
    "ev": "#7e22ce",
}
ORDER = (*KINDS, BUILDING_PV)


def number(lang: str, value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    if lang == "de":
        text = text.replace(",", "\u2009").replace(".", ",").replace("\u2009", ".")
    return text


def percent(lang: str, share: float | None) -> str:
    if share is None:
        return "–"
    return f"{number(lang, share * 100, 0)}\u00a0%"


def kwh(lang: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{number(lang, value, 2 if abs(value) < 10 else 1)}\u00a0kWh"


def watts(lang: str, value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{number(lang, magnitude / 1000, 2)}\u00a0kW"
    return f"{number(lang, magnitude, 0)}\u00a0W"


def day_text(lang: str, day: dt.date, *, weekday: bool = True) -> str:
    month = MONTHS[lang][day.month - 1]
    head = f"{WEEKDAYS[lang][day.weekday()]}, " if weekday else ""
    return f"{head}{day.day}. {month} {day.year}" if lang == "de" else f"{head}{day.day} {month} {day.year}"


def period_title(lang: str, period: Period) -> str:
    if period.view == "day":
        return day_text(lang, period.start)
    if period.view == "week":
        last = period.end - dt.timedelta(days=1)
        week = period.start.isocalendar().week
        span = f"{day_text(lang, period.start, weekday=False)} – {day_text(lang, last, weekday=False)}"
        return f"{'KW' if lang == 'de' else 'Week'} {week}: {span}"
    if period.view == "month":
        return f"{MONTHS[lang][period.start.month - 1]} {period.start.year}"
    return str(period.start.year)


def bucket_label(lang: str, period: Period, moment: dt.datetime) -> tuple[str, str]:
    """(the table's label, the chart axis' short label) of a bar."""
    if period.view == "day":
        clock = moment.strftime("%H:%M")
        return clock, clock
    if period.view == "year":
        name = MONTHS[lang][moment.month - 1]
        return name, name[:3]
    short = f"{moment.day}."
    if period.view == "week":
        weekday = WEEKDAYS[lang][moment.weekday()][:2]
        return f"{weekday}, {moment.day:02d}.{moment.month:02d}.", weekday
    return f"{moment.day:02d}.{moment.month:02d}.", short


@dataclass
class Table:
    kinds: list[str]
    rows: list[tuple[str, list[str]]]


def table(lang: str, period: Period, bars: Bars) -> Table:
    kinds = [kind for kind in ORDER if kind in bars.kinds]
    rows = []
    for i, moment in enumerate(bars.buckets):
        label, _ = bucket_label(lang, period, moment)
        rows.append((label, [number(lang, bars.kinds[kind][i], 2) for kind in kinds]))
    return Table(kinds, rows)


def charts(lang: str, period: Period, bars: Bars, t: Callable[..., str]) -> list[dict[str, Any]]:
    """Chart specs for portal.js: electricity (import up, export down, PV as a line), heat, EV charging;
    a chart only when its data is there. x is the bar's index; ``labels`` name the bars."""
    labels = [bucket_label(lang, period, moment)[1] for moment in bars.buckets]
    out: list[dict[str, Any]] = []

    def series(kind: str, *, sign: float = 1.0, line: bool = False) -> dict[str, Any]:
        values = [None if v is None else round(sign * v, 4) for v in bars.kinds[kind]]
        return {
            "key": kind,
            "label": t(f"portal_kind_{kind}"),
            "values": values,
            "color": COLORS[kind],
            "line": line,
        }

    power = []
    if "import" in bars.kinds:
        power.append(series("import"))
    if "export" in bars.kinds:
        power.append(series("export", sign=-1.0))
    for pv in ("pv", BUILDING_PV):
        if pv in bars.kinds:
            power.append(series(pv, line=True))
    if power:
        out.append({"key": "electricity", "title": t("portal_chart_electricity"), "series": power})
    for kind in ("heat", "ev"):
        if kind in bars.kinds:
            out.append({"key": kind, "title": t(f"portal_kind_{kind}"), "series": [series(kind)]})
    for chart in out:
        chart["labels"] = labels
        chart["x"] = list(range(len(labels)))
        chart["unit"] = "kWh"
    return out


def comparison(
    lang: str, totals: dict[str, float], previous: dict[str, float], typical: dict[str, float | None]
) -> list[dict[str, str]]:
    """One row per kind the household has (and its consumption): now, before, change, a typical household.
    Nothing measured before: "–", not 0."""
    rows = []
    mine = dict(totals)
    before: dict[str, float] = dict(previous)
    if "import" in mine:
        mine["consumption"] = consumption(totals)[0]
        if "import" in previous:
            before["consumption"] = consumption(previous)[0]
    for kind in ("consumption", *KINDS):
        if kind not in mine:
            continue
        now, then = mine[kind], before.get(kind)
        change = "–"
        if then:
            delta = round((now - then) / then * 100)
            change = ("+" if delta > 0 else "−" if delta < 0 else "±") + percent(lang, abs(delta) / 100)
        rows.append(
            {
                "kind": kind,
                "now": number(lang, now, 1),
                "before": number(lang, then, 1),
                "change": change,
                "typical": number(lang, typical.get(kind), 1),
            }
        )
    return rows


def community(lang: str, figures: Community) -> dict[str, str]:
    """Shares only: the quarter's absolute kWh are never shown (docs/portal.md, "What residents see of
    others")."""
    return {
        "self_sufficiency": percent(lang, figures.self_sufficiency),
        "quarter_pv_covered": percent(lang, figures.quarter_pv_covered),
        "quarter_self_sufficiency": percent(lang, figures.quarter.self_sufficiency),
        "quarter_pv_share": percent(lang, figures.quarter.pv_share),
        "typical_consumption": kwh(lang, figures.quarter.typical.get("consumption")),
        "consumption": kwh(lang, figures.consumption),
    }


def until(lang: str, view_name: str, moment: dt.datetime) -> str:
    """Where the previous period is cut for comparing an unfinished one: "04:15", "Mi, 04:15", ..."""
    clock = moment.strftime("%H:%M")
    if view_name == "day":
        return clock
    if view_name == "week":
        return f"{WEEKDAYS[lang][moment.weekday()][: 2 if lang == 'de' else 3]}, {clock}"
    if lang == "de":
        return f"{moment.day:02d}.{moment.month:02d}., {clock}"
    return f"{moment.day} {SHORT_MONTHS['en'][moment.month - 1]}, {clock}"
