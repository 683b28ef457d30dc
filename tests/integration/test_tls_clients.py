"""The broker admin (ingest/dynsec.py) and the commissioning check's listener over TLS and through the
broker list, as the ingester connects (``mqtt.tls``, ``mqtt.brokers``): against Mosquitto with the
dynamic-security plugin and a TLS listener (tests/certs.py). The first address is dead each time; a wrong
CA and a name the certificate lacks end in BrokerUnavailable naming the address and the reason."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.commissioning.errors import BrokerUnavailable as ListenerUnavailable
from ingest.commissioning.listener import access_for, next_message
from ingest.config import BrokerAdminSettings, MqttSettings
from ingest.dynsec import BrokerUnavailable, DynsecAdmin, DynsecBootstrap, admin_from_settings
from ingest.localservices import LOOPBACK, free_port
from tests.certs import Authority, TlsMosquitto, make_ca, server_cert

pytestmark = pytest.mark.integration

BOOTSTRAP = DynsecBootstrap(admin_password="tls-admin-Vb7rQ2xM")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_ca(tmp_path_factory.mktemp("ca"), "broker-ca")


@pytest.fixture(scope="module")
def broker(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    directory = tmp_path_factory.mktemp("tls-dynsec-broker")
    server = server_cert(ca, directory / "certs")
    with TlsMosquitto(directory, server=server, dynsec=BOOTSTRAP) as running:
        yield running


def _mqtt(broker: TlsMosquitto, ca_file: Path, **tls: Any) -> MqttSettings:
    """The ingester's settings: a dead address first, then the TLS listener (never the plain one)."""
    return MqttSettings(
        brokers=[f"{LOOPBACK}:{free_port()}", f"{LOOPBACK}:{broker.tls_port}"],
        tls={"ca_file": ca_file, **tls},
    )


def _admin(mqtt: MqttSettings) -> DynsecAdmin:
    settings = BrokerAdminSettings(password=BOOTSTRAP.admin_password, timeout_s=5)
    admin = admin_from_settings(admin=settings, mqtt=mqtt)
    assert admin is not None
    return admin


def _publish_plain(broker: TlsMosquitto, username: str, password: str, client_id: str, topic: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    client.connect(LOOPBACK, broker.port)
    client.loop_start()
    try:
        client.publish(topic, b'{"power": 1}', qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_admin_provisions_and_listener_hears_over_tls(broker: TlsMosquitto, ca: Authority) -> None:
    gateway = f"gw{uuid.uuid4().hex[:6]}"
    username, password, client_id = f"gw-{gateway}", "gw-pass-Hc3nT8", f"client-{gateway}"
    mqtt = _mqtt(broker, ca.cert)
    with _admin(mqtt) as admin:
        admin.provision_gateway(gateway=gateway, username=username, password=password, client_id=client_id)
        assert admin.client_ids()[username] == client_id
        # the dead first address skipped; the TLS listener speaks TLS only (plain MQTT gets no CONNACK)
        assert (admin.host, admin.port) == (LOOPBACK, broker.tls_port)

    topic = f"lab/{gateway}/meter/state"
    access = access_for(mqtt, "admin", BOOTSTRAP.admin_password)
    assert "TLS" in repr(access)
    assert BOOTSTRAP.admin_password not in repr(access)
    listening = threading.Event()

    async def listen() -> Any:
        return await next_message(access, [topic], timeout_s=5, on_listening=listening.set)

    async def run() -> Any:
        waiting = asyncio.create_task(listen())
        await asyncio.to_thread(listening.wait, 5)
        await asyncio.to_thread(_publish_plain, broker, username, password, client_id, topic)
        return await waiting

    observed = asyncio.run(run())
    assert observed is not None
    assert (observed.topic, observed.payload) == (topic, b'{"power": 1}')


def test_server_name_is_the_name_checked(broker: TlsMosquitto, ca: Authority) -> None:
    # the certificate carries 127.0.0.1 and localhost: connecting to 127.0.0.1 as "localhost" passes ...
    with _admin(_mqtt(broker, ca.cert, server_name="localhost")) as admin:
        assert BOOTSTRAP.admin_username in admin.client_ids()
    # ... as a name it lacks, it is refused, though the address itself is in the certificate
    misnamed = _mqtt(broker, ca.cert, server_name="mqtt.example.org")
    with _admin(misnamed) as admin, pytest.raises(BrokerUnavailable, match=r"mqtt\.example\.org"):
        admin.client_ids()
    access = access_for(misnamed, "admin", "x")
    with pytest.raises(ListenerUnavailable, match=r"not trusted .*mqtt\.example\.org"):
        asyncio.run(next_message(access, ["lab/x"], timeout_s=1))


def test_a_wrong_ca_is_a_clear_refusal(broker: TlsMosquitto, tmp_path: Path) -> None:
    other = make_ca(tmp_path, "other-ca")
    mqtt = _mqtt(broker, other.cert)
    tls_address = f"{LOOPBACK}:{broker.tls_port}: TLS certificate not trusted (unable to get local issuer"
    with _admin(mqtt) as admin, pytest.raises(BrokerUnavailable) as refused:
        admin.client_ids()
    message = str(refused.value)
    assert tls_address in message
    assert mqtt.brokers[0] in message
    assert BOOTSTRAP.admin_password not in message
    with pytest.raises(ListenerUnavailable) as refused_listener:
        asyncio.run(next_message(access_for(mqtt, "admin", BOOTSTRAP.admin_password), ["lab/x"], timeout_s=1))
    assert tls_address in str(refused_listener.value)


def test_the_settings_reach_both_clients(broker: TlsMosquitto, ca: Authority) -> None:
    from ingest.commissioning.setup import broker_access
    from ingest.config import Settings
    from ingest.registry.cli import _broker

    settings = Settings(mqtt=_mqtt(broker, ca.cert), broker_admin={"password": BOOTSTRAP.admin_password})
    access = broker_access(settings)
    assert access.tls is not None
    assert access.addresses() == settings.mqtt.addresses()
    with _broker(settings) as admin:
        assert BOOTSTRAP.admin_username in admin.client_ids()
