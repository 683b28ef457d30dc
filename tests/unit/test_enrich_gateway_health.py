"""A gateway's own health needs no registered device: its broker account (bound to lab/<gateway>/) is its
registration. Any other reading of an unregistered device is still quarantined as unknown_device."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.decoders.gateway_health import MEASUREMENT
from ingest.enrich import Enricher
from ingest.readings import DecodeRejected, Reading
from ingest.registry.snapshot import RegistrySnapshot

T = 1_764_320_400_000_000_000


def _empty() -> Enricher:
    return Enricher(RegistrySnapshot(devices={}, loaded_at=dt.datetime.now(dt.UTC)), unknown="quarantine")


def test_health_of_a_gateway_passes_without_a_registered_device() -> None:
    tags = {"gateway": "gw-01", "device": "gateway"}
    health = Reading(MEASUREMENT, {"uptime_s": 60.0}, T, "received", dict(tags))
    _empty().enrich([health])
    assert health.tags == tags


def test_a_meter_of_an_unregistered_device_is_still_refused() -> None:
    meter = Reading("electricity", {"power_w": 1.0}, T, "received", {"gateway": "gw-01", "device": "gateway"})
    with pytest.raises(DecodeRejected) as caught:
        _empty().enrich([meter])
    assert caught.value.reason == "unknown_device"
