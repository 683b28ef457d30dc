"""What feeds a gateway in the store-and-forward test: meters on serial lines and a Wi-Fi device.

Every frame carries a unique, rising energy counter (``base + seq`` in the register's last digit), so each
reading is identifiable in InfluxDB by its value, and each feed keeps a log of what it sent when:

- :class:`MeterWriter`: a meter writing its frames into the meter's end of a ``socat`` pty pair (the USB
  read head on the gateway host). A meter never waits: a frame that the line does not take at once, or
  written while the line is gone (the host without power), is logged as ``unsent``.
- ``python -m tests.gateway.feeds device ...``: a Wi-Fi device (Tasmota ``tele/<dev>/SENSOR`` once a second
  with its own "Time", QoS 1, MQTT 3.1.1, clean session) as its own process, usually in the device's network
  namespace. It keeps nothing while its broker is away (as Tasmota and ESPHome do): such a message is
  ``unsent``; it logs ``sent`` and, on the broker's PUBACK, ``acked``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal
from zoneinfo import ZoneInfo

from ingest.decoders.checksums import crc16_arc
from ingest.gateway.frames import MeterProtocol
from ingest.localservices import LocalService, ServiceError
from simulators import smlframe as sml
from tests.gateway.netns import Namespace

REPO = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")  # the profiles' default zone for device times without one
Outcome = Literal["written", "unsent", "partial"]


# --- frames with a unique counter --------------------------------------------------------------------------


def sml_frame(seq: int, *, base: int, serial: str) -> bytes:
    """An eHZ's SML frame: 1.8.0 = ``base + seq`` tenths of a Wh, secIndex sensor time (so the read time
    stamps it)."""
    entries = [
        sml.Entry("0100000009ff", sml.octets(bytes.fromhex(serial))),
        sml.Entry("0100010800ff", sml.unsigned(base + seq, 5), unit=30, scaler=-1),
        sml.Entry("0100100700ff", sml.signed(300 + seq % 50, 4), unit=27, scaler=0),
    ]
    body = sml.sml_file(bytes.fromhex(serial), entries, sensor_time=sml.sec_index(seq))
    return sml.transport(body)


def dsmr_frame(seq: int, *, base: int, serial: str) -> bytes:
    """A DSMR 5 P1 telegram without the meter's clock line: 1.8.1 = ``base + seq`` Wh, CRC16."""
    lines = [
        "/ISK5\\2M550T-1012",
        "",
        "1-3:0.2.8(50)",
        f"0-0:96.1.1({serial})",
        f"1-0:1.8.1({(base + seq) / 1000:010.3f}*kWh)",
        "1-0:1.8.2(000000.000*kWh)",
        f"1-0:1.7.0({(300 + seq % 50) / 1000:06.3f}*kW)",
        "1-0:2.7.0(00.000*kW)",
    ]
    body = ("\r\n".join(lines) + "\r\n!").encode("ascii")
    return body + f"{crc16_arc(body):04X}\r\n".encode("ascii")


def tasmota_payload(seq: int, *, base: int, time_s: int) -> bytes:
    """tele/<dev>/SENSOR: Total = ``base + seq`` Wh, "Time" the device's clock in local time without zone, as
    Tasmota sends it (one message per second of it: each message its own point, a re-sent one the same)."""
    local = dt.datetime.fromtimestamp(time_s, BERLIN).strftime("%Y-%m-%dT%H:%M:%S")
    return json.dumps(
        {"Time": local, "ENERGY": {"Total": (base + seq) / 1000, "Power": 40 + seq % 10}}
    ).encode()


#: kWh per counter step, as each feed's profile decodes the counter into energy_import_kwh
KWH_PER_STEP: dict[str, float] = {"sml": 1e-4, "dsmr": 1e-3, "tasmota": 1e-3}


def seq_of(kwh: float, *, kind: str, base: int) -> int:
    """The frame number whose counter decoded to ``kwh``."""
    return round(kwh / KWH_PER_STEP[kind]) - base


@dataclass(frozen=True)
class MeterSpec:
    device: str
    protocol: MeterProtocol
    rate_hz: float
    base: int
    serial: str

    def frame(self, seq: int) -> bytes:
        if self.protocol == "sml":
            return sml_frame(seq, base=self.base, serial=self.serial)
        if self.protocol == "dsmr":
            return dsmr_frame(seq, base=self.base, serial=self.serial)
        raise ValueError(f"no frames for {self.protocol}")


# --- the serial line: a socat pty pair, on the gateway host ------------------------------------------------


class SerialLine(LocalService):
    """A ``socat`` pty pair in ``namespace``: ``gateway_end`` is the gateway's serial port, ``meter_end``
    the meter's. Stale links of a killed socat are removed before each start."""

    def __init__(self, directory: Path, device: str, *, namespace: Namespace | None = None) -> None:
        super().__init__(directory, port=0)
        self.name = f"socat-{device}"
        self.namespace = namespace
        self.gateway_end = directory / device
        self.meter_end = directory / f"{device}.meter"

    def command(self) -> list[str]:
        socat = shutil.which("socat")
        if socat is None:
            raise ServiceError("socat not found: install Debian's socat")
        for end in (self.gateway_end, self.meter_end):
            with contextlib.suppress(FileNotFoundError):
                end.unlink()
        argv = [socat, *(f"pty,raw,echo=0,link={end}" for end in (self.meter_end, self.gateway_end))]
        return self.namespace.command(argv) if self.namespace is not None else argv

    def is_ready(self) -> bool:
        return self.meter_end.exists() and self.gateway_end.exists()

    def held_by(self, pid: int) -> bool:
        """Whether process ``pid`` has the gateway's end open."""
        try:
            target = os.path.realpath(self.gateway_end)
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
        return False


@dataclass
class SentLog:
    """What a feed sent: per frame number, when (ns, this host's clock) and how it went."""

    entries: list[tuple[int, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seq: int, t_ns: int, outcome: str) -> None:
        with self.lock:
            self.entries.append((seq, t_ns, outcome))

    def snapshot(self) -> list[tuple[int, int, str]]:
        with self.lock:
            return list(self.entries)


class MeterWriter:
    """A meter writing frames at ``spec.rate_hz`` into ``line.meter_end`` on a thread of its own, until
    :meth:`stop`. While ``line_up`` is clear (the host is without power) nothing is opened."""

    def __init__(self, spec: MeterSpec, line: SerialLine) -> None:
        self.spec = spec
        self.line = line
        self.log = SentLog()
        self.line_up = threading.Event()
        self.line_up.set()
        self._stop = threading.Event()
        self._fd: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"meter-{spec.device}", daemon=True)

    def start(self) -> MeterWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._close()

    def line_lost(self) -> None:
        self.line_up.clear()

    def line_back(self) -> None:
        self.line_up.set()

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        period = 1 / self.spec.rate_hz
        seq = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.log.add(seq, time.time_ns(), self._write(self.spec.frame(seq)))
            seq += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _write(self, frame: bytes) -> Outcome:
        if not self.line_up.is_set():
            self._close()
            return "unsent"
        try:
            if self._fd is None:
                self._fd = os.open(self.line.meter_end, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
            written = os.write(self._fd, frame)
        except BlockingIOError:
            return "unsent"
        except OSError:  # the line went away (EIO): open it again next time
            self._close()
            return "unsent"
        return "written" if written == len(frame) else "partial"


# --- the Wi-Fi device: its own process ---------------------------------------------------------------------


def device_command(
    *, host: str, port: int, device: str, base: int, log: Path, namespace: Namespace | None
) -> list[str]:
    argv = [
        "env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tests.gateway.feeds", "device",
        "--host", host, "--port", str(port), "--device", device,
        "--base", str(base), "--log", str(log),
    ]  # fmt: skip
    return namespace.command(argv) if namespace is not None else argv


class WifiDevice(LocalService):
    """The device process (``python -m tests.gateway.feeds device``); its log of messages in ``sent_log``."""

    def __init__(
        self,
        directory: Path,
        *,
        device: str,
        host: str,
        port: int,
        base: int,
        namespace: Namespace,
    ) -> None:
        super().__init__(directory, port=port)
        self.name = f"device-{device}"
        self.device = device
        self.host = host
        self.base = base
        self.namespace = namespace
        self.sent_log = directory / f"{device}.sent"

    def command(self) -> list[str]:
        return device_command(
            host=self.host, port=self.port, device=self.device, base=self.base,
            log=self.sent_log, namespace=self.namespace,
        )  # fmt: skip

    def is_ready(self) -> bool:
        return self.sent_log.exists()

    def messages(self) -> dict[int, dict[str, int]]:
        return read_device_log(self.sent_log)


def read_device_log(path: Path) -> dict[int, dict[str, int]]:
    """Per message number: ``{"sent": t_ns}`` or ``{"unsent": t_ns}``, with ``"acked": t_ns`` on a PUBACK."""
    messages: dict[int, dict[str, int]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                messages.setdefault(int(parts[0]), {})[parts[2]] = int(parts[1])
    return messages


def _run_device(args: argparse.Namespace) -> None:
    import paho.mqtt.client as mqtt

    out = Path(args.log).open("a", buffering=1)  # noqa: SIM115 - open for the process's life
    out.write("")
    lock = threading.Lock()
    pending: dict[int, int] = {}  # paho's mid -> our message number

    def note(seq: int, what: str) -> None:
        with lock:
            out.write(f"{seq} {time.time_ns()} {what}\n")

    def on_publish(client: mqtt.Client, userdata: object, mid: int, *rest: object) -> None:
        with lock:
            seq = pending.pop(mid, None)
        if seq is not None:
            note(seq, "acked")

    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=args.device, protocol=mqtt.MQTTv311, clean_session=True
    )
    client.on_publish = on_publish
    client.reconnect_delay_set(1, 1)
    client.connect_async(args.host, args.port, keepalive=10)
    client.loop_start()
    stop = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, terminate)
    topic = f"tele/{args.device}/SENSOR"
    deadline = time.monotonic() + 30
    while not client.is_connected() and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.05)  # a device publishes once it is on its broker the first time
    clock_start = int(time.time()) + 1  # the device's clock: one message per second of it
    seq = 0
    next_at = time.monotonic()
    while not stop.is_set():
        if client.is_connected():
            payload = tasmota_payload(seq, base=args.base, time_s=clock_start + seq)
            with lock:
                info = client.publish(topic, payload, qos=1)
                pending[info.mid] = seq
                out.write(f"{seq} {time.time_ns()} sent\n")
        else:
            note(seq, "unsent")
        seq += 1
        next_at += 1.0
        stop.wait(max(0.0, next_at - time.monotonic()))
    time.sleep(1)  # the last PUBACKs
    client.loop_stop()
    out.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.gateway.feeds")
    sub = parser.add_subparsers(dest="command", required=True)
    device = sub.add_parser("device", help="a Wi-Fi device publishing tele/<device>/SENSOR once a second")
    device.add_argument("--host", required=True)
    device.add_argument("--port", type=int, required=True)
    device.add_argument("--device", required=True)
    device.add_argument("--base", type=int, required=True)
    device.add_argument("--log", required=True)
    _run_device(parser.parse_args(argv))


if __name__ == "__main__":
    main()
