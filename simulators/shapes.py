"""A year of the quarter in quarter-hour slots, precomputed as arrays (one row per household).

Slots follow demandlib's calendar: the year in standard time (CET, UTC+1), 96 slots a day. Energies are
cumulative Wh at slot boundaries, so the energy of any interval is a difference of two interpolations and
the year's total is exact whatever the reporting interval.

- electricity: BDEW H0 with dynamization (demandlib ``h0_dyn``), German holidays for Lower Saxony
  (``holidays``, subdiv NI) as Sundays, scaled to each household's annual consumption, shifted by the
  household's rhythm and varied from day to day (the year's total kept)
- PV: :mod:`simulators.solar`
- outdoor temperature: season, day and a weather anomaly that lasts days; heat from it (degree hours)
  plus hot water; EV charging sessions in the evening; occupancy from weekday/holiday schedules
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import holidays
import numpy as np
import pandas as pd
from demandlib import bdew

from simulators import solar
from simulators.quarter import Quarter

SLOT_S = 900
SLOTS_PER_DAY = 96
CET_OFFSET_S = 3600


def year_start_s(year: int) -> int:
    """UTC epoch seconds of 1 January 00:00 CET."""
    return int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp()) - CET_OFFSET_S


def h0_profile(year: int) -> np.ndarray:
    """H0 (dynamized) share of the annual energy per slot, summing to 1; NI holidays count as Sundays."""
    days_off = holidays.country_holidays("DE", subdiv="NI", years=year)
    slp = bdew.ElecSlp(year, holidays=dict(days_off.items()))
    shares = slp.get_scaled_profiles({"h0_dyn": 1.0})["h0_dyn"].to_numpy(dtype=np.float64)
    return np.asarray(shares / shares.sum(), dtype=np.float64)


def _cumulative(slot_wh: np.ndarray) -> np.ndarray:
    zeros = np.zeros((*slot_wh.shape[:-1], 1))
    return np.concatenate([zeros, np.cumsum(slot_wh, axis=-1)], axis=-1)


@dataclass(frozen=True)
class YearShapes:
    year: int
    start_s: int
    slots: int
    h0: np.ndarray  # (slots,) share of the annual energy
    load_cum_wh: np.ndarray  # (households, slots + 1)
    pv_cum_wh: np.ndarray
    ev_cum_wh: np.ndarray
    heat_cum_wh: np.ndarray
    outdoor_c: np.ndarray  # (slots,)
    occupancy: np.ndarray  # (households, slots) persons at home

    def slot_at(self, time_s: float) -> tuple[int, float]:
        """Slot index and the fraction of it elapsed at ``time_s``, clipped to the year."""
        offset = min(max(time_s - self.start_s, 0.0), float(self.slots * SLOT_S))
        slot = min(int(offset // SLOT_S), self.slots - 1)
        return slot, (offset - slot * SLOT_S) / SLOT_S

    def cumulative(self, table: np.ndarray, time_s: float) -> np.ndarray:
        slot, fraction = self.slot_at(time_s)
        low = table[:, slot]
        return np.asarray(low + (table[:, slot + 1] - low) * fraction, dtype=np.float64)


def _days_off(year: int, days: int) -> np.ndarray:
    off = holidays.country_holidays("DE", subdiv="NI", years=year)
    first = dt.date(year, 1, 1)
    dates = [first + dt.timedelta(days=d) for d in range(days)]
    return np.array([d.weekday() >= 5 or d in off for d in dates])


def _outdoor(rng: np.random.Generator, days: int, clouds: np.ndarray) -> np.ndarray:
    day_of_year = np.arange(days * SLOTS_PER_DAY) / SLOTS_PER_DAY
    hour = (np.arange(days * SLOTS_PER_DAY) % SLOTS_PER_DAY) / 4.0
    season = 9.8 - 8.2 * np.cos(2 * np.pi * (day_of_year - 18) / 365.0)
    anomaly = np.zeros(days)
    for day in range(1, days):
        anomaly[day] = 0.8 * anomaly[day - 1] + rng.normal(0.0, 1.6)
    swing = 2.0 + 4.0 * clouds  # clear days swing more
    diurnal = swing * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
    return np.asarray(season + np.repeat(anomaly, SLOTS_PER_DAY) + diurnal, dtype=np.float64)


def _occupancy(quarter: Quarter, days_off: np.ndarray) -> np.ndarray:
    hour = np.arange(SLOTS_PER_DAY) / 4.0
    workday = np.where((hour >= 7.5) & (hour < 16.5), 0.3, 1.0)
    workday = np.where((hour >= 16.5) & (hour < 18), 0.7, workday)
    free = np.where((hour >= 10) & (hour < 18), 0.6, 1.0)
    fraction = np.concatenate([free if off else workday for off in days_off])
    persons = np.array([h.persons for h in quarter.households], dtype=np.float64)
    return np.asarray(np.round(persons[:, None] * fraction[None, :]), dtype=np.float64)


def _ev_slots(rng: np.random.Generator, kw: float, days: int, days_off: np.ndarray) -> np.ndarray:
    slot_wh = np.zeros(days * SLOTS_PER_DAY)
    if kw <= 0:
        return slot_wh
    per_slot = kw * 1000 / 4
    for day in range(days):
        if rng.random() > (0.3 if days_off[day] else 0.45):
            continue
        start = day * SLOTS_PER_DAY + int(np.clip(rng.normal(18.0, 1.5), 15.0, 22.5) * 4)
        need = float(rng.uniform(6.0, 30.0)) * 1000
        slot = start
        while need > 0 and slot < slot_wh.size:
            take = min(per_slot, need)
            slot_wh[slot] += take
            need -= take
            slot += 1
    return slot_wh


def build_year(quarter: Quarter, year: int) -> YearShapes:
    """The quarter's year; deterministic for the quarter's seed and the year."""
    rng = np.random.default_rng([quarter.seed, year, 0xA11])
    h0 = h0_profile(year)
    slots = h0.size
    days = slots // SLOTS_PER_DAY
    days_off = _days_off(year, days)
    households = quarter.households
    loads = []
    for household in households:
        shares = np.roll(h0, household.shift_slots)
        day_factor = np.repeat(rng.lognormal(0.0, 0.18, days), SLOTS_PER_DAY)
        shaped = shares * day_factor
        loads.append(shaped / shaped.sum() * household.annual_kwh * 1000)
    clouds = solar.cloud_factor(rng, days, SLOTS_PER_DAY)
    outdoor = _outdoor(rng, days, clouds)
    start = year_start_s(year)
    mids = pd.to_datetime(start + SLOT_S * (np.arange(slots) + 0.5), unit="s", utc=True)
    poa = solar.clear_sky_poa(pd.DatetimeIndex(mids), [h.pv_azimuth for h in households if h.pv_kwp])
    pv = [
        solar.pv_watts_per_kwp(poa[h.pv_azimuth], clouds, outdoor) * h.pv_kwp / 4
        if h.pv_kwp
        else np.zeros(slots)
        for h in households
    ]
    ev = [_ev_slots(rng, h.ev_kw, days, days_off) for h in households]
    occupancy = _occupancy(quarter, days_off)
    degree = np.clip(15.0 - outdoor, 0.0, None)
    heat = [
        (h.heat_w_per_k * degree + 120.0 * h.persons * (occupancy[i] > 0)) / 4
        for i, h in enumerate(households)
    ]
    return YearShapes(
        year=year,
        start_s=start,
        slots=slots,
        h0=h0,
        load_cum_wh=_cumulative(np.array(loads)),
        pv_cum_wh=_cumulative(np.array(pv)),
        ev_cum_wh=_cumulative(np.array(ev)),
        heat_cum_wh=_cumulative(np.array(heat)),
        outdoor_c=outdoor,
        occupancy=occupancy,
    )


class Shapes:
    """The years a simulation touches, built on first use."""

    def __init__(self, quarter: Quarter) -> None:
        self.quarter = quarter
        self._years: dict[int, YearShapes] = {}

    def year_of(self, time_s: float) -> YearShapes:
        year = dt.datetime.fromtimestamp(time_s + CET_OFFSET_S, dt.UTC).year
        if year not in self._years:
            self._years[year] = build_year(self.quarter, year)
        return self._years[year]

    def energy_between(self, table: str, start_s: float, end_s: float) -> np.ndarray:
        """Wh per household in (start_s, end_s], also across a year boundary."""
        first, last = self.year_of(start_s), self.year_of(end_s)
        if first is last:
            cum: np.ndarray = getattr(first, table)
            return np.asarray(last.cumulative(cum, end_s) - first.cumulative(cum, start_s), dtype=np.float64)
        head_table: np.ndarray = getattr(first, table)
        tail_table: np.ndarray = getattr(last, table)
        head = head_table[:, -1] - first.cumulative(head_table, start_s)
        return np.asarray(head + last.cumulative(tail_table, end_s), dtype=np.float64)
