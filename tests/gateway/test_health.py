"""The health message: built from the real outbox, port and uplink counters, and decoded by the central
profile gateway-health into gateway_health points; values that cannot be read stay absent."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from ingest.decode import MessageDecoder
from ingest.gateway.config import Central
from ingest.gateway.frames import Frame
from ingest.gateway.health import Health, HealthSources, read_clock, read_cpu_temp_c
from ingest.gateway.outbox import Outbox
from ingest.gateway.serial import PortStats
from ingest.gateway.uplink import Uplink
from ingest.profiles import load_profiles

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"


def test_health_message_decodes_into_gateway_health(tmp_path: Path) -> None:
    now_ns = time.time_ns()
    with Outbox(tmp_path / "outbox", max_bytes=10_000_000) as outbox:
        for n in range(3):
            outbox.put(
                Frame("lab/gw-h/sml/hh-001-em", b"\x1b\x1b\x1b\x1b", now_ns - (10 - n) * 1_000_000_000)
            )
        uplink = Uplink(
            Central(brokers=["127.0.0.1:1"], username="gw-h", password="x", client_id="gw-h"),
            outbox,
        )
        ports = {
            "hh-001-em": PortStats(
                frames=5, broken=1, discarded_bytes=12, connected=True, last_frame_ns=now_ns
            ),
            "hh-002-em": PortStats(reconnects=2, errors=2),
        }
        health = Health(
            HealthSources(
                gateway="gw-h",
                outbox_directory=tmp_path / "outbox",
                outbox=outbox.stats,
                uplink=uplink.stats,
                ports=ports,
                local_connected=lambda: True,
                local_forwarded=lambda: 7,
                local_skipped=lambda: 2,
            ),
            interval_s=60,
        )
        frame = health.frame()
    assert frame.topic == "lab/gw-h/health"
    body = json.loads(frame.payload)
    assert "last_frame_age_s" not in body["ports"]["hh-002-em"]  # never read a frame: absent, not 0

    readings = MessageDecoder(load_profiles(PROFILES)).decode(frame.topic, frame.payload, time.time_ns())
    by_port = {r.tags.get("port", ""): r for r in readings}
    assert set(by_port) == {"", "hh-001-em", "hh-002-em"}
    gateway = by_port[""]
    assert gateway.measurement == "gateway_health"
    assert gateway.tags["gateway"] == "gw-h"
    assert gateway.tags["device"] == "gateway"
    assert gateway.time_source == "device"
    assert abs(gateway.time_ns - frame.read_ns) < 1_000  # the message's "time" is its read time (µs)
    assert gateway.fields["outbox_depth"] == 3.0
    assert 9.0 <= float(gateway.fields["outbox_oldest_age_s"]) <= 11.0
    assert float(gateway.fields["disk_free_bytes"]) > 0
    assert gateway.fields["uplink_connected"] is False
    assert gateway.fields["local_connected"] is True
    assert gateway.fields["local_forwarded"] == 7.0
    assert gateway.fields["local_skipped"] == 2.0
    assert isinstance(gateway.fields["version"], str)
    assert by_port["hh-001-em"].fields == {
        "connected": True,
        "frames": 5.0,
        "broken": 1.0,
        "discarded_bytes": 12.0,
        "reconnects": 0.0,
        "errors": 0.0,
        "last_frame_age_s": by_port["hh-001-em"].fields["last_frame_age_s"],
    }
    assert by_port["hh-002-em"].fields["connected"] is False
    assert by_port["hh-002-em"].fields["reconnects"] == 2.0
    clock = read_clock()
    if clock is None or not clock.synced:  # no claim about an offset the kernel does not vouch for
        assert "clock_offset_s" not in gateway.fields
    else:
        assert gateway.fields["clock_synced"] is True
        assert "clock_offset_s" in gateway.fields


def test_cpu_temperature_is_read_in_degrees_or_left_out(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert read_cpu_temp_c(zone) == 48.312
    assert read_cpu_temp_c(tmp_path / "missing") is None
    zone.write_text("not a number")
    assert read_cpu_temp_c(zone) is None


def test_a_summary_line_tells_the_technician_that_frames_arrive(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.gateway.health")
    ports = {"hh-001-em": PortStats(frames=3, connected=True), "hh-002-em": PortStats()}

    async def scenario() -> int:
        with Outbox(tmp_path / "outbox", max_bytes=10_000_000) as outbox:
            uplink = Uplink(
                Central(brokers=["127.0.0.1:1"], username="u", password="x", client_id="c"), outbox
            )
            health = Health(
                HealthSources(
                    gateway="gw-s",
                    outbox_directory=tmp_path / "outbox",
                    outbox=outbox.stats,
                    uplink=uplink.stats,
                    ports=ports,
                ),
                interval_s=0.05,
                summary_interval_s=0.2,
            )
            task = asyncio.create_task(health.run(outbox.put))
            ports["hh-001-em"].frames += 7  # read after the health task started
            await asyncio.sleep(0.45)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return health.sent

    sent = asyncio.run(asyncio.wait_for(scenario(), 10))
    lines = [r.getMessage() for r in caplog.records if "last " in r.getMessage()]
    assert 1 <= len(lines) < sent  # one line per summary interval, not one per health message
    assert "hh-001-em 7, hh-002-em 0 (port not open)" in lines[0]
    assert "outbox " in lines[0]
    assert "uplink not connected (no broker answered yet)" in lines[0]
