"""Line protocol: table-driven cases and a property test against influxdb-client's serializer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point

from ingest.lineprotocol import UnwritableName, encode, format_line
from ingest.readings import Reading

CASES = [
    ("plain", ("m", {"t": "a"}, {"f": 1.5}, 10), "m,t=a f=1.5 10"),
    ("whole float loses .0", ("m", {}, {"f": 2.0}, 1), "m f=2 1"),
    ("integer suffix", ("m", {}, {"n": 3}, 1), "m n=3i 1"),
    ("booleans", ("m", {}, {"a": True, "b": False}, 1), "m a=true,b=false 1"),
    ("string escaping", ("m", {}, {"s": 'say "hi" \\ bye'}, 1), 'm s="say \\"hi\\" \\\\ bye" 1'),
    ("measurement escaping", ("my m,x", {}, {"f": 1.0}, 1), "my\\ m\\,x f=1 1"),
    ("tag escaping", ("m", {"k ,=": "v ,="}, {"f": 1.0}, 1), "m,k\\ \\,\\==v\\ \\,\\= f=1 1"),
    ("tags sorted", ("m", {"b": "2", "a": "1"}, {"f": 1.0}, 1), "m,a=1,b=2 f=1 1"),
    ("empty tag dropped", ("m", {"a": ""}, {"f": 1.0}, 1), "m f=1 1"),
    ("non-finite dropped", ("m", {}, {"a": math.nan, "b": math.inf, "c": 1.0}, 1), "m c=1 1"),
    ("none dropped", ("m", {}, {"a": None, "c": 1.0}, 1), "m c=1 1"),
    ("nothing writable", ("m", {}, {"a": math.nan}, 1), ""),
    ("exponent float", ("m", {}, {"f": 1e-7}, 1), "m f=1e-07 1"),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_format_line(args: tuple, expected: str) -> None:  # type: ignore[type-arg]
    assert format_line(*args) == expected


UNWRITABLE = [
    # InfluxDB 1.6 refused the whole batch of such a line: its splitter and its tag scanner disagree on "\\"
    ('x\\ y\\="', "tag value", "'\\\\'"),
    ("x\\", "tag value", "'\\\\'"),  # a trailing backslash escaped the separator: stored as "x "
    ("a\\,b", "tag value", "'\\\\'"),
    ("x\ny", "tag value", "'\\n'"),  # was written as a literal backslash-n: stored altered
    ("x\ty", "tag value", "'\\t'"),
    ("x\x00", "tag value", "'\\x00'"),
    ("x\x7f", "tag value", "'\\x7f'"),
]


@pytest.mark.parametrize(("value", "kind", "shown"), UNWRITABLE)
def test_names_line_protocol_cannot_carry_are_refused(value: str, kind: str, shown: str) -> None:
    with pytest.raises(UnwritableName) as caught:
        format_line("m", {"channel": value}, {"f": 1.0}, 1)
    assert caught.value.reason == "invalid_name"
    assert caught.value.detail.startswith(f"{kind} ")
    assert caught.value.detail.endswith(f"contains {shown}")


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (("m\\", {}, {"f": 1.0}), "measurement"),
        (("m", {"k\\": "v"}, {"f": 1.0}), "tag key"),
        (("m", {"k": "v"}, {"f\n": 1.0}), "field key"),
    ],
)
def test_every_name_is_checked(args: tuple[str, dict[str, str], dict[str, float]], kind: str) -> None:
    with pytest.raises(UnwritableName) as caught:
        format_line(*args, 1)
    assert caught.value.detail.startswith(kind)
    with pytest.raises(UnwritableName):  # cached heads and field keys never skip the check
        format_line(*args, 2)


def test_string_field_values_keep_backslashes_and_newlines() -> None:
    assert format_line("m", {}, {"s": "a\\b\nc"}, 1) == 'm s="a\\\\b\nc" 1'


def test_encode_skips_unwritable_readings() -> None:
    readings = [Reading("m", {"f": 1.0}, 5), Reading("m", {"f": math.nan}, 6), Reading("m", {"f": 2.0}, 7)]
    assert encode(readings) == b"m f=1 5\nm f=2 7\n"
    assert encode([]) == b""


WRITABLE = st.characters(exclude_categories=["Cs"], exclude_characters="\\", min_codepoint=0x20)
names = st.text(WRITABLE, min_size=1, max_size=12).filter(lambda s: not s.startswith("#") and "\x7f" not in s)
field_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=20),
)


@settings(max_examples=1000)
@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=5),
    time_ns=st.integers(min_value=-(2**62), max_value=2**62),
)
def test_same_as_influxdb_client(
    measurement: str, tags: dict[str, str], fields: dict[str, object], time_ns: int
) -> None:
    point = Point(measurement)
    for tag, tag_value in tags.items():
        point.tag(tag, tag_value)
    for key, value in fields.items():
        point.field(key, value)
    point.time(time_ns)
    assert format_line(measurement, tags, fields, time_ns) == point.to_line_protocol()  # type: ignore[arg-type]


def test_cached_heads_and_field_keys_stay_right_and_bounded() -> None:
    from ingest import lineprotocol

    first = format_line("m", {"b": "2", "a": "1"}, {"y": 1.5, "x": 2}, 5)
    assert format_line("m", {"b": "2", "a": "1"}, {"y": 1.5, "x": 2}, 5) == first == "m,a=1,b=2 x=2i,y=1.5 5"
    assert format_line("m", {"a": "1", "b": "2"}, {"x": 2, "y": None}, None) == "m,a=1,b=2 x=2i"
    for n in range(lineprotocol.CACHE_SIZE + 10):
        format_line("m", {"device": f"d{n}"}, {f"f{n}": 1.0}, None)
    assert len(lineprotocol._heads) <= lineprotocol.CACHE_SIZE
    assert len(lineprotocol._field_keys) <= lineprotocol.CACHE_SIZE
    assert format_line("m", {"device": "d 1"}, {"f 1": 1.0}, None) == r"m,device=d\ 1 f\ 1=1"
