"""Run a simulation against a sink: in real time, accelerated (``speed``) or as fast as possible.

The gateway stage sits between the devices and the sink: outages buffer, duplicates and reordering
happen there; the ground truth records what the devices sent, before the gateway.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from simulators.engine import Message, Simulation
from simulators.faults import FaultState
from simulators.quarter import STREET_GATEWAY
from simulators.truth import GroundTruth

Sink = Callable[[Message], None]


@dataclass
class Status:
    """Messages per second, per family, on one line rewritten in place."""

    stream: TextIO | None = sys.stderr
    every_s: float = 1.0
    total: Counter[str] = field(default_factory=Counter)
    _window: Counter[str] = field(default_factory=Counter)
    _since: float = field(default_factory=time.monotonic)

    def count(self, message: Message) -> None:
        self.total[message.family] += 1
        self._window[message.family] += 1

    def line(self, sim_time_s: int) -> str | None:
        now = time.monotonic()
        elapsed = now - self._since
        if elapsed < self.every_s:
            return None
        rates = "  ".join(f"{family} {count / elapsed:.0f}" for family, count in sorted(self._window.items()))
        total = sum(self._window.values()) / elapsed
        self._window.clear()
        self._since = now
        clock = time.strftime("%Y-%m-%d %H:%M", time.gmtime(sim_time_s))
        return f"sim {clock}Z  {total:.0f} msg/s  [{rates}]  sent {sum(self.total.values())}"

    def show(self, sim_time_s: int) -> None:
        text = self.line(sim_time_s)
        if text is not None and self.stream is not None:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()


@dataclass
class RunResult:
    generated: int = 0
    delivered: int = 0
    malformed: int = 0
    ticks: int = 0
    elapsed_s: float = 0.0
    by_family: Counter[str] = field(default_factory=Counter)


def _sleep(seconds: float, stop: threading.Event | None) -> bool:
    """Wait; True when ``stop`` was set meanwhile."""
    if stop is not None:
        return stop.wait(seconds)
    time.sleep(seconds)
    return False


def drive(
    sim: Simulation,
    sink: Sink,
    *,
    until_s: int,
    speed: float | None = None,
    truth: GroundTruth | None = None,
    stop: threading.Event | None = None,
    status: Status | None = None,
) -> RunResult:
    """Step ``sim`` until its clock reaches ``until_s``; ``speed`` None: as fast as possible."""
    faults: FaultState = sim.faults
    gateways = [*sim.quarter.gateways, STREET_GATEWAY]
    result = RunResult()
    started = time.monotonic()
    sim_origin = sim.time_s

    def hand_over(batch: list[object]) -> None:
        for item in batch:
            assert isinstance(item, Message)
            sink(item)
            result.delivered += 1
            result.by_family[item.family] += 1
            if status is not None:
                status.count(item)

    while sim.time_s + sim.interval_s <= until_s:
        if stop is not None and stop.is_set():
            break
        if speed:
            delay = started + (sim.time_s + sim.interval_s - sim_origin) / speed - time.monotonic()
            if delay > 0 and _sleep(delay, stop):
                break
        flows, messages = sim.step()
        result.ticks += 1
        if truth is not None:
            truth.record_flows(flows)
        out: list[object] = []
        for gateway in faults.step_gateways(gateways, flows.dt_s):
            faults.burst(gateway, out)
        for message in messages:
            result.generated += 1
            result.malformed += message.malformed
            if truth is not None:
                truth.record_sent(message)
            faults.deliver(message.gateway, message, out)
        faults.end_tick(out)
        hand_over(out)
        if status is not None:
            status.show(sim.time_s)
    rest: list[object] = []
    faults.drain(rest)
    hand_over(rest)
    result.elapsed_s = time.monotonic() - started
    return result
