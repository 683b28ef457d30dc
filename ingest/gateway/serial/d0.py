"""IEC 62056-21 ("D0") mode C: the readout session with an optical head, and the readout's framer.

One session: at 300 baud 7E1 send the request ``/?!`` CR LF; the meter answers its identification
``/XXXZ<ident>`` CR LF, Z its highest baud rate (``0`` 300 … ``6`` 19200); send the acknowledgement with
option select ``ACK 0 Z' 0`` CR LF (Z' the lower of the meter's and ``d0_max_baud``, data readout mode),
switch the port to that rate once the ACK has left, and read ``STX`` data ``!`` CR LF ``ETX`` BCC (XOR
of the bytes after STX through ETX). The readout forwarded is the identification line followed by that
block, exactly as received: the form the central ``dsmr`` decoder reads (``device_profiles/dsmr.yaml``).
Then the port goes back to 300 baud for the next request. A meter whose Z is a letter ``A``-``F`` speaks
mode B (it switches by itself, no ACK); any other Z is mode A (the data follows at 300 baud).

Each step has its own timeout. No identification is :class:`NoAnswer` (the caller counts an error); a
block cut short, with a wrong BCC or without the ``!`` end counts as broken; bytes outside the
identification and the block (an IR head's echo of the request, noise) are counted as discarded.
:class:`~.tty.PortGone` passes through.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from ingest.checksums import bcc
from ingest.gateway.serial.framing import MAX_FRAME_BYTES, Counters, FrameCounters
from ingest.gateway.serial.tty import SerialLine

REQUEST = b"/?!\r\n"
STX, ETX, ACK = 0x02, 0x03, 0x06
MODE_C_BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
MODE_B_BAUD = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
# manufacturer (3 letters), baud code, identification (at most 16 printable characters; some send more)
_IDENTIFICATION = re.compile(rb"/[A-Za-z]{3}([^/!\r\n])[^/!\r\n]{0,32}\r\n")
_IDENTIFICATION_MAX = 40


class NoAnswer(Exception):
    """The meter did not answer the request with an identification in time."""


@dataclass(frozen=True, slots=True)
class D0Timing:
    answer_s: float = 4.0  # request -> identification complete (reaction ≤ 1.5 s + 20 chars at 300 baud)
    reaction_s: float = 0.2  # identification -> ACK: the protocol's minimum reaction time
    idle_s: float = 3.0  # the longest pause between two bytes of the data block (1.5 s in the standard)


DEFAULT_TIMING = D0Timing()


def option_select(code: int | str, max_baud: int) -> tuple[bytes | None, int | None]:
    """The ACK/option select for a meter's baud character, and the rate the data block comes at (None:
    the request's)."""
    char = chr(code) if isinstance(code, int) else code
    if char in MODE_B_BAUD:
        return None, MODE_B_BAUD[char]
    if char not in MODE_C_BAUD:
        return None, None
    chosen = max((c for c, baud in MODE_C_BAUD.items() if baud <= max_baud and c <= char), default="0")
    return bytes([ACK]) + b"0" + chosen.encode() + b"0\r\n", MODE_C_BAUD[chosen]


class BlockFramer:
    """``STX`` … ``!`` CR LF ``ETX`` BCC out of a byte stream; what precedes STX is discarded."""

    def __init__(self, *, counters: Counters | None = None, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.counters: Counters = counters if counters is not None else FrameCounters()
        self.max_frame = max_frame
        self.ended = 0  # blocks that came to an end, good or broken
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        blocks: list[bytes] = []
        while True:
            buf = self._buf
            stx = buf.find(bytes([STX]))
            if stx == -1:
                self._drop(len(buf))
                return blocks
            self._drop(stx)
            etx = buf.find(bytes([ETX]), 1)
            if etx == -1 or etx + 1 >= len(buf):
                if len(buf) > self.max_frame:
                    self._broken(1)
                    continue
                return blocks
            block = bytes(buf[: etx + 2])
            if bcc(block[1:-1]) != block[-1] or not block[1:-2].rstrip(b"\r\n").endswith(b"!"):
                self._broken(etx + 2)
                continue
            del buf[: etx + 2]
            self.ended += 1
            blocks.append(block)

    @property
    def begun(self) -> bool:
        return bool(self._buf)

    def reset(self) -> None:
        if self._buf:
            self.counters.broken += 1
        self._drop(len(self._buf))

    def _drop(self, count: int) -> None:
        self.counters.discarded_bytes += count
        del self._buf[:count]

    def _broken(self, count: int) -> None:
        self.counters.broken += 1
        self.ended += 1
        self._drop(count)


async def _identification(line: SerialLine, counters: Counters, within_s: float) -> tuple[bytes, bytes]:
    """The identification line and what came after it; what came before (an echo, noise) is discarded."""
    buf = bytearray()
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        buf += await line.read(wait_s=left)
        found = _IDENTIFICATION.search(buf)
        if found is not None:
            counters.discarded_bytes += found.start()
            return found.group(0), bytes(buf[found.end() :])
        if len(buf) > _IDENTIFICATION_MAX:
            keep = buf.rfind(b"/")
            keep = keep if keep != -1 and len(buf) - keep <= _IDENTIFICATION_MAX else len(buf)
            counters.discarded_bytes += keep
            del buf[:keep]
    counters.discarded_bytes += len(buf)
    raise NoAnswer(f"{line.path}: no identification within {within_s:g} s")


async def _block(line: SerialLine, framer: BlockFramer, first: bytes, idle_s: float) -> bytes | None:
    """The data block; None when it was broken or did not come (counted as broken either way)."""
    data, received = first, len(first)
    while True:
        blocks = framer.feed(data)
        if framer.ended:  # the meter's one block: good, or broken (counted)
            return blocks[0] if blocks else None
        data = await line.read(wait_s=idle_s)
        received += len(data)
        if not data or received > 2 * framer.max_frame:  # silence, or noise that never holds a block
            if framer.begun:
                framer.reset()  # the block was cut short: broken
            else:
                framer.counters.broken += 1  # identified, then no block: a readout lost
            return None


async def read_once(
    line: SerialLine, *, max_baud: int, counters: Counters, timing: D0Timing = DEFAULT_TIMING
) -> bytes | None:
    """One session: the readout (identification line + block), or None when the block was broken.

    The request goes out at the line's present rate (the meter's ``baud``, 300 unless configured), and
    the line is back at it afterwards."""
    request_baud = line.baud
    try:
        await line.write(REQUEST)
        identification, rest = await _identification(line, counters, timing.answer_s)
        ack, baud = option_select(identification[4], max_baud)
        if ack is not None:
            await asyncio.sleep(timing.reaction_s)
            await line.write(ack)
        if baud is not None and baud != line.baud:
            await line.set_baud(baud, after_bytes=len(ack or b""))
        framer = BlockFramer(counters=counters)
        block = await _block(line, framer, rest, timing.idle_s)
        return None if block is None else identification + block
    finally:
        if line.baud != request_baud:
            await line.set_baud(request_baud)
