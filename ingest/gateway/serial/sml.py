"""The framer of SML 1.04 transport frames (``1b1b1b1b 01010101`` … ``1b1b1b1b 1a <pad> <CRC16>``).

Synchronises on the start sequence and reads the escape sequences left to right as a sender writes them:
``1b1b1b1b`` in the data is sent twice, so a run of ``1b`` bytes 4 to 7 longer than a multiple of 8 ends
in an escape sequence. An escape followed by neither ``1a`` (end) nor ``01010101`` (start) is taken as
data and the CRC judges (a sender that escapes only aligned words). The CRC may be X-25 (LSB first, the
standard) or KERMIT (MSB first, a few meters): the gateway does not know the meter's, so either passes
here and the central ``sml`` profile's ``crc`` option decides. A frame cut short by a new start sequence,
a bad CRC or padding, or longer than :data:`~.framing.MAX_FRAME_BYTES` counts as broken. Good frames come
out unchanged, byte for byte.
"""

from __future__ import annotations

from ingest.checksums import crc_kermit, crc_x25
from ingest.gateway.serial.framing import StreamFramer

ESCAPE = b"\x1b\x1b\x1b\x1b"
START = ESCAPE + b"\x01\x01\x01\x01"
_ESC = 0x1B
_END = 0x1A


def crc_ok(frame: bytes) -> bool:
    """The last two bytes are the CRC over the rest: X-25 LSB first or KERMIT MSB first."""
    body, sent = frame[:-2], frame[-2:]
    return crc_x25(body).to_bytes(2, "little") == sent or crc_kermit(body).to_bytes(2, "big") == sent


class SmlFramer(StreamFramer):
    def _step(self, frames: list[bytes]) -> bool:
        """One move of the state machine; False when it needs more bytes."""
        buf = self._buf
        if not self._in_frame:
            at = buf.find(START)
            if at == -1:
                # keep a tail that may be the beginning of a start sequence
                self._drop(max(0, len(buf) - (len(START) - 1)))
                return False
            self._drop(at)
            self._in_frame, self._scan = True, len(START)
            return True
        at = buf.find(ESCAPE, self._scan)
        if at == -1:
            if len(buf) > self.max_frame:
                self._broken(1)
                return True
            self._scan = max(self._scan, len(buf) - 3)
            return False
        run_end = at
        while run_end < len(buf) and buf[run_end] == _ESC:
            run_end += 1
        if run_end == len(buf):
            self._scan = at  # the run may go on
            return self._too_long()
        extra = (run_end - at) % 8
        if extra < 4:  # data bytes only (pairs of escapes are one escaped 1b1b1b1b)
            self._scan = run_end
            return True
        escape = run_end - 4  # the escape sequence ends the run; what follows says what it is
        if buf[run_end] == _END:
            end = escape + 8
            if len(buf) < end:
                self._scan = at
                return self._too_long()
            frame = bytes(buf[:end])
            if frame[-3] > 3 or not crc_ok(frame):
                # look again right after the start: a frame cut short inside an escaped 1b1b1b1b run
                # swallows the next frame's start sequence as data, and that frame must not be lost too
                self._broken(1)
                return True
            del buf[:end]
            self._in_frame, self._scan = False, 0
            frames.append(frame)
            return True
        if buf[run_end] == START[4]:
            if len(buf) < escape + len(START):
                self._scan = at
                return self._too_long()
            if buf[escape : escape + len(START)] == START:  # the frame was cut short by the next one
                self._broken(escape)
                return True
        # an escape v1 does not define, or a sender that escapes only aligned words: data; the CRC judges
        self._scan = run_end
        return True
