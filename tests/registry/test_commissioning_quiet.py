"""The commissioning listener ends quietly: a wait that hears nothing leaves nothing in the log.

Our own disconnect after the wait made paho call ``on_disconnect``, which settled the message future with
a BrokerUnavailable that nobody awaited any more; asyncio logged it as 'Future exception was never
retrieved' with a traceback, once per check of a silent device.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from ingest.commissioning.listener import BrokerAccess, next_message
from ingest.dynsec import DynsecBootstrap
from ingest.localservices import LOOPBACK, Mosquitto

pytestmark = [pytest.mark.registry, pytest.mark.integration]


def test_a_wait_without_message_leaves_a_clean_log(
    dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    access = BrokerAccess(LOOPBACK, dynsec_broker.port, "admin", bootstrap.admin_password)
    listening: list[bool] = []

    async def wait() -> object:
        found = await next_message(
            access,
            [f"lab/quiet{unique}/dev/state"],
            timeout_s=0.5,
            on_listening=lambda: listening.append(True),
        )
        await asyncio.sleep(0.2)  # paho's disconnect callback arrives after the wait
        gc.collect()  # an unretrieved future's traceback is logged when it is collected
        return found

    caplog.set_level(logging.DEBUG)
    assert asyncio.run(wait()) is None
    gc.collect()
    assert listening == [True]
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
