"""What ``reallabor gateway run`` tells the technician, as a real process (review L5, M9): each port's
first good frame once per connect, and frames the central broker refused before are sent again at start
(after a fixed account or a new bundle they go through)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.gateway.frames import Frame
from ingest.gateway.outbox import Outbox
from ingest.localservices import Mosquitto
from simulators.formats import MeterState, sml_frame
from tests.gateway.test_service import GatewayProcess, PtyPair, central, gateway_yaml, pty_pair  # noqa: F401
from tests.helpers import wait_for


def test_first_frame_logged_once_and_refused_frames_sent_again_at_start(
    central: Mosquitto,  # noqa: F811
    pty_pair: PtyPair,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = gateway_yaml(
        tmp_path,
        gateway="gw-log",
        central_port=central.port,
        meters=[{"device": "hh-001-em", "port": str(pty_pair.port), "protocol": "sml"}],
    )
    refused = Frame("lab/gw-log/sml/hh-001-em", b"refused before the account was fixed", time.time_ns())
    with Outbox(tmp_path / "outbox", max_bytes=20_000_000) as outbox:  # an earlier run's refusal
        outbox.refuse(outbox.put(refused), refused, 0x87)
        assert outbox.refused_frames() == [(0x87, refused)]
    service = GatewayProcess(config)
    with subscribed(central.port, "lab/gw-log/#") as payloads:
        try:
            service.start()
            service.wait_logged("1 frame(s) the central broker refused before are sent again")
            state = MeterState(
                int(time.time()), 1_234_567.0, 890.0, 523.0, (1.0, 0.0, 0.0), 231.0, "0a01454d48"
            )
            frame, _, _ = sml_frame(state)
            service.wait_logged("hh-001-em: reading sml on")  # bytes written before may be lost
            for _ in range(3):
                pty_pair.write(frame)
                time.sleep(0.05)
            service.wait_logged(f"meter hh-001-em on {pty_pair.port}: first frame, {len(frame)} bytes")
            wait_for(
                lambda: refused.payload in payloads and payloads.count(frame) == 3,
                timeout=20,
                what="the refused frame and the meter's at the central broker",
            )
        finally:
            assert service.stop() == 0
    assert sum("first frame" in line for line in service.log) == 1  # once per connect, not per frame
    with Outbox(tmp_path / "outbox", max_bytes=20_000_000) as reopened:
        assert reopened.refused_frames() == []  # went through this time
        assert reopened.stats().depth == 0


@contextmanager
def subscribed(port: int, topic: str) -> Iterator[list[bytes]]:
    """The payloads a central subscriber receives on ``topic`` (QoS 1), while in the block."""
    payloads: list[bytes] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"central-{port}", protocol=mqtt.MQTTv311)
    client.on_message = lambda _c, _u, message: payloads.append(bytes(message.payload))
    client.on_subscribe = lambda *_: ready.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not ready.wait(10):
            raise AssertionError("no SUBACK within 10 s")
        yield payloads
    finally:
        client.loop_stop()
        client.disconnect()
