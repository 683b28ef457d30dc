"""Test-side meters for the serial reader tests: what real meters send, and the far end of the line.

- :func:`sml_frame`, :func:`p1_telegram`, :func:`d0_readout`: one frame as a meter sends it, built with
  the simulators' encoders (``simulators/formats.py``, ``simulators/smlframe.py``); the import register
  carries ``n`` so every frame is told apart by its reading.
- :class:`PtyPair`: ``socat -d -d pty,raw,echo=0,link=<meter> pty,raw,echo=0,link=<gateway>``, a serial
  line whose gateway end is the reader's port; stopping it makes the port vanish, starting it again brings
  it back under the same path.
- :class:`D0Meter`: an IEC 62056-21 mode C meter on the meter end, on a thread of its own: it answers the
  request with its identification, reads the option select and, once the reader's end of the line runs at
  the chosen rate (``termios.tcgetattr`` on the gateway end: the settings belong to the terminal, not to
  the descriptor), sends the readout. It records what it saw for the test to check.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest.checksums import bcc
from ingest.localservices import LocalService, ServiceError
from simulators import formats
from simulators import smlframe as sml

SERIAL = "0a01454d480000b8ef27"


def _state(n: int) -> formats.MeterState:
    return formats.MeterState(
        time_s=1_764_320_400 + n,
        import_wh=12_345_000.0 + n * 100,
        export_wh=456_000.0,
        power_w=500.0 + n,
        phases=(0.5, 0.3, 0.2),
        voltage=230.0,
        serial=SERIAL,
    )


def sml_frame(n: int, *, kermit: bool = False) -> bytes:
    """An eHZ's SML frame; import = 12345 kWh + n × 0.1 kWh."""
    if not kermit:
        return formats.sml_frame(_state(n))[0]
    state = _state(n)
    entries = [sml.Entry("0100010800ff", sml.unsigned(round(state.import_wh * 10), 5), unit=30, scaler=-1)]
    return sml.transport(sml.sml_file(bytes.fromhex(SERIAL), entries), kermit=True)


def sml_frame_with_escapes(n: int, offset: int) -> bytes:
    """A frame whose server id holds ``1b1b1b1b`` at ``offset``: the transport sends it escaped."""
    server_id = bytes(offset) + b"\x1b\x1b\x1b\x1b" + bytes([n % 256])
    entries = [sml.Entry("0100010800ff", sml.unsigned(123_450_000 + n, 5), unit=30, scaler=-1)]
    return sml.transport(sml.sml_file(server_id, entries))


def sml_import_kwh(n: int) -> float:
    return round(_state(n).import_wh * 10) / 10 / 1000


def p1_telegram(n: int) -> bytes:
    """A DSMR 5 telegram with CRC; import tariff 1 = 10000 kWh + n Wh."""
    state = _state(n)
    return formats.dsmr_telegram(state, (10_000_000.0 + n, 2_000_000.0, 0.0, 0.0))[0]


def p1_import_kwh(n: int) -> float:
    return round((10_000_000.0 + n) / 1000, 3) + 2000.0


def d0_push_telegram(n: int) -> bytes:
    """A German meter's pushed D0 telegram: no CRC after the '!'."""
    return (
        "/ESY5Q3DA1004 V3.04\r\n\r\n"
        f"1-0:1.8.0*255({1000 + n:012.4f}*kWh)\r\n"
        "1-0:1.7.255*255(000159.12*W)\r\n"
        "!\r\n"
    ).encode("ascii")


IDENTIFICATION = b"/ISk5MT174-0001\r\n"


def identification(offer: str = "5") -> bytes:
    """An ISKRA MT174's identification offering baud character ``offer``."""
    return IDENTIFICATION.replace(b"5", offer.encode(), 1)


def d0_block(n: int, *, bad_bcc: bool = False) -> bytes:
    """STX data ! CR LF ETX BCC of a mode C readout; import = 1234.567 kWh + n Wh."""
    data = (
        "0.0.0(00339188)\r\n"
        f"1.8.0({1234.567 + n / 1000:011.3f}*kWh)\r\n"
        "2.8.0(0000012.345*kWh)\r\n"
        "F.F(0000000)\r\n"
        "!\r\n"
    ).encode("ascii") + b"\x03"
    check = bcc(data) ^ (0x55 if bad_bcc else 0)
    return b"\x02" + data + bytes([check])


def d0_readout(n: int, *, offer: str = "5") -> bytes:
    return identification(offer) + d0_block(n)


def d0_import_kwh(n: int) -> float:
    return round(1234.567 + n / 1000, 3)


class PtyPair(LocalService):
    """A socat pseudo-terminal pair: ``gateway_end`` is the reader's port, ``meter_end`` the meter's."""

    name = "socat"

    def __init__(self, directory: Path, device: str = "meter") -> None:
        super().__init__(directory, port=0)
        self.name = f"socat-{device}"
        self.gateway_end = directory / f"{device}.tty"
        self.meter_end = directory / f"{device}.meter"

    def command(self) -> list[str]:
        socat = shutil.which("socat")
        if socat is None:
            raise ServiceError("socat not found: install Debian's socat")
        for end in (self.gateway_end, self.meter_end):
            with contextlib.suppress(FileNotFoundError):
                end.unlink()
        ends = (f"pty,raw,echo=0,link={end}" for end in (self.meter_end, self.gateway_end))
        return [socat, "-d", "-d", *ends]

    def is_ready(self) -> bool:
        return self.meter_end.exists() and self.gateway_end.exists()

    def open_meter_end(self) -> int:
        return os.open(self.meter_end, os.O_RDWR | os.O_NOCTTY)


def wait_drained(pair: PtyPair, meter_fd: int, *, within_s: float = 5.0) -> None:
    """Until what the meter wrote has been read by the reader: nothing left in the meter end's output
    queue (socat took it) nor in the gateway end's input queue (the reader took it)."""
    gateway = os.open(pair.gateway_end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + within_s
        while _queued(meter_fd, termios.TIOCOUTQ) or _queued(gateway, termios.FIONREAD):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pair.gateway_end}: the reader did not take the bytes in {within_s} s")
            time.sleep(0.005)
    finally:
        os.close(gateway)


def _queued(fd: int, request: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, request, bytes(4)), sys.byteorder)


def write_in_pieces(fd: int, data: bytes, sizes: list[int], *, pause_s: float = 0.002) -> None:
    """Write ``data`` in pieces of the given sizes (cycled), pausing between them: frames split across
    writes reach the reader in several reads."""
    at, i = 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        os.write(fd, data[at : at + size])
        at, i = at + size, i + 1
        time.sleep(pause_s)


def _speed(fd: int) -> int:
    attrs = termios.tcgetattr(fd)
    return int(attrs[5])  # ospeed


SPEEDS = {termios.B300: 300, termios.B2400: 2400, termios.B4800: 4800, termios.B9600: 9600}


@dataclass
class D0Seen:
    """What the meter saw, per request: the reader's rate at the request and when the data went out."""

    request_bauds: list[int] = field(default_factory=list)
    options: list[bytes] = field(default_factory=list)
    data_bauds: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # readout numbers sent (good BCC)
    sent_bad: list[int] = field(default_factory=list)


class D0Meter:
    """A mode C meter offering ``offer`` (a baud character) on ``pair``'s meter end, until :meth:`stop`.

    ``bad_bcc``: readout numbers sent with a wrong BCC. ``echo``: an IR head that hears itself (the
    request and the option select come back to the reader). ``silent_first``: requests left unanswered
    before the meter starts answering.
    """

    def __init__(
        self,
        pair: PtyPair,
        *,
        offer: str = "5",
        bad_bcc: frozenset[int] = frozenset(),
        echo: bool = False,
        silent_first: int = 0,
    ) -> None:
        self.pair = pair
        self.offer = offer
        self.bad_bcc = bad_bcc
        self.echo = echo
        self.silent_first = silent_first
        self.seen = D0Seen()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="d0-meter", daemon=True)

    def start(self) -> D0Meter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _read_until(self, fd: int, end: bytes, within_s: float) -> bytes:
        buf = b""
        deadline = time.monotonic() + within_s
        while end not in buf and not self._stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                buf += os.read(fd, 256)
        return buf

    def _run(self) -> None:
        meter = self.pair.open_meter_end()
        gateway = os.open(self.pair.gateway_end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)  # tcgetattr only
        requests = 0
        try:
            while not self._stop.is_set():
                request = self._read_until(meter, b"/?!\r\n", 0.2)
                if b"/?!\r\n" not in request:
                    continue
                requests += 1
                self.seen.request_bauds.append(SPEEDS.get(_speed(gateway), -1))
                if requests <= self.silent_first:
                    continue
                if self.echo:
                    os.write(meter, b"/?!\r\n")
                os.write(meter, identification(self.offer))
                option = self._read_until(meter, b"\r\n", 3.0)
                self.seen.options.append(option)
                if self.echo:
                    os.write(meter, option)
                chosen = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600}[chr(option[2])]
                deadline = time.monotonic() + 3.0
                while SPEEDS.get(_speed(gateway)) != chosen and time.monotonic() < deadline:
                    time.sleep(0.005)
                self.seen.data_bauds.append(SPEEDS.get(_speed(gateway), -1))
                n = len(self.seen.sent) + len(self.seen.sent_bad)
                bad = n in self.bad_bcc
                block = d0_block(n, bad_bcc=bad)
                write_in_pieces(meter, block, [7, 1, 30])
                (self.seen.sent_bad if bad else self.seen.sent).append(n)
        except Exception as exc:  # reported to the test, which fails on it
            self.errors.append(repr(exc))
        finally:
            os.close(meter)
            os.close(gateway)
