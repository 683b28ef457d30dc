"""A gateway's own health needs no registered device: its broker account (bound to lab/<gateway>/) is its
registration. Any other reading of an unregistered device is still quarantined as unknown_device."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.decoders.gateway_health import MEASUREMENT
from ingest.enrich import UNREGISTERED_PORT, Enricher
from ingest.readings import DecodeRejected, Reading
from ingest.registry.snapshot import DeviceEntry, RegistrySnapshot, Span

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


def test_a_health_port_is_a_registered_meter_of_that_gateway_or_unregistered() -> None:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    snapshot = RegistrySnapshot(
        devices={
            ("gw-01", "hh-001-ehz"): DeviceEntry(
                device_id=1,
                gateway="gw-01",
                native_id="hh-001-ehz",
                profile_id="sml",
                meter_number=None,
                status="active",
                spans=(Span(start, None, "hh-001", "Haus 1", household_id=1, building_id=1),),
            )
        },
        loaded_at=dt.datetime.now(dt.UTC),
    )
    enricher = Enricher(snapshot, unknown="quarantine")
    known, made_up, elsewhere = (
        Reading(
            MEASUREMENT, {"frames": 1.0}, T, "received", {"gateway": gw, "device": "gateway", "port": port}
        )
        for gw, port in (("gw-01", "hh-001-ehz"), ("gw-01", "x" * 60), ("gw-02", "hh-001-ehz"))
    )
    enricher.enrich([known, made_up, elsewhere])
    assert known.tags["port"] == "hh-001-ehz"
    assert made_up.tags["port"] == UNREGISTERED_PORT
    assert elsewhere.tags["port"] == UNREGISTERED_PORT
