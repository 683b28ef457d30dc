"""The registry's text rule refuses invisible format characters (Unicode category Cf) in single-line text
(ids, names, meter numbers): a bidirectional control makes "unicode-\\u202egnp.exe" show as
"unicode-exe.png", a zero-width space makes two ids look alike. The joiners U+200C/U+200D stay allowed
(emoji sequences, scripts that need them); notes refuse only the bidirectional controls."""

from __future__ import annotations

import pytest

from ingest.api.pages.localize import field_message_de
from ingest.registry.text import check_text, text_problem

REFUSED = [
    "unicode-\u202egnp.exe",  # RIGHT-TO-LEFT OVERRIDE
    "a\u202ab",  # LEFT-TO-RIGHT EMBEDDING
    "\u2066meter\u2069",  # isolates
    "meter\u200e1",  # LEFT-TO-RIGHT MARK
    "meter\u200b1",  # ZERO WIDTH SPACE
    "x\u00ad1",  # SOFT HYPHEN
    "\ufeffmeter",  # BOM
    "a\u2060b",  # WORD JOINER
]


@pytest.mark.parametrize("value", REFUSED)
def test_single_line_text_refuses_format_characters(value: str) -> None:
    with pytest.raises(ValueError, match=r"invisible character U\+[0-9A-F]{4}"):
        check_text(value)
    german = field_message_de(text_problem(value) or "")
    assert german.startswith("Unsichtbares Zeichen U+"), german


@pytest.mark.parametrize("value", ["👩\u200d🔧 Technik", "می\u200cخواهم", "Zähler 1"])
def test_joiners_and_plain_text_stay_allowed(value: str) -> None:
    assert check_text(value) == value


def test_notes_refuse_only_the_bidirectional_controls() -> None:
    assert check_text("Zeile\u00ad1\nZeile 2", multiline=True) == "Zeile\u00ad1\nZeile 2"
    with pytest.raises(ValueError, match="direction"):
        check_text("Zeile 1\n\u202eZeile 2", multiline=True)
