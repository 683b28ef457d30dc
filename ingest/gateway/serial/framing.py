"""What the serial framers share: their counters and the bound on a frame's size.

A framer is pure and incremental: ``feed(data)`` returns the frames completed by ``data``, each checked
(CRC, BCC) and exactly as received. Bytes that belong to no good frame are dropped and counted, never
kept beyond :data:`MAX_FRAME_BYTES`, so line noise cannot grow a gateway's memory. No exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: no meter's frame is this long (SML ~0.5 KB, P1 ~1-3 KB, a D0 readout a few KB); a longer one is broken
MAX_FRAME_BYTES = 16 * 1024


class Counters(Protocol):
    broken: int  # frames begun but not good: bad CRC/BCC, truncated, too long
    discarded_bytes: int  # bytes dropped: noise between frames and the bytes of broken frames


@dataclass(slots=True)
class FrameCounters:
    broken: int = 0
    discarded_bytes: int = 0


class Framer(Protocol):
    counters: Counters

    def feed(self, data: bytes) -> list[bytes]: ...

    def reset(self) -> None:
        """Drop what is buffered (the line was lost): a frame begun counts as broken."""


class StreamFramer:
    """The buffer and bookkeeping of a framer whose subclass moves one step at a time (:meth:`_step`)."""

    def __init__(self, *, counters: Counters | None = None, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.counters: Counters = counters if counters is not None else FrameCounters()
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False  # the buffer starts with a frame's start
        self._scan = 0  # in a frame: where the next search for its end begins

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        while self._step(frames):
            pass
        return frames

    def reset(self) -> None:
        if self._in_frame:
            self.counters.broken += 1
        self._drop(len(self._buf))
        self._in_frame = False

    def _drop(self, count: int) -> None:
        self.counters.discarded_bytes += count
        del self._buf[:count]
        self._scan = 0

    def _broken(self, resume: int) -> None:
        """The frame at the buffer's start is broken; look for the next start from ``resume`` on."""
        self.counters.broken += 1
        self._in_frame = False
        self._drop(resume)

    def _too_long(self) -> bool:
        """A frame begun is longer than any meter's: broken, and the search goes on after its start."""
        if len(self._buf) > self.max_frame:
            self._broken(1)
            return True
        return False

    def _step(self, frames: list[bytes]) -> bool:
        """One move of the state machine, appending a completed frame; False when it needs more bytes."""
        raise NotImplementedError
