"""Exponential backoff with full jitter, shared by reconnects and write retries."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, *, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._ceiling = minimum

    def next_delay(self) -> float:
        """A delay in [minimum/2, ceiling]; the ceiling doubles up to ``maximum`` on every call."""
        delay = random.uniform(self.minimum / 2, self._ceiling)
        self._ceiling = min(self._ceiling * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._ceiling = self.minimum
