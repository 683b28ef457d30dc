"""A blocking MQTT v5 test client on paho: connect result, PUBACK reason codes, received messages."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.localservices import LOOPBACK


class TestMqttClient:
    __test__ = False  # not a test class

    def __init__(self, port: int, *, username: str, password: str, client_id: str | None = None) -> None:
        """``client_id``: the id to connect with (an account's bound id); default a random one."""
        self.port = port
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(60, 120)  # no quick reconnects muddling what a test sees
        self.connack: Any = None
        self.disconnected = threading.Event()
        self.disconnect_reason: Any = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._connected = threading.Event()
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self._subscribed = threading.Event()
        self._suback: list[Any] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = self._on_subscribe

    def connect(self, timeout: float = 5.0, *, clean_start: bool = True, session_expiry_s: int = 0) -> str:
        """The CONNACK reason as text ('Success', 'Not authorized', ...).

        ``clean_start=False`` with ``session_expiry_s > 0``: resume or keep a persistent session.
        """
        properties = None
        if session_expiry_s:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = session_expiry_s
        self._connected.clear()
        self.client.connect(LOOPBACK, self.port, keepalive=30, clean_start=clean_start, properties=properties)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError("no CONNACK")
        return str(self.connack)

    def publish(self, topic: str, payload: bytes = b"{}", timeout: float = 5.0) -> str:
        """Publish QoS 1; the PUBACK reason as text."""
        info = self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + timeout
        with self._acked:
            while info.mid not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no PUBACK for {topic}")
                self._acked.wait(left)
            return str(self._acks[info.mid])

    def subscribe(self, topic: str, timeout: float = 5.0) -> str:
        """The SUBACK reason as text ('Granted QoS 1', 'Not authorized', ...)."""
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"no SUBACK for {topic}")
        return str(self._suback[0])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connack = reason
        self._connected.set()
        if reason.is_failure:
            self.client.disconnect()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        self._suback = reasons
        self._subscribed.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self.disconnect_reason is None:
            self.disconnect_reason = reason
        self.disconnected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()


def connect_result(port: int, username: str, password: str, *, client_id: str | None = None) -> str:
    client = TestMqttClient(port, username=username, password=password, client_id=client_id)
    try:
        return client.connect()
    finally:
        client.close()
