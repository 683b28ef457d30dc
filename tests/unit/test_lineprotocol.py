"""Line protocol: table-driven cases and a property test against influxdb-client's serializer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point

from ingest.lineprotocol import encode, format_line
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
    ("newline in tag", ("m", {"a": "x\ny"}, {"f": 1.0}, 1), "m,a=x\\ny f=1 1"),
    ("trailing backslash in tag", ("m", {"a": "x\\"}, {"f": 1.0}, 1), "m,a=x\\  f=1 1"),
    ("non-finite dropped", ("m", {}, {"a": math.nan, "b": math.inf, "c": 1.0}, 1), "m c=1 1"),
    ("none dropped", ("m", {}, {"a": None, "c": 1.0}, 1), "m c=1 1"),
    ("nothing writable", ("m", {}, {"a": math.nan}, 1), ""),
    ("exponent float", ("m", {}, {"f": 1e-7}, 1), "m f=1e-07 1"),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_format_line(args: tuple, expected: str) -> None:  # type: ignore[type-arg]
    assert format_line(*args) == expected


def test_encode_skips_unwritable_readings() -> None:
    readings = [Reading("m", {"f": 1.0}, 5), Reading("m", {"f": math.nan}, 6), Reading("m", {"f": 2.0}, 7)]
    assert encode(readings) == b"m f=1 5\nm f=2 7\n"
    assert encode([]) == b""


names = st.text(min_size=1, max_size=12).filter(lambda s: not s.startswith("#"))
field_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=20),
)


@settings(max_examples=1000)
@given(
    measurement=names,
    tags=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    fields=st.dictionaries(st.text(max_size=10), field_values, min_size=1, max_size=5),
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
