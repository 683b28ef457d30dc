"""Refusals by a real dynamic-security Mosquitto, as the log shows them (review M9, L5): many refused
frames give one ERROR (then one a minute with the count), and a refused login names what to fix."""

from __future__ import annotations

import logging
import secrets
import uuid
from pathlib import Path

import pytest

from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.gateway.frames import Frame
from ingest.gateway.outbox import Outbox
from ingest.gateway.uplink import Uplink
from ingest.localservices import LOOPBACK, Mosquitto
from tests.gateway.test_uplink import READ_NS, central, dynsec_broker, run, running, until  # noqa: F401


def provision(broker: Mosquitto, bootstrap: DynsecBootstrap) -> tuple[str, str]:
    gateway, password = f"gw{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    with DynsecAdmin(
        host=LOOPBACK, port=broker.port, username="admin", password=bootstrap.admin_password, timeout=5
    ) as admin:
        admin.provision_gateway(gateway=gateway, username=gateway, password=password, client_id=gateway)
    return gateway, password


def test_many_refused_frames_give_one_error_line(
    dynsec_broker: tuple[Mosquitto, DynsecBootstrap],  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, bootstrap = dynsec_broker
    gateway, password = provision(broker, bootstrap)
    caplog.set_level(logging.INFO, logger="ingest.gateway")

    async def scenario() -> None:
        outbox = Outbox(tmp_path / "outbox", max_bytes=10 << 20, commit_interval_s=0.1)
        for n in range(50):  # a mistyped gateway name: every frame outside the account's prefix
            outbox.put(Frame(f"lab/{gateway}x/sml/m1", b"frame %d" % n, READ_NS + n))
        uplink = Uplink(central(broker.port, username=gateway, password=password, client_id=gateway), outbox)
        async with running(uplink, outbox):
            await until(lambda: uplink.stats().refused == 50, "50 refusals")
        assert outbox.stats().refused == 50
        outbox.close()

    run(scenario)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "refused 1 frame(s)" in errors[0]
    assert "sent again at the next start" in errors[0]


def test_a_refused_login_names_the_bundle_and_the_password(
    dynsec_broker: tuple[Mosquitto, DynsecBootstrap],  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, bootstrap = dynsec_broker
    gateway, _ = provision(broker, bootstrap)
    caplog.set_level(logging.INFO, logger="ingest.gateway")

    async def scenario() -> None:
        outbox = Outbox(tmp_path / "outbox", max_bytes=10 << 20)
        account = central(broker.port, username=gateway, password="an-old-bundle's", client_id=gateway)
        uplink = Uplink(account, outbox, reconnect_min_s=0.1, reconnect_max_s=0.2)
        async with running(uplink, outbox):
            await until(lambda: uplink.stats().last_error is not None, "the refused login", within_s=10)
        assert not uplink.stats().connected
        outbox.close()

    run(scenario)
    warnings = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
    assert warnings
    assert "a new bundle" in warnings[0]
    assert "central.password" in warnings[0]
    assert "an-old-bundle's" not in caplog.text  # the password itself is never logged
