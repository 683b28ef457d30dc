"""Counters as functions of time: a restarted simulation continues where a continuous one would be.

Restarts mid-slot, across New Year and across both DST changes; counters monotonic; per slot the meter
counts the clipped net flow; :func:`simulators.engine.meter_counters` is what the messages carry.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from ingest.consumption import total_energy
from simulators.engine import Periods, Simulation, meter_counters
from simulators.faults import FaultSpec, FaultState
from simulators.quarter import Quarter
from simulators.shapes import (
    COUNTERS,
    EPOCH_YEAR,
    EV,
    EXPORT,
    EXPORT_LOW,
    FLOOR_YEAR,
    GRID_WH,
    IMPORT,
    IMPORT_LOW,
    PV,
    SLOT_S,
    Shapes,
    annual_bounds,
    low_tariff,
    year_start_s,
)
from tests.simulators.conftest import SPRING

NEW_YEAR = year_start_s(EPOCH_YEAR)  # 2025 -> 2026: the epoch, and a year boundary
SPRING_FORWARD = int(dt.datetime(2025, 3, 30, 1, tzinfo=dt.UTC).timestamp())  # 02:00 CET -> 03:00 CEST
FALL_BACK = int(dt.datetime(2025, 10, 26, 1, tzinfo=dt.UTC).timestamp())  # 03:00 CEST -> 02:00 CET

Readings = dict[tuple[int, int], tuple[float, float]]  # (household, time) -> import, export kWh


def _sim(quarter: Quarter, shapes: Shapes, start: int, interval: int, faults: str = "") -> Simulation:
    return Simulation(
        quarter,
        start_s=start,
        interval_s=interval,
        faults=FaultState(FaultSpec.parse(faults), seed=quarter.seed),
        periods=Periods(),
        shapes=shapes,
    )


def _run(sim: Simulation, until: int) -> tuple[Readings, dict[int, np.ndarray]]:
    """Meter readings from the messages, and every counter of the simulation after each tick."""
    readings: Readings = {}
    states: dict[int, np.ndarray] = {}
    while sim.time_s < until:
        _, messages = sim.step()
        for m in messages:
            if m.counters is not None:
                readings[(m.household, m.time_s)] = m.counters
        states[sim.time_s] = np.stack(
            [sim.import_wh, sim.export_wh, *sim.tariffs, sim.pv_wh, sim.ev_wh, sim.heat_wh]
        )
    return readings, states


@pytest.mark.parametrize(
    ("origin", "restart_s", "interval", "restart_interval"),
    [
        (SPRING, 1590, 30, 30),  # restarted in the middle of a slot
        (SPRING, 1590, 30, 45),  # and with another reporting interval
        (NEW_YEAR - 1800, 1200, 30, 30),  # before New Year (CET), restarted after it
        (SPRING_FORWARD - 1800, 1200, 30, 30),
        (FALL_BACK - 1800, 1200, 30, 30),
    ],
    ids=["mid-slot", "other-interval", "new-year", "dst-spring", "dst-autumn"],
)
def test_a_restarted_simulation_continues_the_counters(
    quarter: Quarter, shapes: Shapes, origin: int, restart_s: int, interval: int, restart_interval: int
) -> None:
    until = origin + 2400
    continuous, continuous_states = _run(_sim(quarter, shapes, origin, interval), until)
    restarted, restarted_states = _run(_sim(quarter, shapes, origin + restart_s, restart_interval), until)
    common = continuous.keys() & restarted.keys()
    assert len(common) == 110 * ((until - origin - restart_s) // math.lcm(interval, restart_interval))
    assert all(continuous[key] == restarted[key] for key in common)
    times = continuous_states.keys() & restarted_states.keys()
    assert times
    for time_s in times:  # every counter (meter, tariff registers, PV, EV, heat) to the bit
        assert np.array_equal(continuous_states[time_s], restarted_states[time_s])
    # a fresh Shapes (nothing cached) gives the same counters too
    fresh = Shapes(quarter).counters(until)
    assert np.array_equal(fresh, shapes.counters(until))


def test_counters_are_monotonic_and_never_negative(quarter: Quarter, shapes: Shapes) -> None:
    rng = np.random.default_rng(7)
    for origin in (SPRING, NEW_YEAR - 2 * 3600, FALL_BACK - 3600):
        times = [*np.sort(origin + rng.uniform(0, 4 * 3600, 400)).tolist(), origin + 4 * 3600]
        values = np.stack([shapes.counters(t) for t in times])  # (times, counters, households)
        assert (values >= 0).all()
        steps = np.diff(values, axis=0)
        assert (steps >= 0).all(), [COUNTERS[k] for k in np.unique(np.nonzero(steps < 0)[1])]
        high_import = values[:, IMPORT] - values[:, IMPORT_LOW]
        high_export = values[:, EXPORT] - values[:, EXPORT_LOW]
        assert (np.diff(high_import, axis=0) >= -1e-6).all()
        assert (np.diff(high_export, axis=0) >= -1e-6).all()


def test_per_slot_the_meter_counts_the_clipped_net_flow(quarter: Quarter, shapes: Shapes) -> None:
    sim = _sim(quarter, shapes, SPRING + 10 * 3600, SLOT_S)  # 10:00 CET: PV households export
    start = sim.shapes.counters(sim.time_s)
    for _ in range(24):
        flows, _ = sim.step()
        end = sim.shapes.counters(sim.time_s)
        net = flows.load + flows.ev - flows.pv
        assert (flows.load > 0).all()
        assert end[IMPORT] - start[IMPORT] == pytest.approx(np.clip(net, 0.0, None), abs=1e-6)
        assert end[EXPORT] - start[EXPORT] == pytest.approx(np.clip(-net, 0.0, None), abs=1e-6)
        start = end
    year = shapes.year_of(SPRING)
    imported, exported = np.diff(year.import_cum_wh, axis=1), np.diff(year.export_cum_wh, axis=1)
    assert not ((imported > 0) & (exported > 0)).any()
    assert (exported[[i for i, h in enumerate(quarter.households) if h.pv_kwp]].sum(axis=1) > 0).all()
    for table in (year.import_cum_wh, year.export_cum_wh, year.pv_cum_wh, year.heat_cum_wh):
        assert (table / GRID_WH == np.round(table / GRID_WH)).all()  # on the grid: sums are exact
    # the DSMR low-tariff registers count in 22:00-06:00 CET slots only
    low = low_tariff(year.slots)
    rows = year.tariff_rows
    assert rows.size
    counted = np.diff(year.import_low_cum_wh, axis=1)
    assert (counted[:, ~low] == 0).all()
    assert np.array_equal(counted[:, low], imported[rows][:, low])
    # within a slot the power waves around the slot's mean (the counters are not a straight line)
    slot_start = SPRING + 40 * SLOT_S
    quarter_points = [shapes.counters(slot_start + k * SLOT_S / 4)[IMPORT] for k in range(5)]
    parts = np.diff(np.stack(quarter_points), axis=0)
    busy = parts.sum(axis=0) > 10
    assert (np.abs(parts[:, busy] / parts[:, busy].sum(axis=0) - 0.25) > 0.01).any()


def test_a_year_ends_where_the_next_one_starts(quarter: Quarter, shapes: Shapes) -> None:
    old, new = shapes.year_of(NEW_YEAR - 1), shapes.year_of(NEW_YEAR)
    assert (old.year, new.year) == (EPOCH_YEAR - 1, EPOCH_YEAR)
    end_of_old = shapes.base_of(old.year) + old.counters(NEW_YEAR)
    assert np.array_equal(end_of_old, shapes.counters(NEW_YEAR))
    assert np.array_equal(shapes.counters(NEW_YEAR), shapes.base_of(EPOCH_YEAR))


def test_the_margins_keep_every_counter_positive_back_to_the_floor(quarter: Quarter, shapes: Shapes) -> None:
    bounds = annual_bounds(quarter)
    totals = shapes.totals_of(2025)
    assert (totals <= bounds).all()
    assert (totals[PV] <= 0.6 * bounds[PV]).all()  # the PV bound is a bound, not a guess
    floor = shapes.base_of(FLOOR_YEAR)  # what the counters read at the floor year's start
    assert (floor >= 0).all()
    assert (floor[IMPORT] - floor[IMPORT_LOW] >= 0).all()
    assert (floor[EXPORT] - floor[EXPORT_LOW] >= 0).all()
    with pytest.raises(ValueError, match="starts in"):
        shapes.counters(year_start_s(FLOOR_YEAR) - 1)


def test_meter_counters_are_what_the_messages_carry(quarter: Quarter, shapes: Shapes) -> None:
    first, last = SPRING + 6 * 3600, SPRING + 7 * 3600
    readings, _ = _run(_sim(quarter, shapes, first - 20, 20), last)
    at_first = meter_counters(quarter, first, shapes)
    at_last = meter_counters(quarter, last, shapes)
    for index, household in enumerate(quarter.households):
        assert readings[(household.number, first)] == (at_first[0][index], at_first[1][index])
        assert readings[(household.number, last)] == (at_last[0][index], at_last[1][index])
        series = sorted((t * 10**9, kwh) for (h, t), (kwh, _) in readings.items() if h == household.number)
        assert total_energy(series) == pytest.approx(at_last[0][index] - at_first[0][index], abs=1e-9)
    assert meter_counters(quarter, last)[0].tolist() == at_last[0].tolist()  # without a Shapes at hand


def test_a_swapped_meter_counts_from_zero(quarter: Quarter, shapes: Shapes) -> None:
    sim = _sim(quarter, shapes, SPRING, 60, faults="swap=3")
    _run(sim, SPRING + 3 * 3600)
    assert sim.faults.swaps > 0
    raw = meter_counters(quarter, SPRING + 3 * 3600, shapes)[0]
    shown = sim.import_wh / 1000
    swapped = shown < raw - 1.0
    assert swapped.any()
    assert (shown >= 0).all()
    assert (shown[swapped] < 20).all()  # only what the new meter counted since the swap
    assert (sim.pv_wh == shapes.counters(sim.time_s)[PV]).all()  # PV, EV, heat are no meter swaps
    assert (sim.ev_wh == shapes.counters(sim.time_s)[EV]).all()
