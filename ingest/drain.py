"""``reallabor ingest --instance K --of N --drain``: retire an instance without losing what its session holds.

An instance that stops keeps its place in the broker's shared subscription: its persistent session goes on
receiving its round-robin share (Mosquitto 2.0.11, measured) until the instance comes back or the session
expires, and then those messages are gone. Draining ends the session only once it is empty:

1. connect with the instance's identity (client id, clean start off: its session, with what it queued),
   and UNSUBSCRIBE its filters instead of subscribing them, so the broker deals it no new shares;
2. run the ordinary pipeline on what comes: the session's queued messages, redeliveries of what was in
   flight, and the instance's spool from before (:class:`ingest.ingester.Ingester`, unchanged);
3. wait until nothing came for ``settle_s``, every message taken is committed and the spool is empty
   (all written to InfluxDB);
4. DISCONNECT with Session Expiry Interval 0: the broker drops the (now empty) session, unless a message
   came in after step 3 decided (:meth:`ingest.mqtt.MqttSource.end_session`): then the session stays and
   the report says so (exit 1; run the drain again).

Interrupted (Ctrl-C, SIGTERM), the drain disconnects as the ingester does: the session stays with whatever
it still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ingest.config import Settings
from ingest.ingester import Ingester
from ingest.ingester_ports import MessageSource, SourceFactory
from ingest.mqtt import Message, MqttSource, subscription_filters
from ingest.mqtt_session import SessionRecord

log = logging.getLogger(__name__)

SETTLE_S = 2.0  # nothing came for this long: the session has handed over what it held
POLL_S = 0.05


@dataclass(frozen=True)
class DrainReport:
    """What a drain did; ``session_ended`` and an empty spool together: the instance is retired."""

    instance: int
    client_id: str
    taken: int  # messages the session handed over
    written: int  # ... whose points InfluxDB confirmed (spool records from before included)
    quarantined: int  # ... kept in the instance's quarantine with a reason
    spool_left: int  # spool records not written (InfluxDB away): run the drain again
    session_ended: bool

    @property
    def retired(self) -> bool:
        return self.session_ended and self.spool_left == 0

    def line(self) -> str:
        return json.dumps({**asdict(self), "retired": self.retired})


class _SessionOnly:
    """The source factory of a drain: the instance's session without its subscriptions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source: MqttSource | None = None

    def __call__(
        self,
        *,
        topics: list[str],
        queue: asyncio.Queue[list[Message]],
        on_broker_drops: Callable[[int], None],
    ) -> MessageSource:
        mqtt = self.settings.mqtt
        self.source = MqttSource(
            mqtt,
            topics=[],
            unsubscribe=subscription_filters(mqtt, topics),
            queue=queue,
            on_broker_drops=on_broker_drops,
            # the session's record: its old filters unsubscribed too, a lost session reported, and once
            # the drain ended the session, forgotten (the instance's next start has nothing to miss)
            session_record=SessionRecord.of(self.settings),
        )
        return self.source


async def drain(
    settings: Settings, *, settle_s: float = SETTLE_S, stop: asyncio.Event | None = None
) -> DrainReport:
    """Drain the instance ``settings`` describe (already :meth:`Settings.as_instance`); see the module.

    ``stop`` set: give up waiting and keep the session (what the signal handlers set)."""
    stop = stop or asyncio.Event()
    session_only = _SessionOnly(settings)
    factory: SourceFactory = session_only
    ingester = Ingester(settings, source=factory)
    source = session_only.source
    assert source is not None  # made by the Ingester's constructor
    run = asyncio.create_task(ingester.run(), name="ingester")
    try:
        if await _until_drained(ingester, source, run, settle_s=settle_s, stop=stop):
            source.end_session(delivered=source.delivered)
        ingester.stop()
        await run
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    stats = ingester.stats
    return DrainReport(
        instance=settings.ingest.instance,
        client_id=settings.mqtt.client_id,
        taken=stats.received,
        written=stats.written,
        quarantined=stats.quarantined_total + stats.already_quarantined,
        spool_left=ingester.spool.pending_count,
        session_ended=source.session_ended,
    )


async def _until_drained(
    ingester: Ingester, source: MqttSource, run: asyncio.Task[None], *, settle_s: float, stop: asyncio.Event
) -> bool:
    """Wait until the session is empty and everything taken is written; False when stopped or failed."""
    ready = asyncio.create_task(ingester.ready.wait(), name="drain-ready")
    halt = asyncio.create_task(stop.wait(), name="drain-stop")
    try:
        await asyncio.wait({ready, run, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
        halt.cancel()
    seen, quiet_since = -1, time.monotonic()
    logged = 0.0
    while not run.done() and not stop.is_set():
        now = time.monotonic()
        if source.delivered != seen:
            seen, quiet_since = source.delivered, now
        stats = ingester.stats
        committed = stats.written + stats.quarantined_total + stats.already_quarantined
        at_rest = (
            source.connected.is_set()
            and stats.received == seen  # every message taken from the source's queue and decoded ...
            and stats.received + stats.replayed == committed  # ... committed and written
            and ingester.spool.pending_count == 0  # the spool from before, and the stats points, too
        )
        if at_rest and now - quiet_since >= settle_s:
            log.info("drained: %d messages taken, the spool is empty", seen)
            return True
        if now - logged >= 10:
            logged = now
            log.info(
                "draining %s: %d taken, %d written, %d spool records to write",
                source.settings.client_id,
                seen,
                stats.written,
                ingester.spool.pending_count,
            )
        await asyncio.sleep(POLL_S)
    return False


def run_drain(settings: Settings, *, settle_s: float = SETTLE_S) -> DrainReport:
    """:func:`drain` with SIGINT and SIGTERM giving up (the session stays)."""

    async def main() -> DrainReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await drain(settings, settle_s=settle_s, stop=stop)

    return asyncio.run(main())
