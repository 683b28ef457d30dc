"""Month names, defined once: the portal's labels (German, English), the letters' and the pages' dates.

A short name is the first three letters of the full one in both languages (``Mär``, ``May``)."""

from __future__ import annotations

MONTHS: dict[str, tuple[str, ...]] = {
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
SHORT_MONTHS: dict[str, tuple[str, ...]] = {
    lang: tuple(name[:3] for name in names) for lang, names in MONTHS.items()
}
