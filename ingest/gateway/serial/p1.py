"""The framer of DSMR P1 telegrams and pushed D0 telegrams: ``/`` header line … ``!`` CRC CR LF.

A telegram starts at a ``/`` with no other ``/`` before its line end (noise before the header is
dropped), and ends at the first line that starts with ``!``: ``!`` and four hex digits, the CRC-16/ARC
over ``/`` … ``!`` (DSMR ≥ 4, e-MUCS), checked here; or ``!`` alone (DSMR 2.2/3, and the D0 telegrams
German meters push, e.g. EasyMeter Q3D), forwarded as is. Whether a telegram without a CRC is acceptable
is the central ``dsmr`` profile's call (``require_crc``, and the version a telegram declares): the
gateway does not drop what it cannot judge, and the raw telegram stays in quarantine if refused.

Broken: a bad CRC, an end line that is neither, a new header line before the end (the telegram was cut
short), a telegram longer than :data:`~.framing.MAX_FRAME_BYTES`. Good telegrams come out unchanged,
through the LF of the end line.
"""

from __future__ import annotations

import re

from ingest.checksums import crc16_arc
from ingest.gateway.serial.framing import StreamFramer

_END_LINE = re.compile(rb"!([0-9A-Fa-f]{4})?\r?\n")
_END_LINE_MAX = len(b"!ABCD\r\n")


class P1Framer(StreamFramer):
    def _step(self, frames: list[bytes]) -> bool:
        """One move of the state machine; False when it needs more bytes."""
        buf = self._buf
        if not self._in_frame:
            return self._sync()
        lf = buf.find(b"\n", max(self._scan, 1))
        while lf != -1 and lf + 1 < len(buf):
            at = lf + 1
            if buf[at] == 0x2F:  # '/' starts a line: a new header, this telegram was cut short
                self._broken(at)
                return True
            if buf[at] == 0x21:  # '!': the end line
                return self._end_line(at, frames)
            lf = buf.find(b"\n", at)
        if lf != -1:
            self._scan = lf  # the next line's first byte is still coming
        else:
            self._scan = len(buf)
        return self._too_long()

    def _end_line(self, at: int, frames: list[bytes]) -> bool:
        buf = self._buf
        found = _END_LINE.match(buf, at)
        if found is None:
            if len(buf) - at < _END_LINE_MAX and buf.find(b"\n", at) == -1:
                self._scan = at - 1  # the end line is still coming
                return self._too_long()
            self._broken(at + 1)  # a '!' line that is no end line
            return True
        end = found.end()
        frame = bytes(buf[:end])
        crc = found.group(1)
        if crc is not None and int(crc, 16) != crc16_arc(frame[: at + 1]):
            self._broken(1)  # noise with a '/' may have posed as the header: look again after it
            return True
        del buf[:end]
        self._in_frame, self._scan = False, 0
        frames.append(frame)
        return True

    def _sync(self) -> bool:
        """Find the next header: a '/' with no other '/' before its line end."""
        buf = self._buf
        at = buf.find(b"/")
        if at == -1:
            self._drop(len(buf))
            return False
        line_end = buf.find(b"\n", at)
        if line_end == -1:
            if len(buf) - at > self.max_frame:
                self._drop(len(buf))
                return False
            at = buf.rfind(b"/", at)  # a later '/' on the same line is the better candidate
            self._drop(at)
            return False
        at = buf.rfind(b"/", at, line_end)
        self._drop(at)
        self._in_frame, self._scan = True, 0
        return True
