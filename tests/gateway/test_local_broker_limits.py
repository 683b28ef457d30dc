"""The bundle's local Mosquitto as shipped caps a device's message size (review of issue 15, L1/H4): a
device cannot fill the forwarder's memory or the outbox with 1 MB messages."""

from __future__ import annotations

import queue
from pathlib import Path

from ingest.gateway.bundle import DEVICES_USER, BundleSettings, gateway_config, pack
from tests.gateway.bundle_world import BundledLocalBroker, unpack
from tests.registry.mqtt_client import TestMqttClient

LIMIT = 256 << 10


def test_the_local_broker_refuses_messages_above_256_kib(tmp_path: Path) -> None:
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None)
    config = gateway_config("haus-m", username="gw-haus-m", password="a password", settings=settings)
    unpack(pack(config, meters=[], settings=settings), tmp_path)
    folder = tmp_path / "reallabor-gateway-haus-m"
    lines = (folder / "local-devices.txt").read_text().splitlines()
    devices = dict(line.split() for line in lines if line.startswith("  ") and len(line.split()) == 2)
    local = config.local_broker
    assert local is not None
    assert local.username is not None
    assert local.password is not None
    with BundledLocalBroker(tmp_path / "local", bundle=folder) as broker:
        forwarder = TestMqttClient(
            broker.port, username=local.username, password=local.password.get_secret_value()
        )
        assert forwarder.connect() == "Success"
        try:
            assert forwarder.subscribe("tele/#") == "Granted QoS 1"
            for size in (LIMIT + 1024, LIMIT - 1024):  # the big one ends the device's connection
                device = TestMqttClient(broker.port, username=DEVICES_USER, password=devices["password"])
                assert device.connect() == "Success"
                device.client.publish(f"tele/plug-{size}/SENSOR", b"x" * size, qos=0)
                device.client.publish(f"tele/plug-{size}/END", b"", qos=0)
                if size > LIMIT:
                    assert device.disconnected.wait(5), "the broker kept a device that sent 257 KiB"
                device.close()
            got = []
            while True:
                try:
                    got.append(forwarder.messages.get(timeout=5))
                except queue.Empty:
                    break
                if got[-1][0] == f"tele/plug-{LIMIT - 1024}/END":
                    break
        finally:
            forwarder.close()
    assert [(topic, len(payload)) for topic, payload in got] == [
        (f"tele/plug-{LIMIT - 1024}/SENSOR", LIMIT - 1024),
        (f"tele/plug-{LIMIT - 1024}/END", 0),
    ]
