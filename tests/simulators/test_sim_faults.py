"""Faults: parsing, offline buffering with a burst, duplicates, reordering, determinism for a seed."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter

import pytest

from simulators.drive import drive
from simulators.engine import Message
from simulators.faults import FaultSpec, FaultSpecError
from simulators.quarter import Quarter
from simulators.shapes import Shapes
from tests.simulators.conftest import SPRING, simulation


def test_fault_spec_parses_rates_and_refuses_nonsense() -> None:
    spec = FaultSpec.parse("offline=0.01,dup=0.001")
    assert (spec.offline, spec.dup, spec.skew) == (0.01, 0.001, 0.0)
    assert str(spec) == "offline=0.01,dup=0.001"
    assert FaultSpec.parse("") == FaultSpec.parse("none") == FaultSpec()
    for bad in ("offline=2", "offline=x", "lightning=0.1"):
        with pytest.raises(FaultSpecError):
            FaultSpec.parse(bad)


def _run(
    quarter: Quarter, shapes: Shapes, faults: str, *, seed: int = 3, hours: int = 6
) -> tuple[list[Message], int]:
    sent: list[Message] = []
    sim = simulation(quarter, shapes, faults=faults, seed=seed)
    result = drive(sim, sent.append, until_s=SPRING + hours * 3600)
    return sent, result.generated


def _digest(messages: list[Message]) -> str:
    digest = hashlib.sha256()
    for m in messages:
        digest.update(m.topic.encode() + b"\0" + m.payload + b"\0")
    return digest.hexdigest()


def test_same_seed_same_messages(quarter: Quarter, shapes: Shapes) -> None:
    faults = "offline=0.05,dup=0.01,reorder=0.01,skew=0.1,malformed=0.01,swap=0.5,silent=0.05"
    first, _ = _run(quarter, shapes, faults, hours=2)
    second, _ = _run(quarter, shapes, faults, hours=2)
    other, _ = _run(quarter, shapes, faults, seed=4, hours=2)
    assert _digest(first) == _digest(second)
    assert _digest(first) != _digest(other)


def test_offline_gateways_buffer_and_burst_nothing_lost(quarter: Quarter, shapes: Shapes) -> None:
    sent, generated = _run(quarter, shapes, "offline=0.1")
    assert len(sent) == generated
    assert len({id(m) for m in sent}) == len(sent)  # each message once, none dropped
    # a burst: a gateway's messages arrive later than messages stamped after them
    late = sum(1 for a, b in itertools.pairwise(sent) if b.time_s < a.time_s - 600)
    assert late > 0


def test_duplicates_and_reordering(quarter: Quarter, shapes: Shapes) -> None:
    sent, generated = _run(quarter, shapes, "dup=0.02,reorder=0.02", hours=2)
    copies = Counter(id(m) for m in sent)  # a duplicate is the same message object again
    dups = sum(n - 1 for n in copies.values())
    assert len(sent) == generated + dups
    assert dups > 0.01 * generated
    per_device: dict[str, list[int]] = {}
    for m in sent:
        per_device.setdefault(m.topic, []).append(m.time_s)
    assert any(times != sorted(times) for times in per_device.values())


def test_skew_and_silence(quarter: Quarter, shapes: Shapes) -> None:
    plain, _ = _run(quarter, shapes, "", hours=2)
    skewed, _ = _run(quarter, shapes, "skew=0.3", hours=2)
    silent, _ = _run(quarter, shapes, "silent=0.2", hours=2)
    assert len(skewed) == len(plain)
    assert sum(a.time_s != b.time_s for a, b in zip(plain, skewed, strict=True)) > 0.1 * len(plain)
    assert len(silent) < 0.95 * len(plain)
