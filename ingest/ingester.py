"""The ingester: a message the broker handed over is in InfluxDB, in the spool, or in quarantine. Never gone.

Tasks (named), connected by bounded queues:

``mqtt-source``  puts every message into a queue (the broker sends at most ``receive_maximum`` unacked)
``decode``       turns messages into line protocol and cuts batches by size and time; rejected messages
                 become quarantine entries of the same batch
``commit``       per batch (group commit): quarantine entries, then the lines into the spool (one fsync),
                 THEN acknowledges the batch's messages. A full spool blocks here: no ack, no consuming,
                 the broker keeps the rest for our persistent session (backpressure, not loss)
``sink``         drains the spool into InfluxDB in order, ``influx.max_in_flight`` records at once, retrying
                 with backoff (``Retry-After`` honoured; while InfluxDB does not answer at all, ``/ping``
                 every 0.5 s ends the wait early);
                 lines InfluxDB refuses for good are found by bisection and quarantined with its error text;
                 a record leaves the spool only after InfluxDB confirmed it
``registry-refresh`` reloads the registry snapshot (household/building tags) every ``refresh_s`` and
                 records the devices' ``last_seen`` (receive time) in the registry, of replayed messages too
``replay``       when a snapshot holds devices the one before did not (at start: every device), replays
                 their pending ``unknown_device`` quarantine entries: decoded and enriched with the new
                 snapshot in time slices, committed as batches like any other (then marked replayed, once),
                 counted as ``replayed`` (received + replayed = written + in spool + quarantined +
                 already_quarantined)
``stats``        every ``stats_interval_s`` the counters as a point of ``ingest_stats``, through the spool
``rejection-log`` sums up the rejected messages whose warnings :class:`RejectionLog` held back (a gateway
                 flooding bad messages writes a few lines per interval, not one per message; the
                 quarantine keeps every message anyway)

A crash before the commit makes the broker redeliver; writing the same point twice is harmless (same
series and timestamp overwrite).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ingest.backoff import Backoff
from ingest.config import MqttSettings, Settings
from ingest.decode import MessageDecoder
from ingest.discovery.announcements import gateway_and_rest
from ingest.enrich import Enricher, RegistryLink
from ingest.influx import InfluxClient, InfluxRejected, InfluxUnavailable
from ingest.ingester_ports import LineWriter, MessageSource, SourceFactory
from ingest.lineprotocol import format_line, reading_line
from ingest.metrics import MetricsServer
from ingest.mqtt import Message, MqttSource
from ingest.mqtt_session import SessionRecord
from ingest.profiles import load_profiles
from ingest.quarantine import (
    QUARANTINE_FILE,
    DeviceKey,
    IdentityHolds,
    Quarantine,
    QuarantineEntry,
    QuarantineError,
    QuarantineRecord,
    mqtt_identity,
    spool_line_identity,
)
from ingest.readings import DecodeRejected
from ingest.security.files import private_dir
from ingest.security.series import SeriesBudget
from ingest.spool import Spool, SpoolError, SpoolRecord
from ingest.stats import Stats

log = logging.getLogger(__name__)

SINK_READ_AHEAD = 4  # spool records per round of the sink (read from disk per round trip to the worker)
# The lines of the records this process appended go to the sink in memory, up to this many bytes waiting;
# the spool's disk copy is read back only for what an earlier process left and when InfluxDB lags this far
# behind (then the sink reads from disk until it has caught up with the records kept in memory)
FRESH_MAX_BYTES = 16 << 20
# The spool's checkpoint (which records InfluxDB confirmed: 2 fsyncs and a rename) is written at most this
# often while records keep coming, and when the sink is idle this long after a write: a crash replays at
# most the last interval's records from the spool, and InfluxDB overwrites the same points. Per batch it
# cost about as much CPU as the batch's write to InfluxDB (4 a second at 1,000 msg/s: bench.live_cost)
CHECKPOINT_INTERVAL_S = 1.0
PING_INTERVAL_S = 0.5  # while InfluxDB is unreachable, how often /ping checks whether it is back
# Longest the decode stage works before it lets the event loop run: reads, acks, the broker's keep-alive
# and /metrics must not wait for a large read, nor for a costly message (one costs at most tens of ms:
# the decoders bound their work, bench/poison.py).
DECODE_SLICE_S = 0.02
# At most this many messages of an open batch are left to pile up before they are decoded: enough to make
# a wake-up cheap per message, few enough that its deadline finds little to decode (a whole interval's
# worth, decoded at the deadline on a busy machine, delayed the batch: p50 at 5,000 msg/s 0.26-0.30 ->
# 0.62-0.74 s; with 256: 0.20-0.21 s, as before the change, bench.ingest --rates 5000)
DECODE_CHUNK = 256
REPLAY_PAGE = 500  # quarantine entries read per round trip to the worker thread when replaying
REJECTION_LOG_BURST = 5  # warnings per gateway and reason and interval; the rest are summed up
REJECTION_LOG_INTERVAL_S = 60.0


async def _pause() -> float:
    """One pass of the event loop; the end of the next time slice."""
    await asyncio.sleep(0)
    return time.perf_counter() + DECODE_SLICE_S


async def wait_until_up(ping: Callable[[], Awaitable[None]], delay: float, interval: float) -> bool:
    """Wait ``delay`` seconds, or less: until ``ping`` succeeds (probed every ``interval``).

    True when the ping ended the wait. The write backoff grows to ``retry_max_s`` during an outage, so
    without the probe writing resumed up to that long after InfluxDB was back.
    """
    deadline = time.monotonic() + delay
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(interval, remaining))
        if deadline - time.monotonic() <= 0:
            return False
        try:
            await asyncio.wait_for(ping(), interval)  # an unreachable host must not stall the probe
        except (InfluxUnavailable, TimeoutError):
            continue
        return True
    return False


def mqtt_source(
    settings: MqttSettings,
    *,
    session_record: SessionRecord | None = None,
    on_session_lost: Callable[[], None] | None = None,
) -> SourceFactory:
    """The broker's messages (the default source); its session remembered in ``session_record``."""

    def make(
        *, topics: list[str], queue: asyncio.Queue[list[Message]], on_broker_drops: Callable[[int], None]
    ) -> MessageSource:
        return MqttSource(
            settings,
            topics=topics,
            queue=queue,
            on_broker_drops=on_broker_drops,
            session_record=session_record,
            on_session_lost=on_session_lost,
        )

    return make


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    rejected: list[QuarantineEntry] = field(default_factory=list)
    decoded_messages: int = 0
    replayed: list[int] = field(default_factory=list)  # quarantine ids of replayed messages among them
    started: float = field(default_factory=time.monotonic)

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode() if self.lines else b""


class Inbox(asyncio.Queue[list[Message]]):
    """The source's reads (one list of messages each), counted in messages, so that the decode stage can
    sleep until a batch's worth waits (:meth:`wait_for`) instead of waking at every read."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = 0  # in the queue
        self._wanted = 0  # wake wait_for at this many; 0: nobody waits
        self._enough = asyncio.Event()

    def put_nowait(self, item: list[Message]) -> None:
        super().put_nowait(item)
        self.messages += len(item)
        if self._wanted and self.messages >= self._wanted:
            self._enough.set()

    def get_nowait(self) -> list[Message]:  # get() ends here too
        item = super().get_nowait()
        self.messages -= len(item)
        return item

    async def wait_for(self, count: int, until: float) -> None:
        """Until ``count`` messages wait or the loop's clock (``time.monotonic``) reaches ``until``."""
        if self.messages >= count:
            return
        self._wanted = max(1, count)
        self._enough.clear()
        try:
            async with asyncio.timeout_at(until):
                await self._enough.wait()
        except TimeoutError:
            pass
        finally:
            self._wanted = 0


@dataclass(slots=True)
class _LogWindow:
    started: float
    logged: int = 0
    held_back: int = 0


class RejectionLog:
    """The warning per rejected message, limited: per gateway and reason, the first ``burst`` messages of
    each ``interval_s`` get their line ("rejected message on ..."); the rest are counted and summed up in
    one line when the interval is over ("... and N more rejected messages from gw-02 (invalid_json) in
    the last 60 s"), at the next rejection of that kind or at :meth:`flush`, whichever comes first.
    Announcements are not faults: one INFO line each, as before, not limited."""

    def __init__(
        self,
        *,
        topic_prefix: str = "",
        burst: int = REJECTION_LOG_BURST,
        interval_s: float = REJECTION_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.burst = burst
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[str, str], _LogWindow] = {}

    def rejected(self, topic: str, reason: str, detail: str) -> None:
        if reason == "announcement":  # kept for the discovery list; not a fault
            log.info("announcement on %r: %s", topic, detail)
            return
        place = gateway_and_rest(topic, self.topic_prefix)
        key = (place[0] if place is not None else "(no gateway)", reason)
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window.started >= self.interval_s:
            self._sum_up(key, window, now)
            window = None
        if window is None:
            window = self._windows[key] = _LogWindow(now)
        if window.logged < self.burst:
            window.logged += 1
            log.warning("rejected message on %r: %s: %s", topic, reason, detail)
        else:
            window.held_back += 1

    def flush(self, *, everything: bool = False) -> None:
        """Sum up the intervals that are over (``everything``: all, at the end)."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if everything or now - window.started >= self.interval_s:
                self._sum_up(key, window, now)

    def _sum_up(self, key: tuple[str, str], window: _LogWindow, now: float) -> None:
        del self._windows[key]
        if window.held_back:
            log.warning(
                "... and %d more rejected messages from %s (%s) in the last %d s (all in the quarantine)",
                window.held_back,
                key[0],
                key[1],
                max(1, round(now - window.started)),
            )


class Ingester:
    """The pipeline of the module docstring. ``source`` (a factory: the source is bound to the ingester's
    queue), ``writer`` and ``spool`` replace the MQTT source, the InfluxDB client and the spool under
    ``state_dir`` that the settings describe (:mod:`ingest.ingester_ports`; tests use in-memory fakes)."""

    def __init__(
        self,
        settings: Settings,
        *,
        decoder: MessageDecoder | None = None,
        source: SourceFactory | None = None,
        writer: LineWriter | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.settings = settings
        if decoder is None:
            profiles = load_profiles(settings.ingest.profiles_dir, tz=settings.ingest.timezone)
            decoder = MessageDecoder(
                profiles,
                topic_prefix=settings.mqtt.topic_prefix,
                max_payload_bytes=settings.ingest.max_payload_bytes,
            )
        self.decoder = decoder
        self.stats = Stats()
        self.ready = asyncio.Event()
        self._messages = Inbox()  # one list per read
        self._batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2)
        self._stopping = asyncio.Event()
        self._spooled = asyncio.Event()  # the sink has work
        self._room = asyncio.Event()  # the sink freed spool space
        self._messages_in_record: dict[int, int] = {}
        self._broker_dropped_total = 0  # $SYS/broker/publish/messages/dropped as last heard
        make_source = source or mqtt_source(
            settings.mqtt, session_record=SessionRecord.of(settings), on_session_lost=self._session_lost
        )
        self.source = make_source(
            topics=decoder.subscriptions(), queue=self._messages, on_broker_drops=self._broker_dropped
        )
        self.influx: LineWriter = writer or InfluxClient(settings.influx)
        state = settings.ingest.state_dir
        private_dir(state)
        self.spool = spool or Spool(state / "spool", max_bytes=settings.ingest.spool_max_bytes)
        self.quarantine = Quarantine(state / QUARANTINE_FILE)
        # when quarantine identities are released: held only while their message may come again
        self._identities = IdentityHolds(
            self.quarantine, spool_next_seq=self.spool.next_seq, spool_pending=self.spool.pending_count
        )
        self._refused: list[int] = []  # quarantine ids of the lines refused since the last checkpoint
        # the sink's records written to InfluxDB and not checkpointed yet (the next checkpoint's)
        self._unsaved: list[int] = []
        self._unsaved_since = 0.0  # when the first of them was written (time.monotonic)
        self._checkpoint_wanted = False  # the commit waits for room: a checkpoint frees segments
        # records this process appended, in order, for the sink (their disk copy is for crash recovery)
        self._fresh: collections.deque[SpoolRecord] = collections.deque()
        self._fresh_bytes = 0
        self._disk_until = self.spool.next_seq - 1  # records up to here are read from disk
        self.enricher: Enricher | None = None
        self.registry = RegistryLink(settings.registry.url) if settings.registry.enrich else None
        self._last_seen: dict[tuple[str, str], int] = {}  # (gateway, device) -> newest receive time
        self._known_devices: frozenset[DeviceKey] | None = None  # of the snapshot before
        self._replay_due: set[DeviceKey] = set()  # devices whose unknown_device entries to replay
        self._replay_wake = asyncio.Event()
        self._replaying: set[int] = set()  # quarantine ids in a batch not committed yet
        self.rejection_log = RejectionLog(topic_prefix=decoder.topic_prefix)
        self.series = SeriesBudget(settings.ingest.max_series_per_gateway)
        self.metrics: MetricsServer | None = None
        if settings.ingest.metrics_port is not None:
            self.metrics = MetricsServer(
                self.stats.samples, host=settings.ingest.metrics_host, port=settings.ingest.metrics_port
            )
        recovery = self.spool.recovery
        if self.spool.pending_count:
            log.info("spool holds %d records from before; they are written first", self.spool.pending_count)
        if recovery.dropped_records:
            log.error(
                "spool recovery dropped %d damaged records (%d bytes), kept as .dropped files",
                recovery.dropped_records,
                recovery.dropped_bytes,
            )

    def stop(self) -> None:
        """Ask for a graceful stop: finish the batch, commit, ack, disconnect."""
        self._stopping.set()

    async def run(self) -> None:
        if self.metrics is not None:
            await self.metrics.start()
        if self.registry is not None:
            await self._load_registry(first=True)
        tasks: set[asyncio.Task[None]] = {
            asyncio.create_task(self.source.run(), name="mqtt-source"),
            decode := asyncio.create_task(self._decode_loop(), name="decode"),
            commit := asyncio.create_task(self._commit_loop(), name="commit"),
            sink := asyncio.create_task(self._sink_loop(), name="sink"),
            asyncio.create_task(self._stats_loop(), name="stats"),
            asyncio.create_task(self._rejection_log_loop(), name="rejection-log"),
        }
        if self.registry is not None:
            tasks.add(asyncio.create_task(self._registry_loop(), name="registry-refresh"))
            tasks.add(asyncio.create_task(self._replay_loop(), name="replay"))
        announce = asyncio.create_task(self._announce_ready(), name="announce-ready")
        stop = asyncio.create_task(self._wait_for_stop(), name="stop-signal")
        try:
            done, _ = await asyncio.wait(tasks | {stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stop}:
                task.result()  # a task that ended on its own has failed: raise its error
            decode.cancel()
            await asyncio.gather(decode, return_exceptions=True)
            await self._batches.put(None)  # after the last batch
            await commit
            await self.source.disconnect()
            await self._drain_briefly(sink)
        finally:
            for task in (stop, announce, *tasks):
                task.cancel()
            await asyncio.gather(stop, announce, *tasks, return_exceptions=True)
            self.rejection_log.flush(everything=True)
            if self.registry is not None:
                await self._flush_last_seen()
                self.registry.close()
            await self.influx.close()
            if self.metrics is not None:
                await self.metrics.close()
            self._save_checkpoint_now()
            self.spool.close()
            self.quarantine.close()
            log.info("ingester stopped: %s", self.stats.as_dict())

    async def _wait_for_stop(self) -> None:
        await self._stopping.wait()

    async def _drain_briefly(self, sink: asyncio.Task[None], wait_s: float = 5.0) -> None:
        """Give the sink a moment to empty the spool; what is left is written after the next start."""
        deadline = time.monotonic() + wait_s
        while self.spool.pending_count and time.monotonic() < deadline and not sink.done():
            self._room.clear()
            self._checkpoint_wanted = True  # the written records' checkpoint at once, not at its time
            self._spooled.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), deadline - time.monotonic())

    async def _announce_ready(self) -> None:
        await self.source.connected.wait()
        self.ready.set()
        log.info("ingester ready")

    async def _prepare_influx(self) -> None:
        backoff = Backoff(minimum=self.settings.influx.retry_min_s, maximum=self.settings.influx.retry_max_s)
        while True:
            try:
                await self.influx.ensure_database()
                return
            except InfluxUnavailable as exc:
                delay = backoff.next_delay()
                log.warning("influx not ready (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _load_registry(self, *, first: bool = False) -> None:
        """Load the registry snapshot; at start wait for it, later keep the old one on failure."""
        assert self.registry is not None
        settings = self.settings.registry
        backoff = Backoff(minimum=1.0, maximum=settings.refresh_s)
        while True:
            try:
                self.enricher = await asyncio.to_thread(self.registry.load, unknown=settings.unknown_devices)
                log.debug("registry snapshot: %d devices", len(self.enricher))
                self._note_new_devices(self.enricher)
                return
            except Exception as exc:  # any database error: the registry is an outside system
                if not first:
                    log.warning("registry refresh failed (%s); keeping the last snapshot", exc)
                    return
                delay = backoff.next_delay()
                log.warning("registry not readable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    def _note_new_devices(self, enricher: Enricher) -> None:
        """Devices not in the snapshot before (at start: all) are due for replay."""
        keys = enricher.keys()
        new = keys if self._known_devices is None else keys - self._known_devices
        self._known_devices = keys
        if new:
            self._replay_due |= new
            self._replay_wake.set()

    async def _registry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registry.refresh_s)
            await self._flush_last_seen()
            await self._load_registry()

    async def _flush_last_seen(self) -> None:
        if not self._last_seen or self.registry is None:
            return
        seen, self._last_seen = self._last_seen, {}
        try:
            await asyncio.to_thread(self.registry.record_last_seen, seen)
        except Exception as exc:  # the registry is an outside system; last_seen is best effort
            log.warning("could not record last_seen (%s); retrying with the next refresh", exc)
            for key, received_ns in seen.items():
                self._last_seen[key] = max(received_ns, self._last_seen.get(key, 0))

    def _session_lost(self) -> None:
        self.stats.sessions_lost += 1  # the source logged the warning

    def _broker_dropped(self, dropped: int) -> None:
        self._broker_dropped_total = max(self._broker_dropped_total, dropped)
        log.warning(
            "the broker reports %d dropped messages ($SYS/broker/publish/messages/dropped): its queue limits "
            "lose data; see docs/broker.md",
            dropped,
        )

    # decode ---------------------------------------------------------------------------------------

    def _take(self, batch: Batch, messages: list[Message], start: int, size: int, slice_end: float) -> int:
        """Decode ``messages[start:]`` into the batch until it holds ``size`` lines or the time slice ends
        (``perf_counter`` passes ``slice_end``; at least one message is taken); returns where it stopped.
        Never raises for bad input."""
        decode, enricher, last_seen = self.decoder.decode, self.enricher, self._last_seen
        perf_counter = time.perf_counter
        admit = self.series.admit
        lines, decoded = batch.lines, 0
        index, end = start, len(messages)
        while index < end and len(lines) < size:
            message = messages[index]
            index += 1
            try:
                readings = decode(message.topic, message.payload, message.received_ns)
                if enricher is not None:
                    tags = readings[0].tags if readings else {}
                    last_seen[(tags.get("gateway", ""), tags.get("device", ""))] = message.received_ns
                    enricher.enrich(readings)
                message_lines = []  # all or none
                for reading in readings:
                    line = reading_line(reading, on_new_series=admit)
                    if line:
                        message_lines.append(line)
            except DecodeRejected as exc:  # UnwritableName from reading_line too
                self._reject(batch, message, exc)
                if perf_counter() >= slice_end:
                    break
                continue
            decoded += 1
            lines += message_lines
            if perf_counter() >= slice_end:
                break
        batch.messages += messages[start:index]
        batch.decoded_messages += decoded
        self.stats.received += index - start
        return index

    def _reject(self, batch: Batch, message: Message, exc: DecodeRejected) -> None:
        self.rejection_log.rejected(message.topic, exc.reason, exc.detail)
        gateway, device = exc.key or (None, None)
        mqtt = self.settings.mqtt  # our session at the broker: where the packet id counts
        session = f"{mqtt.client_id}@{mqtt.host}:{mqtt.port}"
        batch.rejected.append(
            QuarantineEntry(
                message.topic,
                message.payload,
                message.received_ns,
                exc.reason,
                exc.detail,
                exc.profile,
                gateway,
                device,
                mqtt_identity(session, message.topic, message.payload, message.mid),
                redelivered=message.dup,  # committed before a crash that came before the ack: once
                connection=message.connection,  # where its ack can go out (then the identity is released)
            )
        )

    async def _decode_loop(self) -> None:
        queue, size, taken = self._messages, self.settings.influx.batch_size, self.source.taken
        # never wait for more than the source holds while it has stopped reading (its queue full: it reads
        # on at half of receive_maximum), or a batch_size above that would wait for its deadline every time;
        # nor for more than a chunk
        enough = max(1, min(self.settings.mqtt.receive_maximum // 2, DECODE_CHUNK))
        interval = self.settings.influx.flush_interval_s
        batch = Batch()
        try:
            while True:
                last_call = 0  # past the deadline: this many reads (those that came before it), then it goes
                if not batch.messages:
                    messages = await queue.get()
                    taken(len(messages))
                    batch = Batch()
                else:
                    # An open batch goes when it is full or at its deadline: until then the reads pile up
                    # and are decoded together. A wake-up per read cost more than the few messages it
                    # brought (74 µs per message at 1,000 msg/s against 14 in bulk: bench.live_cost).
                    deadline = batch.started + interval
                    if time.monotonic() < deadline:
                        await queue.wait_for(min(size - len(batch.lines), enough), deadline)
                    if queue.empty():  # the deadline, and nothing more came
                        await self._batches.put(batch)
                        batch = Batch()
                        continue
                    if time.monotonic() >= deadline:  # not what comes while these are decoded
                        last_call = queue.qsize()
                    messages = queue.get_nowait()
                    taken(len(messages))
                slice_end = time.perf_counter() + DECODE_SLICE_S
                while True:  # this read's messages, and whatever else is already waiting
                    done = 0
                    while True:
                        done = self._take(batch, messages, done, size, slice_end)
                        if len(batch.lines) >= size:
                            await self._batches.put(batch)
                            batch = Batch()
                        if done == len(messages):
                            break
                        if time.perf_counter() >= slice_end:
                            slice_end = await _pause()
                    if last_call:
                        last_call -= 1
                        if not last_call:
                            if batch.messages:
                                await self._batches.put(batch)
                                batch = Batch()
                            break
                    if queue.empty():
                        break
                    if time.perf_counter() >= slice_end:
                        slice_end = await _pause()
                    messages = queue.get_nowait()
                    taken(len(messages))
        except asyncio.CancelledError:
            # the reads still waiting for the batch's deadline join it (decoded here, up to a batch: at
            # most what a deadline gathers); what does not fit is not acknowledged and comes again
            while not queue.empty() and len(batch.lines) < size:
                messages = queue.get_nowait()
                taken(len(messages))
                if self._take(batch, messages, 0, size, math.inf) < len(messages):
                    break
            if batch.messages:
                # never wait here: when the commit stage has failed, nobody empties the queue any more.
                # A batch that does not fit is not acknowledged, so the broker sends it again.
                with contextlib.suppress(asyncio.QueueFull):
                    self._batches.put_nowait(batch)
            raise

    # commit ---------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            batches = [await self._batches.get()]
            while not self._batches.empty():  # group commit: whatever else is waiting goes along
                batches.append(self._batches.get_nowait())
            last = batches[-1] is None
            await self._commit([b for b in batches if b is not None])
            if last:
                return

    async def _commit(self, batches: list[Batch]) -> None:
        rejected = [entry for batch in batches for entry in batch.rejected]
        stored = await asyncio.to_thread(self.quarantine.add_many, rejected) if rejected else []
        bodies = [(batch.body(), batch.decoded_messages) for batch in batches if batch.lines]
        if bodies:
            size = sum(len(body) for body, _ in bodies)
            await self._wait_for_room(size, len(bodies))
            seqs = await asyncio.to_thread(self.spool.append_many, [body for body, _ in bodies])
            for seq, (body, messages) in zip(seqs, bodies, strict=True):
                self._messages_in_record[seq] = messages
                self._keep_fresh(seq, body)
            self._spooled.set()
        replayed = [entry_id for batch in batches for entry_id in batch.replayed]
        if replayed:  # their lines are in the spool now: out of the quarantine (a crash before this
            # line replays them again at the next start: the same points, harmless)
            await asyncio.to_thread(self.quarantine.mark_replayed, replayed)
            self._replaying.difference_update(replayed)
        acked = [message for batch in batches for message in batch.messages]
        sent = self.source.ack(acked)
        self._identities.acknowledged(acked, rejected, stored, sent)
        for entry, kept in zip(rejected, stored, strict=True):
            if kept.added:
                self.stats.quarantined[entry.reason] += 1
            else:  # a redelivery of an entry stored before (a crash before the ack): counted then
                self.stats.already_quarantined += 1
        for batch in batches:
            self.stats.decoded += batch.decoded_messages
            self.stats.spooled += batch.decoded_messages
            self.stats.replayed += len(batch.replayed)
            if not batch.lines:  # messages that decoded into no line: nothing left to write
                self.stats.written += batch.decoded_messages
        self._replay_late(rejected)

    def _keep_fresh(self, seq: int, body: bytes) -> None:
        """Hand record ``seq`` to the sink in memory; past ``FRESH_MAX_BYTES`` the sink reads it from disk."""
        if self._fresh_bytes + len(body) > FRESH_MAX_BYTES:
            self._fresh.clear()  # all of them and this one: read back from disk, in order
            self._fresh_bytes = 0
            self._disk_until = seq
            return
        self._fresh.append(SpoolRecord(seq, body))
        self._fresh_bytes += len(body)

    def _replay_late(self, rejected: list[QuarantineEntry]) -> None:
        """unknown_device entries of a device the current snapshot knows (decoded with the snapshot before,
        committed after the replay looked): due for replay as well."""
        enricher = self.enricher
        if enricher is None:
            return
        late = {
            (entry.gateway, entry.device)
            for entry in rejected
            if entry.reason == "unknown_device" and entry.gateway is not None and entry.device is not None
        }
        late = {key for key in late if key in enricher}
        if late:
            self._replay_due |= late
            self._replay_wake.set()

    async def _wait_for_room(self, size: int, records: int) -> None:
        if self.spool.has_room(size, records=records):
            return
        log.warning(
            "spool full (%d bytes pending): not acknowledging until InfluxDB catches up",
            self.spool.pending_bytes,
        )
        while not self.spool.has_room(size, records=records):
            self._room.clear()
            self._checkpoint_wanted = True  # confirmed segments are deleted with the checkpoint
            self._spooled.set()  # wakes an idle sink
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 1.0)
        log.info("spool has room again")

    # replay ---------------------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while True:
            await self._replay_wake.wait()
            self._replay_wake.clear()
            due, self._replay_due = self._replay_due, set()
            try:
                waiting = await asyncio.to_thread(self.quarantine.pending_device_keys, "unknown_device")
                for key in sorted(due & waiting):
                    await self._replay_device(key)
            except QuarantineError as exc:  # try again after a while; the entries stay pending
                log.warning("replay of newly registered devices failed (%s); retrying", exc)
                self._replay_due |= due
                await asyncio.sleep(self.settings.registry.refresh_s)
                self._replay_wake.set()

    async def _replay_device(self, key: DeviceKey) -> None:
        """Replay one device's pending unknown_device entries through decode, enrich and the commit."""
        size = self.settings.influx.batch_size
        after, replayed = 0, 0
        still: Counter[str] = Counter()
        batch = Batch()
        slice_end = time.perf_counter() + DECODE_SLICE_S
        while records := await asyncio.to_thread(
            self.quarantine.pending_of_device,
            key,
            reasons=("unknown_device",),
            after_id=after,
            limit=REPLAY_PAGE,
        ):
            after = records[-1].id
            for record in records:
                if record.id in self._replaying:
                    continue
                try:
                    batch.lines += self._replay_lines(record)
                except DecodeRejected as exc:  # stays pending with its original reason
                    still[exc.reason] += 1
                else:
                    batch.decoded_messages += 1
                    batch.replayed.append(record.id)
                    self._replaying.add(record.id)
                    # heard then: recorded with the next flush (which never moves last_seen backwards)
                    self._last_seen[key] = max(record.received_ns, self._last_seen.get(key, 0))
                if len(batch.lines) >= size:
                    replayed += len(batch.replayed)
                    await self._batches.put(batch)
                    batch = Batch()
                if time.perf_counter() >= slice_end:
                    slice_end = await _pause()
        if batch.replayed:
            replayed += len(batch.replayed)
            await self._batches.put(batch)
        if replayed or still:
            log.info(
                "device %r behind gateway %r registered: %d quarantined messages replayed%s",
                key[1],
                key[0],
                replayed,
                f", still rejected: {dict(still)}" if still else "",
            )

    def _replay_lines(self, record: QuarantineRecord) -> list[str]:
        readings = self.decoder.decode(record.topic, record.payload, record.received_ns)
        if self.enricher is not None:
            self.enricher.enrich(readings)
        admit = self.series.admit
        return [line for reading in readings if (line := reading_line(reading, on_new_series=admit))]

    # sink -----------------------------------------------------------------------------------------

    async def _sink_loop(self) -> None:
        await self._prepare_influx()  # meanwhile messages are consumed into the spool
        after = 0
        while True:
            self._spooled.clear()
            records = await self._next_records(after)
            if not records:
                if self._unsaved:
                    if self._checkpoint_wanted or self._stopping.is_set():
                        await self._save_checkpoint()
                        continue
                    due = self._unsaved_since + CHECKPOINT_INTERVAL_S - time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._spooled.wait(), max(0.0, due))
                    if not self._spooled.is_set():
                        await self._save_checkpoint()
                else:
                    await self._spooled.wait()
                continue
            in_flight = self.settings.influx.max_in_flight
            refused: list[int] = []  # lines per record InfluxDB refused (quarantined, not written)
            for start in range(0, len(records), in_flight):  # InfluxDB works on one while we send the next
                refused += await asyncio.gather(
                    *(self._write_record(r.payload, r.seq) for r in records[start : start + in_flight])
                )
            after = records[-1].seq
            if not self._unsaved:
                self._unsaved_since = time.monotonic()
            self._unsaved += [r.seq for r in records]
            for record, refused_lines in zip(records, refused, strict=True):
                self.stats.written += self._messages_in_record.pop(record.seq, 0)
                self.stats.points_written += record.payload.count(b"\n") - refused_lines
            # refused lines: their identities wait for the checkpoint, so it goes at once
            if (
                self._refused
                or self._checkpoint_wanted
                or time.monotonic() - self._unsaved_since >= CHECKPOINT_INTERVAL_S
            ):
                await self._save_checkpoint()

    async def _next_records(self, after: int) -> list[SpoolRecord]:
        """The next records after ``after`` for the sink: from memory, else read back from disk."""
        fresh = self._fresh
        while fresh and fresh[0].seq <= after:  # read from disk meanwhile
            self._fresh_bytes -= len(fresh.popleft().payload)
        until = self._disk_until
        if after < until:
            records: list[SpoolRecord] = await asyncio.to_thread(
                self.spool.pending, after=after, limit=SINK_READ_AHEAD
            )
            if records:
                return records
            if self._disk_until == until:  # else the commit spilled meanwhile: read again
                self._disk_until = 0  # nothing pending on disk after ``after``: the rest is in memory
        records = []
        while fresh and len(records) < SINK_READ_AHEAD:
            record = fresh.popleft()
            self._fresh_bytes -= len(record.payload)
            records.append(record)
        return records

    async def _save_checkpoint(self) -> None:
        """Make the written records' confirmation durable; then release the identities of the lines
        InfluxDB refused among them (a crash before this point replays those records: their refused lines
        must find their quarantine entries again) and wake a commit waiting for room."""
        if self._unsaved:
            await asyncio.to_thread(self.spool.confirm_many, self._unsaved)
        self._saved()

    def _save_checkpoint_now(self) -> None:
        """At the end: the checkpoint of what was written (a failure only replays those records)."""
        if not self._unsaved:
            return
        try:
            self.spool.confirm_many(self._unsaved)
        except SpoolError as exc:
            log.warning(
                "spool checkpoint at stop failed (%s); %d records are written again", exc, len(self._unsaved)
            )
            return
        self._saved()

    def _saved(self) -> None:
        if self._unsaved:
            self._identities.checkpointed(max(self._unsaved), self._refused)  # not read again
        self._unsaved, self._refused = [], []
        self._checkpoint_wanted = False
        self._room.set()

    async def _write_record(self, body: bytes, seq: int, offset: int = 0) -> int:
        """Write until InfluxDB confirms; lines it refuses for good are quarantined (found by bisection).
        ``body`` is spool record ``seq`` from byte ``offset`` on. Returns how many lines were refused."""
        try:
            await self._write_with_retry(body)
        except InfluxRejected as exc:
            lines = body.splitlines(keepends=True)
            if len(lines) == 1:
                await self._quarantine_line(lines[0], str(exc), seq, offset)
                return 1
            self.stats.influx_rejected_batches += 1
            head = b"".join(lines[: len(lines) // 2])
            first = await self._write_record(head, seq, offset)
            return first + await self._write_record(body[len(head) :], seq, offset + len(head))
        return 0

    async def _write_with_retry(self, body: bytes) -> None:
        backoff = Backoff(minimum=self.settings.influx.retry_min_s, maximum=self.settings.influx.retry_max_s)
        while True:
            try:
                await self.influx.write(body)
                return
            except InfluxUnavailable as exc:
                delay = max(backoff.next_delay(), exc.retry_after or 0.0)
                self.stats.write_retries += 1
                log.warning("influx write of %d bytes failed (%s); retrying in %.1f s", len(body), exc, delay)
                if exc.status is None:  # no answer at all: retry as soon as InfluxDB answers /ping again
                    await wait_until_up(self.influx.ping, delay, PING_INTERVAL_S)
                else:  # InfluxDB answered (overloaded, 5xx): the backoff paces the write itself
                    await asyncio.sleep(delay)

    async def _quarantine_line(self, line: bytes, error: str, seq: int, offset: int) -> None:
        measurement = line.split(b",", 1)[0].split(b" ", 1)[0].decode(errors="replace")
        line = line.rstrip(b"\n")
        entry = QuarantineEntry(
            f"influx:{measurement}",
            line,
            time.time_ns(),
            "influx_rejected",
            error,
            identity=spool_line_identity(seq, offset, line),
            redelivered=True,  # the record is read again after a crash before its checkpoint: once
        )
        (stored,) = await asyncio.to_thread(self.quarantine.add_many, [entry])
        self._refused.append(stored.id)
        if not stored.added:
            log.info("influx refused a line again, in the quarantine already (entry %d)", stored.id)
            return
        self.stats.quarantined["influx_rejected"] += 1
        self.stats.points_quarantined += 1
        log.error("influx refused a line for good, quarantined: %s", error)

    # stats ----------------------------------------------------------------------------------------

    async def _rejection_log_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.rejection_log.interval_s / 4))
            self.rejection_log.flush()

    async def _stats_loop(self) -> None:
        tags = {"client_id": self.settings.mqtt.client_id}
        while True:
            await asyncio.sleep(self.settings.ingest.stats_interval_s)
            self.stats.implausible_read_times = self.source.implausible_read_times
            fields: dict[str, int | float | bool | str | None] = dict(self.stats.point_fields())
            fields["in_spool_records"] = self.spool.pending_count
            # for the alert rules (deploy/grafana/provisioning/alerting): the spool's fill and what the
            # broker's queue limits lost (the counters above hold the InfluxDB-refused lines as well)
            fields["spool_bytes"] = self.spool.size_bytes
            fields["spool_max_bytes"] = self.spool.max_bytes
            fields["broker_dropped"] = self._broker_dropped_total
            batch = Batch(lines=[format_line("ingest_stats", tags, fields, time.time_ns())])
            await self._batches.put(batch)
