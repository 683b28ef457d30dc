"""What the gateway-host tests feed and watch: a simulated meter's readings, and an MQTT 5 subscriber on
the central broker that keeps each message's user properties (the gateway's read time)."""

from __future__ import annotations

import queue
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ingest.localservices import LOOPBACK
from simulators import formats
from simulators.engine import Message

SML, DSMR, TASMOTA = "hh-001-ehz", "hh-006-p1", "hh-002-em"
Received = tuple[str, bytes, dict[str, str]]  # topic, payload, user properties


def meter_messages(gateway: str, n: int) -> list[Message]:
    """The n-th reading of an SML meter, a DSMR meter and a Tasmota read head, as the simulator sends them."""
    now = int(time.time())
    phases = (0.5, 0.3, 0.2)
    state = formats.MeterState(now, 1_234_000.0 + n, 5_000.0, 420.0, phases, 231.0, "0a01454d48000001")
    sml, _, _ = formats.sml_frame(state)
    dsmr, _, _ = formats.dsmr_telegram(state, (600_000.0, 634_000.0 + n, 2_000.0, 3_000.0))
    tasmota, _, _ = formats.tasmota_sml(state)
    return [
        Message(f"lab/{gateway}/sml/{SML}", sml, "sml", "meter", gateway, 1, now),
        Message(f"lab/{gateway}/dsmr/{DSMR}", dsmr, "dsmr", "meter", gateway, 6, now),
        Message(f"lab/{gateway}/tele/{TASMOTA}/SENSOR", tasmota, "tasmota-sml", "meter", gateway, 2, now),
    ]


class CentralSubscriber:
    """An MQTT 5 subscriber on the central broker: topic, payload and user properties of each message."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        subscribed: queue.Queue[int] = queue.Queue()
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: subscribed.put(1)
        client.connect(LOOPBACK, port)
        client.loop_start()
        client.subscribe(topic, qos=1)
        subscribed.get(timeout=10)
        self.client = client

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        props = getattr(message.properties, "UserProperty", None) or []
        self.messages.put((message.topic, bytes(message.payload), dict(props)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
