"""The bundle's local Mosquitto as shipped caps a device's message size (review of issue 15, L1/H4): a
device cannot fill the forwarder's memory or the outbox with 1 MB messages."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ingest.gateway.bundle import DEVICES_USER, BundleSettings, gateway_config, pack
from ingest.localservices import LOOPBACK
from tests.gateway.bundle_world import BundledLocalBroker, unpack
from tests.registry.mqtt_client import TestMqttClient

LIMIT = 256 << 10
FORWARDER_ID = "reallabor-haus-m-forwarder-0123456789abcdef"


def test_the_local_broker_drops_messages_above_256_kib(tmp_path: Path) -> None:
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
    login = {"username": local.username, "password": local.password.get_secret_value()}
    with BundledLocalBroker(tmp_path / "local", bundle=folder) as broker:
        forwarder = TestMqttClient(broker.port, client_id=FORWARDER_ID, **login)
        assert forwarder.connect() == "Success"
        # MQTT 3.1.1, as Tasmota, Shelly, ESPHome and zigbee2mqtt (by default) speak it
        device = paho.Client(CallbackAPIVersion.VERSION2, client_id="plug-1", protocol=paho.MQTTv311)
        device.username_pw_set(DEVICES_USER, devices["password"])
        disconnected = threading.Event()
        device.on_disconnect = lambda *_: disconnected.set()
        got: list[tuple[str, bytes]] = []
        try:
            assert forwarder.subscribe("tele/#") == "Granted QoS 1"
            device.connect(LOOPBACK, broker.port)
            device.loop_start()
            for size in (LIMIT + 1024, LIMIT - 1024, 0):
                device.publish(f"tele/plug-1/S{size}", b"x" * size, qos=1).wait_for_publish(5)
            while not got or got[-1][0] != "tele/plug-1/S0":
                try:
                    got.append(forwarder.messages.get(timeout=5))
                except queue.Empty:
                    break
            assert not disconnected.is_set()  # dropped, not thrown out: its next message comes
        finally:
            device.disconnect()
            device.loop_stop()
            forwarder.close()
    assert [(topic, len(payload)) for topic, payload in got] == [
        (f"tele/plug-1/S{LIMIT - 1024}", LIMIT - 1024),
        ("tele/plug-1/S0", 0),
    ]
