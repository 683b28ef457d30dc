"""The gateway's health message: every ``health_interval_s`` a JSON object on ``lab/<gateway>/health``.

It goes through the outbox like a reading, so the health history of an outage arrives after it. The
central profile ``gateway-health`` (:mod:`ingest.decoders.gateway_health`) turns it into the measurement
``gateway_health``; docs/gateway.md explains each field. A value that cannot be read here is left out,
never guessed: CPU temperature without a thermal zone, the clock's offset when the kernel says it is not
synchronised (then ``clock.synced`` is false and nothing else is claimed).

Every ``summary_interval_s`` (10 min) the same figures go to the log as one INFO line (frames per port
since the last line, outbox depth, the uplink's state), so a technician at the Pi sees that it works.
A health message the outbox cannot take is counted and logged, never a crash: the next one follows.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ingest.gateway.frames import Frame, health_topic
from ingest.gateway.outbox import OutboxError

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
_STA_UNSYNC = 0x0040
_STA_NANO = 0x2000  # offset in ns instead of µs
SUMMARY_INTERVAL_S = 600.0


class OutboxStatsView(Protocol):
    @property
    def depth(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def oldest_read_ns(self) -> int | None: ...
    @property
    def dropped_full(self) -> int: ...
    @property
    def dropped_disk(self) -> int: ...
    @property
    def fsyncs(self) -> int: ...
    @property
    def bytes_written(self) -> int: ...


class UplinkStatsView(Protocol):
    @property
    def connected(self) -> bool: ...
    @property
    def broker(self) -> str | None: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def published(self) -> int: ...
    @property
    def acked(self) -> int: ...
    @property
    def refused(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


class PortStatsView(Protocol):
    @property
    def frames(self) -> int: ...
    @property
    def broken(self) -> int: ...
    @property
    def discarded_bytes(self) -> int: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def connected(self) -> bool: ...
    @property
    def last_frame_ns(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class ClockState:
    synced: bool
    offset_s: float | None = None  # what the kernel is still slewing away (set by the NTP daemon)
    error_s: float | None = None  # the NTP daemon's estimated error


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of adjtimex(2); long is the machine word, so it fits 32- and 64-bit Pis."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


def read_clock() -> ClockState | None:
    """The kernel's view of the clock discipline (adjtimex with modes 0: read only, no privilege).

    systemd-timesyncd (Raspberry Pi OS's default), chrony and ntpd keep it: synchronised means an NTP
    daemon told the kernel so recently (maxerror below 16 s). None where adjtimex is not available.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = _Timex()
        state = int(libc.adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    if state == _TIME_ERROR or timex.status & _STA_UNSYNC:
        return ClockState(synced=False)
    scale = 1e-9 if timex.status & _STA_NANO else 1e-6
    return ClockState(synced=True, offset_s=timex.offset * scale, error_s=timex.esterror * 1e-6)


def read_cpu_temp_c(path: Path = THERMAL_ZONE) -> float | None:
    try:
        return int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def disk_free_bytes(directory: Path) -> int | None:
    """Free bytes for an unprivileged writer on the filesystem of ``directory``."""
    try:
        found = os.statvfs(directory)
    except OSError:
        return None
    return found.f_bavail * found.f_frsize


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reallabor-ingest")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def _utc(time_ns: int) -> str:
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction // 1000:06d}Z"


def _age_s(then_ns: int | None, now_ns: int) -> float:
    return 0.0 if then_ns is None else round(max(0, now_ns - then_ns) / 1e9, 3)


def _set(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


@dataclass(frozen=True, slots=True)
class HealthSources:
    """Where each part of the message comes from; the service wires them (callables: read at send time)."""

    gateway: str
    outbox_directory: Path
    outbox: Callable[[], OutboxStatsView]
    uplink: Callable[[], UplinkStatsView]
    ports: Mapping[str, PortStatsView]
    local_connected: Callable[[], bool] | None = None
    local_forwarded: Callable[[], int] | None = None
    local_skipped: Callable[[], int] | None = None
    task_restarts: Callable[[], int] = lambda: 0


class Health:
    def __init__(
        self, sources: HealthSources, *, interval_s: float, summary_interval_s: float = SUMMARY_INTERVAL_S
    ) -> None:
        self.sources = sources
        self.interval_s = interval_s
        self.summary_interval_s = summary_interval_s
        self.started_monotonic = time.monotonic()
        self.version = software_version()
        self.sent = 0
        self.failed = 0  # health messages the outbox could not take
        self._summarised_at = self.started_monotonic
        self._frames_at_summary = {name: stats.frames for name, stats in sources.ports.items()}

    def message(self, now_ns: int | None = None) -> dict[str, Any]:
        """The health object as it is sent (keys the decoder knows; absent what cannot be read)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        s = self.sources
        body: dict[str, Any] = {
            "time": _utc(now_ns),
            "version": self.version,
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
            "task_restarts": s.task_restarts(),
        }
        _set(body, "disk_free_bytes", disk_free_bytes(s.outbox_directory))
        _set(body, "cpu_temp_c", read_cpu_temp_c())
        outbox = s.outbox()
        body["outbox"] = {
            "depth": outbox.depth,
            "bytes": outbox.bytes,
            "oldest_age_s": _age_s(outbox.oldest_read_ns, now_ns),
            "dropped_full": outbox.dropped_full,
            "dropped_disk": outbox.dropped_disk,
            "fsyncs": outbox.fsyncs,
            "bytes_written": outbox.bytes_written,
        }
        clock = read_clock()
        if clock is not None:
            body["clock"] = {"synced": clock.synced}
            _set(body["clock"], "offset_s", clock.offset_s)
            _set(body["clock"], "error_s", clock.error_s)
        uplink = s.uplink()
        body["uplink"] = {
            "connected": uplink.connected,
            "reconnects": uplink.reconnects,
            "published": uplink.published,
            "acked": uplink.acked,
            "refused": uplink.refused,
            "in_flight": uplink.in_flight,
        }
        _set(body["uplink"], "broker", uplink.broker)
        if s.local_connected is not None:
            body["local_broker"] = {"connected": s.local_connected()}
            if s.local_forwarded is not None:
                body["local_broker"]["forwarded"] = s.local_forwarded()
            if s.local_skipped is not None:
                body["local_broker"]["skipped"] = s.local_skipped()
        body["ports"] = {name: _port(stats, now_ns) for name, stats in s.ports.items()}
        return body

    def frame(self) -> Frame:
        now_ns = time.time_ns()
        payload = json.dumps(self.message(now_ns), separators=(",", ":")).encode()
        return Frame(health_topic(self.sources.gateway), payload, now_ns)

    async def run(self, put: Callable[[Frame], object]) -> None:
        """One message at once (a restart shows), then every interval, until cancelled."""
        while True:
            try:
                put(self.frame())
            except OutboxError as exc:  # the outbox logs its own disk trouble; health goes on
                self.failed += 1
                log.warning("health: the message could not be stored (%d so far): %s", self.failed, exc)
            else:
                self.sent += 1
            if time.monotonic() - self._summarised_at >= self.summary_interval_s:
                self.log_summary()
            await asyncio.sleep(self.interval_s)

    def log_summary(self) -> None:
        """One INFO line: frames per port since the last line, the outbox, the uplink."""
        now = time.monotonic()
        seconds = now - self._summarised_at
        self._summarised_at = now
        s = self.sources
        ports = []
        for name, stats in s.ports.items():
            fresh = stats.frames - self._frames_at_summary.get(name, 0)
            self._frames_at_summary[name] = stats.frames
            ports.append(f"{name} {fresh}{'' if stats.connected else ' (port not open)'}")
        if s.local_forwarded is not None:
            ports.append(f"local broker forwarded {s.local_forwarded()} in all")
        outbox, uplink = s.outbox(), s.uplink()
        if uplink.connected:
            state = f"connected to {uplink.broker}"
        else:
            state = f"not connected ({uplink.last_error or 'no broker answered yet'})"
        log.info(
            "gateway %s, last %.0f s: frames %s; outbox %d waiting, %d dropped; uplink %s, "
            "%d acknowledged, %d refused, %d reconnects",
            s.gateway,
            seconds,
            ", ".join(ports) or "none (no meters)",
            outbox.depth,
            outbox.dropped_full,
            state,
            uplink.acked,
            uplink.refused,
            uplink.reconnects,
        )


def _port(stats: PortStatsView, now_ns: int) -> dict[str, Any]:
    port: dict[str, Any] = {
        "connected": stats.connected,
        "frames": stats.frames,
        "broken": stats.broken,
        "discarded_bytes": stats.discarded_bytes,
        "reconnects": stats.reconnects,
        "errors": stats.errors,
    }
    if stats.last_frame_ns:
        port["last_frame_age_s"] = _age_s(stats.last_frame_ns, now_ns)
    return port
