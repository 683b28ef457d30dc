"""MQTT adapter: a persistent-session MQTT 5 subscriber on an asyncio transport, manual acknowledgements.

We acknowledge a message only after its batch is safe (spool or quarantine), so a crash makes the broker
redeliver. aiomqtt cannot do that (it acknowledges on receipt and drops messages when its queue is full);
the first version of this adapter drove paho-mqtt with ``manual_ack``, but paho reads one packet per call
(one event-loop pass and 3–4 ``recv()`` per message: a quarter of the ingester's CPU). Now the packets are
our own (:mod:`ingest.mqtt_wire`): every ``recv()`` yields all the messages in it as one list, and the acks
of a batch go out in one write. ``bench/mqtt_receive.py`` measures both readers side by side.

Only :class:`Message` and :class:`MqttError` leave this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from ingest import mqtt_wire as wire
from ingest.backoff import Backoff
from ingest.config import MqttSettings
from ingest.mqtt_session import REFRESH_S, SessionMemory, SessionRecord, session_lost_message, stale_filters
from ingest.tls import client_context, not_trusted

log = logging.getLogger(__name__)

# Mosquitto counts the messages its queue limits dropped here (retained, updated every sys_interval)
BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
# a gateway's read time (MQTT 5 user property read_ns) is used from 2020 on, up to 5 min ahead of our clock
EARLIEST_READ_NS = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z
READ_NS_AHEAD_NS = 300_000_000_000
_IMPLAUSIBLE_LOG_INTERVAL_S = 60.0
# After a short read the socket is left alone for a moment, so that a trickle of messages comes in one read
# rather than one read (and one pass of every stage) per message; a backlog's reads are long and never wait.
READ_HOLD_S = 0.02
READ_HOLD_BELOW = 64 * 1024
_SUBSCRIPTION_ID, _SYS_SUBSCRIPTION_ID = 1, 2
_UNSUBSCRIPTION_ID = 3
_UNSUBSCRIBE, _UNSUBACK = 10, 11  # packet types mqtt_wire does not build or name
SESSION_TAKEN_OVER = 0x8E  # DISCONNECT reason: another client connected with our client id
# A connection that lasted this long resets the reconnect backoff; shorter ones let it grow, so that two
# processes with the same client id, each taking the session from the other, do not do so every 0.5 s.
STABLE_S = 10.0
# Mosquitto 2.0.11 closes a taken-over connection without DISCONNECT 0x8E (measured): that many closes by
# the broker in a row, each within STABLE_S of connecting, are taken for a takeover
SUSPECTED_TAKEOVERS = 3


class MqttError(Exception):
    """The connection to the broker failed or ended."""


def subscription_filters(settings: MqttSettings, topics: Iterable[str]) -> list[str]:
    """The filters subscribed for ``topics``: ``$share/<mqtt.shared_group>/<topic>`` when a group is set."""
    group = settings.shared_group
    return [f"$share/{group}/{topic}" if group else topic for topic in topics]


class _TlsProblem(MqttError):
    """The broker's TLS certificate failed our check, or ours the broker's: logged as errors."""


# TLS alerts of a broker that refuses our client certificate or the lack of one (OpenSSL's reason codes);
# with TLS 1.3 they come after the handshake, as the first read
_CLIENT_CERTIFICATE_ALERTS = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN")


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    received_ns: int  # the gateway's read time where it sent a plausible one, else the arrival time
    qos: int
    mid: int  # the packet id (0 for QoS 0): reused by the broker once acknowledged
    connection: int  # which connection delivered it; an ack only makes sense on that one
    dup: bool = False  # the broker's DUP flag: it may have delivered this message before, unacknowledged


class _Connection(asyncio.Protocol):
    """One TCP connection to the broker: packets in, bytes out, and how it ended."""

    def __init__(self, number: int, deliver: Callable[[list[wire.Publish], int], None]) -> None:
        self.number = number
        self._deliver = deliver
        self._parser = wire.PacketParser()
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[bytes] = loop.create_future()
        self.suback: asyncio.Future[bytes] = loop.create_future()
        self.unsuback: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.disconnect_reason: int | None = None  # of the broker's DISCONNECT, if it sent one
        self.pings = self.pongs = 0  # PINGREQs sent, PINGRESPs received
        self.pong = asyncio.Event()  # set at every PINGRESP
        self.last_sent = self.last_received = time.monotonic()
        self.awaiting_pubrel: set[int] = set()  # QoS 2: PUBREC sent, the exchange not finished yet
        self.exchanges_done = asyncio.Event()
        self.paused = False  # by the source: its queue is full (backpressure)
        self._held = False  # by ourselves: a short read waits a moment for more (see data_received)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is one, though no subclass

    def pause_reading(self) -> None:
        if self._transport is not None and not self.paused:
            self.paused = True
            if not self._held:
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and self.paused:
            self.paused = False
            self.last_received = time.monotonic()  # what the broker sent meanwhile waits in the socket
            if not self._held:
                self._transport.resume_reading()

    def _hold(self) -> None:
        """Leave the socket alone for READ_HOLD_S (see there); what the broker sends meanwhile waits in it."""
        if self._transport is None or self._held:
            return
        self._held = True
        if not self.paused:
            self._transport.pause_reading()
        asyncio.get_running_loop().call_later(READ_HOLD_S, self._release)

    def _release(self) -> None:
        self._held = False
        if self._transport is not None and not self.paused and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        try:
            publishes, controls = self._parser.feed(data)
            if publishes:
                self._deliver(publishes, self.number)
                if len(data) < READ_HOLD_BELOW:
                    self._hold()
            for packet in controls:
                self._control(packet)
        except wire.ProtocolError as exc:
            self.abort(f"protocol error: {exc}")

    def _control(self, packet: wire.Control) -> None:
        kind, body = packet.kind, packet.body
        if kind == wire.CONNACK:
            self._settle(self.connack, body)
        elif kind == wire.SUBACK:
            if wire.suback(body)[0] == _SUBSCRIPTION_ID:  # the $SYS one is not awaited
                self._settle(self.suback, body)
        elif kind == _UNSUBACK:
            self._settle(self.unsuback, body)
        elif kind == wire.PUBREL:  # QoS 2, second half: we have acknowledged the message (PUBREC)
            packet_id = wire.packet_id(body)
            self.send(wire.acks(wire.PUBCOMP, [packet_id]))
            self.awaiting_pubrel.discard(packet_id)
            if not self.awaiting_pubrel:
                self.exchanges_done.set()
        elif kind == wire.DISCONNECT:
            self.disconnect_reason = wire.disconnect_reason(body)
            self.abort(f"broker disconnected us: {wire.reason_text(self.disconnect_reason)}")
        elif kind == wire.PINGRESP:
            self.pongs += 1
            self.pong.set()
        else:
            self.abort(f"protocol error: unexpected packet type {kind}")

    @staticmethod
    def _settle(future: asyncio.Future[bytes], body: bytes) -> None:
        if not future.done():
            future.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(str(exc) if exc else "closed by the broker")

    def send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing() and data:
            self._transport.write(data)
            self.last_sent = time.monotonic()

    def finish(self) -> None:
        """Half-close after what is buffered: the broker reads everything up to our DISCONNECT, then closes.

        Closing the socket ourselves is not enough: a client that connects with our id right after
        takes the session over, and the broker throws away what it had not read yet (our last acks).
        """
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    def abort(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if self._transport is not None:
            self._transport.abort()

    async def expect(self, future: asyncio.Future[bytes], what: str, wait_s: float) -> bytes:
        either: set[asyncio.Future[bytes] | asyncio.Future[str]] = {future, self.closed}
        done, _ = await asyncio.wait(either, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            return future.result()
        if self.closed in done:
            raise MqttError(f"connection closed before {what} ({self.closed.result()})")
        raise MqttError(f"no {what} within {wait_s} s")

    async def keep_alive(self, keepalive_s: int) -> None:
        """PINGREQ when we have sent nothing for half the keep-alive; give up when the broker is silent."""
        half = keepalive_s / 2
        while not self.closed.done():
            await asyncio.sleep(half / 2)
            now = time.monotonic()
            if not self.paused and now - self.last_received > 1.5 * keepalive_s:
                self.abort(f"no packet from the broker for {now - self.last_received:.0f} s")
            elif now - self.last_sent >= half:
                self.ping()

    def ping(self) -> int:
        """Send a PINGREQ; its PINGRESP is the returned number's (the broker answers them in order)."""
        self.send(wire.PINGREQ_PACKET)
        self.pings += 1
        return self.pings

    async def round_trip(self, wait_s: float) -> bool:
        """A PINGREQ answered within ``wait_s``: the broker has handled everything we sent before it."""
        ours = self.ping()
        deadline = time.monotonic() + wait_s
        while self.pongs < ours and not self.closed.done():
            self.pong.clear()
            pong = asyncio.ensure_future(self.pong.wait())
            either: set[asyncio.Future[Any]] = {pong, self.closed}
            await asyncio.wait(
                either, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            pong.cancel()
            if time.monotonic() >= deadline:
                break
        return self.pongs >= ours


class MqttSource:
    """Subscribes to ``topics`` and puts the messages of every read into ``queue`` as one list.

    Connects to the brokers of ``settings.addresses()`` in turn (over TLS with ``settings.tls``): when one
    does not answer or refuses, the next at once; after a round where none did, the reconnect backoff. A
    connection that was established and broke is tried on the same broker first, after the backoff.

    Not acknowledging is how backpressure reaches the broker, but the queue does not rely on the broker's
    ``receive_maximum`` alone (Mosquitto 2.0 sent us 345,000 unacknowledged live messages against a receive
    maximum of 20,000): when ``receive_maximum`` messages wait in the queue, the source stops reading the
    socket until the consumer has :meth:`taken` half of them, so TCP holds the broker back and memory stays
    bounded (``max_queued`` sets another bound).
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        topics: list[str],
        queue: asyncio.Queue[list[Message]],
        on_broker_drops: Callable[[int], None] | None = None,
        max_queued: int | None = None,
        read_times: bool = True,
        unsubscribe: Iterable[str] = (),
        session_record: SessionRecord | None = None,
        on_session_lost: Callable[[], None] | None = None,
        on_taken_over: Callable[[], None] | None = None,
    ) -> None:
        """``read_times=False``: every message is stamped with its arrival time, a publisher's ``read_ns``
        property is ignored (the gateway's local broker, where any device could backdate its messages).
        ``unsubscribe``: filters the persistent session may still hold and no longer should, removed at
        each connect before subscribing ``topics``.
        ``session_record``: where this client's session is remembered (:mod:`ingest.mqtt_session`): the
        filters it holds from an earlier configuration are unsubscribed too, and a connect that finds the
        session gone is logged as a warning and counted (:attr:`sessions_lost`, ``on_session_lost``).
        ``on_taken_over``: called when another client connected with our client id and the broker closed
        our connection for it (logged as an error, counted in :attr:`takeovers`; see :data:`STABLE_S`)."""
        self.settings = settings
        self._read_times = read_times
        self.on_broker_drops = on_broker_drops
        self._broker_dropped = 0
        self.topics = subscription_filters(settings, topics)
        self._record = session_record
        self._memory = session_record.load(settings.client_id) if session_record is not None else None
        self.on_session_lost = on_session_lost
        self.sessions_lost = 0  # connects that found the session we had gone (and what it queued)
        self.on_taken_over = on_taken_over
        self.takeovers = 0  # connections the broker closed because another client connected as us
        self._quick_closes = 0  # closes by the broker in a row, each soon after connecting
        stale = stale_filters(self._memory, self.topics)
        self.unsubscribe = [t for t in dict.fromkeys([*unsubscribe, *stale]) if t not in self.topics]
        self.queue = queue
        self.connected = asyncio.Event()
        self._addresses = settings.addresses()
        self.broker = "{}:{}".format(*self._addresses[0])  # host:port connected to (or tried last)
        tls = settings.tls
        self._ssl = client_context(tls) if tls is not None else None
        self._server_name = tls.server_name if tls is not None else None
        self._established = False  # the last connection got as far as its SUBACK
        self._connection: _Connection | None = None
        self._connections = 0
        self._closing = False
        self._closed = asyncio.Event()
        self._last_received_ns = 0
        self.implausible_read_times = 0  # read_ns properties outside [2020, now + 5 min]: arrival time used
        self._implausible_logged = 0.0
        self._queued = 0  # messages put into the queue and not yet taken
        self._room = max_queued or settings.receive_maximum  # queued messages at which reading stops
        self.delivered = 0  # messages put into the queue, over every connection
        self._end_session_at: int | None = None  # see end_session
        self.session_ended = False  # the last disconnect ended the session at the broker

    async def run(self) -> None:
        """Stay connected until cancelled (brokers in turn, see the class)."""
        backoff = Backoff(minimum=self.settings.reconnect_min_s, maximum=self.settings.reconnect_max_s)
        addresses = self._addresses
        index = failed = 0  # the broker to try; brokers that failed in this round
        while not self._closing:
            host, port = addresses[index]
            self.broker = f"{host}:{port}"
            self._established = False
            try:
                await self._connection_lifetime(host, port, backoff)
            except MqttError as exc:
                if self._closing:
                    break
                level = logging.ERROR if isinstance(exc, _TlsProblem) else logging.WARNING
                failed = 0 if self._established else failed + 1
                if not self._established:
                    index = (index + 1) % len(addresses)
                if 0 < failed < len(addresses):
                    log.log(level, "mqtt %s: %s; trying %s:%s", self.broker, exc, *addresses[index])
                    continue
                failed = 0
                delay = backoff.next_delay()
                log.log(level, "mqtt %s: %s; reconnecting in %.1f s", self.broker, exc, delay)
                await asyncio.sleep(delay)

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge messages of the current connection in one write; returns how many acks were sent."""
        connection = self._connection
        if connection is None:
            return 0
        current = connection.number
        received = [m for m in messages if m.qos and m.connection == current]
        puback = [m.mid for m in received if m.qos == 1]
        pubrec = [m.mid for m in received if m.qos == 2]
        connection.send(wire.acks(wire.PUBACK, puback) + wire.acks(wire.PUBREC, pubrec))
        if pubrec:
            connection.awaiting_pubrel.update(pubrec)
            connection.exchanges_done.clear()
        return len(received)

    async def round_trip(self, *, wait_s: float = 5.0) -> bool:
        """A PINGREQ on the current connection and its PINGRESP; False without one in time (or connection).

        A broker handles a client's packets in order and writes its answers in order: whatever the acks
        sent before released from the session's queue (Mosquitto writes it while handling the PUBACK)
        arrives before the PINGRESP. So after a round trip, :attr:`delivered` counts it."""
        connection = self._connection
        if connection is None or not self.connected.is_set():
            return False
        return await connection.round_trip(wait_s)

    def end_session(self, *, delivered: int) -> None:
        """Let :meth:`disconnect` end our session at the broker (Session Expiry Interval 0), dropping what
        it still holds, provided that by then exactly ``delivered`` messages came in (:attr:`delivered`):
        whoever decided that everything was taken decided it at that count. One more, and the session
        stays, with the message's copy, until it is taken again (``reallabor ingest --drain``)."""
        self._end_session_at = delivered

    async def disconnect(self, *, wait_s: float = 5.0) -> None:
        """Send the pending acks and DISCONNECT (the broker keeps our session, unless :meth:`end_session`),
        wait until the broker closed the connection (it has read everything), then stop reconnecting."""
        self._closing = True
        connection = self._connection
        if connection is None or not self.connected.is_set():
            return
        if connection.awaiting_pubrel:  # finish QoS 2 exchanges, or the broker sends those messages again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.exchanges_done.wait(), wait_s)
        end = self._end_session_at == self.delivered and not connection.awaiting_pubrel
        if self._end_session_at is not None and not end:
            log.warning(
                "mqtt: %d messages came in after the session was to end: it stays at the broker",
                self.delivered - self._end_session_at,
            )
        connection.send(wire.disconnect(session_expiry_s=0) if end else wire.DISCONNECT_PACKET)
        connection.finish()
        try:
            await asyncio.wait_for(self._closed.wait(), wait_s)
        except TimeoutError:
            log.warning("mqtt: no clean disconnect within %.0f s", wait_s)
            return
        self.session_ended = end
        if end and self._record is not None:  # no session: nothing the next start could miss
            self._memory = None
            self._record.forget()

    def _deliver(self, publishes: list[wire.Publish], connection: int) -> None:
        # One clock reading per read, but every message its own receive time: a reading without device
        # time is stamped with it, and two points of a device with the same time overwrite each other.
        received_ns = max(time.time_ns(), self._last_received_ns + 1)
        latest_read_ns = received_ns + READ_NS_AHEAD_NS
        messages = []
        for raw_topic, payload, qos, mid, read_ns, dup in publishes:
            try:
                topic = raw_topic.decode()
            except UnicodeDecodeError:  # the broker should have refused it; the decoder quarantines it
                topic = raw_topic.decode("utf-8", "replace")
            if topic == BROKER_DROPPED_TOPIC:
                self._note_broker_drops(payload)
                continue
            # the gateway's read time: a backlog lands when read, a re-sent frame overwrites
            if read_ns and self._read_times:
                if EARLIEST_READ_NS <= read_ns <= latest_read_ns:
                    messages.append(Message(topic, payload, read_ns, qos, mid, connection, dup))
                    continue
                self._implausible_read_time(topic, read_ns)
            messages.append(Message(topic, payload, received_ns, qos, mid, connection, dup))
            received_ns += 1
        self._last_received_ns = received_ns - 1
        if messages:
            self.queue.put_nowait(messages)
            self._queued += len(messages)
            self.delivered += len(messages)
            self._hold_back()

    def _implausible_read_time(self, topic: str, read_ns: int) -> None:
        self.implausible_read_times += 1
        now = time.monotonic()
        if now - self._implausible_logged >= _IMPLAUSIBLE_LOG_INTERVAL_S:
            self._implausible_logged = now
            log.warning(
                "implausible read time %d ns on %s (before 2020 or more than 5 min ahead: the gateway's "
                "clock?): the arrival time is used (%d so far)",
                read_ns,
                topic,
                self.implausible_read_times,
            )

    def taken(self, count: int) -> None:
        """The consumer took ``count`` messages from the queue: read on when half the room is free."""
        self._queued -= count
        connection = self._connection
        if connection is not None and connection.paused and self._queued <= self._room // 2:
            connection.resume_reading()

    def _hold_back(self) -> None:
        connection = self._connection
        # never during the handshake: CONNACK and SUBACK must still be read
        if connection is not None and self.connected.is_set() and self._queued >= self._room:
            connection.pause_reading()

    def _note_broker_drops(self, payload: bytes) -> None:
        try:
            dropped = int(payload)
        except ValueError:
            return
        if dropped > self._broker_dropped and self.on_broker_drops is not None:
            self.on_broker_drops(dropped)
        self._broker_dropped = dropped

    async def _connect(self, connection: _Connection, host: str, port: int) -> None:
        """TCP (and TLS) to one broker; MqttError if it does not answer or its certificate fails the check."""
        loop = asyncio.get_running_loop()
        server_name = (self._server_name or host) if self._ssl is not None else None
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection, host, port, ssl=self._ssl, server_hostname=server_name
                ),
                self.settings.keepalive_s,
            )
        except ssl.SSLCertVerificationError as exc:
            ca_file = self.settings.tls.ca_file if self.settings.tls is not None else None
            raise _TlsProblem(
                f"TLS certificate not trusted ({not_trusted(exc)}; mqtt.tls.ca_file {ca_file}, "
                f"name checked {server_name})"
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise MqttError(f"cannot connect: {exc or type(exc).__name__}") from exc

    async def _connection_lifetime(self, host: str, port: int, backoff: Backoff) -> None:
        settings = self.settings
        self._closed.clear()
        self._connections += 1
        connection = _Connection(self._connections, self._deliver)
        await self._connect(connection, host, port)
        self._connection = connection  # messages of the session may arrive right after CONNACK
        keep_alive = asyncio.create_task(connection.keep_alive(settings.keepalive_s), name="mqtt-keepalive")
        refresh: asyncio.Task[None] | None = None
        try:
            try:
                await self._handshake(connection)
            except wire.ProtocolError as exc:
                raise MqttError(f"protocol error: {exc}") from exc
            except MqttError as exc:
                refused = self._client_certificate_refused(exc)
                if refused is None:
                    raise
                raise refused from exc
            established_at = time.monotonic()
            self._established = True
            if self._record is not None:
                refresh = asyncio.create_task(self._refresh_record(), name="mqtt-session-record")
            self.connected.set()
            self._hold_back()  # the queue may still hold the last connection's messages
            log.info(
                "mqtt connected to %s%s as %s, subscribed to %s",
                self.broker,
                " (TLS)" if self._ssl is not None else "",
                settings.client_id,
                ", ".join(self.topics) or "nothing (what the session holds only)",
            )
            reason = await connection.closed
            lasted = time.monotonic() - established_at
            if lasted >= STABLE_S:  # else the backoff grows: see STABLE_S
                backoff.reset()
            self._note_takeover(connection, quick=lasted < STABLE_S and reason == "closed by the broker")
            raise MqttError(f"connection lost ({reason})")
        finally:
            self.connected.clear()
            keep_alive.cancel()
            if refresh is not None:
                refresh.cancel()
                self._remember_session()  # last seen connected: now
            if self._connection is connection:
                self._connection = None
            connection.abort("connection ended")
            self._closed.set()

    def _note_takeover(self, connection: _Connection, *, quick: bool) -> None:
        """Log and count a session takeover: a DISCONNECT 0x8E, or SUSPECTED_TAKEOVERS quick closes."""
        if connection.disconnect_reason == SESSION_TAKEN_OVER:
            evidence = f"the broker sent DISCONNECT {wire.reason_text(SESSION_TAKEN_OVER)}"
        elif quick and not self._closing:
            self._quick_closes += 1
            if self._quick_closes < SUSPECTED_TAKEOVERS:
                return
            evidence = f"the broker closed {self._quick_closes} connections in a row within {STABLE_S:g} s"
        else:
            self._quick_closes = 0
            return
        self.takeovers += 1
        log.error(
            "mqtt %s: another process connected as %s: two instances with the same --instance K? (%s); "
            "reconnecting with a growing delay",
            self.broker,
            self.settings.client_id,
            evidence,
        )
        if self.on_taken_over is not None:
            self.on_taken_over()

    def _client_certificate_refused(self, exc: MqttError) -> _TlsProblem | None:
        """The broker's TLS alert about our client certificate, said as such; None for other failures."""
        tls = self.settings.tls
        if tls is None or not any(f"ALERT_{alert}" in str(exc) for alert in _CLIENT_CERTIFICATE_ALERTS):
            return None
        if tls.cert_file is None:
            return _TlsProblem(
                f"TLS: the broker requires a client certificate (mqtt.tls.cert_file, key_file): {exc}"
            )
        return _TlsProblem(
            f"TLS: the broker refused our client certificate mqtt.tls.cert_file {tls.cert_file}: {exc}"
        )

    def _connect_packet(self) -> bytes:
        """CONNECT resuming our persistent session."""
        settings = self.settings
        password = settings.password.get_secret_value() if settings.password else None
        return wire.connect(
            settings.client_id,
            keepalive_s=settings.keepalive_s,
            clean_start=False,
            session_expiry_s=settings.session_expiry_s,
            receive_maximum=settings.receive_maximum,
            username=settings.username,
            password=password,
        )

    async def _handshake(self, connection: _Connection) -> None:
        settings = self.settings
        connection.send(self._connect_packet())
        connack = await connection.expect(connection.connack, "CONNACK", settings.keepalive_s)
        session_present, reason = wire.connack(connack)
        if reason >= 0x80:
            raise MqttError(f"broker refused the connection: {wire.reason_text(reason)}")
        self._check_session(session_present)
        if self.unsubscribe:  # filters the session kept from an earlier configuration
            connection.send(_unsubscribe_packet(_UNSUBSCRIPTION_ID, self.unsubscribe))
            await connection.expect(connection.unsuback, "UNSUBACK", settings.keepalive_s)
            log.info("mqtt: unsubscribed filters no longer wanted: %s", ", ".join(self.unsubscribe))
        if self.topics:  # none: only what the session holds (reallabor ingest --drain)
            await self._subscribe_topics(connection)
        if self._record is not None:  # the session holds self.topics now, and nothing else
            self._memory = self._current_memory(new=not session_present)
            await asyncio.to_thread(self._record.save, self._memory, durable=True)
        if self.on_broker_drops is not None:  # a broker may refuse $SYS: not awaited
            connection.send(wire.subscribe(_SYS_SUBSCRIPTION_ID, [(BROKER_DROPPED_TOPIC, 0)]))

    def _check_session(self, session_present: bool) -> None:
        """CONNACK said whether the broker still holds our session: say so when one we had is gone."""
        memory = self._memory
        if memory is None or session_present:
            return
        log.warning(
            session_lost_message(
                memory, broker=self.broker, session_expiry_s=self.settings.session_expiry_s, now=time.time()
            )
        )
        self.sessions_lost += 1
        # the new session holds nothing yet (until subscribed): a crash now must not report it lost again
        self._memory = None
        if self._record is not None:
            self._record.forget()
        if self.on_session_lost is not None:
            self.on_session_lost()

    def _current_memory(self, *, new: bool) -> SessionMemory:
        now = time.time()
        memory = self._memory
        since = now if new or memory is None else memory.since
        return SessionMemory(self.settings.client_id, self.broker, tuple(self.topics), since, now)

    def _remember_session(self) -> None:
        """Bring the record's last_connected up to now (not fsynced: a time a little older is no harm)."""
        if self._record is not None and self._memory is not None:
            self._memory = self._current_memory(new=False)
            self._record.save(self._memory)

    async def _refresh_record(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            self._remember_session()  # ~0.3 ms without fsync, here

    async def _subscribe_topics(self, connection: _Connection) -> None:
        settings = self.settings
        # No retained messages: the ingester got each when it was published (the session keeps what arrives
        # while it is away); sent again at every (re)subscribe, one would be stored or quarantined anew.
        filters = [(topic, settings.qos) for topic in self.topics]
        connection.send(wire.subscribe(_SUBSCRIPTION_ID, filters, retained=False))
        suback = await connection.expect(connection.suback, "SUBACK", settings.keepalive_s)
        refused = [
            f"{topic}: {wire.reason_text(code)}"
            for topic, code in zip(self.topics, wire.suback(suback)[1], strict=False)
            if code >= 0x80
        ]
        if refused:
            raise MqttError(f"subscription refused: {'; '.join(refused)}")


def _unsubscribe_packet(packet_id: int, filters: Iterable[str]) -> bytes:
    """An MQTT 5 UNSUBSCRIBE without properties."""
    body = packet_id.to_bytes(2, "big") + b"\x00"
    for topic_filter in filters:
        data = topic_filter.encode()
        body += len(data).to_bytes(2, "big") + data
    return bytes([_UNSUBSCRIBE << 4 | 0x02]) + wire.varint(len(body)) + body
