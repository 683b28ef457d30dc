"""What the device decoders share: strict text, tolerant JSON, per-phase values and point assembly.

JSON is parsed with the standard library and an ``object_pairs_hook``, because orjson silently keeps the
*last* of duplicate keys. Firmwares do send duplicates (Tasmota SML scripts that give two meter lines the
same name, e.g. ``"Tariflos"`` for import and export). Here the first occurrence keeps the plain key and
later ones become ``key#2``, ``key#3`` … so a profile can map each of them and nothing is silently
overwritten. A key the payload itself sends (even one spelt ``key#2``) always keeps its name: a repeat gets
the next name no key of the object has, and the parse records which names it made (:data:`Repeats`), so
a decoder can tell a repeat from a key that only looks like one. The rule for the profiles that map keys
(generic-json, obis-json): a mapped key sent twice with different values is refused (``invalid_payload``,
"duplicate key …") unless the repeat is mapped too (:func:`check_repeats`); a repeat of a key the profile
does not map is ignored. orjson is used only where it provably gives the same document (:func:`_fast_json`).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import orjson

from ingest.decoders.values import lookup, to_number
from ingest.readings import DecodeRejected, FieldValue, Reading, TimeSource

if TYPE_CHECKING:
    from ingest.decoders import DecodeInput, Repeats

PHASES = ("l1", "l2", "l3")
_JUNK = "\x00 \t\r\n"  # C-string terminators and line ends some gateways append


def payload_text(payload: bytes) -> str:
    """The payload as text: strict UTF-8, without a BOM and trailing NULs/whitespace."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeRejected("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    return text.lstrip("\ufeff").strip(_JUNK)


def _keep_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) == len(pairs):  # the usual object: no key twice
        return document
    return _rename_repeats(pairs)


def _rename_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    sent = {key for key, _ in pairs}  # never given to a repeat: a sent "a#2" stays the sent one
    document: dict[str, Any] = {}
    repeated: dict[str, list[str]] = {}
    tried: dict[str, int] = {}  # key -> the last count tried: each name is tried at most once (linear)
    for key, value in pairs:
        if key not in document:
            document[key] = value
            continue
        count = tried.get(key, 1)
        while True:
            count += 1
            name = f"{key}#{count}"
            if name not in sent and name not in document:
                break
        tried[key] = count
        document[name] = value
        repeated.setdefault(key, []).append(name)
    repeats = getattr(_PARSE, "repeats", None)
    if repeats is not None:
        repeats[id(document)] = repeated  # the document keeps the object alive, so its id stays its own
    return document


_PARSE = threading.local()  # the parse in progress on this thread: where _rename_repeats records
_NO_REPEATS: Repeats = {}  # shared; never modified


# What json.loads(text, object_pairs_hook=...) builds on every call, built once (payload_text has
# already removed a BOM, the only other thing json.loads checks on text).
_JSON = json.JSONDecoder(object_pairs_hook=_keep_duplicates)


# orjson's result is the stdlib's when the payload has no JSON whitespace and '":' occurs exactly as often
# as the document has object keys: then every key is followed directly by '":', so there are at least as
# many '":' as key occurrences, which are at least as many as distinct keys; equality leaves no room for a
# duplicate. Everything else (whitespace, BOM, NUL, NaN, 1e400, lone surrogates, errors) takes the stdlib
# path, so its documents and error messages stay exactly as they were.
_JSON_WHITESPACE = b" \t\r\n"
_INT64 = 2.0**63  # orjson turns integers beyond 64 bits into floats; the stdlib keeps them exact

# What one JSON payload may hold. Real device messages have tens to a few hundred keys and 3-6 levels
# (a Tasmota STATUS 0 about 300 keys); bounds far above that keep a crafted payload's cost small for every
# decoder behind the parse (see bench/poison.py for the worst cases measured).
MAX_JSON_KEYS = 10_000
MAX_JSON_DEPTH = 32
MAX_GROUPS = 64  # objects at a message's top level that each become a point (Tasmota sensor groups)
MAX_PHASES = 64  # values in a per-phase or per-channel array (3 phases; multi-channel meters a few more)


def _object_keys(value: Any, depth: int = 1, exact: bool = True) -> int:
    """The object keys in ``value``, nested ones too; too_complex when nested beyond MAX_JSON_DEPTH.

    With ``exact``: -1 as soon as a float may be a rounded big integer (orjson's document may then differ
    from the stdlib's).
    """
    if depth > MAX_JSON_DEPTH:
        raise DecodeRejected("too_complex", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    items: Iterable[Any]
    if type(value) is dict:
        count, items = len(value), value.values()
    elif type(value) is list:
        count, items = 0, value
    else:
        return -1 if exact and type(value) is float and not -_INT64 < value < _INT64 else 0
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            inner = _object_keys(item, depth + 1, exact)
            if inner < 0:
                return -1
            count += inner
        elif exact and kind is float and not -_INT64 < item < _INT64:
            return -1
    return count


def _check_keys(keys: int) -> None:
    if keys > MAX_JSON_KEYS:
        raise DecodeRejected("too_complex", f"{keys} JSON object keys, limit {MAX_JSON_KEYS}")


def _fast_json(payload: bytes) -> tuple[bool, Any]:
    """(True, document) when orjson's document is certainly the stdlib's, else (False, None).

    Raises too_complex for a document beyond the limits (then the stdlib's would be too).
    """
    if len(payload.translate(None, _JSON_WHITESPACE)) != len(payload):
        return False, None
    try:
        document = orjson.loads(payload)
    except (orjson.JSONDecodeError, RecursionError):
        return False, None
    keys = _object_keys(document)
    if payload.count(b'":') == keys:
        if keys > MAX_JSON_KEYS:
            _check_keys(keys)
        return True, document
    return False, None


def parse_json(payload: bytes) -> Any:
    """Any JSON value; invalid_utf8 / invalid_json / too_complex otherwise. Duplicate keys become
    ``key#2`` … (which ones: :func:`last_repeats`).

    The work is linear in the payload, and the document is bounded (MAX_JSON_KEYS, MAX_JSON_DEPTH), so
    that no single message can hold up the decode stage (and with it the broker's keep-alive).
    """
    fast, document = _fast_json(payload)
    if fast:
        _PARSE.last = _NO_REPEATS
        return document
    text = payload_text(payload)
    repeats: Repeats = {}
    _PARSE.last = _PARSE.repeats = repeats
    try:
        document = _JSON.decode(text)
    except (ValueError, RecursionError) as exc:
        raise DecodeRejected("invalid_json", str(exc)[:200] or type(exc).__name__) from None
    finally:
        _PARSE.repeats = None
    _check_keys(_object_keys(document, 1, False))
    if _ESCAPED_SURROGATE.search(text) and _has_surrogate(document):
        raise DecodeRejected("invalid_json", "a lone surrogate escape (\\ud800-\\udfff): not Unicode text")
    return document


# The standard library turns "\ud800" into a lone surrogate, a str that cannot be encoded: as a tag it
# crashed the commit (and came back after every restart). orjson refuses them, so only the standard
# library's path looks, and only when the text has such an escape.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(value: Any) -> bool:
    if type(value) is str:
        return _SURROGATE.search(value) is not None
    if type(value) is dict:
        return any(_SURROGATE.search(key) or _has_surrogate(item) for key, item in value.items())
    if type(value) is list:
        return any(_has_surrogate(item) for item in value)
    return False


def json_object(payload: bytes) -> dict[str, Any]:
    """A JSON object, or invalid_json / invalid_payload."""
    return _object(parse_json(payload))


def message_object(message: DecodeInput) -> dict[str, Any]:
    """:func:`json_object` of the message's payload, parsed once per message.

    On a topic several profiles share (tasmota before tasmota-sml on ``tele/<dev>/SENSOR``) each one
    reads the same payload; the first that is not the message's kind says NotThisProfile. With the parse
    kept on the message, that attempt costs a look-up instead of a second JSON parse. Decoders never
    modify the document, so sharing it is safe; a parse error is raised again by the next attempt.
    """
    parsed = message.parsed
    if parsed is None:
        document = parse_json(message.payload)
        parsed = message.parsed = (document, last_repeats())
    return _object(parsed[0])


def last_repeats() -> Repeats:
    """The repeated keys of the document :func:`parse_json` returned last on this thread."""
    repeats: Repeats = getattr(_PARSE, "last", _NO_REPEATS)
    return repeats


def message_repeats(message: DecodeInput) -> Repeats:
    """The repeated keys of the message's JSON (after :func:`message_object`); empty for nearly all."""
    return message.parsed[1] if message.parsed is not None else _NO_REPEATS


def check_repeats(document: dict[str, Any], repeats: Repeats, mapped: AbstractSet[str]) -> None:
    """invalid_payload when a key on a ``mapped`` dotted path was sent twice with different values at
    that path and the repeat's path (``p#2``, ``meter#2.power``) is not mapped too: neither value may
    silently win. Called only when ``repeats`` is not empty."""
    for path in mapped:
        parts = path.split(".")
        node: Any = document
        for index, part in enumerate(parts):
            if isinstance(node, dict):
                names = repeats.get(id(node), {}).get(part)
                if names:
                    _same_or_refuse(node, parts, index, names, mapped)
                node = node.get(part)
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break


def _same_or_refuse(
    node: dict[str, Any], parts: list[str], index: int, names: list[str], mapped: AbstractSet[str]
) -> None:
    rest = ".".join(parts[index + 1 :])
    first = lookup(node[parts[index]], rest) if rest else node[parts[index]]
    for name in names:
        other_path = ".".join([*parts[:index], name, *parts[index + 1 :]])
        other = lookup(node[name], rest) if rest else node[name]
        if other_path not in mapped and other != first:
            key = ".".join(parts[: index + 1])
            detail = (
                f"duplicate key {key[:60]!r} with different values ({_short(first)}, {_short(other)}); "
                f"map {other_path[:60]!r} to keep both"
            )
            raise DecodeRejected("invalid_payload", detail)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise DecodeRejected("invalid_payload", f"expected a JSON object, got {type(document).__name__}")
    return document


def check_groups(document: dict[str, Any]) -> None:
    """too_complex when the document has more than MAX_GROUPS objects at its top level (a Tasmota
    message's sensor or meter groups): each becomes a point or a series, and a device has a handful."""
    if len(document) <= MAX_GROUPS:  # the usual message: no count needed
        return
    groups = sum(type(value) is dict for value in document.values())
    if groups > MAX_GROUPS:
        raise DecodeRejected("too_complex", f"{groups} groups in one message, limit {MAX_GROUPS}")


def plain_value(payload: bytes) -> str:
    """A plain-text value ("21.5", "21,5", "online"); a JSON string ``"21.5"`` is unquoted too."""
    text = payload_text(payload)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def number(value: Any, *, key: str, factor: float = 1.0) -> float | None:
    """A float in the canonical unit (``value * factor``), None for null and empty text."""
    try:
        found = to_number(value, key=key)
    except OverflowError:  # an integer beyond float range: the stdlib parser keeps 4,000 digits
        raise DecodeRejected("invalid_value", f"{key}: number out of range") from None
    if found is None:
        return None
    scaled = found * factor
    if not math.isfinite(scaled):
        raise DecodeRejected("invalid_value", f"{key}: {found!r} x {factor} is out of range")
    return scaled


def per_phase(value: Any, *, key: str, factor: float = 1.0) -> list[float | None] | None:
    """The values of a per-phase array (``[230, 231, null]``), or None when ``value`` is a scalar."""
    if not isinstance(value, list):
        return None
    if len(value) > MAX_PHASES:
        raise DecodeRejected("too_complex", f"{key}: an array of {len(value)} values, limit {MAX_PHASES}")
    return [number(item, key=f"{key}.{index}", factor=factor) for index, item in enumerate(value)]


class Points:
    """Fields collected per (measurement, tags), in first-seen order; becomes the readings."""

    def __init__(self) -> None:
        self._points: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, FieldValue]] = {}

    def add(
        self, measurement: str, field: str, value: FieldValue | None, tags: dict[str, str] | None = None
    ) -> None:
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value):  # e.g. a sum of huge values
            raise DecodeRejected("invalid_value", f"{measurement}.{field} is not finite")
        key = (measurement, tuple(sorted((tags or {}).items())))
        self._points.setdefault(key, {})[field] = value

    def __bool__(self) -> bool:
        return bool(self._points)

    def readings(self, time_ns: int, source: TimeSource) -> list[Reading]:
        return [
            Reading(measurement, dict(fields), time_ns, source, dict(tags))
            for (measurement, tags), fields in self._points.items()
        ]

    def readings_or_reject(self, time_ns: int, source: TimeSource, *, detail: str) -> list[Reading]:
        if not self._points:
            raise DecodeRejected("no_readings", detail)
        return self.readings(time_ns, source)
