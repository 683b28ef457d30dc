"""The letters' pure parts: months, German figures and sentences, file names, and Typst rendering
(in-process, no services): the worst-case letter still fits its two pages, a letter without data says so."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from ingest.config import ConfigError, LettersSettings, load_settings
from ingest.letters import wording
from ingest.letters.cli import file_names
from ingest.letters.figures import BadMonth, Community, LetterFigures, Month
from ingest.letters.recipients import Recipient
from ingest.letters.render import Renderer, RenderError, merge, page_count

NOVEMBER = Month(2026, 11)
DEFAULTS = LettersSettings()
TEXTS = wording.Texts(DEFAULTS.sender, DEFAULTS.help_text, DEFAULTS.privacy_text)


@pytest.mark.parametrize(
    ("text", "month"),
    [("2026-11", Month(2026, 11)), (" 2026-01 ", Month(2026, 1)), ("2000-12", Month(2000, 12))],
)
def test_month_parses(text: str, month: Month) -> None:
    assert Month.parse(text) == month


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-13", "no such month"),
        ("2026-00", "no such month"),
        ("1999-05", "no such month"),
        ("2026-1", "expected YYYY-MM"),
        ("11/2026", "expected YYYY-MM"),
        ("2026-11-01", "expected YYYY-MM"),
        ("", "expected YYYY-MM"),
        ("２０２６-11", "expected YYYY-MM"),  # full-width digits are not ASCII digits
    ],
)
def test_bad_month_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BadMonth, match=says):
        Month.parse(text)


def test_last_twelve_months_cross_the_year() -> None:
    twelve = Month(2026, 2).last_twelve()
    assert [str(m) for m in twelve[:3]] == ["2025-03", "2025-04", "2025-05"]
    assert twelve[-2:] == [Month(2026, 1), Month(2026, 2)]
    assert Month(2026, 1).shift(-1) == Month(2025, 12)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (187.4, "187"),
        (187.5, "188"),  # half up, not to even
        (186.5, "187"),
        (1234.0, "1.234"),
        (20345.49, "20.345"),
        (4.25, "4,3"),
        (4.0, "4"),
        (0.04, "0"),
        (9.96, "10"),
        (-12.0, "-12"),
    ],
)
def test_german_figures(value: float, text: str) -> None:
    assert wording.number(value) == text
    assert wording.kwh(value) == f"{text}\u00a0kWh"


def _figures(**kwargs: object) -> LetterFigures:
    values: dict[str, object] = {
        "household": "EG links",
        "address": "Lindenstraße 12, 26121 Oldenburg",
        "month": NOVEMBER,
        "building": "Haus A",
        "kwh": {"import": 187.4},
        "history": [(m, 150.0 + k) for k, m in enumerate(NOVEMBER.last_twelve())],
        "previous_import": 199.2,
        "typical_import": 205.0,
    }
    values.update(kwargs)
    return LetterFigures(**values)  # type: ignore[arg-type]


def _plain(lines: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(lines))


@pytest.mark.parametrize(
    ("own", "typical", "words"),
    [
        (100.0, 200.0, "deutlich weniger Strom verbraucht als"),
        (180.0, 200.0, "etwas weniger Strom verbraucht als"),
        (200.0, 200.0, "etwa so viel Strom verbraucht wie"),
        (209.0, 200.0, "etwa so viel Strom verbraucht wie"),
        (240.0, 200.0, "etwas mehr Strom verbraucht als"),
        (400.0, 200.0, "deutlich mehr Strom verbraucht als"),
    ],
)
def test_comparison_with_a_typical_household(own: float, typical: float, words: str) -> None:
    text = _plain(wording.comparison_lines(_figures(kwh={"import": own}, typical_import=typical)))
    assert f"Sie haben {words} ein typischer Haushalt im Quartier ({wording.number(typical)} kWh)." in text


def test_too_few_households_no_quarter_figures() -> None:
    """H1 of issue 14's review on paper: below five households (no Community), one plain sentence."""
    lines = wording.community_lines(_figures(community=None, typical_import=None))
    assert lines == [wording.TOO_FEW]
    few_pv = wording.community_lines(_figures(community=Community(212.0, None, None, None)))
    assert few_pv == [
        "Ein typischer Haushalt im Quartier hat 212\u00a0kWh Strom verbraucht.",
        wording.TOO_FEW_PV,
    ]


def test_comparison_with_the_previous_month_uses_the_shown_figures() -> None:
    text = _plain(wording.comparison_lines(_figures(kwh={"import": 187.4}, previous_import=199.6)))
    assert "Das sind 13 kWh weniger als im Oktober 2026 (200 kWh)." in text  # 187 and 200 as printed
    same = _plain(wording.comparison_lines(_figures(kwh={"import": 187.4}, previous_import=186.6)))
    assert "Das ist genau so viel wie im Oktober 2026." in same
    missing = _plain(wording.comparison_lines(_figures(previous_import=None, typical_import=None)))
    assert missing == "Für Oktober 2026 liegen keine Messwerte zum Vergleich vor."


def test_headline_with_and_without_pv() -> None:
    assert wording.headline(_figures()) == ("Ihr Stromverbrauch im November 2026:", "187\u00a0kWh")
    with_pv = _figures(kwh={"import": 80.0, "pv": 120.0, "export": 60.0})
    assert wording.headline(with_pv) == ("Strom aus dem Netz im November 2026:", "80\u00a0kWh")
    assert "Sie haben deutlich weniger Strom aus dem Netz bezogen als" in _plain(
        wording.comparison_lines(with_pv)
    )
    assert wording.headline(_figures(kwh={})) == ("Für November 2026 liegen keine Messwerte vor.", "")
    heat_only = _figures(kwh={"heat": 300.0})
    assert wording.headline(heat_only) == (
        "Von Ihrem Stromzähler liegen für November 2026 keine Messwerte vor.",
        "",
    )
    assert wording.detail_lines(heat_only) == ["Wärme für Heizung und Warmwasser: 300\u00a0kWh."]
    assert wording.comparison_lines(heat_only) == []


def test_file_names_are_plain_and_unique() -> None:
    found = [
        Recipient(1, "Haus A", "Wohnung 1", ""),
        Recipient(2, "Haus B", "Wohnung 1", ""),
        Recipient(3, "Haus B", "Dachgeschoß / Süd", ""),
    ]
    assert file_names(found, NOVEMBER) == [
        "letter-2026-11-haus-a-wohnung-1.pdf",
        "letter-2026-11-haus-b-wohnung-1.pdf",
        "letter-2026-11-dachgeschoss-sud.pdf",
    ]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _pages(pdf: bytes) -> list[str]:
    return [re.sub(r"\s+", " ", page.extract_text()) for page in PdfReader(io.BytesIO(pdf)).pages]


def test_a_letter_without_data_says_so(renderer: Renderer) -> None:
    empty = _figures(kwh={}, history=[(m, None) for m in NOVEMBER.last_twelve()], previous_import=None)
    page1, page2 = _pages(renderer.pdf(wording.document(empty, TEXTS, date="1. Dezember 2026")))
    assert "Für November 2026 liegen keine Messwerte vor." in page1
    assert "kWh" not in page1  # neither a zero figure nor an empty chart
    assert "Hilfe" in page2
    assert "Quartiersbüro" in page2


def test_the_fullest_letter_still_fits_one_sheet(renderer: Renderer) -> None:
    """Every kind, a gap in the chart, four-digit months, long names, the longest configurable texts."""
    history = [(m, None if k < 2 else 1000.0 + 37 * k) for k, m in enumerate(NOVEMBER.last_twelve())]
    fullest = _figures(
        household="Wohnung 12 im Hinterhaus, zweites Obergeschoss links",
        address="Am langen Kanal 123a, Hinterhaus, 26121 Oldenburg (Oldb)",
        kwh={"import": 1407.0, "export": 512.3, "pv": 1888.8, "heat": 2345.6, "ev": 612.0},
        history=history,
        community=Community(288.0, 0.23, 0.16, 0.42),
    )
    sender = "Reallabor Quartier Oldenburg-Donnerschwee · Quartiersbüro im Gemeinschaftshaus am Kanal"[:80]
    texts = wording.Texts(sender, ("Hilfe " * 67)[:400], ("Daten " * 117)[:700])  # the settings' longest
    pdf = renderer.pdf(wording.document(fullest, texts, date="1. Dezember 2026"))
    page1, page2 = _pages(pdf)
    assert "1.407 kWh" in page1
    assert "–: Für diesen Monat liegen keine Messwerte vor." in page1
    assert " ".join(wording.SHORT_MONTHS[11:] + wording.SHORT_MONTHS[:11]) in page1
    assert "Selbstversorgung: 23 % des Stroms" in page2
    assert "so viel Strom erzeugt wie 16 % seines Verbrauchs." in " ".join(page2.split())
    assert "Bei Ihrem Haushalt waren es 42 %" in page2


def test_a_letter_longer_than_its_sheet_is_refused(renderer: Renderer) -> None:
    texts = wording.Texts("Quartiersbüro", "Hilfe " * 2000, "Daten")
    with pytest.raises(RenderError, match="not 2: shorten the configured texts"):
        renderer.pdf(wording.document(_figures(), texts, date="1. Dezember 2026"))


def test_text_from_the_registry_is_shown_never_run_as_markup(renderer: Renderer) -> None:
    tricky = _figures(household='#set page(paper: "a5") = *x* $y$ \\ #pagebreak()', address="<b>, [x]")
    pdf = renderer.pdf(wording.document(tricky, TEXTS, date="1. Dezember 2026"))
    page1, _ = _pages(pdf)
    assert '#set page(paper: "a5") = *x* $y$ \\ #pagebreak()' in page1
    assert "<b>" in page1
    assert "[x]" in page1
    assert round(float(PdfReader(io.BytesIO(pdf)).pages[0].mediabox.height)) == 842  # still A4


def test_merge_keeps_every_page(renderer: Renderer) -> None:
    one = renderer.pdf(wording.document(_figures(), TEXTS, date="1. Dezember 2026"))
    assert page_count(merge([one, one, one])) == 6


def test_shown_rounding_is_decimal() -> None:
    assert wording.shown(2.675) == Decimal("2.7")  # decimal half up on the printed digits, not binary


def test_settings_refuse_a_help_text_that_would_not_fit(tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump({"letters": {"help_text": "x" * 401}}))
    with pytest.raises(ConfigError, match=r"letters\.help_text"):
        load_settings(config)
    config.write_text(yaml.safe_dump({"letters": {"help_text": "Quartiersbüro: Telefon 0441 123456"}}))
    assert load_settings(config).letters.help_text == "Quartiersbüro: Telefon 0441 123456"
