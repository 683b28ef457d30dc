"""The uplink's line to the central broker: TLS (the right CA, and a wrong one named in the log), a
half-open connection noticed by the keep-alive, brokers tried in turn."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.gateway.config import Central
from ingest.gateway.frames import Frame
from ingest.gateway.outbox import Outbox
from ingest.gateway.uplink import Uplink
from ingest.localservices import LOOPBACK, Mosquitto, free_port
from tests.certs import TlsMosquitto, make_ca, server_cert
from tests.gateway.test_uplink import READ_NS, run, running, until
from tests.helpers import wait_for


def frames(count: int) -> list[Frame]:
    prefix = uuid.uuid4().hex[:8]
    return [Frame(f"{prefix}/lab/gw-l/sml/m1", b"frame %d" % n, READ_NS + n) for n in range(count)]


def central(port: int, **options: Any) -> Central:
    values: dict[str, Any] = {
        "brokers": [f"{LOOPBACK}:{port}"],
        "username": "gw-l",
        "password": "unused",
        "client_id": f"gw-l-{uuid.uuid4().hex[:8]}",
    }
    return Central.model_validate(values | options)


def test_tls_with_the_right_ca_and_a_wrong_one_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ingest.gateway.uplink")
    certs = tmp_path / "certs"
    authority = make_ca(certs, "central-ca")
    right, wrong = authority.cert, make_ca(certs, "other-ca").cert
    sent = frames(3)
    broker = TlsMosquitto(tmp_path / "broker", server=server_cert(authority, certs))

    async def scenario() -> None:
        with Outbox(tmp_path / "right", max_bytes=10 << 20) as outbox:
            for f in sent:
                outbox.put(f)
            uplink = Uplink(central(broker.tls_port, tls={"ca_file": right}), outbox)
            async with running(uplink, outbox):
                await until(lambda: uplink.stats().acked == 3, "three PUBACKs over TLS")
        with Outbox(tmp_path / "wrong", max_bytes=10 << 20) as outbox:
            outbox.put(sent[0])
            uplink = Uplink(central(broker.tls_port, tls={"ca_file": wrong}), outbox, reconnect_min_s=5)
            async with running(uplink, outbox):
                await until(lambda: uplink.stats().last_error is not None, "the failed handshake")
                stats = uplink.stats()
                assert not stats.connected
                assert stats.acked == 0
                assert "TLS certificate not trusted" in (stats.last_error or "")

    with broker:
        run(scenario)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"not trusted by {wrong}" in m for m in errors), errors


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((LOOPBACK, port)) == 0


@pytest.fixture
def proxied_broker(mosquitto: Mosquitto) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """socat forwarding a free port to the broker, in its own process group (stopped with SIGSTOP)."""
    port = free_port()
    proxy = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind={LOOPBACK},reuseaddr,fork", f"TCP:{LOOPBACK}:{mosquitto.port}"],
        start_new_session=True,
    )
    try:
        wait_for(lambda: _accepts(port), timeout=10, interval=0.05, what="socat listening")
        yield port, proxy
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proxy.pid, signal.SIGCONT)
            os.killpg(proxy.pid, signal.SIGKILL)
        proxy.wait(10)


def test_a_half_open_line_is_noticed_and_the_next_broker_taken(
    mosquitto: Mosquitto, proxied_broker: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A stopped proxy keeps the TCP connection open but passes nothing: only the keep-alive notices."""
    port, proxy = proxied_broker
    sent = frames(20)

    async def scenario() -> None:
        # a 2 s keep-alive (gateway.yaml allows 5 s and more) to keep the test short
        account = central(port).model_copy(update={"keepalive_s": 2})
        account = account.model_copy(
            update={"brokers": [f"{LOOPBACK}:{port}", f"{LOOPBACK}:{mosquitto.port}"]}
        )
        with Outbox(tmp_path / "outbox", max_bytes=10 << 20) as outbox:
            uplink = Uplink(account, outbox, reconnect_min_s=0.2)
            async with running(uplink, outbox):
                await until(lambda: uplink.stats().connected, "the connection through the proxy")
                assert uplink.stats().broker == f"{LOOPBACK}:{port}"
                os.killpg(proxy.pid, signal.SIGSTOP)  # the line is cut, TCP stays open
                for f in sent[:10]:
                    outbox.put(f)
                await until(lambda: not uplink.stats().connected, "the keep-alive timeout", within_s=10)
                assert "no packet from the broker" in (uplink.stats().last_error or "")
                # the proxied broker does not answer any more: the next one in turn is taken
                await until(lambda: uplink.stats().connected, "the second broker", within_s=20)
                assert uplink.stats().broker == f"{LOOPBACK}:{mosquitto.port}"
                for f in sent[10:]:
                    outbox.put(f)
                await until(lambda: outbox.stats().depth == 0, "everything acknowledged")
                assert uplink.stats().acked >= len(sent)

    run(scenario)
