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
from tests.gateway.test_uplink import READ_NS, run, running, until
from tests.helpers import wait_for


def frames(count: int) -> list[Frame]:
    prefix = uuid.uuid4().hex[:8]
    return [Frame(f"{prefix}/lab/gw-l/sml/m1", b"frame %d" % n, READ_NS + n) for n in range(count)]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> Path:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj",
            f"/CN={name}", cwd=directory)  # fmt: skip
    return directory / f"{name}.crt"


def make_server_cert(directory: Path, ca: str) -> tuple[Path, Path]:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={LOOPBACK}", cwd=directory
    )
    (directory / "san.ext").write_text(f"subjectAltName=IP:{LOOPBACK}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=directory)  # fmt: skip
    return directory / "server.crt", directory / "server.key"


class TlsMosquitto(Mosquitto):
    """The project's broker settings, with the listener speaking TLS only."""

    def __init__(self, directory: Path, *, certfile: Path, keyfile: Path) -> None:
        super().__init__(directory)
        self.certfile, self.keyfile = certfile, keyfile

    def command(self) -> list[str]:
        command = super().command()
        config = self.directory / "mosquitto.conf"
        tls = f"certfile {self.certfile}\nkeyfile {self.keyfile}\n"
        config.write_text(config.read_text().replace(f"listener {self.port} {LOOPBACK}\n", "") + tls)
        config.write_text(f"listener {self.port} {LOOPBACK}\n" + config.read_text())
        return command


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
    certs.mkdir()
    right, wrong = make_ca(certs, "central-ca"), make_ca(certs, "other-ca")
    certfile, keyfile = make_server_cert(certs, "central-ca")
    sent = frames(3)
    broker = TlsMosquitto(tmp_path / "broker", certfile=certfile, keyfile=keyfile)

    async def scenario() -> None:
        with Outbox(tmp_path / "right", max_bytes=10 << 20) as outbox:
            for f in sent:
                outbox.put(f)
            uplink = Uplink(central(broker.port, tls={"ca_file": right}), outbox)
            async with running(uplink, outbox):
                await until(lambda: uplink.stats().acked == 3, "three PUBACKs over TLS")
        with Outbox(tmp_path / "wrong", max_bytes=10 << 20) as outbox:
            outbox.put(sent[0])
            uplink = Uplink(central(broker.port, tls={"ca_file": wrong}), outbox, reconnect_min_s=5)
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
