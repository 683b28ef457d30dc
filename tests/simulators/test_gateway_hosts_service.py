"""The demo's simulated gateway host with the real gateway service: socat pty pairs, a local Mosquitto,
``reallabor gateway run``, and the central broker (the session's Mosquitto) seeing what the gateway read:
the exact bytes, with the gateway's read time; a killed service is started again and carries on; afterwards
nothing of the host is left running."""

from __future__ import annotations

import queue
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.gateway.frames import READ_NS_PROPERTY
from ingest.localservices import LOOPBACK, Mosquitto
from simulators.gateway_hosts import FORWARDER_CLIENT_ID, GatewayHost, HostedSink, SerialMeter
from simulators.gateways import GatewayAccount, GatewaySink
from tests.simulators.gateway_feed import DSMR, SML, CentralSubscriber, Received, meter_messages

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def gateway() -> str:
    return f"gw-{uuid.uuid4().hex[:8]}"  # its own topics on the session's broker: lab/<gateway>/


@pytest.fixture
def central(mosquitto: Mosquitto, gateway: str) -> Iterator[CentralSubscriber]:
    subscriber = CentralSubscriber(mosquitto.port, f"lab/{gateway}/#")
    yield subscriber
    subscriber.close()


def test_live_messages_go_through_the_real_gateway_service(
    tmp_path: Path, mosquitto: Mosquitto, gateway: str, central: CentralSubscriber
) -> None:
    account = GatewayAccount(f"{gateway}-user", "pw", f"{gateway}-client")
    meters = [SerialMeter(SML, "sml"), SerialMeter(DSMR, "dsmr")]
    host = GatewayHost(
        tmp_path / gateway, gateway=gateway, account=account, meters=meters, central_port=mosquitto.port
    )
    direct = GatewaySink(LOOPBACK, mosquitto.port, {gateway: account})
    with direct, HostedSink(direct, [host]) as sink:
        # the history: directly, as before, without a read time
        history = meter_messages(gateway, 0)[0]
        sink(history)
        topic, payload, props = central.messages.get(timeout=10)
        assert (topic, payload) == (history.topic, history.payload)
        assert READ_NS_PROPERTY not in props

        sink.go_live()
        assert sink.failed == {}, host.service.tail()
        assert list(sink.live) == [gateway]
        seen, sent = _feed_until_through(sink, central, gateway, first=1)
        expected = {*(m.topic for m in meter_messages(gateway, 0)), f"lab/{gateway}/health"}
        assert set(seen) == expected, (set(seen), host.service.tail(), host.broker.tail())
        for topic, payload, props in seen.values():
            read_ns = int(props[READ_NS_PROPERTY])
            assert abs(read_ns - time.time_ns()) < 120 * 10**9, "read_ns is not the gateway's clock"
            if topic in sent:
                assert payload in sent[topic], f"{topic}: not the exact bytes the device sent"

        # the service killed (a crash, a power cut of the Pi): started again as systemd would
        assert sink.restart_ended() == []
        killed = host.service.process
        assert killed is not None
        killed.kill()
        killed.wait(10)
        assert sink.restart_ended() == [(gateway, -9)]
        again, _ = _feed_until_through(sink, central, gateway, first=1000)
        assert set(again) == expected, (set(again), host.service.tail())
        assert f" as {FORWARDER_CLIENT_ID} " in host.broker.tail(200)
        local_port = host.broker.port
        processes = [s.process for s in (host.service, host.broker, *host.lines)]
        assert all(p is not None and p.poll() is None for p in processes)
    # everything the host started has ended, its port is free and its links are gone
    assert all(p is not None and p.poll() is not None for p in processes)
    assert not any(line.gateway_end.exists() for line in host.lines)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free: nobody listens
        probe.bind((LOOPBACK, local_port))
    assert (tmp_path / gateway / "gateway.log").exists()
    assert (tmp_path / gateway / "outbox").is_dir()


def _feed_until_through(
    sink: HostedSink, central: CentralSubscriber, gateway: str, *, first: int
) -> tuple[dict[str, Received], dict[str, set[bytes]]]:
    """Readings from ``first`` on, a round every 0.3 s (a meter sends whether anyone reads or not), until one
    of them from each source and the gateway's health are through (45 s at most): the first received per
    topic, and what was sent per topic."""
    sent: dict[str, set[bytes]] = {}
    seen: dict[str, Received] = {}
    deadline = time.monotonic() + 45
    n = first
    while len(seen) < 4 and time.monotonic() < deadline:
        for message in meter_messages(gateway, n):
            sink(message)
            sent.setdefault(message.topic, set()).add(message.payload)
        n += 1
        try:
            while True:
                topic, payload, props = central.messages.get(timeout=0.3)
                if payload in sent.get(topic, {payload}):  # not a frame from before (sent again)
                    seen.setdefault(topic, (topic, payload, props))
        except queue.Empty:
            pass
    return seen, sent


def test_a_host_that_cannot_start_leaves_its_gateway_publishing_directly(
    tmp_path: Path, mosquitto: Mosquitto, gateway: str, central: CentralSubscriber
) -> None:
    account = GatewayAccount(f"{gateway}-user", "pw", f"{gateway}-client")
    meters = [SerialMeter(SML, "sml"), SerialMeter("HH-005", "sml")]  # gateway.yaml takes lower case only
    host = GatewayHost(
        tmp_path / gateway, gateway=gateway, account=account, meters=meters, central_port=mosquitto.port
    )
    direct = GatewaySink(LOOPBACK, mosquitto.port, {gateway: account})
    with direct, HostedSink(direct, [host]) as sink:
        sink.go_live()
        assert gateway in sink.failed
        assert sink.live == {}
        message = meter_messages(gateway, 1)[0]
        sink(message)
        topic, payload, props = central.messages.get(timeout=10)
        assert (topic, payload) == (message.topic, message.payload)
        assert READ_NS_PROPERTY not in props
        # what the host had started (its broker, the first socat pair) has ended again
        assert host.broker.process is None
        assert all(line.process is None for line in host.lines)
        assert not any(line.gateway_end.exists() for line in host.lines)
