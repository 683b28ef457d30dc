"""InfluxDB's ``/query`` for the portal: statements from :mod:`ingest.influxql` only, read with the reader
account (``influx.read_username``, else ``username``), answers as rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ingest.config import InfluxSettings


class InfluxUnavailable(Exception):
    """InfluxDB did not answer (down, refused the reader, or an error in the statement)."""


@dataclass(frozen=True)
class Row:
    time: dt.datetime
    tags: dict[str, str]
    values: dict[str, Any]


class Reader:
    def __init__(self, influx: InfluxSettings, *, timeout_s: float = 30.0) -> None:
        self.database = influx.database
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if influx.read_username is not None:
            auth = (
                influx.read_username,
                influx.read_password.get_secret_value() if influx.read_password else "",
            )
        elif influx.api == "v2" and influx.token is not None:
            headers["Authorization"] = f"Token {influx.token.get_secret_value()}"
        elif influx.username is not None:
            auth = (influx.username, influx.password.get_secret_value() if influx.password else "")
        self._http = httpx.Client(
            base_url=influx.url, auth=auth, headers=headers, timeout=timeout_s, trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    def rows(self, statement: str) -> list[Row]:
        """Every row of every series of the (single) statement; times in UTC."""
        try:
            response = self._http.get("/query", params={"q": statement, "db": self.database, "epoch": "s"})
            response.raise_for_status()
            result = response.json()["results"][0]
        except httpx.HTTPStatusError as exc:  # its text has the URL, the statement's names in it: not shown
            raise InfluxUnavailable(f"HTTP {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            raise InfluxUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if "error" in result:
            raise InfluxUnavailable(str(result["error"]))
        return rows_of(result)


def rows_of(result: Mapping[str, Any]) -> list[Row]:
    """One statement's result of ``/query`` (``epoch=s``) as rows: every value of every series; times
    in UTC."""
    rows: list[Row] = []
    for series in result.get("series", []):
        columns = series["columns"]
        tags = series.get("tags") or {}
        for values in series.get("values", []):
            record = dict(zip(columns, values, strict=True))
            moment = dt.datetime.fromtimestamp(int(record.pop("time")), dt.UTC)
            rows.append(Row(moment, tags, record))
    return rows
