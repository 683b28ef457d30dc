"""Publish QoS 1 messages with a bounded window of unacknowledged ones (a gateway's uplink).

paho keys in-flight QoS 1 messages by a 16-bit id: more than 65,535 unacknowledged at once overwrite
each other, so the window stays well below that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class PublishError(Exception):
    pass


class ConnectionRefused(PublishError):
    """The broker refused the connection (wrong password, a revoked account, a client id not ours)."""


class Publisher:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        window: int = 1000,
        persistent: bool = False,
    ) -> None:
        # persistent: the broker keeps the session, so messages in flight survive a broker restart
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            clean_session=not persistent,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        # our semaphore bounds the window; paho's own limit would walk every unacknowledged message on
        # each PUBACK (Client._update_inflight), capping a publisher near 5k msg/s
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)
        self._window = threading.BoundedSemaphore(window)
        self._window_size = window
        self._connected = threading.Event()
        self._answered = threading.Event()  # CONNACK received, success or not
        self._refusal: str | None = None
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._host, self._port = host, port
        self.published = 0

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        else:
            self._connected.set()
        self._answered.set()

    def _on_publish(self, _c: Any, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        self.published += 1
        self._window.release()

    def __enter__(self) -> Publisher:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        self._answered.wait(10)
        if not self._connected.is_set():
            self.close()
            if self._refusal is not None:
                raise ConnectionRefused(f"{self._host}:{self._port} refused the connection: {self._refusal}")
            raise PublishError(f"no connection to {self._host}:{self._port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        if qos:
            self._window.acquire()
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_NO_CONN:
            raise PublishError(f"publish to {topic!r} failed: {paho.error_string(info.rc)}")
        if not qos:
            self.published += 1

    def publish_all(self, messages: Iterable[tuple[str, bytes]], *, qos: int = 1) -> int:
        sent = 0
        for topic, payload in messages:
            self.publish(topic, payload, qos=qos)
            sent += 1
        return sent

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every QoS 1 message is acknowledged by the broker."""
        window = self._window
        acquired = 0
        try:
            while acquired < self._window_size:
                if not window.acquire(timeout=timeout):
                    raise PublishError("broker did not acknowledge every message in time")
                acquired += 1
        finally:
            for _ in range(acquired):
                window.release()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
