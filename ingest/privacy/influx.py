"""A household's points in InfluxDB 1.x: in every retention policy and every measurement that has them.

The household is selected by its tags ``household`` and ``building`` (:class:`Selector`); measurements
and retention policies are read from the server, so raw readings, the rollups, the energy ledger and
whatever comes later are all covered without a list here. ``DROP SERIES WHERE …`` (no ``FROM``) removes
the matching series of every measurement from every retention policy and from the index (so neither
``SHOW SERIES`` nor ``SHOW TAG VALUES`` names the household afterwards); it needs the WRITE privilege
only. Reading (counts, verification, export) needs READ: the two may be different users.

Errors are :class:`InfluxFailed`, whose message names the step but never the statement (it holds the
household's name, which must not end up in a deletion record); the cause keeps the details.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.lifecycle import quote, quote_string
from ingest.lifecycle_cli import InfluxV1, LifecycleError

if TYPE_CHECKING:
    from ingest.config import InfluxSettings

DAY_NS = 86_400 * 10**9
# every point InfluxDB can hold that a device could have sent (1684 .. 2255), not only up to now()
ALL_TIME = "time >= -9000000000000000000 AND time <= 9000000000000000000"
CHUNK_DAYS = {"raw": 1}  # days of points per export query; other policies (rollups): 31
DEFAULT_CHUNK_DAYS = 31


class InfluxFailed(Exception):
    """InfluxDB could not be reached or refused a step (the cause holds the statement and the answer)."""


@dataclass(frozen=True)
class Selector:
    """The tag values a household's points carry."""

    household: str
    building: str

    def where(self) -> str:
        return f'"household" = {quote_string(self.household)} AND "building" = {quote_string(self.building)}'


@dataclass(frozen=True)
class Columns:
    tags: tuple[str, ...]
    fields: tuple[str, ...]

    @property
    def header(self) -> tuple[str, ...]:
        return ("time", *self.tags, *self.fields)


def rfc3339(time_ns: int) -> str:
    """``2026-11-30T01:02:03.123456789Z``: exact to the nanosecond."""
    seconds, nanos = divmod(time_ns, 10**9)
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos:09d}Z" if nanos else "Z")


class HouseholdData:
    """The household's points in one database. ``writer`` drops, ``reader`` reads (may be the same)."""

    def __init__(self, *, reader: InfluxV1, writer: InfluxV1, database: str) -> None:
        self.reader = reader
        self.writer = writer
        self.database = database

    def _read(self, statement: str, step: str) -> list[dict[str, Any]]:
        try:
            return self.reader.query(statement, database=self.database)
        except LifecycleError as exc:
            raise InfluxFailed(f"InfluxDB: {step} failed") from exc

    def retention_policies(self) -> list[str]:
        series = self._read(
            f"SHOW RETENTION POLICIES ON {quote(self.database)}", "listing retention policies"
        )
        return [row[0] for one in series for row in one.get("values", [])]

    def measurements(self) -> list[str]:
        series = self._read(f"SHOW MEASUREMENTS ON {quote(self.database)}", "listing measurements")
        return [row[0] for one in series for row in one.get("values", [])]

    def _from(self, policy: str, measurement: str | None = None) -> str:
        target = quote(measurement) if measurement is not None else "/.*/"
        return f"{quote(self.database)}.{quote(policy)}.{target}"

    def counts(self, selector: Selector) -> dict[str, int]:
        """``policy.measurement`` → the household's field values there (only where there are any):
        one ``count(*)`` per retention policy over every measurement."""
        out: dict[str, int] = {}
        for policy in self.retention_policies():
            statement = f"SELECT count(*) FROM {self._from(policy)} WHERE {selector.where()} AND {ALL_TIME}"
            for series in self._read(statement, f"counting in {policy}"):
                values = sum(int(v) for row in series.get("values", []) for v in row[1:] if v)
                if values:
                    out[f"{policy}.{series['name']}"] = values
        return out

    def series(self, selector: Selector) -> int:
        """How many series (measurement + tag set) carry the household's tags, in the whole database."""
        statement = f"SHOW SERIES ON {quote(self.database)} WHERE {selector.where()}"
        return sum(len(one.get("values", [])) for one in self._read(statement, "listing series"))

    def drop(self, selector: Selector) -> None:
        """Every series with the household's tags, in every measurement and retention policy."""
        try:
            self.writer.query(f"DROP SERIES WHERE {selector.where()}", database=self.database)
        except LifecycleError as exc:
            raise InfluxFailed("InfluxDB: dropping the household's series failed") from exc

    def columns(self, policy: str, measurement: str) -> Columns:
        db = quote(self.database)
        tags = self._read(f"SHOW TAG KEYS ON {db} FROM {quote(measurement)}", "listing tag keys")
        fields = self._read(
            f"SHOW FIELD KEYS ON {db} FROM {quote(policy)}.{quote(measurement)}", "listing field keys"
        )
        return Columns(
            tags=tuple(sorted(row[0] for one in tags for row in one.get("values", []))),
            fields=tuple(sorted(row[0] for one in fields for row in one.get("values", []))),
        )

    def _edge(self, selector: Selector, policy: str, measurement: str, order: str) -> int | None:
        statement = (
            f"SELECT * FROM {self._from(policy, measurement)} WHERE {selector.where()} AND {ALL_TIME} "
            f"ORDER BY time {order} LIMIT 1"
        )
        for series in self._read(statement, "finding the first and last point"):
            for row in series.get("values", []):
                return int(row[0])
        return None

    def rows(
        self, selector: Selector, policy: str, measurement: str, columns: Columns
    ) -> Iterator[list[Any]]:
        """The household's points of one measurement as rows in ``columns.header`` order, oldest first,
        read a day (raw) or a month (rollups) at a time: memory holds one chunk."""
        first = self._edge(selector, policy, measurement, "ASC")
        last = self._edge(selector, policy, measurement, "DESC")
        if first is None or last is None:
            return
        step = CHUNK_DAYS.get(policy, DEFAULT_CHUNK_DAYS) * DAY_NS
        start = first - first % DAY_NS
        while start <= last:
            end = start + step
            statement = (
                f"SELECT * FROM {self._from(policy, measurement)} WHERE {selector.where()} "
                f"AND time >= {start} AND time < {end}"
            )
            for series in self._read(statement, f"reading {policy}"):
                index = {name: i for i, name in enumerate(series["columns"])}
                for row in series.get("values", []):
                    out: list[Any] = [rfc3339(int(row[0]))]
                    out += [row[index[name]] if name in index else None for name in columns.header[1:]]
                    yield out
            start = end


@contextlib.contextmanager
def household_data(settings: InfluxSettings) -> Iterator[HouseholdData]:
    """:class:`HouseholdData` for the settings' database: dropping as ``influx.username`` (WRITE is
    enough), reading as ``influx.read_username`` if set (the demo's ingester may only write)."""
    if settings.api != "v1":
        raise InfluxFailed(
            "InfluxDB 2.x: delete and export by the v2 API are not built here (docs/privacy.md)"
        )
    password = settings.password.get_secret_value() if settings.password else ""
    write_auth = (settings.username, password) if settings.username is not None else None
    read_auth = write_auth
    if settings.read_username is not None:
        secret = settings.read_password.get_secret_value() if settings.read_password else ""
        read_auth = (settings.read_username, secret)
    writer = InfluxV1(settings.url, auth=write_auth, timeout_s=settings.timeout_s * 6)
    reader = InfluxV1(settings.url, auth=read_auth, timeout_s=settings.timeout_s * 6)
    try:
        yield HouseholdData(reader=reader, writer=writer, database=settings.database)
    finally:
        reader.close()
        writer.close()
