"""Write bodies are compressed by default only when InfluxDB is elsewhere: over loopback it only costs CPU."""

from __future__ import annotations

import asyncio

import pytest

from ingest.config import InfluxSettings
from ingest.influx import InfluxClient


async def _client_gzip(url: str, gzip: bool | None) -> bool:
    client = InfluxClient(InfluxSettings(url=url, gzip=gzip))
    try:
        return client.gzip
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("url", "gzip", "expected"),
    [
        ("http://127.0.0.1:8086", None, False),
        ("http://127.0.5.1:8086", None, False),
        ("http://localhost:8086", None, False),
        ("http://[::1]:8086", None, False),
        ("https://influx.example.org", None, True),
        ("http://10.0.0.5:8086", None, True),
        ("http://127.0.0.1:8086", True, True),
        ("https://influx.example.org", False, False),
    ],
)
def test_gzip_default_depends_on_where_influxdb_is(url: str, gzip: bool | None, expected: bool) -> None:
    assert asyncio.run(_client_gzip(url, gzip)) is expected
