"""InfluxQL for the panels: energy from the ledger, and (the raw twins) from cumulative counters.

The energy panels read the energy ledger (:mod:`ingest.energy`: ``rollups.energy`` per 15 minutes,
``rollups.energy_1d`` per local day, exact by ingest/consumption.py's rule): :func:`ledger` sums its
``kwh`` over devices. Each keeps its raw twin, the query below on raw data, for comparison.

The raw rule: per device and period, ``non_negative_difference(last())`` — the growth of the counter since the
device's previous period with data — then sum() over devices per bucket. Gaps are right: a silent
device's energy lands in the period of its next reading, as in :mod:`ingest.consumption`. Duplicates do
not count twice (last() of a period). A reset or meter swap gives no negative energy.

Where it differs from ingest/consumption.py (which counts a drop as a new meter from zero, the new
reading being its energy): non_negative_difference drops the period of the drop, so the new meter's
first reading is lost — at 15-minute periods the energy of up to one reading interval of the new meter
(measured on the test day, 18 June 2025 of the 110-household quarter with swap=0.05: the swapped
households lost exactly their new meters' first readings, the quarter's import < 0.1 %, see
tests/panels/test_queries.py); at daily periods the whole day of the swapped meter. So the panels
compute energy per 15 minutes (raw data or the ``_15m`` rollup) and sum that per day; only the
12-month panel differences daily last() of the ``_1d`` rollup and loses a swapped meter's day.

Why not the exact rule (d < 0: count the new reading): InfluxQL has no conditionals; it can be written
with abs() over ``last()``, ``max()`` and ``difference(last())`` of one subquery, but InfluxDB 1.6 then
returns one row per timestamp across series when an outer query aggregates a math expression mixing a
transformation with aggregates (measured: a day's sum over 110 meters came out as one meter's).
"""

from __future__ import annotations

from dataclasses import dataclass

ZONE = "Europe/Berlin"
ROLLUP_RP = "rollups"
LEDGER_15M = "energy"
LEDGER_1D = "energy_1d"


def lookback(period: str) -> str:
    """The range from one ``period`` before Grafana's range: the first period's predecessor.

    Both the inner and the outer query need it: InfluxDB narrows a subquery's time range to the outer
    query's, so an outer ``$timeFilter`` would cut the lookback off again (measured: the day came out
    2.4 % low, one 15-minute interval per meter). The extra period's own energy is null (its
    predecessor lies outside), so it adds nothing.
    """
    return f"time >= ${{__from}}ms - {period} AND time <= ${{__to}}ms"


def tz() -> str:
    return f"tz('{ZONE}')"


@dataclass(frozen=True)
class Counter:
    """A cumulative counter field of a measurement, with the tag conditions that select its devices."""

    measurement: str
    field: str
    where: str = ""  # tag conditions (Grafana variables allowed), without AND

    def source(self, rollup: str | None) -> str:
        """FROM: raw data, or the rollup ``rollups.<measurement>_<rollup>`` (same field names)."""
        if rollup is None:
            return f'"{self.measurement}"'
        return f'"{ROLLUP_RP}"."{self.measurement}_{rollup}"'


def per_device_energy(
    counter: Counter, *, period: str, by: tuple[str, ...] = (), rollup: str | None = None
) -> str:
    """A subquery: per device (and ``by`` tags) and ``period``, the energy as field ``e``."""
    tags = "".join(f', "{tag}"' for tag in ("device", *by))
    condition = f" AND {counter.where}" if counter.where else ""
    return (
        f'SELECT non_negative_difference(last("{counter.field}")) AS "e" FROM {counter.source(rollup)} '
        f"WHERE {lookback(period)}{condition} GROUP BY time({period}){tags} fill(none) {tz()}"
    )


def energy(
    counter: Counter,
    *,
    period: str,
    bucket: str | None,
    by: tuple[str, ...] = (),
    rollup: str | None = None,
    alias: str = "energy",
) -> str:
    """Energy (kWh) summed over devices per ``bucket`` (None: one total for the range) and ``by`` tags."""
    groups = [f"time({bucket})"] if bucket else []
    groups += [f'"{tag}"' for tag in by]
    group = f" GROUP BY {', '.join(groups)}" if groups else ""
    fill = " fill(none)" if bucket else ""
    inner = per_device_energy(counter, period=period, by=by, rollup=rollup)
    # the outer range must reach back too (see lookback); its extra bucket holds no energy
    return f'SELECT sum("e") AS "{alias}" FROM ({inner}) WHERE {lookback(period)}{group}{fill} {tz()}'


def ledger(
    kind: str,
    *,
    where: str = "",
    bucket: str | None,
    daily: bool = False,
    by: tuple[str, ...] = (),
    alias: str = "energy",
) -> str:
    """Energy (kWh) of one ``kind`` from the ledger, summed over devices per ``bucket`` (None: one total)
    and ``by`` tags; ``daily`` reads the local days (``energy_1d``, time = local midnight)."""
    source = f'"{ROLLUP_RP}"."{LEDGER_1D if daily else LEDGER_15M}"'
    condition = f" AND {where}" if where else ""
    groups = [f"time({bucket})"] if bucket else []
    groups += [f'"{tag}"' for tag in by]
    group = f" GROUP BY {', '.join(groups)}" if groups else ""
    fill = " fill(none)" if bucket else ""
    return (
        f'SELECT sum("kwh") AS "{alias}" FROM {source} WHERE $timeFilter AND "kind" = \'{kind}\''
        f"{condition}{group}{fill} {tz()}"
    )
