"""Bounds on the household exports (``/api/v1/me/export``, ``/portal/export`` and the operators' exports):
each streams every point of a household (raw data: 90 days), so each costs InfluxDB and the API seconds
to minutes. The review started 40 at once as one resident: all ran, 16 s each on the demo's one day of data.

Three rules, checked in this order when an export is asked for, in the API's memory (one process):

- one export per user at a time: a second while the first still streams is refused (429, Retry-After);
- at most ``per_hour`` exports per user in a sliding hour (residents :data:`RESIDENT_PER_HOUR`, operators
  :data:`OPERATOR_PER_HOUR`: they export one household after another) (429, Retry-After: until the oldest
  leaves the hour);
- at most ``slots`` exports at once in the process, whoever asks (503, Retry-After).

An export holds a :class:`Lease` from the request until its stream ends; the lease is also released when
the stream is dropped without being read (the client went away before the first byte). Only a granted
export counts towards the hourly rate.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from fastapi import FastAPI

RESIDENT_PER_HOUR = 5
OPERATOR_PER_HOUR = 60
SLOTS = 2  # exports streaming at once in the process
HOUR_S = 3600.0
BUSY_RETRY_S = 30  # Retry-After while one's own export (or the process' slots) is still busy


class ExportRefused(Exception):
    """Not now: ``status`` 429 (this user: ``reason`` "running" or "rate") or 503 (the process is busy)."""

    def __init__(self, status: int, reason: str, retry_after_s: int, *, per_hour: int = 0) -> None:
        messages = {
            "running": "an export of yours is still running: wait until it has finished",
            "rate": "too many exports in the last hour",
            "busy": "too many exports are running at the moment",
        }
        super().__init__(f"{messages[reason]}; try again in {retry_after_s} s")
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.per_hour = per_hour

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


@dataclass(slots=True)
class _User:
    started: deque[float] = field(default_factory=deque)  # granted exports within the hour
    running: bool = False


class Lease:
    """One granted export; :meth:`release` (idempotent) when its stream has ended."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._open = True

    def release(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._release()


def leased(chunks: Iterable[bytes], lease: Lease) -> Iterator[bytes]:
    """``chunks``, releasing ``lease`` when they end or fail, or when the stream is dropped unread (a
    generator never started runs no ``finally``: a finalizer covers that)."""

    def stream() -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            lease.release()

    out = stream()
    weakref.finalize(out, lease.release)
    return out


class ExportLimiter:
    def __init__(self, *, slots: int = SLOTS, clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = slots
        self._clock = clock
        self._users: dict[int, _User] = {}
        self._running = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        return self._running

    def acquire(self, user_id: int, *, per_hour: int) -> Lease:
        """A lease for one export by ``user_id``, or :class:`ExportRefused`."""
        now = self._clock()
        with self._lock:
            user = self._users.setdefault(user_id, _User())
            while user.started and now - user.started[0] >= HOUR_S:
                user.started.popleft()
            if user.running:
                raise ExportRefused(429, "running", BUSY_RETRY_S)
            if len(user.started) >= per_hour:
                wait = max(1, math.ceil(user.started[0] + HOUR_S - now))
                raise ExportRefused(429, "rate", wait, per_hour=per_hour)
            if self._running >= self.slots:
                raise ExportRefused(503, "busy", BUSY_RETRY_S)
            user.running = True
            user.started.append(now)
            self._running += 1
        return Lease(lambda: self._release(user_id))

    def _release(self, user_id: int) -> None:
        with self._lock:
            self._running -= 1
            user = self._users.get(user_id)
            if user is not None:
                user.running = False
                if not user.started:
                    del self._users[user_id]


_CREATE = threading.Lock()


def export_limiter(app: FastAPI) -> ExportLimiter:
    """The app's limiter (made on first use; tests may set ``app.state.export_limiter``)."""
    with _CREATE:
        limiter: ExportLimiter | None = getattr(app.state, "export_limiter", None)
        if limiter is None:
            limiter = app.state.export_limiter = ExportLimiter()
        return limiter
