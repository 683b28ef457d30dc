"""PV yield at Oldenburg from the sun's position (pvlib), clear-sky irradiance and the quarter's clouds.

pvlib's Ineichen clear-sky model reads the Linke turbidity table shipped inside pvlib: no downloads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib

LATITUDE, LONGITUDE, ALTITUDE_M = 53.14, 8.21, 8.0
TILT_DEG = 35.0
PERFORMANCE_RATIO = 0.85


def clear_sky_poa(times_utc: pd.DatetimeIndex, azimuths: list[float]) -> dict[float, np.ndarray]:
    """Clear-sky plane-of-array irradiance (W/m²) on a 35° roof for each azimuth, at ``times_utc``."""
    location = pvlib.location.Location(LATITUDE, LONGITUDE, tz="UTC", altitude=ALTITUDE_M)
    position = location.get_solarposition(times_utc)
    sky = location.get_clearsky(times_utc, model="ineichen", solar_position=position)
    out: dict[float, np.ndarray] = {}
    for azimuth in sorted(set(azimuths)):
        poa = pvlib.irradiance.get_total_irradiance(
            TILT_DEG,
            azimuth,
            position["apparent_zenith"],
            position["azimuth"],
            sky["dni"],
            sky["ghi"],
            sky["dhi"],
        )
        out[azimuth] = np.nan_to_num(poa["poa_global"].to_numpy(dtype=np.float64)).clip(min=0.0)
    return out


def cloud_factor(rng: np.random.Generator, days: int, slots_per_day: int) -> np.ndarray:
    """Fraction of clear-sky irradiance per slot: a day's weather (sunny, mixed, overcast) plus passing
    clouds within the day. Shared by every roof of the quarter (one sky)."""
    states = rng.choice(3, size=days, p=(0.3, 0.4, 0.3))
    day_level = np.choose(
        states, (rng.uniform(0.8, 1.0, days), rng.uniform(0.4, 0.8, days), rng.uniform(0.08, 0.3, days))
    )
    passing = rng.normal(0.0, 1.0, days * slots_per_day)
    # a smoothed random walk: clouds last a while (exponential smoothing over ~1 h)
    smooth = np.empty_like(passing)
    level = 0.0
    for index, value in enumerate(passing):
        level = 0.75 * level + 0.25 * value
        smooth[index] = level
    spread = np.repeat(np.where(states == 1, 0.35, 0.08), slots_per_day)
    factor = np.repeat(day_level, slots_per_day) * (1.0 + spread * smooth * 2.0)
    return np.asarray(factor.clip(0.03, 1.05), dtype=np.float64)


def pv_watts_per_kwp(poa: np.ndarray, clouds: np.ndarray, outdoor_c: np.ndarray) -> np.ndarray:
    """AC power per kWp installed: irradiance x performance ratio, less for hot cells (-0.4 %/K)."""
    cell_c = outdoor_c + poa * clouds * 0.03
    derate = 1.0 - 0.004 * (cell_c - 25.0)
    return np.asarray((poa * clouds * PERFORMANCE_RATIO * derate).clip(min=0.0), dtype=np.float64)
