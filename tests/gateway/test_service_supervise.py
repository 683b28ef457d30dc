"""A part of the gateway service that crashes or returns is logged and started again; the others go on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ingest.gateway.service import supervise


def test_a_crashing_part_is_restarted_and_the_others_keep_running(caplog: pytest.LogCaptureFixture) -> None:
    starts: list[str] = []
    restarts: list[str] = []
    ticks = 0
    third_start = asyncio.Event()

    async def flaky() -> None:
        starts.append("flaky")
        if len(starts) == 1:
            raise OSError("the port went away")
        if len(starts) == 2:
            return  # ended by itself
        third_start.set()
        await asyncio.Event().wait()  # runs until cancelled

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    async def main() -> None:
        stopping = asyncio.Event()
        tasks = [
            asyncio.create_task(
                supervise(
                    name,
                    start,
                    stopping=stopping,
                    on_restart=lambda name=name: restarts.append(name),  # type: ignore[misc]
                    restart_min_s=0.001,
                    restart_max_s=0.01,
                )
            )
            for name, start in (("flaky part", flaky), ("steady part", steady))
        ]
        async with asyncio.timeout(10):
            await third_start.wait()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    with caplog.at_level(logging.INFO, logger="ingest.gateway.service"):
        asyncio.run(main())
    assert starts == ["flaky", "flaky", "flaky"]
    assert restarts == ["flaky part", "flaky part"]
    assert ticks > 0
    messages = [r.getMessage() for r in caplog.records]
    assert "flaky part crashed" in messages
    assert "flaky part ended by itself" in messages
    crash = next(r for r in caplog.records if r.getMessage() == "flaky part crashed")
    assert crash.exc_info is not None  # the traceback is in the log


def test_a_part_that_returns_while_the_service_stops_is_not_restarted() -> None:
    starts = 0

    async def uplink() -> None:
        nonlocal starts
        starts += 1

    async def main() -> None:
        stopping = asyncio.Event()
        stopping.set()
        async with asyncio.timeout(10):
            await supervise("uplink", uplink, stopping=stopping, on_restart=lambda: None)

    asyncio.run(main())
    assert starts == 1
