"""The gateway's uplink: MQTT 5 QoS 1 from the outbox to the central broker; a frame leaves the outbox only
on its PUBACK.

Its own small asyncio protocol (packets from :mod:`ingest.mqtt_wire` and :mod:`.mqtt5`), like the central
subscriber's (:mod:`ingest.mqtt`): PUBLISH packets are written one by one as the window allows (pausing
while the transport says its buffer is full), every PUBACK in one read is handled at once, and each PUBLISH
carries the read time as the user property ``read_ns``.

- Session: clean start false and a session expiry, so what is in flight survives a central broker
  restart; after a reconnect, everything not acknowledged is sent again (``DUP`` when the broker kept the
  session). Duplicates are harmless: the same read time makes the same InfluxDB point.
- Brokers in ``central.brokers`` are tried in turn with exponential backoff, for ever (the network may
  be down at boot); an established connection that breaks is retried on the same broker first.
- Keep-alive: PINGREQ when the line was quiet for half the keep-alive; no packet from the broker for
  1.5 × keep-alive ends the connection, so a half-open TCP connection (a cut uplink) is noticed.
- TLS when ``central.tls`` is set: the broker's certificate must chain to ``ca_file`` (and match the
  host name); a client certificate where configured. A failed verification is logged as such.
- Window: at most ``central.window`` messages (and the broker's Receive Maximum) and ``central.window_bytes``
  unacknowledged (one larger frame alone may exceed it), so a backlog of 1 MB device messages drains in
  a few MB of memory. Each refill takes live frames first, then the backlog in order (:meth:`Outbox.take`).
- A PUBACK with a reason >= 0x80 (e.g. 0x87 not authorized: the account's ACL) is a refusal for good:
  counted, logged with the topic and the reason, and the frame moved to the outbox's ``refused/`` store
  (never silently deleted, never retried in a loop). A frame larger than the broker's Maximum Packet Size
  is refused the same way without sending it. The refusal is logged at ERROR once, then at most once per
  ``REFUSED_LOG_S`` with the count; the service puts the refused frames back at each start
  (:meth:`Outbox.requeue_refused`), so after a fixed account or a new bundle they go through.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import cast

from ingest import mqtt_wire as wire
from ingest.backoff import Backoff
from ingest.gateway import mqtt5
from ingest.gateway.config import Central
from ingest.gateway.frames import Frame
from ingest.gateway.outbox import Outbox, OutboxError, frame_bytes
from ingest.tls import TlsError, TlsFiles, client_context, not_trusted

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our in-flight messages' session this long
_PACKET_TOO_LARGE = 0x95
REFUSED_LOG_S = 60.0  # refused frames: one ERROR at first, then at most one per interval with the count
_CREDENTIALS_REFUSED = (0x86, 0x87)  # bad user name or password, not authorized


class UplinkError(Exception):
    """A connection to the central broker failed or ended (the uplink retries by itself)."""


@dataclass(frozen=True, slots=True)
class UplinkStats:
    connected: bool
    broker: str | None  # host:port of the broker connected to (or last tried)
    published: int  # PUBLISH packets sent, re-sends included
    acked: int  # PUBACKs with a success reason: frames deleted from the outbox
    refused: int  # PUBACKs with a reason >= 0x80 (and frames too large): kept in the outbox's refused/
    reconnects: int  # connections established after the first
    last_error: str | None
    in_flight: int  # taken from the outbox, not yet acknowledged


def ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    try:
        return client_context(tls)
    except TlsError as exc:
        raise UplinkError(f"TLS: cannot load {exc}") from exc


class _Link(asyncio.Protocol):
    """One connection to the broker: bytes out, packets in, and how it ended."""

    def __init__(self, uplink: Uplink) -> None:
        self._uplink = uplink
        self._parser = wire.PacketParser()
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.last_sent = self.last_received = time.monotonic()
        self.writable = asyncio.Event()  # cleared while the transport's buffer is above its high mark
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        try:
            _, controls = self._parser.feed(data)  # we subscribe to nothing: no PUBLISH comes
            acks: list[tuple[int, int]] = []
            for packet in controls:
                if packet.kind == wire.PUBACK:
                    acks.append(mqtt5.puback(packet.body))
                elif packet.kind == wire.CONNACK:
                    if not self.connack.done():
                        self.connack.set_result(packet.body)
                elif packet.kind == wire.DISCONNECT:
                    reason = wire.reason_text(wire.disconnect_reason(packet.body))
                    self.abort(f"the broker disconnected us: {reason}")
                elif packet.kind != wire.PINGRESP:
                    self.abort(f"protocol error: unexpected packet type {packet.kind}")
            if acks:
                self._uplink._acknowledged(acks)
        except wire.ProtocolError as exc:
            self.abort(f"protocol error: {exc}")
        except OutboxError as exc:  # a disk error: reconnecting later retries it
            self.abort(f"outbox: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()  # nobody waits for a buffer that is gone
        if not self.closed.done():
            self.closed.set_result(str(exc) if exc else "closed by the broker")

    def send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
            self.last_sent = time.monotonic()

    def abort(self, reason: str) -> None:
        self.writable.set()
        if not self.closed.done():
            self.closed.set_result(reason)
        if self._transport is not None:
            self._transport.abort()

    def finish(self) -> None:
        """Half-close after what is buffered (our DISCONNECT): the broker reads it all, then closes."""
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()
        elif self._transport is not None:
            self._transport.close()

    async def keep_alive(self, keepalive_s: int) -> None:
        half = keepalive_s / 2
        while not self.closed.done():
            await asyncio.sleep(min(keepalive_s / 10, 1.0))
            now = time.monotonic()
            silent = now - self.last_received
            if silent > 1.5 * keepalive_s:
                self.abort(f"no packet from the broker for {silent:.0f} s (keep-alive {keepalive_s} s)")
            elif (now - self.last_sent >= half or silent >= half) and now - self.last_sent >= 1.0:
                self.send(wire.PINGREQ_PACKET)  # the broker answers: silence means the line is gone


class Uplink:
    """Hands the outbox's frames to the central broker until cancelled; :meth:`stats` for health."""

    def __init__(
        self,
        central: Central,
        outbox: Outbox,
        *,
        session_expiry_s: int = SESSION_EXPIRY_S,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        connect_timeout_s: float = 15.0,
    ) -> None:
        self.central = central
        self.outbox = outbox
        self.session_expiry_s = session_expiry_s
        self.connect_timeout_s = connect_timeout_s
        self._backoff = Backoff(minimum=reconnect_min_s, maximum=reconnect_max_s)
        self._addresses = central.addresses()
        self._ssl = ssl_context(central.tls) if central.tls is not None else None
        self._link: _Link | None = None
        self._in_flight: dict[int, tuple[int, Frame]] = {}  # packet id -> (outbox seq, frame), sent order
        self._in_flight_bytes = 0  # frame_bytes() of everything in _in_flight
        self._unsent: collections.deque[int] = collections.deque()  # in flight, not sent on this link
        self._next_id = 0
        self._window = central.window
        self._max_packet: int | None = None
        self._resend_dup = False  # the broker kept our session: re-sends carry DUP
        self._wake = asyncio.Event()
        self._topics: dict[str, bytes] = {}
        self._connected = False
        self._broker: str | None = None
        self._published = self._acked = self._refused = 0
        self._connections = 0
        self._last_error: str | None = None
        self._closing = False
        self._refused_logged_at: float | None = None
        self._refused_unlogged = 0
        outbox.on_put = self._wake.set

    # -- state ---------------------------------------------------------------------------------------

    def stats(self) -> UplinkStats:
        return UplinkStats(
            connected=self._connected,
            broker=self._broker,
            published=self._published,
            acked=self._acked,
            refused=self._refused,
            reconnects=max(0, self._connections - 1),
            last_error=self._last_error,
            in_flight=len(self._in_flight),
        )

    # -- connection loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected and keep sending until cancelled; never gives up."""
        index = 0
        while not self._closing:
            host, port = self._addresses[index % len(self._addresses)]
            try:
                reason = await self._session(host, port)
            except UplinkError as exc:
                self._last_error = str(exc)
                index += 1  # the next broker in turn
            else:  # an established connection broke: this broker again first
                self._last_error = f"connection lost ({reason})"
            if self._closing:
                break
            delay = self._backoff.next_delay()
            log.warning("uplink %s:%d: %s; next try in %.1f s", host, port, self._last_error, delay)
            await asyncio.sleep(delay)

    async def close(self, *, wait_s: float = 5.0) -> None:
        """DISCONNECT (the broker keeps the session) and stop reconnecting."""
        self._closing = True
        link = self._link
        if link is None or not self._connected:
            return
        link.send(wire.DISCONNECT_PACKET)
        link.finish()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(link.closed), wait_s)

    async def _session(self, host: str, port: int) -> str:
        """One connection's life: why it ended once established; UplinkError if it never was."""
        self._broker = f"{host}:{port}"
        link = _Link(self)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: link, host, port, ssl=self._ssl, server_hostname=host if self._ssl else None
                ),
                self.connect_timeout_s,
            )
        except ssl.SSLCertVerificationError as exc:
            ca = self.central.tls.ca_file if self.central.tls else None
            log.error(
                "uplink %s:%d: TLS: the broker's certificate is not trusted by %s: %s", host, port, ca, exc
            )
            raise UplinkError(f"TLS certificate not trusted ({not_trusted(exc)})") from exc
        except (OSError, TimeoutError) as exc:
            raise UplinkError(f"cannot connect: {str(exc) or type(exc).__name__}") from exc
        self._link = link
        keep_alive = asyncio.create_task(link.keep_alive(self.central.keepalive_s), name="uplink-keepalive")
        pump: asyncio.Task[None] | None = None
        try:
            connack = await self._handshake(link)
            self._connections += 1
            self._connected = True
            self._backoff.reset()
            self._window = max(1, min(self.central.window, connack.receive_maximum))
            self._max_packet = connack.maximum_packet_size
            self._unsent = collections.deque(self._in_flight)  # all in flight again, in the order sent
            self._resend_dup = connack.session_present
            log.info(
                "uplink connected to %s:%d as %s (session %s, window %d, %d to send again)",
                host,
                port,
                self.central.client_id,
                "kept" if connack.session_present else "new",
                self._window,
                len(self._unsent),
            )
            pump = asyncio.create_task(self._pump(link), name="uplink-pump")
            return await link.closed
        finally:
            self._connected = False
            self._link = None
            keep_alive.cancel()
            if pump is not None:
                pump.cancel()
            link.abort("connection ended")

    async def _handshake(self, link: _Link) -> mqtt5.Connack:
        central = self.central
        link.send(
            wire.connect(
                central.client_id,
                keepalive_s=central.keepalive_s,
                clean_start=False,
                session_expiry_s=self.session_expiry_s,
                receive_maximum=16,  # we subscribe to nothing
                username=central.username,
                password=central.password.get_secret_value(),
            )
        )
        either: set[asyncio.Future[bytes] | asyncio.Future[str]] = {link.connack, link.closed}
        done, _ = await asyncio.wait(
            either, timeout=self.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if link.connack in done:
            try:
                connack = mqtt5.connack(link.connack.result())
            except wire.ProtocolError as exc:
                raise UplinkError(f"protocol error in CONNACK: {exc}") from exc
        elif link.closed in done:
            raise UplinkError(f"connection closed before CONNACK ({link.closed.result()})")
        else:
            raise UplinkError(f"no CONNACK within {self.connect_timeout_s} s")
        if connack.reason >= 0x80:
            detail = f": {connack.reason_string}" if connack.reason_string else ""
            if connack.reason in _CREDENTIALS_REFUSED:
                detail += (
                    f" (user {central.username!r}, client id {central.client_id!r}: is central.password "
                    "from the newest bundle? a new bundle replaces the account's password; make one for "
                    "this gateway, or check central.username, central.password and central.client_id)"
                )
            raise UplinkError(
                f"the broker refused the connection: {wire.reason_text(connack.reason)}{detail}"
            )
        return connack

    # -- sending -----------------------------------------------------------------------------------

    async def _pump(self, link: _Link) -> None:
        """Keep the window full: re-sends first, then :meth:`Outbox.take` (live, then backlog)."""
        try:
            await self._fill(link)
        except OutboxError as exc:  # a disk error: the connection ends, the next one retries
            log.error("uplink: cannot read the outbox: %s", exc)
            link.abort(f"outbox: {exc}")

    async def _fill(self, link: _Link) -> None:
        while not link.closed.done():
            self._wake.clear()
            await link.writable.wait()  # the transport's buffer drains first: it holds copies too
            sent = 0
            room = self._window - (len(self._in_flight) - len(self._unsent))
            unsent = self._unsent
            while unsent and room > 0:  # what is in flight is within the byte window already
                packet_id = unsent.popleft()
                entry = self._in_flight.get(packet_id)
                if entry is not None:
                    link.send(self._encode(packet_id, entry[1], dup=self._resend_dup))
                    sent += 1
                    room -= 1
            new = self._window - len(self._in_flight)
            byte_room = self.central.window_bytes - self._in_flight_bytes
            if new > 0 and room > 0 and (byte_room > 0 or not self._in_flight):
                for seq, frame in self.outbox.take(min(new, room), max_bytes=max(1, byte_room)):
                    packet_id = self._packet_id()
                    packet = self._encode(packet_id, frame, dup=False)
                    if self._max_packet is not None and len(packet) > self._max_packet:
                        self._refuse(seq, frame, _PACKET_TOO_LARGE)
                        continue
                    self._in_flight[packet_id] = (seq, frame)
                    self._in_flight_bytes += frame_bytes(frame)
                    link.send(packet)  # one write per packet: no joined copy of the whole window
                    sent += 1
            if sent:
                self._published += sent
                await asyncio.sleep(0)  # let the PUBACKs in
                continue
            await self._wake.wait()

    def _encode(self, packet_id: int, frame: Frame, *, dup: bool) -> bytes:
        topic = self._topics.get(frame.topic)
        if topic is None:
            if len(self._topics) > 10_000:
                self._topics.clear()
            topic = self._topics[frame.topic] = frame.topic.encode()
        return mqtt5.publish(topic, frame.payload, packet_id, frame.read_ns, dup=dup)

    def _packet_id(self) -> int:
        while True:  # the window (<= 60,000) never fills the 16-bit id space
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._in_flight:
                return self._next_id

    def _acknowledged(self, acks: list[tuple[int, int]]) -> None:
        confirmed = []
        for packet_id, reason in acks:
            entry = self._in_flight.pop(packet_id, None)
            if entry is None:
                continue  # a PUBACK for a message re-sent and acknowledged twice
            self._in_flight_bytes -= frame_bytes(entry[1])
            if reason < 0x80:
                confirmed.append(entry[0])
            else:
                self._refuse(*entry, reason)
        if confirmed:
            self.outbox.confirm(confirmed)
            self._acked += len(confirmed)
        self._wake.set()

    def _refuse(self, seq: int, frame: Frame, reason: int) -> None:
        self._refused += 1
        self._refused_unlogged += 1
        now = time.monotonic()
        if self._refused_logged_at is None or now - self._refused_logged_at >= REFUSED_LOG_S:
            log.error(
                "uplink: the central broker refused %d frame(s) since the last such message, the last on %s "
                "read at %d ns: %s; kept in the outbox's refused/ store and sent again at the next start "
                "(%d refused so far; does central.username fit the gateway's name?)",
                self._refused_unlogged,
                frame.topic,
                frame.read_ns,
                wire.reason_text(reason),
                self._refused,
            )
            self._refused_logged_at = now
            self._refused_unlogged = 0
        self.outbox.refuse(seq, frame, reason)
