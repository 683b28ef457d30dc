"""The pieces of the demo's simulated gateway hosts: which gateways, their gateway.yaml, and a socat pty
pair carrying a meter's frame byte for byte (real socat)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.gateway.config import load_gateway_config
from simulators.gateway_hosts import (
    MeterPort,
    SerialLine,
    SerialMeter,
    gateway_config,
    hosted_gateways,
    serial_meters,
    write_gateway_yaml,
)
from simulators.gateways import GatewayAccount
from simulators.quarter import make_quarter
from tests.simulators.gateway_feed import SML, meter_messages

pytestmark = pytest.mark.timeout(30)


def test_the_demo_hosts_gateways_with_serial_meters() -> None:
    quarter = make_quarter(30, building_size=10)
    assert hosted_gateways(quarter, 2) == ["gw-01", "gw-02"]
    assert [m.device for m in serial_meters(quarter, "gw-01")] == [
        "hh-001-ehz", "hh-005-ehz", "hh-006-p1", "hh-008-p1", "hh-010-p1"
    ]  # fmt: skip
    assert {m.protocol for m in serial_meters(quarter, "gw-01")} == {"sml", "dsmr"}


def test_gateway_yaml_round_trips_with_its_password(tmp_path: Path) -> None:
    account = GatewayAccount("gw-x-user", "s3cret-pass", "gw-x-user")
    config = gateway_config(
        gateway="gw-x",
        directory=tmp_path,
        central_port=1883,
        account=account,
        meters=[SerialMeter(SML, "sml")],
        local_port=1884,
    )
    path = tmp_path / "gateway.yaml"
    write_gateway_yaml(path, config)
    assert path.stat().st_mode & 0o077 == 0, "the broker password is readable by others"
    loaded = load_gateway_config(path)
    assert loaded == config
    assert loaded.central.password.get_secret_value() == "s3cret-pass"
    assert loaded.meters[0].port == tmp_path / "tty" / SML


def test_a_frame_crosses_the_pty_pair_byte_for_byte(tmp_path: Path) -> None:
    line = SerialLine(tmp_path, SML).start(timeout=10)
    try:
        reader = os.open(line.gateway_end, os.O_RDONLY | os.O_NOCTTY)
        port = MeterPort(line.meter_end)
        frame = meter_messages("gw-x", 1)[0].payload  # binary SML: escapes, zeros, 0xff
        port.write(frame)
        got = b""
        while len(got) < len(frame):
            got += os.read(reader, 4096)
        assert got == frame
        assert (port.frames, port.dropped) == (1, 0)
        port.close()
        os.close(reader)
    finally:
        line.stop()
    assert not line.gateway_end.exists(), "socat left its links"
    assert not line.meter_end.exists(), "socat left its links"
