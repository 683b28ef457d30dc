"""Shared pieces of the simulator tests: one quarter's year of shapes is built once per session."""

from __future__ import annotations

import datetime as dt

import pytest

from simulators.engine import Periods, Simulation
from simulators.faults import FaultSpec, FaultState
from simulators.quarter import Quarter, make_quarter
from simulators.shapes import Shapes

SPRING = int(dt.datetime(2025, 3, 12, 23, tzinfo=dt.UTC).timestamp())  # 13 March 00:00 CET


@pytest.fixture(scope="session")
def quarter() -> Quarter:
    return make_quarter(110, seed=3)


@pytest.fixture(scope="session")
def shapes(quarter: Quarter) -> Shapes:
    shapes = Shapes(quarter)
    shapes.year_of(SPRING)
    return shapes


def simulation(
    quarter: Quarter,
    shapes: Shapes,
    *,
    faults: str = "",
    start: int = SPRING,
    interval: int = 300,
    seed: int = 3,
) -> Simulation:
    return Simulation(
        quarter,
        start_s=start,
        interval_s=interval,
        faults=FaultState(FaultSpec.parse(faults), seed=seed),
        periods=Periods(heat=interval, climate=interval, street=interval),
        shapes=shapes,
    )
