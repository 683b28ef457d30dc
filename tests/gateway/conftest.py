"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.localservices import Mosquitto
from tests.gateway import netns


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The gateway's local Mosquitto, where the Wi-Fi and Zigbee devices publish (this test's own)."""
    with Mosquitto(tmp_path / "local") as broker:
        yield broker


@pytest.fixture
def hosts() -> Iterator[netns.Hosts]:
    """A gateway host, a central host and a device on the gateway's LAN, each in its network namespace
    (removed afterwards, even after a failure; leftovers of a killed earlier run removed first)."""
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with netns.Hosts() as made:
        yield made
