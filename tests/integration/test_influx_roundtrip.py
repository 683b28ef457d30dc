"""Line protocol written by us reads back identically from the real InfluxDB."""

from __future__ import annotations

import asyncio
import itertools
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.config import InfluxSettings
from ingest.influx import InfluxClient, InfluxRejected
from ingest.lineprotocol import UnwritableName, format_line
from ingest.readings import FieldValue
from tests.helpers import InfluxQuery, Target

# text with every character line protocol must escape, and backslashes and control characters, which it
# cannot carry in names (refused, and the rest of the batch unharmed)
text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s)
UNWRITABLE = re.compile(r"[\\\x00-\x1f\x7f]")
_measurements = itertools.count()


def _write(target: Target, body: bytes, *, gzip: bool = True) -> None:
    async def go() -> None:
        client = InfluxClient(InfluxSettings(url=target.influx_url, database=target.database, gzip=gzip))
        try:
            await client.ensure_database()
            await client.write(body)
        finally:
            await client.close()

    asyncio.run(go())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tag_values=st.lists(text, min_size=1, max_size=20, unique=True),
    strings=st.lists(st.text(max_size=30).filter(lambda s: "\x00" not in s), min_size=20, max_size=20),
    floats=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=20, max_size=20),
)
def test_round_trip(
    target: Target, influx: InfluxQuery, tag_values: list[str], strings: list[str], floats: list[float]
) -> None:
    measurement = f"m {next(_measurements)},x"
    expected: dict[str, dict[str, FieldValue]] = {}
    lines = []
    for index, tag in enumerate(tag_values):
        fields: dict[str, FieldValue] = {
            "s": strings[index],
            "f": floats[index],
            "i": index,
            "b": index % 2 == 0,
        }
        try:
            lines.append(format_line(measurement, {"tag key": tag}, fields, 1_000 + index))
        except UnwritableName:
            assert UNWRITABLE.search(tag), tag
            continue
        assert not UNWRITABLE.search(tag), tag
        expected[tag] = fields
    if not lines:
        return
    _write(target, ("\n".join(lines) + "\n").encode())
    rows = influx.rows(f'SELECT * FROM "{measurement}"')
    # InfluxDB's JSON writes integral floats without a decimal point: compare f as float
    actual = {
        row["tag key"]: {"s": row["s"], "f": float(row["f"]), "i": row["i"], "b": row["b"]} for row in rows
    }
    assert actual == expected


def test_field_type_conflict_is_a_permanent_rejection(target: Target, influx: InfluxQuery) -> None:
    _write(target, b"conflict f=1 1\n", gzip=False)
    try:
        _write(target, b'conflict f="text" 2\nconflict f=3 3\n')
    except InfluxRejected as exc:
        assert "field type conflict" in str(exc)
    else:
        raise AssertionError("InfluxDB accepted a field type conflict")
    assert influx.count("conflict", "f") == 2  # the valid line of the partial write is in
