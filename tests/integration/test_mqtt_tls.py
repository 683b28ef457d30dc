"""The ingester's line to the broker over TLS (issue 17 item 3), against Mosquitto with a TLS listener and
certificates made here (tests/certs.py): end to end into InfluxDB through a host list whose first address
is dead; a wrong CA refused with a clear error while the ingester keeps retrying; a client certificate the
broker requires."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.config import MqttSettings
from ingest.localservices import LOOPBACK, Mosquitto, free_port
from ingest.mqtt import Message, MqttSource
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.certs import Authority, TlsMosquitto, client_cert, make_ca, server_cert
from tests.helpers import InfluxQuery, IngesterProcess, wait_for

START_MS = 1_764_320_400_000  # 2025-11-28T09:00:00Z
PASSWORD = "tls-test-Zq8vX2kP9wL4"  # the anonymous test broker takes any; it must never reach the log


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_ca(tmp_path_factory.mktemp("ca"), "broker-ca")


@pytest.fixture(scope="module")
def tls_broker(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    directory = tmp_path_factory.mktemp("tls-broker")
    with TlsMosquitto(directory, server=server_cert(ca, directory / "certs")) as broker:
        yield broker


@pytest.fixture(scope="module")
def client_cert_broker(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    """The TLS listener requires a client certificate from ``ca`` (require_certificate true)."""
    directory = tmp_path_factory.mktemp("client-cert-broker")
    server = server_cert(ca, directory / "certs")
    with TlsMosquitto(directory, server=server, client_ca=ca.cert) as broker:
        yield broker


class Ingester(IngesterProcess):
    """The ingester with an ``mqtt`` section of the test's own (brokers instead of host and port)."""

    def with_mqtt(self, mqtt: dict[str, Any], *, ready: bool = True) -> IngesterProcess:
        config = self.target.config()
        config["mqtt"] = {
            "client_id": self.target.client_id,
            "topic_prefix": self.target.topic_prefix,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
            **mqtt,
        }
        return self.launch(config, wait_ready=ready)


@pytest.fixture
def tls_ingester(ingester: IngesterProcess) -> Iterator[Ingester]:
    process = Ingester(ingester.target, ingester.config_path.parent, env=ingester.env)
    yield process
    process.stop()


def test_ingester_over_tls_writes_every_message_after_a_dead_first_address(
    tls_broker: TlsMosquitto, ca: Authority, tls_ingester: Ingester, influx: InfluxQuery
) -> None:
    dead = free_port()
    live = f"{LOOPBACK}:{tls_broker.tls_port}"
    tls_ingester.with_mqtt(
        {
            "brokers": [f"{LOOPBACK}:{dead}", live],
            "tls": {"ca_file": str(ca.cert)},
            "username": "ingest",
            "password": PASSWORD,
        }
    )
    target = tls_ingester.target
    sent = list(samples(make_fleet(5, seed=3), count=300, start_ms=START_MS, interval_s=10, seed=3))
    with Publisher(LOOPBACK, tls_broker.port) as publisher:  # the plain listener of the same broker
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in sent)
        publisher.flush()
    wait_for(lambda: influx.count("electricity", "power_w") == len(sent), timeout=20, what="300 points")
    log = tls_ingester.output()
    assert f"mqtt {LOOPBACK}:{dead}: cannot connect" in log
    assert f"trying {live}" in log
    assert f"mqtt connected to {live} (TLS)" in log
    assert PASSWORD not in log
    assert tls_ingester.process is not None
    assert tls_ingester.process.poll() is None


def test_a_wrong_ca_is_refused_clearly_and_the_ingester_keeps_trying(
    tls_broker: TlsMosquitto, tls_ingester: Ingester, tmp_path: Path
) -> None:
    other = make_ca(tmp_path, "other-ca")
    address = f"{LOOPBACK}:{tls_broker.tls_port}"
    tls_ingester.with_mqtt(
        {"host": LOOPBACK, "port": tls_broker.tls_port, "tls": {"ca_file": str(other.cert)}}, ready=False
    )
    refusal = f"ERROR ingest.mqtt: mqtt {address}: TLS certificate not trusted"

    def refusals() -> list[str]:
        return [line for line in tls_ingester.output().splitlines() if refusal in line]

    wait_for(lambda: len(refusals()) >= 3, timeout=8, interval=0.1, what="three refused attempts")
    assert f"mqtt.tls.ca_file {other.cert}" in refusals()[0], refusals()
    assert "unable to get local issuer certificate" in refusals()[0], refusals()
    assert "reconnecting in" in refusals()[0]
    assert tls_ingester.process is not None
    assert tls_ingester.process.poll() is None  # no crash
    assert "ingester ready" not in tls_ingester.output()
    assert "Traceback" not in tls_ingester.output()


def test_a_name_the_certificate_does_not_carry_is_refused(tls_broker: TlsMosquitto, ca: Authority) -> None:
    settings = _settings(tls_broker, {"ca_file": str(ca.cert), "server_name": "broker.example"})
    error = asyncio.run(_refused(settings))
    assert "TLS certificate not trusted (Hostname mismatch" in error
    assert "name checked broker.example" in error


def _settings(broker: TlsMosquitto, tls: dict[str, str], **options: Any) -> MqttSettings:
    return MqttSettings.model_validate(
        {
            "host": LOOPBACK,
            "port": broker.tls_port,
            "client_id": f"tls-{uuid.uuid4().hex[:8]}",
            "tls": tls,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
            **options,
        }
    )


async def _refused(settings: MqttSettings) -> str:
    """The first failed attempt's message (the source keeps retrying; cancelled here)."""
    errors: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    handler = Catch(logging.ERROR)  # what a configuration problem is logged as
    logging.getLogger("ingest.mqtt").addHandler(handler)
    source = MqttSource(settings, topics=["x/#"], queue=asyncio.Queue())
    runner = asyncio.create_task(source.run())
    try:
        for _ in range(80):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors, "no failed attempt within 4 s"
        assert not source.connected.is_set()
        assert not runner.done()  # still trying
        return errors[0]
    finally:
        logging.getLogger("ingest.mqtt").removeHandler(handler)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def _receive_one(settings: MqttSettings, broker: TlsMosquitto) -> Message:
    queue: asyncio.Queue[list[Message]] = asyncio.Queue()
    topic = f"tls/{uuid.uuid4().hex[:8]}"
    source = MqttSource(settings, topics=[f"{topic}/#"], queue=queue)
    runner = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), 5)
        with Publisher(LOOPBACK, broker.port) as publisher:
            publisher.publish(f"{topic}/m", b"over tls")
            publisher.flush()
        [message] = await asyncio.wait_for(queue.get(), 5)
        source.ack([message])
        await source.disconnect()
        return message
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def test_a_required_client_certificate(
    client_cert_broker: TlsMosquitto, ca: Authority, tmp_path: Path
) -> None:
    """With the certificate the broker asks for, messages come (checked under the name localhost); without
    it, or with one of another CA, the broker ends the handshake, said so, and the source keeps trying."""
    client = client_cert(ca, tmp_path, "ingester")
    with_cert = {"ca_file": str(ca.cert), "cert_file": str(client.cert), "key_file": str(client.key)}
    settings = _settings(client_cert_broker, with_cert | {"server_name": "localhost"})
    message = asyncio.run(_receive_one(settings, client_cert_broker))
    assert message.payload == b"over tls"

    address = f"{LOOPBACK}:{client_cert_broker.tls_port}"
    error = asyncio.run(_refused(_settings(client_cert_broker, {"ca_file": str(ca.cert)})))
    assert error.startswith(f"mqtt {address}: TLS: the broker requires a client certificate"), error
    assert "certificate required" in error, error

    stranger = client_cert(make_ca(tmp_path / "other", "other-ca"), tmp_path / "other", "stranger")
    foreign = {"ca_file": str(ca.cert), "cert_file": str(stranger.cert), "key_file": str(stranger.key)}
    error = asyncio.run(_refused(_settings(client_cert_broker, foreign)))
    expected = (
        f"mqtt {address}: TLS: the broker refused our client certificate mqtt.tls.cert_file {stranger.cert}"
    )
    assert error.startswith(expected), error


def test_brokers_in_turn_then_the_backoff_per_round(caplog: pytest.LogCaptureFixture) -> None:
    """Two dead addresses: the second is tried at once after the first, the backoff only after the round."""
    caplog.set_level(logging.WARNING, "ingest.mqtt")
    first, second = f"{LOOPBACK}:{free_port()}", f"{LOOPBACK}:{free_port()}"
    settings = MqttSettings.model_validate(
        {"brokers": [first, second], "reconnect_min_s": 0.2, "reconnect_max_s": 0.2}
    )

    async def attempts() -> None:
        source = MqttSource(settings, topics=["x/#"], queue=asyncio.Queue())
        runner = asyncio.create_task(source.run())
        await asyncio.sleep(0.7)  # three rounds or so
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(attempts())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 4, lines
    for n, line in enumerate(lines):
        tried, then = (first, f"trying {second}") if n % 2 == 0 else (second, "reconnecting in")
        assert line.startswith(f"mqtt {tried}: cannot connect"), lines
        assert then in line, lines


def test_a_node_that_goes_away_hands_over_to_the_next(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Connected to the first node, which stops: that node once more first, then the next, where the
    messages come (plain listeners: the order of tries is the same with TLS)."""
    caplog.set_level(logging.INFO, "ingest.mqtt")
    node = Mosquitto(tmp_path / "node-1").start()
    first, second = f"{LOOPBACK}:{node.port}", f"{LOOPBACK}:{mosquitto.port}"
    settings = MqttSettings.model_validate(
        {
            "brokers": [first, second],
            "client_id": f"nodes-{uuid.uuid4().hex[:8]}",
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
        }
    )
    topic = f"nodes/{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(settings, topics=[f"{topic}/#"], queue=queue)
        runner = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.connected.wait(), 5)
            assert source.broker == first
            await asyncio.to_thread(node.stop)
            for _ in range(200):  # 10 s
                if source.broker == second and source.connected.is_set():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"not connected to {second} within 10 s")
            with Publisher(LOOPBACK, mosquitto.port) as publisher:
                publisher.publish(f"{topic}/m", b"on the second node")
                publisher.flush()
            [message] = await asyncio.wait_for(queue.get(), 5)
            assert message.payload == b"on the second node"
            source.ack([message])
            await source.disconnect()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 15))
    finally:
        node.stop()
    lines = [r.getMessage() for r in caplog.records]
    lost = next(n for n, line in enumerate(lines) if line.startswith(f"mqtt {first}: connection lost"))
    assert "reconnecting in" in lines[lost]
    assert lines[lost + 1].startswith(f"mqtt {first}: cannot connect"), lines
    assert f"trying {second}" in lines[lost + 1], lines
    assert lines[-1].startswith(f"mqtt connected to {second} as"), lines
