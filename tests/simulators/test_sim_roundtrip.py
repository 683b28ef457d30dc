"""Every payload the simulator emits decodes with its profile; broken ones are rejected with a reason."""

from __future__ import annotations

from collections import Counter

import pytest

from ingest.readings import REASONS
from simulators.drive import drive
from simulators.quarter import Quarter
from simulators.shapes import Shapes
from simulators.sinks import DecodeSink
from tests.simulators.conftest import SPRING, simulation

DEVICE_TIME_KINDS = {"meter", "pv", "ev", "heat", "climate", "street"}


def test_every_family_round_trips_through_the_decoders(quarter: Quarter, shapes: Shapes) -> None:
    sink = DecodeSink(keep=True)
    result = drive(simulation(quarter, shapes), sink, until_s=SPRING + 3 * 3600)
    assert sink.rejected == []
    assert sink.accepted == result.delivered == result.generated > 0
    families = Counter(m.family for m, _ in sink.readings)
    assert set(families) == {
        "tasmota-sml", "shelly-gen2", "sml", "dsmr", "generic-json", "zigbee2mqtt", "ttn-v3",
    }  # fmt: skip
    measurements = Counter(r.measurement for _, readings in sink.readings for r in readings)
    assert {"electricity", "pv", "heat", "environment", "device_health"} <= set(measurements)
    for message, readings in sink.readings:
        (profile,) = {r.tags["profile"] for r in readings}
        assert profile == message.family
        assert all(r.tags["gateway"] == message.gateway for r in readings)
        if message.kind in DEVICE_TIME_KINDS:
            assert {(r.time_source, r.time_ns // 10**9) for r in readings} == {("device", message.time_s)}
        if message.counters is not None:
            fields = {k: v for r in readings if r.measurement == "electricity" for k, v in r.fields.items()}
            assert fields["energy_import_kwh"] == pytest.approx(message.counters[0], abs=1e-9)
            assert fields["energy_export_kwh"] == pytest.approx(message.counters[1], abs=1e-9)
            assert isinstance(fields["power_w"], float)


def test_malformed_payloads_are_rejected_with_a_reason(quarter: Quarter, shapes: Shapes) -> None:
    sink = DecodeSink()
    result = drive(simulation(quarter, shapes, faults="malformed=0.05"), sink, until_s=SPRING + 3600)
    assert result.malformed > 50
    assert len(sink.rejected) == result.malformed
    assert all(message.malformed for message, _ in sink.rejected)
    assert set(sink.reasons) <= set(REASONS)
    assert {"invalid_json", "crc_mismatch"} <= set(sink.reasons)
    assert sink.accepted == result.delivered - result.malformed
