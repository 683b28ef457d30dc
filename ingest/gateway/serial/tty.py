"""One serial port, opened raw with termios and read through the event loop (no thread, no pyserial).

The line is 8N1 or 7E1 at a termios baud rate, raw (no echo, no CR/LF translation, no flow control), and
non-blocking: a reader callback on the event loop collects what arrives, so a gateway reading ten meters
needs no thread per port. The baud rate can change while open (IEC 62056-21 mode C switches after the
option select), after the bytes written so far have left at the old rate.

Errors are translated here: :class:`PortGone` when the device is not there or vanished (a USB head
unplugged: ENOENT, ENODEV, ENXIO, EIO, end of file; a pseudo-terminal whose other side closed: EIO);
:class:`PortError` for everything else (no permission, not a terminal, an unknown baud rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
from pathlib import Path

#: errno values meaning "the device is not there (any more)": wait for it to come back
GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO, errno.EBADF, errno.ENOTDIR})
READ_SIZE = 4096
#: collected but not yet read; beyond it the loop stops reading the port until the owner catches up
MAX_PENDING = 64 * 1024
_BITS_PER_CHAR = 10  # start + 7 data + parity + stop, or start + 8 data + stop


class PortError(Exception):
    """The port cannot be used (permission, not a terminal, baud rate); the message names the port."""


class PortGone(PortError):
    """The device is not there or vanished: reopen it when it is back."""


def _translate(path: Path, action: str, exc: OSError) -> PortError:
    kind = PortGone if exc.errno in GONE_ERRNOS else PortError
    return kind(f"{path}: {action}: {exc.strerror or exc}")


def _termios_error(path: Path, action: str, exc: termios.error) -> PortError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    kind = PortGone if code in GONE_ERRNOS else PortError
    return kind(f"{path}: {action}: {exc.args[-1] if exc.args else exc}")


def _speed(baud: int) -> int:
    speed = getattr(termios, f"B{baud}", None)
    if not isinstance(speed, int):
        raise PortError(f"baud rate {baud} is not one termios knows")
    return speed


class SerialLine:
    """An open port; one coroutine reads it at a time."""

    def __init__(self, path: Path, fd: int, baud: int) -> None:
        self.path = path
        self.baud = baud
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._pending = bytearray()
        self._failure: PortError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reading = True
        self._loop.add_reader(fd, self._on_readable)

    @classmethod
    def open(cls, path: Path, *, baud: int, seven_even: bool = False) -> SerialLine:
        """Open ``path`` raw at ``baud``, 7E1 if ``seven_even`` else 8N1; in a running event loop."""
        speed = _speed(baud)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _translate(path, "open", exc) from exc
        try:
            cc = termios.tcgetattr(fd)[6]
            cc[termios.VMIN], cc[termios.VTIME] = 1, 0
            char = termios.CS7 | termios.PARENB if seven_even else termios.CS8
            cflag = termios.CREAD | termios.CLOCAL | char
            termios.tcsetattr(fd, termios.TCSANOW, [0, 0, cflag, 0, speed, speed, cc])
            termios.tcflush(fd, termios.TCIOFLUSH)
            return cls(path, fd, baud)
        except termios.error as exc:
            os.close(fd)
            raise _termios_error(path, "not a usable serial port", exc) from exc
        except BaseException:
            os.close(fd)
            raise

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(_translate(self.path, "read", exc))
            return
        if not chunk:
            self._fail(PortGone(f"{self.path}: end of file (device gone)"))
            return
        self._pending += chunk
        if len(self._pending) >= MAX_PENDING:
            self._pause()
        self._wake()

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _fail(self, failure: PortError) -> None:
        self._failure = failure
        self._pause()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self, *, wait_s: float | None = None) -> bytes:
        """What has arrived, waiting up to ``wait_s`` for the first byte (None: forever); b"" if none came."""
        if not self._pending and self._failure is None:
            self._waiter = self._loop.create_future()
            try:
                async with asyncio.timeout(wait_s):
                    await self._waiter
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            if not self._reading and self._failure is None:
                self._loop.add_reader(self._fd, self._on_readable)
                self._reading = True
            return data
        if self._failure is not None:
            raise self._failure
        return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self._fd, view)
            except (BlockingIOError, InterruptedError):
                await asyncio.sleep(0.01)  # a few bytes to a meter: the output queue is never full for long
                continue
            except OSError as exc:
                raise _translate(self.path, "write", exc) from exc
            view = view[sent:]

    async def set_baud(self, baud: int, *, after_bytes: int = 0) -> None:
        """Switch to ``baud`` once the last ``after_bytes`` written have left at the current rate."""
        speed = _speed(baud)
        await asyncio.sleep(after_bytes * _BITS_PER_CHAR / self.baud + 0.01)
        try:
            attrs = termios.tcgetattr(self._fd)
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(self._fd, termios.TCSADRAIN, attrs)  # returns at once: the bytes are out
        except termios.error as exc:
            raise _termios_error(self.path, f"cannot set {baud} baud", exc) from exc
        self.baud = baud

    def close(self) -> None:
        if self._fd == -1:
            return
        self._fail(PortGone(f"{self.path}: closed"))
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):  # already gone with the device
            os.close(fd)
