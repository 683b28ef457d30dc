"""The letter's plain German, made from :class:`LetterFigures` (pure): sentences, chart bars, boxes.

Numbers as a German reader writes them: ``1.234 kWh``, ``4,2 kWh`` (one decimal below 10 kWh only).
Differences are taken between the rounded figures the letter shows, so its arithmetic adds up on paper.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ingest.letters.figures import LetterFigures, Month
from ingest.months import MONTHS as _MONTHS
from ingest.months import SHORT_MONTHS as _SHORT_MONTHS

MONTHS = _MONTHS["de"]
SHORT_MONTHS = _SHORT_MONTHS["de"]
# own / typical: below the first bound "deutlich weniger", ... (bands of a resident's eye, not statistics)
_BANDS = (
    (0.75, "deutlich weniger"),
    (0.95, "etwas weniger"),
    (1.05, "etwa so viel"),
    (1.25, "etwas mehr"),
)


@dataclass(frozen=True)
class Texts:
    """What the operator configures (``letters`` settings): sender line, help box, data note."""

    sender: str
    help_text: str
    privacy_text: str


def month_name(month: Month) -> str:
    return f"{MONTHS[month.month - 1]} {month.year}"


def _rounded(value: float, places: int) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def shown(value: float) -> Decimal:
    """The figure as the letter shows it: whole kWh, one decimal below 10 kWh."""
    return _rounded(value, 1 if abs(value) < 10 else 0)


def number(value: float | Decimal) -> str:
    """``1234.0`` -> ``1.234``, ``4.25`` -> ``4,3``: German separators, the letter's rounding."""
    figure = value if isinstance(value, Decimal) else shown(value)
    whole, _, decimals = f"{abs(figure):f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    sign = "-" if figure < 0 else ""
    return f"{sign}{grouped},{decimals}" if decimals.strip("0") else f"{sign}{grouped}"


def kwh(value: float | Decimal) -> str:
    return f"{number(value)}\u00a0kWh"  # no break between figure and unit


def percent(share: float) -> str:
    return f"{int(_rounded(share * 100, 0))} %"


def _band(ratio: float) -> str:
    for bound, words in _BANDS:
        if ratio < bound:
            return words
    return "deutlich mehr"


def headline(figures: LetterFigures) -> tuple[str, str]:
    """The letter's main sentence in two parts: what (``Ihr Stromverbrauch im November 2026:``) and
    the figure (``187 kWh``); no figure when nothing was measured."""
    name = month_name(figures.month)
    if not figures.has_data:
        return f"Für {name} liegen keine Messwerte vor.", ""
    if "import" not in figures.kwh:  # heat or PV measured, the electricity meter not: no false zero
        return f"Von Ihrem Stromzähler liegen für {name} keine Messwerte vor.", ""
    used = figures.kwh["import"]
    if "pv" in figures.kwh or "export" in figures.kwh:
        return f"Strom aus dem Netz im {name}:", kwh(used)
    return f"Ihr Stromverbrauch im {name}:", kwh(used)


def _verb(figures: LetterFigures) -> str:
    with_pv = "pv" in figures.kwh or "export" in figures.kwh
    return "aus dem Netz bezogen" if with_pv else "verbraucht"


def detail_lines(figures: LetterFigures) -> list[str]:
    """PV, export, heat and EV: one line each, only where the household has such a meter."""
    lines = []
    if "pv" in figures.kwh:
        lines.append(f"Ihre Solaranlage hat {kwh(figures.kwh['pv'])} Strom erzeugt.")
    if "export" in figures.kwh:
        lines.append(f"Ins Netz eingespeist haben Sie {kwh(figures.kwh['export'])}.")
    if "heat" in figures.kwh:
        lines.append(f"Wärme für Heizung und Warmwasser: {kwh(figures.kwh['heat'])}.")
    if "ev" in figures.kwh:
        lines.append(f"Für Ihr Elektroauto geladen: {kwh(figures.kwh['ev'])}.")
    return lines


def comparison_lines(figures: LetterFigures) -> list[str]:
    """The month before, and a typical household of the quarter; nothing without this month's import."""
    if "import" not in figures.kwh:
        return []
    own = shown(figures.kwh["import"])
    previous_month = month_name(figures.month.shift(-1))
    lines = []
    if figures.previous_import is None:
        lines.append(f"Für {previous_month} liegen keine Messwerte zum Vergleich vor.")
    else:
        before = shown(figures.previous_import)
        difference = own - before
        if difference == 0:
            lines.append(f"Das ist genau so viel wie im {previous_month}.")
        else:
            more_less = "mehr" if difference > 0 else "weniger"
            lines.append(
                f"Das sind {kwh(abs(difference))} {more_less} als im {previous_month} ({kwh(before)})."
            )
    typical = figures.typical_import
    if typical is not None and typical > 0:
        words = _band(figures.kwh["import"] / typical)
        lines.append(
            f"Sie haben {words} Strom {_verb(figures)} wie ein typischer Haushalt im Quartier "
            f"({kwh(typical)})."
            if words == "etwa so viel"
            else f"Sie haben {words} Strom {_verb(figures)} als ein typischer Haushalt im Quartier "
            f"({kwh(typical)})."
        )
        lines.append(
            "Typischer Haushalt heißt: der Durchschnitt der Haushalte in der Mitte, ohne das Viertel mit dem "
            "niedrigsten und das mit dem höchsten Verbrauch."
        )
    return lines


TOO_FEW = "Der Vergleich mit dem Quartier erscheint, sobald genug Haushalte Daten für den Monat haben."
TOO_FEW_PV = "Die Sonnenstrom-Zahlen des Quartiers erscheinen, sobald es genug Solaranlagen im Quartier gibt."


def community_lines(figures: LetterFigures) -> list[str]:
    """The quarter as shares and a typical household only: no total, no count (the portal's rule)."""
    community = figures.community
    if community is None:
        return [TOO_FEW]
    lines = []
    if community.typical_consumption_kwh is not None:
        typical = kwh(community.typical_consumption_kwh)
        lines.append(f"Ein typischer Haushalt im Quartier hat {typical} Strom verbraucht.")
    if community.pv_share is None:
        lines.append(TOO_FEW_PV)
        return lines
    lines.append(
        f"Die Solaranlagen im Quartier haben so viel Strom erzeugt wie {percent(community.pv_share)} "
        "seines Verbrauchs."
    )
    if community.self_sufficiency is not None:
        lines.append(
            f"Selbstversorgung: {percent(community.self_sufficiency)} des Stroms, den das Quartier "
            "verbraucht hat, kam von den Solaranlagen im Quartier."
        )
    if community.household_covered is not None:
        lines.append(
            f"Bei Ihrem Haushalt waren es {percent(community.household_covered)} "
            "(Ihre Solaranlage und Solarstrom aus dem Quartier)."
        )
    return lines


def chart(figures: LetterFigures) -> dict[str, Any] | None:
    """The last twelve months' grid import as bars; None when no month has a figure."""
    if all(value is None for _, value in figures.history):
        return None
    bars = []
    for month, value in figures.history:
        label = SHORT_MONTHS[month.month - 1]
        bars.append(
            {
                "label": label,
                "value": float(shown(value)) if value is not None else None,
                "text": number(value) if value is not None else "–",
                "current": month == figures.month,
            }
        )
    first, last = figures.history[0][0], figures.history[-1][0]
    title = f"Strom aus dem Netz von {month_name(first)} bis {month_name(last)}, in kWh"
    gaps = any(value is None for _, value in figures.history)
    note = "–: Für diesen Monat liegen keine Messwerte vor." if gaps else ""
    return {"title": title, "bars": bars, "note": note}


def document(figures: LetterFigures, texts: Texts, *, date: str) -> dict[str, Any]:
    """Everything ``letter.typ`` lays out, as JSON-able data (Typst shows it as text, never as markup)."""
    name = month_name(figures.month)
    no_data = not figures.has_data
    return {
        "sender": texts.sender,
        "recipient": [figures.household, *_address_lines(figures.address)],
        "date": date,
        "title": f"Ihr Strom im {name}",
        "greeting": "Guten Tag,",
        "intro": f"hier ist Ihre Übersicht für {name}.",
        "headline": headline(figures)[0],
        "figure": headline(figures)[1],
        "no_data": (
            "Das kann an einer Störung des Zählers oder der Übertragung liegen. "
            "Bei Fragen hilft Ihnen das Quartiersbüro (Rückseite: Hilfe)."
            if no_data
            else ""
        ),
        "details": detail_lines(figures),
        "comparison": comparison_lines(figures),
        "chart": chart(figures),
        "community_title": "Das Quartier im " + name,
        "community": community_lines(figures),
        "help_title": "Hilfe",
        "help": texts.help_text,
        "privacy_title": "Ihre Daten",
        "privacy": texts.privacy_text,
        "closing": "Mit freundlichen Grüßen",
        "page": f"{figures.household} ({figures.building}) · {name}"
        if figures.building
        else f"{figures.household} · {name}",
    }


def _address_lines(address: str) -> list[str]:
    """A building address as lines: the registry keeps one field ("Straße 1, 26121 Oldenburg")."""
    parts = [part.strip() for chunk in address.splitlines() for part in chunk.split(",")]
    return [part for part in parts if part]


def german_date(day: dt.date) -> str:
    """A date as ``1. Dezember 2026``."""
    return f"{day.day}. {MONTHS[day.month - 1]} {day.year}"
