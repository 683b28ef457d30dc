"""The local forwarder in-process against a real Mosquitto and a real outbox: what a device on the local
broker can and cannot do to it (review of issue 15: H1 poison pill, H3 backdating, M8 stale filters).

The forwarder runs in its own thread with its own event loop; what it forwarded is read back from the
outbox on disk after it stopped (what the uplink would send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.gateway.config import LocalBroker
from ingest.gateway.frames import Frame
from ingest.gateway.local import LocalForwarder
from ingest.gateway.outbox import Outbox
from ingest.localservices import LOOPBACK, Mosquitto
from tests.helpers import wait_for

GATEWAY = "haus-t"
BACKDATED_NS = 1_600_000_000_000_000_000  # 2020-09-13: what a device claims as its read time


class RunningForwarder:
    """A LocalForwarder on ``port`` with an outbox in ``directory``, in a thread, until :meth:`stop`."""

    def __init__(self, port: int, directory: Path, *, topics: list[str]) -> None:
        self.settings = LocalBroker(host=LOOPBACK, port=port, topics=topics)
        self.directory = directory
        self.forwarder: LocalForwarder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_for(
            lambda: self.forwarder is not None and self.forwarder.connected, timeout=10, what="subscribed"
        )

    def _run(self) -> None:
        async def main() -> None:
            with Outbox(self.directory, max_bytes=20_000_000) as outbox:
                self.forwarder = LocalForwarder(self.settings, gateway=GATEWAY, outbox=outbox)
                self._loop = asyncio.get_running_loop()
                self._task = asyncio.current_task()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.forwarder.run()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc

    @property
    def forwarded(self) -> int:
        assert self.forwarder is not None
        return self.forwarder.stats.forwarded

    @property
    def stats(self) -> tuple[int, int]:
        assert self.forwarder is not None
        return self.forwarder.stats.forwarded, self.forwarder.stats.skipped

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the forwarder did not stop"
        assert self._error is None, repr(self._error)


def forwarded_frames(directory: Path) -> list[Frame]:
    """Every frame in the outbox, oldest first (opened after the forwarder stopped)."""
    with Outbox(directory, max_bytes=20_000_000) as outbox:
        return [frame for _, frame in outbox.take(10_000)]


def device(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="plug-under-test", protocol=paho.MQTTv5)
    client.connect(LOOPBACK, port)
    client.loop_start()
    return client


def publish(client: paho.Client, topic: str, payload: bytes, properties: Properties | None = None) -> None:
    client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(5)


def test_a_message_that_cannot_be_forwarded_is_counted_acknowledged_and_skipped(
    local_broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """H1: a legal 65,530-byte native topic is too long under lab/<gateway>/; it used to crash the forwarder
    for good (the persistent session sent it again after every restart)."""
    outbox = tmp_path / "outbox"
    caplog.set_level(logging.WARNING, logger="ingest.gateway.local")
    forwarder = RunningForwarder(local_broker.port, outbox, topics=["tele/#"])
    plug = device(local_broker.port)
    try:
        publish(plug, "tele/" + "x" * 65525, b"{}")
        for n in range(3):
            publish(plug, "tele/plug-1/SENSOR", b'{"n":%d}' % n)
        publish(plug, "tele/" + "y" * 65525, b"{}")
        wait_for(
            lambda: forwarder.stats == (3, 2), timeout=10, what=f"3 forwarded, 2 skipped: {forwarder.stats}"
        )
    finally:
        forwarder.stop()
    warnings = [r for r in caplog.records if "not forwarded" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage()[:200] for r in warnings]  # once a minute, not per message
    assert len(warnings[0].getMessage()) < 400  # the topic's first bytes, not 65 KB of it

    again = RunningForwarder(local_broker.port, outbox, topics=["tele/#"])  # a restart
    try:
        publish(plug, "tele/plug-1/SENSOR", b'{"n":3}')
        wait_for(lambda: again.stats[0] == 1, timeout=10, what="the message after the restart")
        assert again.stats == (1, 0)  # the long ones were acknowledged: not sent again
    finally:
        again.stop()
        plug.disconnect()
        plug.loop_stop()
    frames = forwarded_frames(outbox)
    assert [(f.topic, f.payload) for f in frames] == [
        (f"lab/{GATEWAY}/tele/plug-1/SENSOR", b'{"n":%d}' % n) for n in range(4)
    ]


def test_a_devices_read_ns_property_is_not_its_read_time(local_broker: Mosquitto, tmp_path: Path) -> None:
    """H3: the forwarder stamps a local device's message with its own time of receipt."""
    forwarder = RunningForwarder(local_broker.port, tmp_path / "outbox", topics=["tele/#"])
    plug = device(local_broker.port)
    backdated = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    backdated.UserProperty = ("read_ns", str(BACKDATED_NS))
    before = time.time_ns()
    try:
        publish(plug, "tele/haus-t-ehz/SENSOR", b'{"SML":{"Verbrauch":1.0}}', backdated)
        wait_for(lambda: forwarder.forwarded == 1, timeout=10, what="the message forwarded")
    finally:
        forwarder.stop()
        plug.disconnect()
        plug.loop_stop()
    after = time.time_ns()
    [frame] = forwarded_frames(tmp_path / "outbox")
    assert frame.topic == f"lab/{GATEWAY}/tele/haus-t-ehz/SENSOR"
    assert before <= frame.read_ns <= after, (frame.read_ns, before)


def test_filters_removed_from_the_configuration_leave_the_session(
    local_broker: Mosquitto, tmp_path: Path
) -> None:
    """M8: the persistent session kept every filter ever subscribed; now the forwarder unsubscribes those no
    longer configured, so nothing of them arrives and overlapping old/new filters deliver once."""
    outbox = tmp_path / "outbox"
    RunningForwarder(local_broker.port, outbox, topics=["#"]).stop()  # a technician tried "#"
    forwarder = RunningForwarder(local_broker.port, outbox, topics=["zigbee2mqtt/+"])
    plug = device(local_broker.port)
    try:
        publish(plug, "stat/plug/RESULT", b"1")
        publish(plug, "whatever/x", b"2")
        publish(plug, "zigbee2mqtt/th-1", b"3")
        publish(plug, "zigbee2mqtt/last", b"4")  # in order behind the others on the same session
        wait_for(lambda: forwarder.forwarded >= 2, timeout=10, what="the zigbee2mqtt messages")
    finally:
        forwarder.stop()
        plug.disconnect()
        plug.loop_stop()
    topics = [f.topic for f in forwarded_frames(outbox)]
    assert topics == [f"lab/{GATEWAY}/zigbee2mqtt/th-1", f"lab/{GATEWAY}/zigbee2mqtt/last"]
    assert json.loads((outbox / "local-broker.json").read_text())["topics"] == ["zigbee2mqtt/+"]
