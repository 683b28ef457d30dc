"""The ingester: source -> decode -> batch -> InfluxDB, acknowledging each message after its batch is written.

Tasks (named): ``mqtt-source`` puts messages in a queue; ``decode`` turns them into lines and cuts batches
by size and time; ``write`` sends each batch, retrying with backoff until InfluxDB confirms, then acks
its messages. A full batch queue stops ``decode``; unacknowledged messages then stop the broker at our
receive maximum: backpressure from InfluxDB all the way to the broker, without dropping anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ingest.backoff import Backoff
from ingest.config import Settings
from ingest.decode import MessageDecoder
from ingest.influx import InfluxClient, InfluxRejected, InfluxUnavailable
from ingest.lineprotocol import reading_line
from ingest.mqtt import Message, MqttSource
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected
from ingest.stats import Stats

log = logging.getLogger(__name__)


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    decoded_messages: int = 0
    started: float = field(default_factory=time.monotonic)

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode() if self.lines else b""


class Ingester:
    def __init__(self, settings: Settings, *, decoder: MessageDecoder | None = None) -> None:
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
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2)
        self._stopping = asyncio.Event()
        self.source = MqttSource(settings.mqtt, topics=decoder.subscriptions(), queue=self._messages)
        self.influx = InfluxClient(settings.influx)

    def stop(self) -> None:
        """Ask for a graceful stop: finish the batch, write it, ack, disconnect."""
        self._stopping.set()

    async def run(self) -> None:
        await self._prepare_influx()
        source = asyncio.create_task(self.source.run(), name="mqtt-source")
        decode = asyncio.create_task(self._decode_loop(), name="decode")
        write = asyncio.create_task(self._write_loop(), name="write")
        announce = asyncio.create_task(self._announce_ready(), name="announce-ready")
        try:
            stop = asyncio.create_task(self._stopping.wait(), name="stop-signal")
            done, _ = await asyncio.wait({source, decode, write, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stop}:
                task.result()  # a task that ended on its own has failed: raise its error
            decode.cancel()
            await asyncio.gather(decode, return_exceptions=True)
            await self._batches.put(None)  # after the last batch
            await write
            await self.source.disconnect()
        finally:
            for task in (source, decode, write, announce):
                task.cancel()
            await asyncio.gather(source, decode, write, announce, return_exceptions=True)
            await self.influx.close()
            log.info("ingester stopped: %s", self.stats.as_dict())

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

    def _take(self, batch: Batch, message: Message) -> None:
        """Decode one message into the batch. Never raises for bad input."""
        self.stats.received += 1
        batch.messages.append(message)
        try:
            readings = self.decoder.decode(message.topic, message.payload, message.received_ns)
        except DecodeRejected as exc:
            self.stats.rejected[exc.reason] += 1
            log.warning("rejected message on %r: %s: %s", message.topic, exc.reason, exc.detail)
            return
        self.stats.decoded += 1
        batch.decoded_messages += 1
        for reading in readings:
            line = reading_line(reading)
            if line:
                batch.lines.append(line)

    async def _decode_loop(self) -> None:
        queue, size = self._messages, self.settings.influx.batch_size
        interval = self.settings.influx.flush_interval_s
        batch = Batch()
        try:
            while True:
                if not batch.messages:
                    message = await queue.get()
                    batch = Batch()
                else:
                    remaining = batch.started + interval - time.monotonic()
                    if remaining <= 0:
                        await self._batches.put(batch)
                        batch = Batch()
                        continue
                    try:
                        message = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        continue
                self._take(batch, message)
                while len(batch.lines) < size and not queue.empty():
                    self._take(batch, queue.get_nowait())
                if len(batch.lines) >= size:
                    await self._batches.put(batch)
                    batch = Batch()
        except asyncio.CancelledError:
            if batch.messages:
                await self._batches.put(batch)
            raise

    async def _write_loop(self) -> None:
        while (batch := await self._batches.get()) is not None:
            await self._write(batch)
            self.source.ack(batch.messages)

    async def _write(self, batch: Batch) -> None:
        if not batch.lines:
            return
        body = batch.body()
        backoff = Backoff(minimum=self.settings.influx.retry_min_s, maximum=self.settings.influx.retry_max_s)
        while True:
            try:
                await self.influx.write(body)
            except InfluxUnavailable as exc:
                delay = max(backoff.next_delay(), exc.retry_after or 0.0)
                self.stats.write_retries += 1
                log.warning(
                    "influx write of %d lines failed (%s); retrying in %.1f s", len(batch.lines), exc, delay
                )
                await asyncio.sleep(delay)
                continue
            except InfluxRejected as exc:
                # v1 wrote the valid lines; the refused ones go to quarantine once it exists (issue 3)
                self.stats.influx_rejected_batches += 1
                log.error("influx refused part of a batch of %d lines: %s", len(batch.lines), exc)
            break
        self.stats.written += batch.decoded_messages
        self.stats.points_written += len(batch.lines)
