"""A year of the quarter in quarter-hour slots, precomputed as arrays (one row per household).

Slots follow demandlib's calendar: the year in standard time (CET, UTC+1), 96 slots a day. Energies are
cumulative Wh at slot boundaries, so the energy of any interval is a difference of two interpolations and
the year's total is exact whatever the reporting interval.

- electricity: BDEW H0 with dynamization (demandlib ``h0_dyn``), German holidays for Lower Saxony
  (``holidays``, subdiv NI) as Sundays, scaled to each household's annual consumption, shifted by the
  household's rhythm, varied from day to day and from slot to slot (the year's total kept)
- PV: :mod:`simulators.solar`
- outdoor temperature: season, day and a weather anomaly that lasts days; heat from it (degree hours)
  plus hot water; EV charging sessions in the evening; occupancy from weekday/holiday schedules

Counters are functions of time
------------------------------

Every counter a household's devices show (meter import and export, the DSMR low-tariff registers, PV,
EV, heat) is a pure function of the time and the quarter (its seed and number of households, which
together fix every household and the shared weather): :meth:`Shapes.counters`.
A simulation started at any moment shows what a meter that kept counting would show, so restarting the
demo continues every series instead of jumping.

- Per slot the meter sees the net flow ``load + ev - pv``: import ``max(net, 0)``, export
  ``max(-net, 0)``. The load's per-slot noise is part of the shape (deterministic per seed, household
  and slot), so nothing depends on a run's history. Slot energies lie on a grid of 1/1024 Wh, which makes
  every sum of them exact in float64: a year's end equals the next year's start to the bit.
- Within a slot all of a household's counters follow one warped fraction
  ``g(f) = f + a (1 - cos 2πkf) / (2πk)`` (``a < 1``, ``k`` in 1..3, per household and slot): the power
  waves around the slot's mean instead of being a 15-minute step, the counters stay monotonic
  (``g' = 1 + a sin 2πkf > 0``) and reach the slot's energy exactly at its end.
- Counters read ``base`` at :data:`EPOCH_YEAR`'s start (drawn per household from the seed and its number,
  plus a margin of :data:`EPOCH_YEAR` − :data:`FLOOR_YEAR` years of each counter's annual upper bound);
  a later year starts at the earlier year's end, an earlier one at the later one's start less its
  total. Times before :data:`FLOOR_YEAR` are refused (the margin is what keeps counters non-negative).
- Cost: the year in use is built (0.6-0.9 s and 169 MiB of arrays for 110 households; 148 MiB before the
  counters were functions of time); every year between it and the epoch is built once for its totals only
  and dropped (the same time each, nothing kept but 7 numbers per household: a demo in 2030 pays about
  3 s more at start). At most :data:`KEEP_YEARS` years stay in memory.
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

EPOCH_YEAR = 2026  # counters read their base at 1 January 00:00 CET of this year
FLOOR_YEAR = (
    2024  # the earliest year simulated: the bases hold the counting of the years from it to the epoch
)
KEEP_YEARS = 2  # built years kept in memory (a simulation crossing New Year needs two)

COUNTERS = ("import", "export", "import_low", "export_low", "pv", "ev", "heat")
IMPORT, EXPORT, IMPORT_LOW, EXPORT_LOW, PV, EV, HEAT = range(len(COUNTERS))

LOAD_NOISE = 0.25  # standard deviation of the load's per-slot factor (mean 1, clipped at 0)
WAVE_MAX = 0.6  # largest amplitude of the intra-slot wave (power between 0.4 and 1.6 times the mean)
GRID_WH = 1.0 / 1024  # slot energies are multiples of this: sums of them are exact in float64
PV_BOUND_KWH_PER_KWP = 2200.0  # clear-sky POA <= 1,974 kWh/m² a year here, x 1.05 clouds x 0.85 PR x 1.2
EV_BOUND_WH_PER_DAY = 30000.0  # a day's session needs at most 30 kWh (_ev_slots)
HEAT_BOUND_K = 45.0  # degree hours against an outdoor temperature of -30 °C all year


def year_start_s(year: int) -> int:
    """UTC epoch seconds of 1 January 00:00 CET."""
    return int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp()) - CET_OFFSET_S


def h0_profile(year: int) -> np.ndarray:
    """H0 (dynamized) share of the annual energy per slot, summing to 1; NI holidays count as Sundays."""
    days_off = holidays.country_holidays("DE", subdiv="NI", years=year)
    slp = bdew.ElecSlp(year, holidays=dict(days_off.items()))
    shares = slp.get_scaled_profiles({"h0_dyn": 1.0})["h0_dyn"].to_numpy(dtype=np.float64)
    return np.asarray(shares / shares.sum(), dtype=np.float64)


def _on_grid(slot_wh: np.ndarray) -> np.ndarray:
    """``slot_wh`` rounded (in place) to multiples of :data:`GRID_WH`."""
    slot_wh *= 1.0 / GRID_WH
    np.round(slot_wh, out=slot_wh)
    slot_wh *= GRID_WH
    return slot_wh


def _cumulative(slot_wh: np.ndarray) -> np.ndarray:
    out = np.empty((*slot_wh.shape[:-1], slot_wh.shape[-1] + 1))
    out[..., 0] = 0.0
    np.cumsum(slot_wh, axis=-1, out=out[..., 1:])
    return out


def _mix(values: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64): well-spread bits from consecutive integers (wraps silently)."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return np.asarray(values ^ (values >> np.uint64(31)), dtype=np.uint64)


@dataclass(frozen=True)
class YearShapes:
    year: int
    start_s: int
    slots: int
    h0: np.ndarray  # (slots,) share of the annual energy
    import_cum_wh: np.ndarray  # (households, slots + 1): what the meter counts, max(net, 0) per slot
    export_cum_wh: np.ndarray  # max(-net, 0) per slot, net = load + ev - pv
    pv_cum_wh: np.ndarray
    ev_cum_wh: np.ndarray
    heat_cum_wh: np.ndarray
    tariff_rows: np.ndarray  # households with DSMR meters (two tariff registers), indices
    import_low_cum_wh: np.ndarray  # (len(tariff_rows), slots + 1): import in low-tariff slots (22-06 CET)
    export_low_cum_wh: np.ndarray
    wave_keys: np.ndarray  # (households,) uint64: the intra-slot wave's seed per household
    outdoor_c: np.ndarray  # (slots,)
    occupancy: np.ndarray  # (households, slots) persons at home, uint8

    @property
    def load_cum_wh(self) -> np.ndarray:
        """Household load (noise included), from the meter's view: import − export − EV + PV (exact)."""
        return np.asarray(
            self.import_cum_wh - self.export_cum_wh - self.ev_cum_wh + self.pv_cum_wh, dtype=np.float64
        )

    def slot_at(self, time_s: float) -> tuple[int, float]:
        """Slot index and the fraction of it elapsed at ``time_s``, clipped to the year."""
        offset = min(max(time_s - self.start_s, 0.0), float(self.slots * SLOT_S))
        slot = min(int(offset // SLOT_S), self.slots - 1)
        return slot, (offset - slot * SLOT_S) / SLOT_S

    def warp(self, slot: int, fraction: float) -> np.ndarray:
        """Share of each household's slot energy counted by ``fraction`` of the slot: 0 at its start,
        1 at its end, growing strictly in between (the intra-slot wave)."""
        if fraction <= 0.0:
            return np.zeros(self.wave_keys.size)
        if fraction >= 1.0:
            return np.ones(self.wave_keys.size)
        bits = _mix(self.wave_keys ^ np.uint64((slot * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF))
        amplitude = (bits >> np.uint64(11)).astype(np.float64) * (WAVE_MAX / 2.0**53)
        turns = 2.0 * np.pi * (1 + (bits & np.uint64(0xFF)) % np.uint64(3)).astype(np.float64)
        return np.asarray(fraction + amplitude * (1.0 - np.cos(turns * fraction)) / turns, dtype=np.float64)

    def cumulative(self, table: np.ndarray, time_s: float, rows: np.ndarray | None = None) -> np.ndarray:
        """``table`` (cumulative Wh at slot boundaries) at ``time_s``, the intra-slot wave included;
        ``rows``: the households ``table`` holds when not all of them."""
        slot, fraction = self.slot_at(time_s)
        share = self.warp(slot, fraction)
        if rows is not None:
            share = share[rows]
        low = table[:, slot]
        return np.asarray(low + (table[:, slot + 1] - low) * share, dtype=np.float64)

    def counters(self, time_s: float) -> np.ndarray:
        """(len(COUNTERS), households) Wh counted since the year's start; the low-tariff rows hold 0 for
        households without a DSMR meter."""
        slot, fraction = self.slot_at(time_s)
        share = self.warp(slot, fraction)
        out = np.zeros((len(COUNTERS), self.wave_keys.size))
        for kind, table in (
            (IMPORT, self.import_cum_wh),
            (EXPORT, self.export_cum_wh),
            (PV, self.pv_cum_wh),
            (EV, self.ev_cum_wh),
            (HEAT, self.heat_cum_wh),
        ):
            low = table[:, slot]
            out[kind] = low + (table[:, slot + 1] - low) * share
        rows = self.tariff_rows
        if rows.size:
            for kind, table in ((IMPORT_LOW, self.import_low_cum_wh), (EXPORT_LOW, self.export_low_cum_wh)):
                low = table[:, slot]
                out[kind, rows] = low + (table[:, slot + 1] - low) * share[rows]
        return out

    def totals(self) -> np.ndarray:
        """(len(COUNTERS), households) Wh counted in the whole year."""
        return self.counters(self.start_s + self.slots * SLOT_S)


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
    return np.asarray(np.round(persons[:, None] * fraction[None, :]), dtype=np.uint8)


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


def _load_noise(quarter: Quarter, number: int, year: int, slots: int) -> np.ndarray:
    """The load's factor per slot, mean ~1: deterministic per seed, household and year."""
    rng = np.random.default_rng([quarter.seed, number, year, 0x5107])
    return np.asarray(np.clip(1.0 + LOAD_NOISE * rng.standard_normal(slots), 0.0, None), dtype=np.float64)


def low_tariff(slots: int) -> np.ndarray:
    """Per slot of a CET year: True from 22:00 to 06:00 (the DSMR low tariff, registers 1.8.1/2.8.1)."""
    hour = (np.arange(slots) % SLOTS_PER_DAY) // 4
    return np.asarray((hour >= 22) | (hour < 6), dtype=bool)


def tariff_rows(quarter: Quarter) -> np.ndarray:
    """Indices of the households whose meter has two tariff registers each way (DSMR)."""
    return np.array([i for i, h in enumerate(quarter.households) if h.meter_family == "dsmr"], dtype=np.intp)


def build_year(quarter: Quarter, year: int) -> YearShapes:
    """The quarter's year; deterministic for the quarter's seed and the year."""
    rng = np.random.default_rng([quarter.seed, year, 0xA11])
    h0 = h0_profile(year)
    slots = h0.size
    days = slots // SLOTS_PER_DAY
    days_off = _days_off(year, days)
    households = quarter.households
    n = len(households)
    net = np.empty((n, slots))  # the load first, then load + ev - pv
    for index, household in enumerate(households):
        shares = np.roll(h0, household.shift_slots)
        day_factor = np.repeat(rng.lognormal(0.0, 0.18, days), SLOTS_PER_DAY)
        shaped = shares * day_factor * _load_noise(quarter, household.number, year, slots)
        net[index] = shaped / shaped.sum() * household.annual_kwh * 1000
    _on_grid(net)
    # the rounding's residual to each household's largest slot: the year's total is the annual energy
    peaks = net.argmax(axis=1)
    annual = np.array([h.annual_kwh * 1000 for h in households])
    net[np.arange(n), peaks] += _on_grid(annual - net.sum(axis=1))
    clouds = solar.cloud_factor(rng, days, SLOTS_PER_DAY)
    outdoor = _outdoor(rng, days, clouds)
    start = year_start_s(year)
    mids = pd.to_datetime(start + SLOT_S * (np.arange(slots) + 0.5), unit="s", utc=True)
    poa = solar.clear_sky_poa(pd.DatetimeIndex(mids), [h.pv_azimuth for h in households if h.pv_kwp])
    flows = np.zeros((n, slots))  # EV, then PV, then heat: one (n, slots) array at a time
    for index, household in enumerate(households):
        flows[index] = _ev_slots(rng, household.ev_kw, days, days_off)
    ev_cum = _cumulative(_on_grid(flows))
    net += flows
    for index, household in enumerate(households):
        if household.pv_kwp:
            flows[index] = solar.pv_watts_per_kwp(poa[household.pv_azimuth], clouds, outdoor) * (
                household.pv_kwp / 4
            )
        else:
            flows[index] = 0.0
    pv_cum = _cumulative(_on_grid(flows))
    net -= flows  # exact: every term is on the grid
    rows = tariff_rows(quarter)
    low = low_tariff(slots)
    np.clip(net, 0.0, None, out=flows)
    import_cum = _cumulative(flows)
    import_low_cum = _cumulative(flows[rows] * low)
    np.negative(net, out=net)
    np.clip(net, 0.0, None, out=net)
    export_cum = _cumulative(net)
    export_low_cum = _cumulative(net[rows] * low)
    del net
    occupancy = _occupancy(quarter, days_off)
    degree = np.clip(15.0 - outdoor, 0.0, None)
    for index, household in enumerate(households):
        flows[index] = (
            household.heat_w_per_k * degree + 120.0 * household.persons * (occupancy[index] > 0)
        ) / 4
    heat_cum = _cumulative(_on_grid(flows))
    del flows
    keys = np.array([(quarter.seed << 20) ^ h.number for h in households], dtype=np.uint64)
    return YearShapes(
        year=year,
        start_s=start,
        slots=slots,
        h0=h0,
        import_cum_wh=import_cum,
        export_cum_wh=export_cum,
        pv_cum_wh=pv_cum,
        ev_cum_wh=ev_cum,
        heat_cum_wh=heat_cum,
        tariff_rows=rows,
        import_low_cum_wh=import_low_cum,
        export_low_cum_wh=export_low_cum,
        wave_keys=_mix(keys ^ np.uint64(year)),
        outdoor_c=outdoor,
        occupancy=occupancy,
    )


def annual_bounds(quarter: Quarter) -> np.ndarray:
    """(len(COUNTERS), households) Wh: at least what each counter can count in a year.

    Import is at most load + EV (the load is scaled to ``annual_kwh``; a day's EV session needs at most
    30 kWh); export and PV at most the roof's clear-sky yield with the most favourable clouds and cell
    temperature; heat at most the degree hours against -30 °C plus hot water all year."""
    hours = 366 * 24
    out = np.zeros((len(COUNTERS), len(quarter.households)))
    for index, h in enumerate(quarter.households):
        ev = EV_BOUND_WH_PER_DAY * 366 if h.ev_kw else 0.0
        pv = PV_BOUND_KWH_PER_KWP * 1000 * h.pv_kwp
        out[IMPORT, index] = out[IMPORT_LOW, index] = h.annual_kwh * 1000 + ev
        out[EXPORT, index] = out[EXPORT_LOW, index] = out[PV, index] = pv
        out[EV, index] = ev
        out[HEAT, index] = (h.heat_w_per_k * HEAT_BOUND_K + 120.0 * h.persons) * hours
    return np.ceil(out) + 1000.0  # slack for the grid rounding of slot energies


def counter_bases(quarter: Quarter) -> np.ndarray:
    """(len(COUNTERS), households) Wh the counters read at the start of :data:`EPOCH_YEAR`.

    A reading drawn per household (seed and household number only), plus the annual bound for every year
    from :data:`FLOOR_YEAR` to the epoch: counting backwards from the epoch never goes below the drawn part.
    The import and export registers are the sum of a low and a high tariff register, each with its margin.
    """
    margin = annual_bounds(quarter) * (EPOCH_YEAR - FLOOR_YEAR)
    out = np.zeros((len(COUNTERS), len(quarter.households)))
    for index, h in enumerate(quarter.households):
        rng = np.random.default_rng([quarter.seed, h.number, 0xBA5E])
        imported = round(float(rng.uniform(2e6, 4e7)), -2)
        exported = round(float(rng.uniform(1e5, 2e7)), -2) if h.pv_kwp else 0.0
        out[IMPORT_LOW, index] = round(imported * 0.4) + margin[IMPORT_LOW, index]
        out[IMPORT, index] = imported + 2 * margin[IMPORT, index]  # low and high register
        out[EXPORT_LOW, index] = round(exported * 0.5) + margin[EXPORT_LOW, index]
        out[EXPORT, index] = exported + 2 * margin[EXPORT, index]
        out[PV, index] = round(float(rng.uniform(1e5, 3e7))) + margin[PV, index] if h.pv_kwp else 0.0
        out[EV, index] = round(float(rng.uniform(1e5, 1e7))) + margin[EV, index] if h.ev_kw else 0.0
        out[HEAT, index] = round(float(rng.uniform(1e6, 8e7))) + margin[HEAT, index]
    return out


class Shapes:
    """The years a simulation touches, built on first use; the counters at any time."""

    def __init__(self, quarter: Quarter) -> None:
        self.quarter = quarter
        self._years: dict[int, YearShapes] = {}  # least recently used first
        self._last: YearShapes | None = None
        self._totals: dict[int, np.ndarray] = {}
        self._bases: dict[int, np.ndarray] = {EPOCH_YEAR: counter_bases(quarter)}

    def year_of(self, time_s: float) -> YearShapes:
        last = self._last
        if last is not None and last.start_s <= time_s < last.start_s + last.slots * SLOT_S:
            return last
        year = dt.datetime.fromtimestamp(time_s + CET_OFFSET_S, dt.UTC).year
        shapes = self._years.pop(year, None)
        if shapes is None:
            if year < FLOOR_YEAR:
                raise ValueError(f"the quarter simulator starts in {FLOOR_YEAR}; {year} is before it")
            shapes = build_year(self.quarter, year)
            self._totals.setdefault(year, shapes.totals())
        self._years[year] = shapes
        while len(self._years) > KEEP_YEARS:
            del self._years[next(iter(self._years))]
        self._last = shapes
        return shapes

    def totals_of(self, year: int) -> np.ndarray:
        """(len(COUNTERS), households) Wh counted in ``year`` (built for it if need be, then dropped)."""
        totals = self._totals.get(year)
        if totals is None:
            totals = self._totals[year] = build_year(self.quarter, year).totals()
        return totals

    def base_of(self, year: int) -> np.ndarray:
        """(len(COUNTERS), households) Wh the counters read at the start of ``year``."""
        if year < FLOOR_YEAR:
            raise ValueError(f"the quarter simulator starts in {FLOOR_YEAR}; {year} is before it")
        base = self._bases.get(year)
        if base is None:
            if year > EPOCH_YEAR:
                base = self.base_of(year - 1) + self.totals_of(year - 1)
            else:
                base = self.base_of(year + 1) - self.totals_of(year)
            self._bases[year] = base
        return base

    def counters(self, time_s: float) -> np.ndarray:
        """(len(COUNTERS), households) Wh every counter reads at ``time_s`` (a pure function of the time and
        the quarter); the low-tariff rows hold 0 for households without a DSMR meter."""
        year = self.year_of(time_s)
        return np.asarray(self.base_of(year.year) + year.counters(time_s), dtype=np.float64)

    def energy_between(self, table: str, start_s: float, end_s: float) -> np.ndarray:
        """Wh per household in (start_s, end_s], also across a year boundary (``table``: a YearShapes
        attribute such as ``pv_cum_wh`` or ``load_cum_wh``)."""
        first, last = self.year_of(start_s), self.year_of(end_s)
        if first is last:
            cum: np.ndarray = getattr(first, table)
            return np.asarray(last.cumulative(cum, end_s) - first.cumulative(cum, start_s), dtype=np.float64)
        head_table: np.ndarray = getattr(first, table)
        tail_table: np.ndarray = getattr(last, table)
        head = head_table[:, -1] - first.cumulative(head_table, start_s)
        return np.asarray(head + last.cumulative(tail_table, end_s), dtype=np.float64)
