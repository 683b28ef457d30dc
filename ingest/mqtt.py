"""MQTT adapter: a persistent-session subscriber on paho-mqtt, driven by the asyncio loop, manual ack.

Why not aiomqtt: it acknowledges every QoS 1 message as soon as paho hands it over, and drops messages
when its queue is full. We acknowledge a message only after its batch is safe (so a crash makes the
broker redeliver), which needs paho's ``manual_ack``. The loop integration is the same as aiomqtt's:
paho's socket callbacks register readers/writers on the event loop; nothing blocks the loop.

Only :class:`Message` and :class:`MqttError` leave this module; nothing from paho does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.backoff import Backoff
from ingest.config import MqttSettings

log = logging.getLogger(__name__)

# Mosquitto counts the messages its queue limits dropped here (retained, updated every sys_interval)
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class MqttError(Exception):
    """The connection to the broker failed or ended."""


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    received_ns: int
    qos: int
    mid: int
    connection: int  # which connection delivered it; an ack only makes sense on that one


class MqttSource:
    """Subscribes to ``topics`` and puts every message into ``queue``; reconnects with backoff.

    The broker never has more than ``receive_maximum`` unacknowledged messages out to us, so the
    queue is bounded by the acks we give: not acknowledging is how backpressure reaches the broker.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        topics: list[str],
        queue: asyncio.Queue[Message],
        on_broker_drops: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_broker_drops = on_broker_drops
        self._broker_dropped = 0
        self.topics = [f"$share/{settings.shared_group}/{t}" if settings.shared_group else t for t in topics]
        self.queue = queue
        self.connected = asyncio.Event()
        self._client: paho.Client | None = None
        self._connection = 0
        self._closing = False
        self._closed = asyncio.Event()

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = Backoff(minimum=self.settings.reconnect_min_s, maximum=self.settings.reconnect_max_s)
        while not self._closing:
            try:
                await self._connection_lifetime(backoff)
            except MqttError as exc:
                if self._closing:
                    break
                delay = backoff.next_delay()
                log.warning(
                    "mqtt %s:%s: %s; reconnecting in %.1f s",
                    self.settings.host,
                    self.settings.port,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge messages of the current connection; returns how many acks were sent."""
        client, current, sent = self._client, self._connection, 0
        if client is None:
            return 0
        for message in messages:
            if message.qos and message.connection == current:
                client.ack(message.mid, message.qos)
                sent += 1
        return sent

    async def disconnect(self, *, wait_s: float = 5.0) -> None:
        """Send the pending acks and DISCONNECT (the broker keeps our session), then stop reconnecting."""
        self._closing = True
        client = self._client
        if client is None or not self.connected.is_set():
            return
        client.disconnect()
        try:
            await asyncio.wait_for(self._closed.wait(), wait_s)
        except TimeoutError:
            log.warning("mqtt: no clean disconnect within %.0f s", wait_s)

    def _note_broker_drops(self, payload: bytes | bytearray) -> None:
        try:
            dropped = int(payload)
        except ValueError:
            return
        if dropped > self._broker_dropped and self.on_broker_drops is not None:
            self.on_broker_drops(dropped)
        self._broker_dropped = dropped

    async def _connection_lifetime(self, backoff: Backoff) -> None:
        loop = asyncio.get_running_loop()
        self._closed.clear()
        self._connection += 1
        connection = self._connection
        connected: asyncio.Future[None] = loop.create_future()
        subscribed: asyncio.Future[None] = loop.create_future()
        closed: asyncio.Future[str] = loop.create_future()
        client = self._new_client(loop, connection, connected, subscribed, closed)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        properties.ReceiveMaximum = self.settings.receive_maximum
        try:
            await loop.run_in_executor(
                None,
                functools.partial(
                    client.connect,
                    self.settings.host,
                    self.settings.port,
                    self.settings.keepalive_s,
                    clean_start=False,
                    properties=properties,
                ),
            )
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot connect: {exc}") from exc
        self._client = client
        misc = asyncio.create_task(self._misc_loop(client), name="mqtt-misc")
        try:
            await self._await_or_closed(connected, closed, "CONNACK", wait_s=self.settings.keepalive_s)
            subscriptions: list[tuple[str, int]] = [(topic, self.settings.qos) for topic in self.topics]
            client.subscribe(subscriptions)
            await self._await_or_closed(subscribed, closed, "SUBACK", wait_s=self.settings.keepalive_s)
            if self.on_broker_drops is not None:
                client.subscribe(BROKER_DROPPED_TOPIC, 0)  # a broker may refuse $SYS: not awaited
            backoff.reset()
            self.connected.set()
            log.info(
                "mqtt connected to %s:%s as %s, subscribed to %s",
                self.settings.host,
                self.settings.port,
                self.settings.client_id,
                ", ".join(self.topics),
            )
            reason = await closed
            raise MqttError(f"connection lost ({reason})")
        finally:
            self.connected.clear()
            self._closed.set()
            misc.cancel()
            if self._client is client:
                self._client = None
            client.on_socket_close = None
            client.disconnect()
            sock = client.socket()
            if isinstance(sock, socket.socket):
                loop.remove_reader(sock)
                loop.remove_writer(sock)

    @staticmethod
    async def _await_or_closed(
        future: asyncio.Future[None], closed: asyncio.Future[str], what: str, *, wait_s: float
    ) -> None:
        either: set[asyncio.Future[Any]] = {future, closed}
        done, _ = await asyncio.wait(either, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            future.result()
            return
        if closed in done:
            raise MqttError(f"connection closed before {what} ({closed.result()})")
        raise MqttError(f"no {what} within {wait_s} s")

    async def _misc_loop(self, client: paho.Client) -> None:
        while True:
            await asyncio.sleep(1)
            client.loop_misc()

    def _new_client(
        self,
        loop: asyncio.AbstractEventLoop,
        connection: int,
        connected: asyncio.Future[None],
        subscribed: asyncio.Future[None],
        closed: asyncio.Future[str],
    ) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        if self.settings.username is not None:
            password = self.settings.password.get_secret_value() if self.settings.password else None
            client.username_pw_set(self.settings.username, password)
        queue = self.queue

        def settle(future: asyncio.Future[Any], error: str | None = None) -> None:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(MqttError(error))

        def on_connect(_c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
            settle(connected, f"broker refused the connection: {reason}" if reason.is_failure else None)

        def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
            refused = [
                f"{topic}: {code}"
                for topic, code in zip(self.topics, reasons, strict=False)
                if code.is_failure
            ]
            settle(subscribed, f"subscription refused: {'; '.join(refused)}" if refused else None)

        def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = message._topic.decode("utf-8", "replace")  # broker should have refused it
            if topic == BROKER_DROPPED_TOPIC:
                self._note_broker_drops(message.payload)
                return
            queue.put_nowait(
                Message(topic, bytes(message.payload), time.time_ns(), message.qos, message.mid, connection)
            )

        def on_disconnect(_c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
            if not closed.done():
                closed.set_result(str(reason))

        def on_socket_open(c: paho.Client, _u: Any, sock: Any) -> None:
            # called from the executor thread during connect()
            def register() -> None:
                loop.add_reader(sock, c.loop_read)

            loop.call_soon_threadsafe(register)

        def on_socket_close(_c: Any, _u: Any, sock: Any) -> None:
            loop.remove_reader(sock)
            loop.remove_writer(sock)
            if not closed.done():
                closed.set_result("socket closed")

        def on_socket_register_write(c: paho.Client, _u: Any, sock: Any) -> None:
            def write() -> None:
                result = c.loop_write()
                if sock.fileno() == -1:
                    return  # closed by paho (after DISCONNECT); on_socket_close cleaned up
                if result != MQTTErrorCode.MQTT_ERR_SUCCESS or not c.want_write():
                    loop.remove_writer(sock)

            loop.call_soon_threadsafe(loop.add_writer, sock, write)

        def on_socket_unregister_write(_c: Any, _u: Any, sock: Any) -> None:
            loop.remove_writer(sock)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_disconnect = on_disconnect
        client.on_socket_open = on_socket_open
        client.on_socket_close = on_socket_close
        client.on_socket_register_write = on_socket_register_write
        client.on_socket_unregister_write = on_socket_unregister_write
        return client
