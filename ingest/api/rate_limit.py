"""A per-client request rate limit for the public pages (``/quarter``, ``/opendata/``): a token bucket per
client address, in the API's memory, answered with 429 and Retry-After.

Each address may send ``burst`` requests at once and then ``per_s`` a second on average. Buckets are kept
for at most ``max_keys`` addresses, the least recently seen go first (a forgotten address starts with a
full bucket again: the limit bounds a client's steady rate, which is what protects the process).

The address is the request's client (:func:`ingest.api.throttle.client_address`, as the login throttle
counts): the TCP peer, or, for a request from one of ``api.trusted_proxies``, the client the proxy names in
X-Forwarded-For (:mod:`ingest.api.serving`). Behind a proxy that is not listed there, every visitor shares
the proxy's bucket, so the limit then bounds all visitors together.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

PER_S = 10.0
BURST = 60
MAX_KEYS = 10_000


class RateLimited(Exception):
    """Too many requests from this client: try again in ``retry_after_s`` seconds (at least 1)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class ClientRateLimit:
    def __init__(
        self,
        *,
        per_s: float = PER_S,
        burst: int = BURST,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError(f"per_s ({per_s}) must be > 0, burst ({burst}) and max_keys ({max_keys}) >= 1")
        self.per_s = per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, address: str | None) -> None:
        """Count one request of ``address``; :class:`RateLimited` when its bucket is empty."""
        key = address or "unknown"
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_s)
            bucket.at = now
            self._buckets[key] = bucket  # to the end: the least recently seen go first
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1.0:
                raise RateLimited(max(1, math.ceil((1.0 - bucket.tokens) / self.per_s)))
            bucket.tokens -= 1.0
