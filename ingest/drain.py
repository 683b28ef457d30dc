"""``reallabor ingest --instance K --of N --drain``: retire an instance without losing what its session holds.

An instance that stops keeps its place in the broker's shared subscription: its persistent session goes on
receiving its round-robin share (Mosquitto 2.0.11, measured) until the instance comes back or the session
expires, and then those messages are gone. Draining ends the session only once it is empty:

1. connect with the instance's identity (client id, clean start off: its session, with what it queued),
   and UNSUBSCRIBE its filters instead of subscribing them, so the broker deals it no new shares;
2. run the ordinary pipeline on what comes: the session's queued messages, redeliveries of what was in
   flight, and the instance's spool from before (:class:`ingest.ingester.Ingester`, unchanged; without its
   /metrics listener: the instances' ports are in use, the counters are in the report);
3. wait until, for ``settle_s`` on end, everything taken is committed and acknowledged and the spool is
   empty (all written to InfluxDB) and nothing came (see :func:`_until_drained` for why that is enough);
4. DISCONNECT with Session Expiry Interval 0: the broker drops the (now empty) session, unless a message
   came in after step 3 decided (:meth:`ingest.mqtt.MqttSource.end_session`): then the session stays and
   the report says so (exit 1; run the drain again).

It gives up, keeping the session with whatever it still holds, when interrupted (Ctrl-C, SIGTERM), after
``timeout_s``, when the broker refuses the login (bad credentials: running again will not help) and when
the broker closes its connection: on Mosquitto 2.0 that is what another client connecting with the same
id looks like (the instance is still running somewhere), and a session in use must never be ended.

Exit codes of ``reallabor ingest --drain`` (:data:`EXIT_RETIRED` ...): 0 retired; 1 not retired, the
session stays (run the drain again once the cause is gone); 2 the settings or the login are wrong;
3 retired, but the broker had lost the session before (expired): what it had queued is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ingest import mqtt_wire as wire
from ingest.config import Settings
from ingest.ingester import Ingester
from ingest.ingester_ports import MessageSource, SourceFactory
from ingest.mqtt import Message, MqttError, MqttSource, subscription_filters
from ingest.mqtt_session import SessionRecord

log = logging.getLogger(__name__)

SETTLE_S = 2.0  # at rest this long: the broker has handed over what the session held
MIN_SETTLE_S = 0.2  # settle_s above this: ~100 times a broker's answer under load (see _until_drained)
TIMEOUT_S = 600.0  # give up (the session stays) when not drained by then: InfluxDB or the broker away
POLL_S = 0.05
EXIT_RETIRED, EXIT_NOT_RETIRED, EXIT_REFUSED, EXIT_SESSION_LOST = 0, 1, 2, 3
LOST_QUEUED = "unknown (session expired or lost at the broker)"
# CONNACK reasons that the same login gets again: running on (or again) does not help
_LOGIN_REFUSED = {0x85, 0x86, 0x87, 0x8A, 0x8C}  # client id not valid, bad user/password, not authorized, ...


@dataclass(frozen=True)
class DrainReport:
    """What a drain did; ``session_ended`` and an empty spool together: the instance is retired."""

    instance: int
    client_id: str
    taken: int  # messages the session handed over to this drain
    written: int  # ... whose points InfluxDB confirmed (not the spool records from before: spool_before)
    quarantined: int  # ... kept in the instance's quarantine with a reason
    spool_before: int  # spool records (batches) the instance left unwritten, written first by the drain
    spool_left: int  # spool records (batches) not written (InfluxDB away): run the drain again
    session_found: bool | None  # the broker still held the session (CONNACK); None: never connected
    session_lost: bool  # ... though the instance's state remembers one: it expired or the broker lost it
    session_ended: bool
    stopped: str | None = None  # why the drain gave up before ending the session
    login_refused: bool = False  # the broker refused the login: settings to fix, not a wait (exit 2)

    @property
    def retired(self) -> bool:
        return self.session_ended and self.spool_left == 0

    @property
    def exit_code(self) -> int:
        if self.login_refused:
            return EXIT_REFUSED
        if not self.retired:
            return EXIT_NOT_RETIRED
        return EXIT_SESSION_LOST if self.session_lost else EXIT_RETIRED

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {**asdict(self), "retired": self.retired}
        del data["login_refused"]  # said by stopped and the exit code
        if self.session_lost:
            data["lost_queued"] = LOST_QUEUED
        return data

    def line(self) -> str:
        return json.dumps(self.as_json())


class _DrainSource(MqttSource):
    """The instance's session without its subscriptions, and what the drain must know of each connect:
    whether the broker still held the session, a refused login, and a connection the broker closed."""

    handshakes = 0  # connects that got through the handshake
    session_present: bool | None = None  # of the first connect's CONNACK
    refused: str | None = None  # the CONNACK reason of a login the broker refused for good

    def _check_session(self, session_present: bool) -> None:
        if self.session_present is None:
            self.session_present = session_present
        super()._check_session(session_present)

    async def _handshake(self, connection: Any) -> None:
        try:
            await super()._handshake(connection)
        except MqttError:
            connack: asyncio.Future[bytes] = connection.connack
            if connack.done():
                reason = wire.connack(connack.result())[1]
                if reason in _LOGIN_REFUSED:
                    self.refused = wire.reason_text(reason)
            raise
        self.handshakes += 1


class _SessionOnly:
    """The source factory of a drain: a :class:`_DrainSource` for the instance's session."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source: _DrainSource | None = None
        self.session_lost = False

    def _lost(self) -> None:
        self.session_lost = True

    def __call__(
        self,
        *,
        topics: list[str],
        queue: asyncio.Queue[list[Message]],
        on_broker_drops: Callable[[int], None],
    ) -> MessageSource:
        mqtt = self.settings.mqtt
        self.source = _DrainSource(
            mqtt,
            topics=[],
            unsubscribe=subscription_filters(mqtt, topics),
            queue=queue,
            on_broker_drops=on_broker_drops,
            # the session's record: its old filters unsubscribed too, a lost session reported, and once
            # the drain ended the session, forgotten (the instance's next start has nothing to miss)
            session_record=SessionRecord.of(self.settings),
            on_session_lost=self._lost,
        )
        return self.source


def without_metrics(settings: Settings) -> Settings:
    """``settings`` with no /metrics listener: the drain's counters are in its report, and the port of the
    instance (``ingest.metrics_port`` + K) is in use when instance K of the new count runs (1 -> N)."""
    return settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"metrics_port": None})})


async def drain(
    settings: Settings,
    *,
    settle_s: float = SETTLE_S,
    timeout_s: float = TIMEOUT_S,
    stop: asyncio.Event | None = None,
) -> DrainReport:
    """Drain the instance ``settings`` describe (already :meth:`Settings.as_instance`); see the module.

    ``stop`` set: give up waiting and keep the session (what the signal handlers set); so does
    ``timeout_s`` (``math.inf``: wait for ever)."""
    if not (math.isfinite(settle_s) and settle_s > MIN_SETTLE_S):
        raise ValueError(f"settle_s {settle_s}: a number of seconds above {MIN_SETTLE_S}")
    if math.isnan(timeout_s) or timeout_s <= 0:
        raise ValueError(f"timeout_s {timeout_s}: a number of seconds above 0")
    stop = stop or asyncio.Event()
    session_only = _SessionOnly(settings)
    factory: SourceFactory = session_only
    ingester = Ingester(without_metrics(settings), source=factory)
    source = session_only.source
    assert source is not None  # made by the Ingester's constructor
    spool_before = ingester.spool.pending_count
    run = asyncio.create_task(ingester.run(), name="ingester")
    stopped: str | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            stopped = await _until_drained(
                ingester, source, run, settle_s=settle_s, deadline=deadline, stop=stop
            )
            if stopped is not None:
                break
            decided = source.delivered
            # the broker's answer comes after whatever our last acks released from the session's queue
            if not await source.round_trip():
                stopped = "the broker did not answer the drain's final PINGREQ"
                break
            if source.delivered == decided:
                source.end_session(delivered=decided)
                break
            log.info("%d more came after the last acks: draining on", source.delivered - decided)
        ingester.stop()
        await run
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    stats = ingester.stats
    if stopped is None and not source.session_ended:
        stopped = "messages came in after the drain decided the session was empty"
    return DrainReport(
        instance=settings.ingest.instance,
        client_id=settings.mqtt.client_id,
        taken=stats.received,
        written=stats.written,
        quarantined=stats.quarantined_total + stats.already_quarantined,
        spool_before=spool_before,
        spool_left=ingester.spool.pending_count,
        session_found=source.session_present,
        session_lost=session_only.session_lost,
        session_ended=source.session_ended,
        stopped=stopped,
        login_refused=source.refused is not None,
    )


async def _until_drained(
    ingester: Ingester,
    source: _DrainSource,
    run: asyncio.Task[None],
    *,
    settle_s: float,
    deadline: float,
    stop: asyncio.Event,
) -> str | None:
    """Wait until the session is empty and everything taken is written: None; else why the drain gives up.

    Why at rest for ``settle_s`` means the broker holds nothing more: "at rest" includes that every
    message taken is committed, so its acknowledgement was written. A broker sends what it queued for the
    session as soon as the in-flight window (our receive maximum) has room, that is when it reads our acks
    (Mosquitto: in the same pass that handles the PUBACK). So the quiet is counted from when the last ack
    went out, not from the last message: a slow InfluxDB write between the two must not eat into it.
    ``settle_s`` then only has to exceed the round trip to the broker and its pass: well under a
    millisecond on the loopback here, milliseconds under load or across a LAN; hence above
    :data:`MIN_SETTLE_S`, 2 s by default. :func:`drain` then makes sure by a round trip (PINGREQ,
    PINGRESP) before it ends the session: the PINGRESP comes after whatever our last acks released."""
    client_id = source.settings.client_id
    seen, quiet_since, logged = -1, time.monotonic(), time.monotonic()
    while not run.done():
        now = time.monotonic()
        if stop.is_set():
            return "interrupted"
        if source.refused is not None:
            return f"the broker refused the login: {source.refused}"
        if source.handshakes > 1 or (source.handshakes and not source.connected.is_set()):
            # on Mosquitto 2.0 a takeover is a close without DISCONNECT: no telling it from other causes
            return (
                f"the broker closed the drain's connection as {client_id}: another process connected "
                f"with that client id (is the instance still running somewhere? stop it first), or the "
                f"broker went away"
            )
        if now >= deadline:
            return "timeout"
        stats = ingester.stats
        committed = stats.written + stats.quarantined_total + stats.already_quarantined
        at_rest = (
            ingester.ready.is_set()
            and source.connected.is_set()
            and source.delivered == seen  # nothing new came ...
            and stats.received == seen  # ... every message was taken from the source's queue, decoded ...
            and stats.received + stats.replayed == committed  # ... committed (acked) and written
            and ingester.spool.pending_count == 0  # the spool from before, and the stats points, too
        )
        if not at_rest:
            seen, quiet_since = source.delivered, now
        elif now - quiet_since >= settle_s:
            log.info("drained: %d messages taken, the spool is empty", seen)
            return None
        if now - logged >= 10:
            logged = now
            log.info(
                "draining %s: %d taken, %d written, %d spool records to write",
                client_id,
                source.delivered,
                stats.written,
                ingester.spool.pending_count,
            )
        await asyncio.sleep(POLL_S)
    return "the ingester failed"


def run_drain(settings: Settings, *, settle_s: float = SETTLE_S, timeout_s: float = TIMEOUT_S) -> DrainReport:
    """:func:`drain` with SIGINT and SIGTERM giving up (the session stays)."""

    async def main() -> DrainReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await drain(settings, settle_s=settle_s, timeout_s=timeout_s, stop=stop)

    return asyncio.run(main())
