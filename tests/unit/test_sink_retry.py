"""The sink's wait between write attempts while InfluxDB is unreachable ends once /ping answers."""

from __future__ import annotations

import asyncio
import time

from ingest.influx import InfluxUnavailable
from ingest.ingester import wait_until_up


def test_wait_ends_when_ping_answers_again() -> None:
    calls = 0

    async def ping() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise InfluxUnavailable("GET /ping: ConnectError")

    started = time.monotonic()
    assert asyncio.run(wait_until_up(ping, 30.0, 0.01)) is True
    assert calls == 3
    assert time.monotonic() - started < 5.0  # not the 30 s backoff


def test_wait_lasts_the_delay_while_down_and_a_hanging_ping_is_cut() -> None:
    async def hanging() -> None:
        await asyncio.sleep(10)

    async def down() -> None:
        raise InfluxUnavailable("GET /ping: ConnectError")

    started = time.monotonic()
    assert asyncio.run(wait_until_up(hanging, 0.1, 0.02)) is False
    assert asyncio.run(wait_until_up(down, 0.1, 0.02)) is False
    assert time.monotonic() - started < 5.0
