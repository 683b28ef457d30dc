"""The local-broker forwarder under faults: what arrives centrally when the gateway service is killed with
SIGKILL while devices publish to the local Mosquitto, and when the local Mosquitto is killed too.

Devices are modelled as Tasmota/ESPHome behave: they publish while connected and keep nothing when they
are not (no device-side buffer). Each test prints its loss figures (``-s``) for docs/gateway.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.localservices import Mosquitto
from tests.gateway.test_service import GatewayProcess, gateway_yaml
from tests.helpers import wait_for

RATE_HZ = 50
SUBSCRIBED = "subscribed to tele/#"  # the forwarder's session is on the local broker


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "central") as broker:
        yield broker


@dataclass
class Sent:
    seq: int
    at: float  # time.monotonic() when published
    acked_at: float | None = None  # when the local broker's PUBACK came (QoS 1)


@dataclass
class Device:
    """A device publishing ``{"seq": n}`` at RATE_HZ while connected; nothing while it is not."""

    port: int
    name: str
    qos: int
    sent: list[Sent] = field(default_factory=list)
    skipped: int = 0  # readings not published: the broker was away
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.name, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_publish = self._on_publish
        self._by_mid: dict[int, Sent] = {}
        self._lock = threading.Lock()
        self.client.connect("127.0.0.1", self.port, keepalive=5)
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what=f"{self.name} connected")
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self._thread.start()

    def _on_publish(self, _client: object, _userdata: object, mid: int, *_: object) -> None:
        with self._lock:
            sent = self._by_mid.pop(mid, None)
        if sent is not None:
            sent.acked_at = time.monotonic()

    def _publish(self) -> None:
        seq = 0
        while not self._stop.wait(1 / RATE_HZ):
            if not self.client.is_connected():
                self.skipped += 1
                continue
            sent = Sent(seq, time.monotonic())
            payload = json.dumps({"Time": "2025-11-28T10:00:00", "seq": seq})
            with self._lock:
                info = self.client.publish(f"tele/{self.name}/SENSOR", payload, qos=self.qos)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self.sent.append(sent)
                    if self.qos:
                        self._by_mid[info.mid] = sent
                    else:
                        sent.acked_at = sent.at
            seq += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        time.sleep(0.3)  # the last PUBACKs
        self.client.disconnect()
        self.client.loop_stop()

    def acked(self) -> list[Sent]:
        return [s for s in self.sent if s.acked_at is not None]


class Collector:
    """A subscriber on the central broker: the seq numbers that arrived per device."""

    def __init__(self, port: int, gateway: str) -> None:
        self.gateway = gateway
        self.arrived: dict[str, set[int]] = {}
        self.copies = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collect-{gateway}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"lab/{gateway}/tele/#", qos=1)
        assert subscribed.wait(10), "no SUBACK from the central broker"

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        device = message.topic.split("/")[3]
        seq = json.loads(message.payload)["seq"]
        seen = self.arrived.setdefault(device, set())
        if seq in seen:
            self.copies += 1
        seen.add(seq)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector(central: Mosquitto, request: pytest.FixtureRequest) -> Iterator[Collector]:
    gateway = f"gw-local-{abs(hash(request.node.name)) % 10**6}"
    found = Collector(central.port, gateway)
    yield found
    found.close()


def _first(sent: list[Sent]) -> float:
    return min((s.at for s in sent), default=0)


def _last(sent: list[Sent]) -> float:
    return max((s.at for s in sent), default=0)


def _lost(device: Device, collector: Collector) -> list[Sent]:
    arrived = collector.arrived.get(device.name, set())
    return [s for s in device.acked() if s.seq not in arrived]


def test_service_killed_while_devices_publish(
    central: Mosquitto, local_broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    gateway = collector.gateway
    config = gateway_yaml(tmp_path, gateway=gateway, central_port=central.port, local_port=local_broker.port)
    service = GatewayProcess(config).start()
    service.wait_logged(SUBSCRIBED)
    qos1 = Device(local_broker.port, "plug-qos1", 1)
    qos0 = Device(local_broker.port, "plug-qos0", 0)
    try:
        time.sleep(1.0)
        killed = time.monotonic()
        service.stop(kill=True)  # a crash: nothing is flushed, nothing disconnects
        time.sleep(1.5)
        service.start()
        restarted = time.monotonic()
        time.sleep(1.0)
    finally:
        qos1.stop()
        qos0.stop()
    try:
        wait_for(
            lambda: not _lost(qos1, collector), timeout=20, what="every QoS 1 message the local broker took"
        )
    finally:
        service.stop()
    lost0 = _lost(qos0, collector)
    print(
        f"\nSIGKILL of the service for {restarted - killed:.1f} s: QoS 1 sent {len(qos1.acked())}, "
        f"lost 0, duplicates {collector.copies}; QoS 0 sent {len(qos0.sent)}, lost {len(lost0)}"
    )
    # QoS 1: the local broker kept them for the persistent session; the outbox had the rest
    assert not _lost(qos1, collector)
    # QoS 0: Mosquitto's default queues none for an offline session (the bundle's local broker does:
    # queue_qos0_messages true, tests/gateway/test_bundle.py); only those of the service's downtime go
    assert lost0, "expected the QoS 0 messages of the downtime to be lost"
    assert all(killed - 0.2 <= s.at <= restarted + 0.5 for s in lost0), [s.at - killed for s in lost0]


def test_local_broker_killed_too(
    central: Mosquitto, local_broker: Mosquitto, collector: Collector, tmp_path: Path
) -> None:
    gateway = collector.gateway
    config = gateway_yaml(tmp_path, gateway=gateway, central_port=central.port, local_port=local_broker.port)
    service = GatewayProcess(config).start()
    service.wait_logged(SUBSCRIBED)
    # a broker that has run for a while has saved our session (autosave); here: a clean stop saves it
    service.stop()
    local_broker.stop()
    local_broker.start()
    service.start()
    service.wait_logged(SUBSCRIBED)
    device = Device(local_broker.port, "plug-qos1", 1)
    try:
        time.sleep(1.0)
        service_killed = time.monotonic()
        service.stop(kill=True)
        time.sleep(1.0)  # the local broker queues for our session, in memory until its next autosave
        broker_killed = time.monotonic()
        local_broker.stop(kill=True)  # killed (or the power goes) before that autosave
        time.sleep(0.5)
        local_broker.start()  # the saved session is back: what devices publish now is queued for it
        broker_back = time.monotonic()
        time.sleep(1.0)
        service.start()
        time.sleep(0.5)
    finally:
        device.stop()
    try:
        after = [s for s in device.acked() if s.at > broker_back]
        assert after, "the device did not publish after the broker came back"
        wait_for(
            lambda: all(s.seq in collector.arrived.get(device.name, set()) for s in after),
            timeout=20,
            what="the messages published after the broker's restart",
        )
    finally:
        service.stop()
    lost = _lost(device, collector)
    print(
        f"\nservice SIGKILLed, {broker_killed - service_killed:.1f} s later the local broker too: "
        f"acknowledged to the device {len(device.acked())}, lost {len(lost)} = "
        f"{len(lost) / RATE_HZ:.2f} s of publishing, from {_first(lost) - service_killed:+.2f} s "
        f"to {_last(lost) - service_killed:+.2f} s after the service's kill; "
        f"readings the device could not publish while its broker was away: {device.skipped}"
    )
    # everything forwarded before the kill was in the outbox, everything published after the broker's
    # restart was queued in the restored session: the loss window is what the broker held only in memory
    # for our session while the service was down, between its last autosave and its death
    assert lost, "expected the broker's unsaved queue for our session to be lost"
    assert all(service_killed - 0.2 < s.at < broker_killed for s in lost), [
        s.at - service_killed for s in lost
    ]
