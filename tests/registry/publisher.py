"""A simulated device: publishes one payload again and again (QoS 1) from a thread until stopped.

Repeating keeps tests free of timing guesses: whenever the check starts listening, the next copy arrives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from tests.registry.mqtt_client import TestMqttClient


class Publisher:
    def __init__(
        self,
        port: int,
        *,
        username: str,
        password: str,
        client_id: str,
        topic: str,
        payload: Callable[[], bytes],
        interval_s: float = 0.3,
    ) -> None:
        self.client = TestMqttClient(port, username=username, password=password, client_id=client_id)
        self.topic = topic
        self.payload = payload
        self.interval_s = interval_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-device", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.client.publish(self.topic, self.payload()) == "Success":
                self.sent += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Publisher:
        assert self.client.connect() == "Success"
        self._thread.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()
