"""Gateway behaviour and faults, each switched on by a rate (``--faults offline=0.01,dup=0.001``).

| fault | rate means | effect |
|---|---|---|
| offline | share of the time a gateway is offline (~30 min outages) | buffered, sent in a burst on return |
| skew | share of devices whose clock is off by 30 s to 15 min | their timestamps are shifted |
| dup | per message | sent twice (a QoS 1 redelivery) |
| reorder | per message | sent after the device's next message (out of order) |
| malformed | per message | sent broken (cut-off JSON, flipped bit), decodes to a rejection |
| swap | per meter and day | the meter is swapped: its counters restart at zero |
| silent | share of the time a device is silent (spells of ~2 h) | sends nothing; its counters go on |
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

OUTAGE_S = 1800.0
SILENCE_S = 7200.0


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class FaultSpec:
    offline: float = 0.0
    skew: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    malformed: float = 0.0
    swap: float = 0.0
    silent: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``offline=0.01,dup=0.001`` (empty or ``none``: no faults)."""
        values: dict[str, float] = {}
        known = {f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if part == "none":
                continue
            name, _, raw = part.partition("=")
            if name not in known:
                raise FaultSpecError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            try:
                rate = float(raw)
            except ValueError:
                raise FaultSpecError(f"fault {name}: rate {raw!r} is not a number") from None
            if not 0.0 <= rate < 1.0 and not (name == "swap" and rate >= 0):
                raise FaultSpecError(f"fault {name}: rate {rate} outside [0, 1)")
            values[name] = rate
        return cls(**values)

    def __str__(self) -> str:
        on = [f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name)]
        return ",".join(on) or "none"


def _markov_step(rng: np.random.Generator, active: bool, share: float, mean_s: float, dt_s: float) -> bool:
    """Two-state chain whose active share is ``share`` with spells of ``mean_s`` on average."""
    if share <= 0:
        return False
    leave = min(dt_s / mean_s, 1.0)
    if active:
        return not rng.random() < leave
    enter = min(share / (1.0 - share) * leave, 1.0)
    return bool(rng.random() < enter)


class FaultState:
    """The dice of one simulation: outages per gateway, silences and clock skew per device."""

    def __init__(self, spec: FaultSpec, *, seed: int) -> None:
        self.spec = spec
        self.rng = np.random.default_rng([seed, 0xFA17])
        self.offline: dict[str, bool] = {}
        self.silent: dict[str, bool] = {}
        self._skew: dict[str, int] = {}
        self.buffers: dict[str, list[object]] = {}
        self._held_now: list[object] = []
        self._held_before: list[object] = []
        self.swaps = 0
        self.bursts = 0

    def skew_s(self, device: str) -> int:
        if device not in self._skew:
            skewed = self.spec.skew > 0 and self.rng.random() < self.spec.skew
            size = int(self.rng.integers(30, 900)) * (1 if self.rng.random() < 0.5 else -1)
            self._skew[device] = size if skewed else 0
        return self._skew[device]

    def is_silent(self, device: str, dt_s: float) -> bool:
        if self.spec.silent <= 0:
            return False
        state = _markov_step(self.rng, self.silent.get(device, False), self.spec.silent, SILENCE_S, dt_s)
        self.silent[device] = state
        return state

    def swap_now(self, dt_s: float) -> bool:
        if self.spec.swap <= 0:
            return False
        swapped = bool(self.rng.random() < self.spec.swap * dt_s / 86400.0)
        self.swaps += swapped
        return swapped

    def break_it(self) -> bool:
        return self.spec.malformed > 0 and bool(self.rng.random() < self.spec.malformed)

    def step_gateways(self, gateways: list[str], dt_s: float) -> list[str]:
        """Advance the outages; the gateways that came back (their buffer is due as a burst)."""
        back = []
        for gateway in gateways:
            was = self.offline.get(gateway, False)
            now = _markov_step(self.rng, was, self.spec.offline, OUTAGE_S, dt_s)
            self.offline[gateway] = now
            if was and not now:
                back.append(gateway)
        return back

    def deliver(self, gateway: str, item: object, out: list[object]) -> None:
        """Route one message of ``gateway``: buffered while offline, duplicated, or held back a tick."""
        if self.offline.get(gateway, False):
            self.buffers.setdefault(gateway, []).append(item)
            return
        if self.spec.reorder > 0 and self.rng.random() < self.spec.reorder:
            self._held_now.append(item)  # sent after the device's next message
            return
        out.append(item)
        if self.spec.dup > 0 and self.rng.random() < self.spec.dup:
            out.append(item)

    def end_tick(self, out: list[object]) -> None:
        """Messages held back in the previous tick go now, after newer ones of the same devices."""
        out.extend(self._held_before)
        self._held_before, self._held_now = self._held_now, []

    def burst(self, gateway: str, out: list[object]) -> None:
        buffered = self.buffers.pop(gateway, [])
        if buffered:
            self.bursts += 1
            out.extend(buffered)

    def drain(self, out: list[object]) -> None:
        """At the end: every gateway reconnects and sends what it holds."""
        for gateway in sorted(self.buffers):
            self.burst(gateway, out)
        self.end_tick(out)
        self.end_tick(out)
