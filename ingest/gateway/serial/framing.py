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
