"""Shapes: annual energy per household, H0 correlation, holidays, PV from the sun, a year in the engine."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from simulators.drive import drive
from simulators.engine import Periods, Simulation
from simulators.faults import FaultSpec, FaultState
from simulators.quarter import Quarter, make_quarter
from simulators.shapes import SLOTS_PER_DAY, Shapes, h0_profile, year_start_s
from simulators.sinks import NullSink
from simulators.truth import GroundTruth


def test_year_shapes_match_annual_consumption_and_h0(quarter: Quarter, shapes: Shapes) -> None:
    year = shapes.year_of(year_start_s(2025) + 10)
    annual = year.load_cum_wh[:, -1] / 1000
    configured = np.array([h.annual_kwh for h in quarter.households])
    assert np.allclose(annual, configured, rtol=1e-9)
    per_slot = np.diff(year.load_cum_wh, axis=1).sum(axis=0)
    assert np.corrcoef(per_slot, year.h0)[0, 1] > 0.9
    daily = per_slot.reshape(-1, SLOTS_PER_DAY).mean(axis=0)
    h0_daily = year.h0.reshape(-1, SLOTS_PER_DAY).mean(axis=0)
    assert np.corrcoef(daily, h0_daily)[0, 1] > 0.97
    spread = configured.std() / configured.mean()
    assert 0.2 < spread < 0.6
    assert configured.min() >= 900
    assert configured.max() <= 9000


def test_lower_saxony_holidays_shape_like_sundays() -> None:
    h0 = h0_profile(2025).reshape(-1, SLOTS_PER_DAY)
    day = {d: (dt.date(2025, 1, 1) + dt.timedelta(days=d)) for d in range(365)}
    index = {v: k for k, v in day.items()}
    reformation, sunday, thursday = (index[dt.date(2025, 10, d)] for d in (31, 26, 30))
    shape = h0 / h0.sum(axis=1, keepdims=True)
    # Reformation Day (31 Oct) is a public holiday in Lower Saxony, not nationwide
    assert (
        np.abs(shape[reformation] - shape[sunday]).sum()
        < np.abs(shape[reformation] - shape[thursday]).sum() / 3
    )


def test_pv_follows_the_sun_at_oldenburg(quarter: Quarter, shapes: Shapes) -> None:
    year = shapes.year_of(year_start_s(2025) + 10)
    with_pv = [i for i, h in enumerate(quarter.households) if h.pv_kwp]
    assert with_pv
    slots = np.diff(year.pv_cum_wh, axis=1)
    kwp = np.array([quarter.households[i].pv_kwp for i in with_pv])
    yield_per_kwp = year.pv_cum_wh[with_pv, -1] / 1000 / kwp
    assert ((yield_per_kwp > 550) & (yield_per_kwp < 1100)).all(), yield_per_kwp
    hours = (np.arange(year.slots) % SLOTS_PER_DAY) / 4  # CET
    assert slots[:, (hours < 3) | (hours > 22.5)].sum() == 0
    june, december = slots[:, 151 * 96 : 181 * 96].sum(), slots[:, 334 * 96 :].sum()
    assert june > 4 * december


@pytest.mark.timeout(120)
def test_a_year_through_the_engine_keeps_annual_energy_within_2_percent() -> None:
    quarter = make_quarter(10, seed=11)
    start = year_start_s(2025)
    sim = Simulation(
        quarter,
        start_s=start,
        interval_s=3600,
        faults=FaultState(FaultSpec.parse("swap=0.002"), seed=11),
        periods=Periods(heat=86400, climate=86400, street=86400),
        heat=False,
    )
    truth = GroundTruth(quarter)
    result = drive(sim, NullSink(), until_s=start + 365 * 86400, truth=truth)
    assert result.ticks == 8760
    assert sim.faults.swaps > 0
    summary = truth.summary()["households"]
    assert isinstance(summary, list)
    for row, household in zip(summary, quarter.households, strict=True):
        load_kwh = row["load_wh"] / 1000
        assert load_kwh == pytest.approx(household.annual_kwh, rel=0.02), row
        # what the meter counted (across swaps) is the household's net flow, less the first interval
        # (the first reading is the baseline)
        net = row["load_wh"] + row["ev_wh"] - row["pv_wh"]
        assert row["import_wh"] - row["export_wh"] == pytest.approx(net, rel=1e-3), row
        if not household.pv_kwp and not household.ev_kw:
            assert row["import_wh"] / 1000 == pytest.approx(household.annual_kwh, rel=0.02)
