"""A lean QoS 1 publisher for the benchmark: MQTT 3.1.1 over a plain socket, a bounded window of
unacknowledged messages, PUBLISH packets sent in chunks and PUBACKs read in bulk.

Why not paho here: the live trials need publishers that leave the two cores to the broker and the system
under test. paho costs ~40 µs CPU per QoS 1 message and four publisher processes took 75–125 % of a core
at 10–25k msg/s (docs/performance.md). Same interface as :class:`simulators.publisher.Publisher`.
"""

from __future__ import annotations

import select
import socket
import uuid

from ingest import mqtt_wire as wire

CHUNK = 64  # PUBLISH packets per send()


class WirePublisher:
    def __init__(self, host: str, port: int, *, window: int = 5_000) -> None:
        if not 0 < window < 65_535:
            raise ValueError("the window must stay below the 16-bit packet id space")
        self._address = (host, port)
        self._window = window
        self._sock: socket.socket | None = None
        self._parser = wire.PacketParser()
        self._out: list[bytes] = []
        self._packet_id = 0
        self._unacked = 0
        self.published = 0  # acknowledged by the broker

    def __enter__(self) -> WirePublisher:
        sock = socket.create_connection(self._address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        sock.sendall(wire.connect_v311(f"bench-pub-{uuid.uuid4().hex[:12]}", keepalive_s=60))
        while not any(c.kind == wire.CONNACK for c in self._read(block=True)):
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def publish(self, topic: str, payload: bytes) -> None:
        while self._unacked >= self._window:
            self._send()
            self._read(block=True)
        self._packet_id = self._packet_id % 65_535 + 1
        self._out.append(wire.publish_v311(topic.encode(), payload, self._packet_id))
        self._unacked += 1
        if len(self._out) >= CHUNK:
            self._send()
            self._read(block=False)

    def push(self) -> None:
        """Send what is buffered now (paced publishing: a message must not wait for its chunk)."""
        self._send()
        self._read(block=False)

    def flush(self) -> None:
        """Wait until the broker acknowledged everything published."""
        self._send()
        while self._unacked:
            self._read(block=True)

    def _send(self) -> None:
        if self._out and self._sock is not None:
            self._sock.sendall(b"".join(self._out))
            self._out.clear()

    def _read(self, *, block: bool) -> list[wire.Control]:
        assert self._sock is not None
        if not block and not select.select([self._sock], [], [], 0)[0]:
            return []
        data = self._sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the broker closed the connection")
        _, controls = self._parser.feed(data)
        acked = sum(1 for c in controls if c.kind == wire.PUBACK)
        self._unacked -= acked
        self.published += acked
        return controls
