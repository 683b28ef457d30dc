"""A simple fleet: N households, ten per building gateway, each with a meter publishing generic JSON.

Deterministic for a seed. The realistic quarter (load profiles, device families, faults) is a separate
simulator; this one drives the core pipeline, the demo and its tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

HOUSEHOLDS_PER_GATEWAY = 10


@dataclass
class Household:
    number: int
    gateway: str
    device: str
    base_load_w: float
    import_wh: int = 0
    export_wh: int = 0

    @property
    def topic(self) -> str:
        return f"lab/{self.gateway}/{self.device}/state"


def make_fleet(households: int, *, seed: int = 1) -> list[Household]:
    rng = random.Random(seed)
    return [
        Household(
            number=n,
            gateway=f"gw-{(n - 1) // HOUSEHOLDS_PER_GATEWAY + 1:02d}",
            device=f"hh-{n:03d}-em",
            base_load_w=rng.uniform(150, 600),
            import_wh=rng.randrange(1_000_000, 20_000_000),
        )
        for n in range(1, households + 1)
    ]


@dataclass(frozen=True)
class Sample:
    household: Household
    time_ms: int
    power_w: float
    import_wh: int
    export_wh: int
    voltage_v: float

    def payload(self) -> bytes:
        return orjson.dumps(
            {
                "ts": self.time_ms,
                "energy_import_wh": self.import_wh,
                "energy_export_wh": self.export_wh,
                "power_w": self.power_w,
                "voltage_l1_v": self.voltage_v,
            }
        )


def step(household: Household, rng: random.Random, *, time_ms: int, interval_s: float) -> Sample:
    """Advance one household's meter by one interval and return what it reports."""
    power = round(household.base_load_w * rng.uniform(0.3, 3.0) - (800 if rng.random() < 0.1 else 0), 1)
    energy_wh = round(abs(power) * interval_s / 3600)
    if power >= 0:
        household.import_wh += energy_wh
    else:
        household.export_wh += energy_wh
    voltage = round(rng.gauss(230.0, 2.0), 1)
    return Sample(household, time_ms, power, household.import_wh, household.export_wh, voltage)


def samples(
    fleet: list[Household], *, count: int, start_ms: int, interval_s: float = 10.0, seed: int = 1
) -> Iterator[Sample]:
    """``count`` samples, round robin over the fleet; each household's times advance by ``interval_s``."""
    rng = random.Random(seed)
    for index in range(count):
        household = fleet[index % len(fleet)]
        time_ms = start_ms + int(index // len(fleet) * interval_s * 1000)
        yield step(household, rng, time_ms=time_ms, interval_s=interval_s)
