"""The reader of one meter: opens its serial port, frames what arrives, emits each frame, and reconnects.

:func:`run_meter` runs until cancelled and never raises otherwise: a port that is not there (a USB head
unplugged) is waited for with backoff and reopened, a port error is logged and retried, even an
unexpected exception costs only a reconnect. SML and DSMR meters send on their own, so their bytes go
through a framer; a D0 meter is asked every ``d0_interval_s`` (:mod:`.d0`). Every complete, checked frame
becomes one :class:`~ingest.gateway.frames.Frame`, read time stamped when it was complete.

Line settings: SML 8N1 (9600); DSMR 8N1 at 115200 (DSMR 4/5), 7E1 at any other rate (DSMR 2.2/3 and
pushing D0 meters at 9600 7E1); D0 7E1, each request at ``baud`` (300 unless configured).

:class:`PortStats` holds the per-port counters the health message publishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest.backoff import Backoff
from ingest.gateway.config import Meter
from ingest.gateway.frames import Frame, meter_topic
from ingest.gateway.serial.d0 import DEFAULT_TIMING, D0Timing, NoAnswer, read_once
from ingest.gateway.serial.framing import Framer
from ingest.gateway.serial.p1 import P1Framer
from ingest.gateway.serial.sml import SmlFramer
from ingest.gateway.serial.tty import PortError, PortGone, SerialLine

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0
EMIT_ERROR_LOG_S = 60.0  # frames not handed on: the first with its traceback, then one line per interval
P1_8N1_BAUD = 115200


@dataclass(slots=True)
class PortStats:
    frames: int = 0  # complete, checked frames emitted
    broken: int = 0  # frames begun but not good (CRC/BCC, cut short, too long, a D0 readout lost)
    discarded_bytes: int = 0  # bytes in no emitted frame: noise, echoes, broken frames
    reconnects: int = 0  # the port reopened after it was lost
    errors: int = 0  # port lost, port unusable, a D0 meter not answering, a frame the outbox refused
    connected: bool = False
    last_frame_ns: int | None = None


def line_settings(meter: Meter) -> tuple[int, bool]:
    """The baud rate the port opens at, and whether the line is 7E1 (else 8N1)."""
    if meter.protocol == "d0":
        return meter.line_baud, True  # the request's rate, 300 in mode C
    if meter.protocol == "dsmr":
        return meter.line_baud, meter.line_baud != P1_8N1_BAUD
    return meter.line_baud, False


class _Reader:
    def __init__(
        self,
        meter: Meter,
        *,
        gateway: str,
        emit: Callable[[Frame], None],
        stats: PortStats,
        d0_timing: D0Timing,
    ) -> None:
        self.meter = meter
        self.topic = meter_topic(gateway, meter.protocol, meter.device)
        self.emit = emit
        self.stats = stats
        self.d0_timing = d0_timing
        self.backoff = Backoff(minimum=RECONNECT_MIN_S, maximum=RECONNECT_MAX_S)
        self.framer: Framer | None = None
        self.first_frame_logged = False  # since the port was opened
        self._emit_failed_logged_at: float | None = None
        self._emit_failed_unlogged = 0
        if meter.protocol == "sml":
            self.framer = SmlFramer(counters=stats)
        elif meter.protocol == "dsmr":
            self.framer = P1Framer(counters=stats)

    def deliver(self, payload: bytes) -> None:
        read_ns = time.time_ns()
        self.stats.frames += 1
        self.stats.last_frame_ns = read_ns
        self.backoff.reset()
        if not self.first_frame_logged:
            self.first_frame_logged = True
            log.info(
                "meter %s on %s: first frame, %d bytes", self.meter.device, self.meter.port, len(payload)
            )
        try:
            self.emit(Frame(topic=self.topic, payload=payload, read_ns=read_ns))
        except Exception as exc:
            self.stats.errors += 1
            self._emit_failed(len(payload), exc)

    def _emit_failed(self, size: int, exc: Exception) -> None:
        self._emit_failed_unlogged += 1
        now = time.monotonic()
        if self._emit_failed_logged_at is None:
            log.error(
                "%s: a frame of %d bytes could not be handed on (further ones: one line a minute)",
                self.meter.device,
                size,
                exc_info=exc,
            )
        elif now - self._emit_failed_logged_at >= EMIT_ERROR_LOG_S:
            log.error(
                "%s: %d frame(s) could not be handed on since the last such message (%d port errors in "
                "all); the last: %s",
                self.meter.device,
                self._emit_failed_unlogged,
                self.stats.errors,
                exc,
            )
        else:
            return
        self._emit_failed_logged_at = now
        self._emit_failed_unlogged = 0

    async def run(self) -> None:
        meter, stats = self.meter, self.stats
        baud, seven_even = line_settings(meter)
        opened_before = False
        failing = False  # the last open failed: log the next failure at DEBUG only
        while True:
            try:
                line = SerialLine.open(meter.port, baud=baud, seven_even=seven_even)
            except PortError as exc:
                if not failing:
                    if not isinstance(exc, PortGone):  # absent is a state (connected: false), not an error
                        stats.errors += 1
                    log.warning("%s: waiting for the port: %s", meter.device, exc)
                else:
                    log.debug("%s: still waiting for the port: %s", meter.device, exc)
                failing = True
            else:
                failing = False
                stats.reconnects += opened_before
                opened_before = True
                await self._read(line, baud)
            await asyncio.sleep(self.backoff.next_delay())

    async def _read(self, line: SerialLine, baud: int) -> None:
        meter, stats = self.meter, self.stats
        stats.connected = True
        self.first_frame_logged = False
        log.info("%s: reading %s on %s at %d baud", meter.device, meter.protocol, meter.port, baud)
        try:
            if self.framer is None:
                await self._poll_d0(line)
            else:
                await self._stream(line, self.framer)
        except PortGone as exc:
            stats.errors += 1
            log.warning("%s: port lost: %s", meter.device, exc)
        except PortError as exc:
            stats.errors += 1
            log.error("%s: port error: %s", meter.device, exc)
        except Exception:
            stats.errors += 1
            log.exception("%s: unexpected error reading %s; reopening", meter.device, meter.port)
        finally:
            stats.connected = False
            line.close()
            if self.framer is not None:
                self.framer.reset()

    async def _stream(self, line: SerialLine, framer: Framer) -> None:
        while True:
            for frame in framer.feed(await line.read()):
                self.deliver(frame)

    async def _poll_d0(self, line: SerialLine) -> None:
        meter, stats = self.meter, self.stats
        loop = asyncio.get_running_loop()
        silent = False
        while True:
            started = loop.time()
            try:
                readout = await read_once(
                    line, max_baud=meter.d0_max_baud, counters=stats, timing=self.d0_timing
                )
            except NoAnswer as exc:
                stats.errors += 1
                (log.debug if silent else log.warning)("%s: %s", meter.device, exc)
                silent = True
            else:
                if silent:
                    log.info("%s: the meter answers again", meter.device)
                silent = False
                if readout is not None:
                    self.deliver(readout)
            # until the next request, whatever arrives is noise
            while (left := started + meter.d0_interval_s - loop.time()) > 0:
                stats.discarded_bytes += len(await line.read(wait_s=left))


async def run_meter(
    meter: Meter,
    *,
    gateway: str,
    emit: Callable[[Frame], None],
    stats: PortStats,
    d0_timing: D0Timing = DEFAULT_TIMING,
) -> None:
    """Read ``meter`` until cancelled: each complete frame -> ``emit``; counters in ``stats``."""
    await _Reader(meter, gateway=gateway, emit=emit, stats=stats, d0_timing=d0_timing).run()
