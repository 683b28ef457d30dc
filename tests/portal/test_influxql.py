"""The one InfluxQL helper: nasty values quoted so that InfluxDB reads them back as exactly that value
(a real InfluxDB 1.6), control characters and unknown types refused, the statement builder strict."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import httpx
import pytest

from ingest import influxql, lifecycle
from ingest.influxql import Duration, Ident, InfluxQLValueError, Raw, Regex, statement
from ingest.localservices import InfluxDB
from tests.helpers import InfluxQuery

NASTY = [
    "plain",
    "it's",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "\\'",
    '\\"',
    '\'; DROP DATABASE "x"; --',
    "' OR '1'='1",
    "a.*b+c?(d)|[e]{f}^$",
    "slash/and\\/more",
    "Straße – 🏠 日本",
    "\\n",
]
UNWRITABLE = {"trailing\\"}  # line protocol cannot end a tag value in a backslash
CONTROL = ["line\nbreak", "tab\there", "nul\x00", "cr\r", "esc\x1b[31m", "del\x7f", "\x85next-line"]


def test_identifier_and_string_quoting() -> None:
    assert influxql.ident('a"b\\c') == '"a\\"b\\\\c"'
    assert influxql.string_literal("it's \\") == "'it\\'s \\\\'"
    assert influxql.idents("db", "rollups", "energy") == '"db"."rollups"."energy"'
    assert lifecycle.quote('x"y') == influxql.ident('x"y')
    assert lifecycle.quote_string("x'y") == influxql.string_literal("x'y")


@pytest.mark.parametrize("text", CONTROL)
def test_control_characters_refused_everywhere(text: str) -> None:
    for quote in (influxql.ident, influxql.string_literal, influxql.regex_literal, influxql.regex_exact):
        with pytest.raises(InfluxQLValueError, match="control character"):
            quote(text)
    with pytest.raises(InfluxQLValueError):
        statement("SELECT * FROM x WHERE a = {v}", v=text)


def test_times_numbers_durations() -> None:
    berlin = dt.datetime(2025, 6, 18, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert influxql.time_literal(berlin) == "'2025-06-17T22:00:00.000000Z'"
    with pytest.raises(InfluxQLValueError, match="naive"):
        influxql.time_literal(dt.datetime(2025, 1, 1))
    assert influxql.number_literal(3) == "3"
    assert influxql.number_literal(0.5) == "0.5"
    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(InfluxQLValueError):
            influxql.number_literal(bad)
    assert influxql.duration_literal(dt.timedelta(minutes=15)) == "15m"
    assert influxql.duration_literal(dt.timedelta(days=1)) == "1d"
    assert influxql.duration_literal(dt.timedelta(seconds=90)) == "90s"
    for bad_span in (dt.timedelta(0), dt.timedelta(seconds=-60), dt.timedelta(milliseconds=1500)):
        with pytest.raises(InfluxQLValueError):
            influxql.duration_literal(bad_span)


def test_statement_builder_is_strict() -> None:
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    text = statement(
        "SELECT sum({f}) FROM {m} WHERE {k} = {v} AND time >= {t} GROUP BY time({d})",
        f=Ident("kwh"),
        m=Ident("rollups", "energy"),
        k=Ident("household"),
        v="x' OR 1=1 --",
        t=when,
        d=Duration(dt.timedelta(minutes=15)),
    )
    assert text == (
        'SELECT sum("kwh") FROM "rollups"."energy" WHERE "household" = \'x\\\' OR 1=1 --\' '
        "AND time >= '2025-01-01T00:00:00.000000Z' GROUP BY time(15m)"
    )
    with pytest.raises(InfluxQLValueError, match="no value"):
        statement("SELECT {a}")
    with pytest.raises(InfluxQLValueError, match="without a placeholder"):
        statement("SELECT 1", a="x")
    with pytest.raises(InfluxQLValueError, match="plain names"):
        statement("SELECT {a!r}", a="x")
    with pytest.raises(InfluxQLValueError, match="plain names"):
        statement("SELECT {a:>10}", a="x")
    with pytest.raises(InfluxQLValueError, match="no InfluxQL literal"):
        statement("SELECT {a}", a=["list"])  # type: ignore[arg-type]
    assert influxql.any_of("kind", ["import", "x'y"]).text == "(\"kind\" = 'import' OR \"kind\" = 'x\\'y')"
    with pytest.raises(InfluxQLValueError):
        influxql.any_of("kind", [])
    assert statement("{r}", r=Raw("now()")) == "now()"


def test_regex_literals() -> None:
    assert influxql.regex_literal("a/b") == "/a\\/b/"
    assert influxql.regex_exact("a.b/c") == "/^a\\.b\\/c$/"
    with pytest.raises(InfluxQLValueError, match="lone backslash"):
        influxql.regex_literal("abc\\")


@pytest.fixture(scope="module")
def nasty_db(influxdb: InfluxDB) -> Iterator[InfluxQuery]:
    """A database whose measurement, tag key and tag values are the nasty strings (line protocol
    escapes commas, spaces and equals signs; its quotes and backslashes are literal)."""
    database = f"influxql_{uuid.uuid4().hex[:8]}"
    db = InfluxQuery(influxdb.url, database)
    httpx.post(
        f"{influxdb.url}/query", data={"q": f"CREATE DATABASE {influxql.ident(database)}"}, trust_env=False
    )

    def escape(text: str) -> str:  # a backslash before anything else is literal in line protocol 1.x
        return text.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")

    lines = [
        f"m{i},k={escape(value)} v={i}i {1_700_000_000 + i}000000000"
        for i, value in enumerate(NASTY)
        if value not in UNWRITABLE
    ]
    lines.append(f"{escape(NASTY[7])},k=x v=99i 1700000000000000000")
    response = httpx.post(
        f"{influxdb.url}/write", params={"db": database}, content="\n".join(lines), trust_env=False
    )
    assert response.status_code == 204, response.text
    yield db
    db.drop()


@pytest.mark.integration
def test_nasty_values_mean_themselves_in_influxdb(nasty_db: InfluxQuery) -> None:
    """Each value selects its own point, exactly: as a string literal, an exact regex, and as part of a
    measurement name; nothing is dropped, nothing else matches."""
    stored = {s["tags"]["k"] for s in nasty_db.query("SELECT v FROM /^m\\d+$/ GROUP BY k")}
    for i, value in enumerate(NASTY):
        if value in UNWRITABLE:
            continue
        assert value in stored
        found = nasty_db.rows(statement("SELECT v FROM {m} WHERE k = {v}", m=Ident(f"m{i}"), v=value))
        assert [row["v"] for row in found] == [i], (value, found)
        found = nasty_db.rows(statement("SELECT v FROM /^m\\d+$/ WHERE k =~ {r}", r=Regex(value, exact=True)))
        assert [row["v"] for row in found] == [i], (value, found)
    odd = nasty_db.rows(statement("SELECT v FROM {m}", m=Ident(NASTY[7])))
    assert [row["v"] for row in odd] == [99]
    databases = nasty_db.query("SHOW DATABASES")[0]["values"]
    assert [nasty_db.database] in databases  # the DROP in the value never ran
