"""The ledger's InfluxDB side: raw counter readings in (InfluxQL over :class:`InfluxV1`), ledger points out
(line protocol to ``/write`` with ``rp=rollups``).

Schema written (a contract: the dashboards and the residents' portal read it): measurements ``energy``
(time = 15-minute bucket start, UTC) and ``energy_1d`` (time = local midnight) in retention policy
``rollups``; tags ``household`` (absent for building-level devices), ``building``, ``device``, ``kind``;
field ``kwh`` (float). Same series and time overwrite, so writing a range again is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ingest.energy.kinds import Source
from ingest.energy.ledger import Key, Reading
from ingest.lifecycle import ROLLUP_RP, quote, quote_string
from ingest.lifecycle_cli import InfluxV1, LifecycleError
from ingest.lineprotocol import format_line

MEASUREMENT_15M = "energy"
MEASUREMENT_1D = "energy_1d"
FIELD = "kwh"
WRITE_BATCH = 5000
INIT_HINT = "run `reallabor influx init` (it creates the retention policies)"


class LedgerError(Exception):
    """InfluxDB refused the ledger's query or write, or is away; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SeriesId:
    """One raw counter: a device's field on one series (a sub-meter has one per channel)."""

    measurement: str
    field: str
    device: str
    channel: str


def _ns(time_ns: int) -> str:
    return f"{time_ns}"


class RawReader:
    """Raw counter readings of one database (its default retention policy, or ``raw_rp``)."""

    def __init__(self, client: InfluxV1, database: str, *, raw_rp: str | None = None) -> None:
        self.client = client
        self.database = database
        self.raw_rp = raw_rp

    def _from(self, measurement: str) -> str:
        if self.raw_rp:
            return f"{quote(self.raw_rp)}.{quote(measurement)}"
        return quote(measurement)

    def _query(self, statement: str) -> list[dict[str, Any]]:
        try:
            return self.client.query(statement, database=self.database)
        except LifecycleError as exc:
            raise LedgerError(str(exc)) from None

    def retention_policies(self) -> set[str]:
        series = self._query(f"SHOW RETENTION POLICIES ON {quote(self.database)}")
        return {row[0] for row in (series[0].get("values") or [])} if series else set()

    def predecessors(
        self, source: Source, before_ns: int, *, after_ns: int
    ) -> dict[SeriesId, tuple[int, float]]:
        """Each counter's last reading in ``[after_ns, before_ns)``: (time, value). Bounded: last() over
        all of raw grows with its age (measured 0.4 s for 10 days of 1-minute data); a counter silent for
        longer is looked up alone (:meth:`predecessor`)."""
        out: dict[SeriesId, tuple[int, float]] = {}
        for field in source.fields:
            statement = (
                f"SELECT last({quote(field)}) FROM {self._from(source.measurement)} "
                f'WHERE time >= {_ns(after_ns)} AND time < {_ns(before_ns)} GROUP BY "device", "channel"'
            )
            for series in self._query(statement):
                tags = series.get("tags") or {}
                time_ns, value = series["values"][0][:2]
                if value is not None:
                    key = SeriesId(source.measurement, field, tags.get("device", ""), tags.get("channel", ""))
                    out[key] = (int(time_ns), float(value))
        return out

    def predecessor(self, series: SeriesId, before_ns: int) -> tuple[int, float] | None:
        """One counter's last reading before ``before_ns`` (None: its first reading is after)."""
        statement = (
            f"SELECT last({quote(series.field)}) FROM {self._from(series.measurement)} "
            f'WHERE "device" = {quote_string(series.device)} AND "channel" = {quote_string(series.channel)} '
            f"AND time < {_ns(before_ns)}"
        )
        found = self._query(statement)
        if not found or found[0]["values"][0][1] is None:
            return None
        time_ns, value = found[0]["values"][0][:2]
        return int(time_ns), float(value)

    def readings(
        self, source: Source, start_ns: int, end_ns: int
    ) -> Iterator[tuple[SeriesId, list[Reading]]]:
        """Every counter's readings in ``[start_ns, end_ns)``, per series, in time order."""
        fields = ", ".join(quote(field) for field in source.fields)
        statement = (
            f'SELECT {fields}, "household", "building" FROM {self._from(source.measurement)} '
            f'WHERE time >= {_ns(start_ns)} AND time < {_ns(end_ns)} GROUP BY "device", "channel"'
        )
        count = len(source.fields)
        for series in self._query(statement):
            tags = series.get("tags") or {}
            device, channel = tags.get("device", ""), tags.get("channel", "")
            rows = series.get("values") or []
            for index, field in enumerate(source.fields, start=1):
                found = [
                    Reading(int(row[0]), float(row[index]), row[count + 1] or "", row[count + 2] or "")
                    for row in rows
                    if row[index] is not None
                ]
                if found:
                    yield SeriesId(source.measurement, field, device, channel), found


def lines(measurement: str, points: Mapping[Key, float]) -> Iterator[str]:
    for key, kwh in sorted(points.items()):
        tags = {"household": key.household, "building": key.building, "device": key.device, "kind": key.kind}
        yield format_line(measurement, tags, {FIELD: float(kwh)}, key.time_ns)


class LedgerWriter:
    """Line protocol to ``/write?db=…&rp=rollups`` in batches of :data:`WRITE_BATCH` lines."""

    def __init__(
        self, url: str, database: str, *, auth: tuple[str, str] | None, timeout_s: float = 60.0
    ) -> None:
        self.database = database
        self._http = httpx.Client(base_url=url, auth=auth, timeout=timeout_s, trust_env=False)
        self.points = 0

    def close(self) -> None:
        self._http.close()

    def write(self, lines: Iterable[str]) -> None:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= WRITE_BATCH:
                self._post(batch)
                batch = []
        if batch:
            self._post(batch)

    def _post(self, batch: list[str]) -> None:
        params = {"db": self.database, "rp": ROLLUP_RP, "precision": "ns"}
        try:
            response = self._http.post("/write", params=params, content="\n".join(batch).encode())
        except httpx.HTTPError as exc:
            raise LedgerError(f"InfluxDB at {self._http.base_url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 204:
            try:
                error = str(response.json().get("error", response.text))
            except ValueError:
                error = response.text
            if "retention policy not found" in error:
                raise LedgerError(
                    f"database {self.database!r} has no retention policy {ROLLUP_RP!r}: {INIT_HINT}"
                )
            raise LedgerError(f"InfluxDB refused the ledger's write (HTTP {response.status_code}): {error}")
        self.points += len(batch)
