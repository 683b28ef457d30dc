"""What the pages show beyond their own texts, in the page's language: times in the quarter's time zone,
spans and numbers, status badges, profile families, and the messages that come from elsewhere in English
(pydantic's and the registry's field errors, the CSV import's report, the commissioning report's reasons).

English keeps those messages as their sources word them. German translates them by their kind: a
pydantic error by its ``type``, a commissioning reason by its ``code``, a registry or import message by
its shape (the patterns below, one per message the registry, the schemas or the import can give). A
message of a shape not listed falls back to a generic German sentence, never to the English one.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape

from ingest.api.pages.i18n import grouped
from ingest.months import SHORT_MONTHS
from ingest.readings import REASONS

DEFAULT_ZONE = "Europe/Berlin"
ID_SHOWN = 64  # characters of an identifier a page shows; a longer one is cut, its length stated
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # shown as escapes: \u202e, never acted upon

# ---------------------------------------------------------------- badges and families

STATUS_DE = {
    "registered": "registriert",
    "active": "aktiv",
    "faulty": "gestört",
    "retired": "außer Betrieb",
    "revoked": "widerrufen",
    "ok": "ok",
    "silent": "still",
    "never": "nie gehört",
    "passed": "bestanden",
    "failed": "nicht bestanden",
}
STATUS_EN = {"never": "never heard"}

FAMILIES_DE = {
    "DSMR P1 / IEC 62056-21 D0 meter telegram": "DSMR P1 / IEC 62056-21 D0, Zählertelegramm",
    "ESPHome nodes": "ESPHome-Knoten",
    "Generic JSON meter": "Allgemeiner JSON-Zähler",
    "Reallabor gateway health": "Zustand des Reallabor-Gateways",
    "OBIS meter values (JSON / per topic)": "OBIS-Zählerwerte (JSON / je Topic)",
    "Shelly Gen1 (3EM, EM, Plug S, 1PM)": "Shelly Gen1 (3EM, EM, Plug S, 1PM)",
    "Shelly Gen2/Gen3 (Pro 3EM, Pro EM, Plus plugs and relays, Plus H&T)": (
        "Shelly Gen2/Gen3 (Pro 3EM, Pro EM, Plus-Steckdosen und -Relais, Plus H&T)"
    ),
    "SML meter (eHZ / modern meter, binary)": "SML-Zähler (eHZ / moderne Messeinrichtung, binär)",
    "Tasmota SML meter readers (IR read heads, Hichi)": "Tasmota-SML-Zählerleser (IR-Leseköpfe, Hichi)",
    "Tasmota plugs, energy monitors and sensors": "Tasmota-Steckdosen, Energiemesser und Sensoren",
    "LoRaWAN street sensors via The Things Stack v3": "LoRaWAN-Straßensensoren über The Things Stack v3",
    "Zigbee sensors and plugs via zigbee2mqtt": "Zigbee-Sensoren und -Steckdosen über zigbee2mqtt",
    "Device announcements (Tasmota discovery, zigbee2mqtt bridge/devices, Shelly announce/online)": (
        "Geräteankündigungen (Tasmota-Discovery, zigbee2mqtt bridge/devices, Shelly announce/online)"
    ),
}

# ---------------------------------------------------------------- field errors

_WHERE_DE = {"in the registry": "in der Registry", "in an earlier row": "in einer früheren Zeile"}
_Q = r"(?:'[^']*'|\"[^\"]*\")"  # a Python repr of a string: 'x' or "x'y"

# (pattern matched in full, German with {name} for the named groups); quoted groups come out as „…“
FIELD_MESSAGES_DE: list[tuple[str, str]] = [
    (r"lone surrogates are not allowed", "Einzelne Ersatzzeichen (Surrogate) sind nicht erlaubt."),
    (
        r"control character (?P<c>U\+[0-9A-F]{4,6}) is not allowed \(one line: no tab or line break\)",
        "Steuerzeichen {c} ist nicht erlaubt (nur eine Zeile: kein Tabulator, kein Zeilenumbruch).",
    ),
    (
        r"control character (?P<c>U\+[0-9A-F]{4,6}) is not allowed \(one line: no line break\)",
        "Steuerzeichen {c} ist nicht erlaubt (nur eine Zeile: kein Zeilenumbruch).",
    ),
    (
        r"control character (?P<c>U\+[0-9A-F]{4,6}) is not allowed \(only tab and line breaks\)",
        "Steuerzeichen {c} ist nicht erlaubt (nur Tabulator und Zeilenumbrüche).",
    ),
    (
        r"invisible character (?P<c>U\+[0-9A-F]{4,6}) is not allowed \(it changes the direction of the text, "
        r"so it would show as something else\)",
        "Unsichtbares Zeichen {c} ist nicht erlaubt "
        "(es dreht die Schreibrichtung um, der Text sähe anders aus).",
    ),
    (
        r"invisible character (?P<c>U\+[0-9A-F]{4,6}) is not allowed \(a format character\)",
        "Unsichtbares Zeichen {c} ist nicht erlaubt (ein Formatzeichen).",
    ),
    (
        rf"must not start with (?P<c>{_Q}): a spreadsheet would run it as a formula .*",
        "Darf nicht mit {c} beginnen: eine Tabellenkalkulation würde es als Formel ausführen "
        "(mit einem Buchstaben oder einer Ziffer beginnen).",
    ),
    (
        r"1-64 letters, digits, '-' or '_' \(it is a topic level: no '/', '\+', '#'\)",
        "1–64 Buchstaben, Ziffern, - oder _ (eine Topic-Ebene: kein /, + oder #).",
    ),
    (r"no gateway with id (?P<n>\d+)", "Kein Gateway mit der ID {n}."),
    (r"no household with id (?P<n>\d+)", "Kein Haushalt mit der ID {n}."),
    (r"no building with id (?P<n>\d+)", "Kein Gebäude mit der ID {n}."),
    (r"no \w+ with id (?P<n>\d+)", "Kein Eintrag mit der ID {n}."),
    (rf"gateway (?P<g>{_Q}|\S+) is (?P<status>\w+)", "Gateway {g} ist {status}."),
    (
        rf"gateway (?P<g>\S+) already has a device (?P<d>{_Q})",
        "Gateway {g} hat schon ein Gerät {d}.",
    ),
    (
        rf"gateway (?P<g>{_Q}) already has (?P<d>{_Q}) (?P<where>in the registry|in an earlier row)",
        "Gateway {g} hat {d} schon {where}.",
    ),
    (rf"unknown profile (?P<p>{_Q})", "Unbekanntes Geräteprofil {p}."),
    (rf"a device with meter number (?P<m>{_Q}) exists", "Ein Gerät mit der Zählernummer {m} gibt es schon."),
    (
        rf"meter number (?P<m>{_Q}) exists (?P<where>in the registry|in an earlier row)",
        "Die Zählernummer {m} gibt es schon {where}.",
    ),
    (r"a gateway with this name exists", "Ein Gateway mit diesem Namen gibt es schon."),
    (r"a device with this meter number exists", "Ein Gerät mit dieser Zählernummer gibt es schon."),
    (
        r"this gateway already has a device with this native id",
        "Dieses Gateway hat schon ein Gerät mit dieser Geräte-ID.",
    ),
    (r"the change conflicts with existing data", "Die Änderung widerspricht vorhandenen Daten."),
    # the CSV import
    (r"the file is larger than (?P<n>\d+) KiB", "Die Datei ist größer als {n} KiB."),
    (
        r"not UTF-8 text \(byte (?P<n>\d+)\): save the CSV as UTF-8",
        "Kein UTF-8-Text (Byte {n}): die CSV-Datei als UTF-8 speichern.",
    ),
    (r"not readable as CSV: .*", "Nicht als CSV lesbar."),
    (r"the file is empty", "Die Datei ist leer."),
    (rf"unknown column (?P<c>{_Q})", "Unbekannte Spalte {c}."),
    (rf"missing column (?P<c>{_Q})", "Die Spalte {c} fehlt."),
    (r"a column appears twice", "Eine Spalte kommt doppelt vor."),
    (r"more than (?P<n>\d+) rows: split the file", "Mehr als {n} Zeilen: die Datei bitte aufteilen."),
    (r"a household needs its building's name", "Ein Haushalt braucht den Namen seines Gebäudes."),
    (rf"no building named (?P<b>{_Q})", "Kein Gebäude namens {b}."),
    (rf"building (?P<b>{_Q}) has no household (?P<h>{_Q})", "Gebäude {b} hat keinen Haushalt {h}."),
    (
        r"more values than columns \(a separator inside a value needs quotes\)",
        "Mehr Werte als Spalten (ein Trennzeichen in einem Wert braucht Anführungszeichen).",
    ),
    (r"required", "Pflichtfeld."),
    (r"longer than (?P<n>\d+) characters", "Länger als {n} Zeichen."),
    # a device id (ingest.registry.text.native_id_problem)
    (r"no '\+' or '#' \(MQTT wildcards\)", "Kein + oder # (MQTT-Platzhalter)."),
    (
        r"topic levels joined by '/', none empty \(no leading, trailing or double '/'\)",
        "Topic-Ebenen, durch / getrennt, keine leer (kein / am Anfang, am Ende oder doppelt).",
    ),
    (rf"no gateway named (?P<g>{_Q})", "Kein Gateway namens {g}."),
]
_FIELD_PATTERNS = [(re.compile(pattern), german) for pattern, german in FIELD_MESSAGES_DE]
GENERIC_DE = "Dieser Wert ist ungültig."

# pydantic's error types (https://docs.pydantic.dev/latest/errors/validation_errors/)
_PATTERN_RULES_DE = {
    "native_id": "Topic-Ebenen, durch / getrennt: keine leer, kein + oder #.",
    "name": "1–64 Buchstaben, Ziffern, - oder _ (eine Topic-Ebene: kein /, + oder #).",
}


def _pydantic_de(kind: str, field: str, ctx: Mapping[str, Any]) -> str | None:
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return "Pflichtfeld."
    simple = {
        "string_too_short": "Mindestens {min_length} Zeichen.",
        "string_too_long": "Höchstens {max_length} Zeichen.",
        "greater_than_equal": "Mindestens {ge}.",
        "greater_than": "Größer als {gt}.",
        "less_than_equal": "Höchstens {le}.",
        "less_than": "Kleiner als {lt}.",
        "int_parsing": "Bitte eine ganze Zahl.",
        "int_type": "Bitte eine ganze Zahl.",
        "int_from_float": "Bitte eine ganze Zahl.",
        "string_type": "Bitte Text.",
        "extra_forbidden": "Unbekanntes Feld.",
        "timezone_aware": "Bitte mit Zeitzone.",
        "datetime_parsing": "Bitte ein Datum mit Uhrzeit.",
    }
    if kind == "string_pattern_mismatch":
        return _PATTERN_RULES_DE.get(field, "Ungültiges Format.")
    if kind in simple:
        try:
            return simple[kind].format(**ctx)
        except (KeyError, IndexError):
            return None
    return None


def _quoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return f"„{value[1:-1]}“"
    return value


def field_message_de(message: str) -> str:
    """The German of a registry, schema or import message (by its shape); a generic sentence if unknown."""
    message = message.removeprefix("Value error, ").strip()
    for pattern, german in _FIELD_PATTERNS:
        found = pattern.fullmatch(message)
        if found is None:
            continue
        values = {key: _quoted(value) for key, value in found.groupdict().items()}
        if "status" in values:
            values["status"] = STATUS_DE.get(values["status"], values["status"])
        if "where" in values:
            values["where"] = _WHERE_DE[values["where"]]
        return german.format(**values)
    return GENERIC_DE


# ---------------------------------------------------------------- commissioning reasons

REASONS_DE = {
    "no_profile": "Kein Geräteprofil passt zum Topic.",
    "topic_mismatch": "Das Topic passt zu keiner Topic-Vorlage des gewählten Profils.",
    "invalid_utf8": "Die Nutzdaten sind kein gültiger UTF-8-Text.",
    "invalid_json": "Die Nutzdaten sind kein lesbares JSON.",
    "invalid_payload": "Die Nutzdaten haben nicht den Aufbau, den das Profil erwartet.",
    "invalid_value": "Ein Wert ist keine Zahl, wo eine erwartet wird.",
    "implausible_value": "Ein Wert liegt außerhalb des plausiblen Bereichs des Profils.",
    "no_readings": "Die Nutzdaten enthalten kein Feld, das das Profil kennt.",
    "oversized_payload": "Die Nutzdaten sind größer als erlaubt.",
    "invalid_name": "Ein Name enthält einen Backslash oder ein Steuerzeichen.",
    "too_many_series": "Das Gateway hat sein Budget an Zeitreihen erreicht.",
    "too_complex": "Die Nutzdaten sind zu verschachtelt oder zu umfangreich.",
    "crc_mismatch": "Die Prüfsumme der Nutzdaten stimmt nicht.",
    "unknown_device": "Das Gerät (Gateway + Geräte-ID) ist nicht in der Registry.",
    "announcement": "Ein Gerät meldet sich an (keine Messwerte): für die Liste neuer Geräte aufbewahrt.",
    "influx_rejected": "InfluxDB hat den Messpunkt endgültig abgelehnt.",
}


@dataclass(frozen=True)
class _Reason:
    pattern: re.Pattern[str]
    de: str
    en: str | None = None  # None: the message as it is


_CHECK_REASONS = {
    "no_message": _Reason(
        re.compile(r"no message on (?P<topics>.+) within (?P<s>\d+) s"),
        "Keine Nachricht in {s} s empfangen.",
        "No message received in {s} s.",
    ),
    "broker_unavailable": _Reason(
        re.compile(r"(?P<detail>.*)"),
        "Der Broker ist nicht erreichbar oder hat die Anmeldung abgelehnt.",
    ),
    "cancelled": _Reason(re.compile(r".*"), "Die API wurde während der Prüfung beendet."),
    "internal_error": _Reason(re.compile(r".*"), "Die Prüfung ist an einem internen Fehler gescheitert."),
    "clock_offset": _Reason(
        re.compile(r"the device clock is (?P<off>[+-]?\d+) s off \(limit ±(?P<limit>\d+) s\)"),
        "Die Geräteuhr geht {off} s falsch (Grenze ±{limit} s).",
    ),
    "quarantined": _Reason(
        re.compile(r"(?P<n>\d+) message\(s\) of this device quarantined now: (?P<codes>.+)"),
        "{n} Nachricht(en) des Geräts während der Prüfung in Quarantäne: {codes}",
    ),
    "quarantine_pending": _Reason(
        re.compile(r"(?P<n>\d+) earlier message\(s\) of this device wait in quarantine"),
        "{n} frühere Nachricht(en) des Geräts warten in Quarantäne.",
    ),
    "profile_mismatch": _Reason(
        re.compile(r"decoded by profile (?P<got>\S+), but the device is registered as (?P<want>\S+)"),
        "Vom Profil {got} dekodiert, das Gerät ist aber als {want} registriert.",
    ),
    "no_device_time": _Reason(
        re.compile(r".*"),
        "Das Gerät sendet keine brauchbare Zeit (keine, oder die Uhr ist nicht gestellt): "
        "die Empfangszeit wird verwendet.",
    ),
    "quarantine_unreadable": _Reason(re.compile(r".*"), "Die Quarantäne konnte nicht gelesen werden."),
    "not_stored": _Reason(re.compile(r".*"), "Das Ergebnis wurde nicht gespeichert."),
    "implausible_value": _Reason(
        re.compile(r"outside the profile's range: (?P<names>.+)"),
        "Außerhalb des plausiblen Bereichs des Profils: {names}",
    ),
}


def reason_text(lang: str, code: str, message: str) -> str:
    """A commissioning reason or warning in ``lang``: German by its code, English as worded (a few
    reworded: 'no message received in N s')."""
    known = _CHECK_REASONS.get(code)
    found = known.pattern.fullmatch(message) if known is not None else None
    if lang != "de":
        if known is not None and found is not None and known.en is not None:
            return known.en.format(**found.groupdict())
        return message
    if known is not None and found is not None:
        return known.de.format(**found.groupdict())
    if code in REASONS_DE:
        return REASONS_DE[code]
    return f"Nicht bestanden ({code})."


# ---------------------------------------------------------------- the page's localizer


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


@dataclass(frozen=True)
class Localizer:
    """Formats for one page in one language and the quarter's time zone (``ingest.timezone``)."""

    lang: str
    tz: ZoneInfo = field(default_factory=lambda: zone(None))

    def when(self, value: dt.datetime | str | None, *, seconds: bool = False) -> str:
        """A moment in the quarter's zone: 29.11.2026, 14:05 (de) / 29 Nov 2026, 14:05 CET (en)."""
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                return "–"
        else:
            moment = value
        if moment.tzinfo is None:  # the registry stores UTC
            moment = moment.replace(tzinfo=dt.UTC)
        local = moment.astimezone(self.tz)
        clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
        if self.lang == "de":
            return f"{local.day:02d}.{local.month:02d}.{local.year}, {clock}"
        return f"{local.day} {SHORT_MONTHS['en'][local.month - 1]} {local.year}, {clock} {local.tzname()}"

    def iso(self, value: dt.datetime | str | None) -> str:
        """For ``<time datetime>``: the moment with its local offset (machine-readable, not shown)."""
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(self.tz).isoformat(timespec="seconds")

    def duration(self, seconds: float | None) -> str:
        """A short span: 40 s, 12 min, 3 h (3 Std.), 5 d (5 Tg.)."""
        if seconds is None:
            return "–"
        hours, days = ("Std.", "Tg.") if self.lang == "de" else ("h", "d")
        for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, hours, 3600)):
            if seconds < limit:
                return f"{int(seconds // size)} {unit}"
        return f"{int(seconds // 86400)} {days}"

    def number(self, value: object) -> object:
        """A reading as people write it here: 230,1 (de) / 230.1 (en)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        text = f"{value:.12g}" if isinstance(value, float) else str(value)
        return text.replace(".", ",") if self.lang == "de" else text

    def count(self, value: int) -> str:
        """A count with the language's digit grouping: 9.500 (de) / 9,500 (en)."""
        return grouped(self.lang, value)

    def ident(self, value: object, *, limit: int = ID_SHOWN) -> Markup:
        """An identifier (device id, gateway, topic) as data, never as layout: inside ``<bdi>``, so its
        direction cannot turn the text around it; its control and invisible format characters as visible
        escapes (``unicode-\\u202egnp.exe``, not "unicode-exe.png"); cut after ``limit`` characters,
        with its full length."""
        text = "" if value is None else str(value)
        shown = "".join(
            f"\\u{ord(c):04x}" if unicodedata.category(c) in _INVISIBLE else c for c in text[:limit]
        )
        html = Markup("<bdi>{}</bdi>").format(shown)
        if len(text) > limit:
            chars = "Zeichen" if self.lang == "de" else "characters"
            html += escape(f"… ({self.count(len(text))} {chars})")
        return html

    def status(self, value: object) -> str:
        """A status badge (device, gateway, liveness, verdict)."""
        key = str(getattr(value, "value", value))
        table = STATUS_DE if self.lang == "de" else STATUS_EN
        return table.get(key, key)

    def family(self, name: str) -> str:
        return FAMILIES_DE.get(name, name) if self.lang == "de" else name

    def field_error(
        self, field: str, message: str, *, kind: str | None = None, ctx: Mapping[str, Any] | None = None
    ) -> str:
        """A field's error as the page shows it: English as its source says it, German by its kind."""
        if self.lang != "de":
            return message.removeprefix("Value error, ")
        if kind is not None and kind != "value_error":
            german = _pydantic_de(kind, field, ctx or {})
            if german is not None:
                return german
        return field_message_de(message)

    def pydantic_error(self, error: Mapping[str, Any]) -> str:
        """One entry of a pydantic ``ValidationError.errors()``."""
        loc = error.get("loc") or ()
        field = str(loc[-1]) if loc else "form"
        return self.field_error(
            field, str(error.get("msg", "invalid")), kind=error.get("type"), ctx=error.get("ctx")
        )

    def reason(self, code: str, message: str) -> str:
        return reason_text(self.lang, code, message)

    def quarantine_reason(self, code: str, detail: str) -> str:
        if self.lang == "de":
            return REASONS_DE.get(code, f"Quarantäne ({code}).")
        return f"{REASONS.get(code, code)}: {detail}" if detail else REASONS.get(code, code)

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "when": self.when,
            "iso_local": self.iso,
            "duration": self.duration,
            "num": self.number,
            "status": self.status,
            "family": self.family,
        }
