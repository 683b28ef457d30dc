"""The helpers the device decoders share: strict text, tolerant JSON, per-phase values, point assembly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders import DecodeInput, payloads
from ingest.decoders.payloads import (
    Points,
    json_object,
    message_object,
    number,
    parse_json,
    per_phase,
    plain_value,
)
from ingest.readings import DecodeRejected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'{"a": 1, "a": 2, "a": 3}', {"a": 1, "a#2": 2, "a#3": 3}),  # duplicates kept, first plain
        (b'{"": {"x": 1}}', {"": {"x": 1}}),  # empty key
        (b'{\r\n  "a": 1,\r\n  "b": [1, 2]\r\n}\r\n', {"a": 1, "b": [1, 2]}),  # spread over lines
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # UTF-8 BOM
        (b'{"a": 1}\x00', {"a": 1}),  # C-string terminator
        (b'{"a": null}', {"a": None}),
        (b'{"a": {"b": 1, "b": 2}}', {"a": {"b": 1, "b#2": 2}}),  # nested duplicates too
    ],
)
def test_json_object_is_tolerant(payload: bytes, expected: dict[str, Any]) -> None:
    assert json_object(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"a": 1', "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"a": "\xc3\x28"}', "invalid_utf8"),
        (b"[1, 2]", "invalid_payload"),
        (b'"text"', "invalid_payload"),
        (b"[" * 100_000, "invalid_json"),  # nesting deeper than the recursion limit
        (b"1" * 5000, "invalid_json"),  # an integer longer than Python converts
        # beyond the structure limits, on the fast path (compact) and on the standard library's (spaced)
        (b'{"a":' * 33 + b"1" + b"}" * 33, "too_complex"),
        (b'{"a": ' * 33 + b"1" + b"}" * 33, "too_complex"),
        (b"{" + b",".join(b'"k%d":1' % n for n in range(10_001)) + b"}", "too_complex"),
        (b"{" + b",".join([b'"k":1'] * 10_001) + b"}", "too_complex"),  # duplicates count as keys
    ],
)
def test_json_object_rejects(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        json_object(payload)
    assert caught.value.reason == reason


def test_json_object_within_the_limits() -> None:
    assert json_object(b'{"a":' * 32 + b"1" + b"}" * 32)["a"]
    assert len(json_object(b"{" + b",".join([b'"k":1'] * 10_000) + b"}")) == 10_000


def _keep_duplicates_by_probing(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The rule, quadratic: a repeat probes ``key#2``, ``key#3`` … from the start for a name that is
    neither taken nor sent by the payload itself (anywhere in the object)."""
    sent = {key for key, _ in pairs}
    document: dict[str, Any] = {}
    for key, value in pairs:
        name, count = key, 1
        while name in document or (name != key and name in sent):
            count += 1
            name = f"{key}#{count}"
        document[name] = value
    return document


@given(st.lists(st.tuples(st.sampled_from(["a", "a#2", "a#3", "b", "a#2#2", "b#2"]), st.integers())))
def test_duplicate_keys_are_named_as_by_probing(pairs: list[tuple[str, int]]) -> None:
    """The linear naming gives the same names as probing from #2 each time, in the same order."""
    expected = _keep_duplicates_by_probing(pairs)
    assert list(payloads._keep_duplicates(pairs).items()) == list(expected.items())


@pytest.mark.parametrize(
    ("payload", "document", "repeats"),
    [
        # a sent "a#2" keeps its name and value wherever it stands; the repeat of "a" gets "a#3"
        (b'{"a#2": 99, "a": 1, "a": 2}', {"a#2": 99, "a": 1, "a#3": 2}, {"a": ["a#3"]}),
        (b'{"a": 1, "a": 2, "a#2": 99}', {"a": 1, "a#3": 2, "a#2": 99}, {"a": ["a#3"]}),
        (b'{"a": 1, "a#2": 99}', {"a": 1, "a#2": 99}, None),  # looks like a repeat, is none
        (b'{"a": 1, "a": 2, "a": 3}', {"a": 1, "a#2": 2, "a#3": 3}, {"a": ["a#2", "a#3"]}),
    ],
)
def test_a_sent_key_never_collides_with_a_repeats_name(
    payload: bytes, document: dict[str, Any], repeats: dict[str, list[str]] | None
) -> None:
    """Before: a sent "a#2" after two "a" became "a#2#2", and "a#2" held the repeat's value."""
    message = DecodeInput("t", payload, {}, 0)
    found = payloads.message_object(message)
    assert list(found.items()) == list(document.items())
    assert payloads.message_repeats(message).get(id(found)) == repeats


def test_repeats_are_recorded_per_object_and_per_thread() -> None:
    message = DecodeInput("t", b'{"m": {"p": 1, "p": 2}, "q": {"p": 3}, "m": {"p": 4}}', {}, 0)
    document = payloads.message_object(message)
    repeats = payloads.message_repeats(message)
    assert repeats == {id(document): {"m": ["m#2"]}, id(document["m"]): {"p": ["p#2"]}}
    plain = DecodeInput("t", b'{"p": 1}', {}, 0)  # the fast path: nothing from the parse before
    payloads.message_object(plain)
    assert payloads.message_repeats(plain) == {}


def test_parse_json_accepts_any_value() -> None:
    assert parse_json(b'"online"') == "online"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"21.5", "21.5"), (b" 21,5 \n", "21,5"), (b'"21.5"', "21.5"), (b"online\r\n", "online")],
)
def test_plain_value(payload: bytes, expected: str) -> None:
    assert plain_value(payload) == expected


@pytest.mark.parametrize(
    ("raw", "factor", "expected"),
    [(5, 1.0, 5.0), ("12,5", 1.0, 12.5), ("1234", 0.001, 1.234), (None, 1.0, None), ("", 1.0, None)],
)
def test_number_is_float_in_the_canonical_unit(raw: object, factor: float, expected: float | None) -> None:
    value = number(raw, key="k", factor=factor)
    assert value == pytest.approx(expected) if expected is not None else value is None
    assert value is None or type(value) is float


def test_per_phase_arrays_are_bounded() -> None:
    assert per_phase([1] * payloads.MAX_PHASES, key="p") == [1.0] * payloads.MAX_PHASES
    with pytest.raises(DecodeRejected) as caught:
        per_phase([1] * (payloads.MAX_PHASES + 1), key="p")
    assert caught.value.reason == "too_complex"


def test_per_phase() -> None:
    assert per_phase([230, "231,5", None], key="V") == [230.0, 231.5, None]
    assert per_phase(230, key="V") is None
    with pytest.raises(DecodeRejected):
        per_phase([230, {"x": 1}], key="V")


def test_points_group_by_measurement_and_tags_in_first_seen_order() -> None:
    points = Points()
    points.add("electricity", "power_w", 1.0)
    points.add("environment", "temperature_c", 20.0, {"sensor": "a"})
    points.add("electricity", "voltage_l1_v", 230.0)
    points.add("electricity", "current_l1_a", None)  # nothing
    readings = points.readings(5, "received")
    assert [(r.measurement, r.fields, r.tags) for r in readings] == [
        ("electricity", {"power_w": 1.0, "voltage_l1_v": 230.0}, {}),
        ("environment", {"temperature_c": 20.0}, {"sensor": "a"}),
    ]
    with pytest.raises(DecodeRejected) as caught:
        Points().readings_or_reject(5, "received", detail="x")
    assert caught.value.reason == "no_readings"


# --- the orjson fast path: a document only when it is certainly the stdlib's ---------------------------


def _stdlib(payload: bytes) -> Any:
    return payloads._JSON.decode(payloads.payload_text(payload))


def _typed(value: Any) -> Any:
    """``value`` with every scalar's type spelled out: 1 == 1.0 == True must not pass as equal."""
    if isinstance(value, dict):
        return ("dict", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":1,"a":2}',  # a duplicate key: orjson would keep only the last
        b'{"a":{"b":1,"b":2}}',
        b'[{"a":1},{"a":1,"a":3}]',
        b'{"a":"x\\":","a":1}',  # '":' inside a string value
        b'{"a":18446744073709551616}',  # beyond 64 bits: orjson gives a float
        b'{"a":-9223372036854775809}',
        b'{"a":[9223372036854775808,1e19]}',
        b'{"a":1e400}',  # stdlib: inf
        b'{"a":NaN}',
        b'{"a":1}\x00',
        b'\xef\xbb\xbf{"a":1}',
        b'{"a": 1}',
        b"[" * 2000 + b"]" * 2000,  # deeper than orjson and the key walk go
        b'{"a":1,"a#2":2,"a":3}',
    ],
)
def test_fast_json_falls_back_unless_certain(payload: bytes) -> None:
    fast, document = payloads._fast_json(payload)
    if fast:
        assert _typed(document) == _typed(_stdlib(payload))
    try:
        expected = _typed(_stdlib(payload))
    except (ValueError, RecursionError):
        with pytest.raises(DecodeRejected):
            parse_json(payload)
    else:
        assert _typed(parse_json(payload)) == expected


@pytest.mark.parametrize(
    "payload",
    [b'{"a":"\\ud800"}', b'{"\\udc00":1}', b'{"a": [{"b": "x\\uDBFFy"}]}', b'{"a":"\\ud800", "a":1}'],
)
def test_lone_surrogates_are_refused(payload: bytes) -> None:
    """Not Unicode: as a tag they crashed the commit (the ingester, at every restart)."""
    with pytest.raises(DecodeRejected) as caught:
        parse_json(payload)
    assert (caught.value.reason, caught.value.detail) == (
        "invalid_json",
        "a lone surrogate escape (\\ud800-\\udfff): not Unicode text",
    )


def test_surrogate_pairs_are_characters() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {"a": "\U0001f600", "b": "\\ud800"}


def test_fast_json_takes_compact_unique_documents() -> None:
    payload = b'{"Time":"2025-11-28T10:00:00","SML":{"Total_in":1.5,"Power_curr":-830,"Id":"0a"}}'
    assert payloads._fast_json(payload) == (True, _stdlib(payload))
    assert payloads._fast_json(b'{"a":1,"a":2}') == (False, None)
    assert parse_json(b'{"a":1,"a":2}') == {"a": 1, "a#2": 2}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.tuples(st.sampled_from(["a", "b", "a#2", "", 'q"', "x y", "k:"]), inner), max_size=4)
    ),
    max_leaves=20,
)


def _dump(value: Any, spaced: bool) -> str:
    """JSON text of ``value``; lists of pairs become objects, duplicate keys included."""
    comma, colon = (", ", ": ") if spaced else (",", ":")
    if isinstance(value, list) and value and all(isinstance(item, tuple) for item in value):
        pairs = (json.dumps(key) + colon + _dump(item, spaced) for key, item in value)
        return "{" + comma.join(pairs) + "}"
    if isinstance(value, list):
        return "[" + comma.join(_dump(item, spaced) for item in value) + "]"
    return json.dumps(value)


@settings(max_examples=500)
@given(value=json_values, spaced=st.booleans())
def test_fast_json_is_the_stdlib_document(value: Any, spaced: bool) -> None:
    payload = _dump(value, spaced).encode()
    expected = _typed(_stdlib(payload))
    assert _typed(parse_json(payload)) == expected
    fast, document = payloads._fast_json(payload)
    if fast:
        assert _typed(document) == expected


@settings(max_examples=300)
@given(number=st.floats(allow_nan=False, allow_infinity=False), digits=st.integers(1, 25))
def test_fast_json_floats_round_as_float_does(number: float, digits: int) -> None:
    for text in (repr(number), f"{number:.{digits}e}", f"{number:.{digits}g}"):
        payload = b'{"v":' + text.encode() + b"}"
        assert _typed(parse_json(payload)) == _typed(_stdlib(payload))


def test_message_object_parses_once_per_message(json_parses: list[bytes]) -> None:
    parsed = json_parses
    message = DecodeInput("t", b'{"a":1,"a":2}', {}, 1)
    assert message_object(message) == {"a": 1, "a#2": 2}
    assert message_object(message) is message_object(message)
    assert parsed == [b'{"a":1,"a":2}']
    assert message == DecodeInput("t", b'{"a":1,"a":2}', {}, 1)  # the parse is no part of the message
    for payload, reason in ((b"{x", "invalid_json"), (b"[1]", "invalid_payload")):
        failing = DecodeInput("t", payload, {}, 1)
        for _ in range(2):  # raised again on every attempt, as json_object raises it
            with pytest.raises(DecodeRejected) as caught:
                message_object(failing)
            assert (caught.value.reason, caught.value.detail) == _rejection(payload)
            assert caught.value.reason == reason


def _rejection(payload: bytes) -> tuple[str, str]:
    with pytest.raises(DecodeRejected) as caught:
        json_object(payload)
    return caught.value.reason, caught.value.detail
