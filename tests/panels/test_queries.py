"""Every panel query, expanded as Grafana expands it, against the real InfluxDB filled by a simulated day.

And the energy panels against the simulator's ground truth (ingest/consumption.py's rule on the messages
as they left the simulator), on a day with meter swaps (counters dropping to zero mid-day).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

import pytest

from ingest.consumption import daily_energy
from ingest.panels.catalogue import Dashboard, Panel, dashboards
from ingest.panels.influxql import ZONE
from ingest.panels.macros import Variable, duration_ms, expand
from tests.filled_day import DAY_DATE, RESET_HOUSEHOLD, FilledDay

pytestmark = pytest.mark.integration
COLUMNS = ("import_wh", "export_wh", "pv_wh", "heat_wh", "ev_wh")  # the energy flows' order
LIVE = {"reallabor-pipeline"}  # dashboards fed by the ingester run (now), not the simulated day


def _values(influx: Any, query: str) -> list[float]:
    return [
        value
        for series in influx.query(query)
        for row in series["values"]
        for value in row[1:]
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def _variables(filled: FilledDay, dashboard: Dashboard) -> dict[str, Variable]:
    out = {}
    for variable in dashboard.variables:
        options = [row[1] for s in filled.influx.query(variable.query) for row in s["values"]]
        assert options, (dashboard.uid, variable.name)
        out[variable.name] = Variable(tuple(sorted(options)), multi=variable.multi)
    return out


def _range(filled: FilledDay, dashboard: Dashboard, query: str = "") -> tuple[int, int]:
    if dashboard.uid in LIVE or '"ingest_stats"' in query:
        now = int(time.time() * 1000)
        return now - 600_000, now
    return filled.day_start_ms, filled.day_end_ms


def _expand(filled: FilledDay, dashboard: Dashboard, panel: Panel, query: str) -> str:
    start, end = _range(filled, dashboard, query)
    return expand(
        query,
        from_ms=start,
        to_ms=end,
        variables=_variables(filled, dashboard),
        max_data_points=panel.max_data_points,
        min_interval=panel.interval,
    )


def _panel(uid: str, key: str) -> tuple[Dashboard, Panel]:
    dashboard = next(d for d in dashboards() if d.uid == uid)
    return dashboard, next(p for p in dashboard.panels if p.key == key)


def test_every_panel_query_returns_data(rolled_day: FilledDay) -> None:
    """Every query and every raw twin (the energy panels' non_negative_difference on raw data)."""
    filled_day = rolled_day
    ran = 0
    for dashboard in dashboards():
        for panel in dashboard.panels:
            for target in panel.targets:
                for text in filter(None, (target.query, target.raw)):
                    query = _expand(filled_day, dashboard, panel, text)
                    assert _values(filled_day.influx, query), (dashboard.uid, panel.key, query)
                    ran += 1
    assert ran >= 60


def _truth_kwh(filled: FilledDay, column: str) -> dict[str, float]:
    """Per household, the day's energy from the ground truth (kWh)."""
    return {
        str(row["household"]): float(row[column]) / 1000  # type: ignore[arg-type]
        for row in filled.truth.rows()
        if row["day"] == DAY_DATE.isoformat()
    }


def _first_new_readings(filled: FilledDay) -> dict[str, float]:
    """Per household, the first reading of each new meter after a drop that day (a swap, or the reset of
    RESET_HOUSEHOLD's meter) (kWh): what non_negative_difference leaves out."""
    rows = filled.influx.rows(
        'SELECT "energy_import_kwh" FROM "electricity" WHERE "channel" = \'\' AND '
        f'time >= {filled.day_start_ms}ms - 15m AND time <= {filled.day_end_ms}ms GROUP BY "household"'
    )
    lost: dict[str, float] = defaultdict(float)
    previous: dict[str, float] = {}
    for row in rows:
        household, value = row["household"], row["energy_import_kwh"]
        if household in previous and value < previous[household]:
            lost[household] += value
        previous[household] = value
    return dict(lost)


def _sum(filled: FilledDay, dashboard: Dashboard, panel: Panel, query: str) -> float:
    return sum(_values(filled.influx, _expand(filled, dashboard, panel, query)))


def test_the_ledger_was_filled_by_the_rollup(filled_day: FilledDay) -> None:
    """Two local days (the evening before: the meters' first readings, their baselines), every 15-minute
    bucket of the day with a point per counter, one daily point per device and kind."""
    report = filled_day.ledger
    assert report.readings > 30_000  # 110 main meters (import, export), PV, heat and EV counters
    assert report.days >= 110 * 4
    assert report.buckets >= 110 * 96 * 2  # main meter import and export in every quarter hour
    print(f"ledger: {report.line()}")


def test_quarter_energy_of_the_day_equals_the_ground_truth(filled_day: FilledDay) -> None:
    """Issue 13: import and export by 15 minutes summed over the day, and the day's totals, equal the
    ground truth on a day with meter swaps (the ledger: exact to rounding; the raw twin: short by the
    new meters' first readings, measured and printed)."""
    lost = _first_new_readings(filled_day)
    assert filled_day.faults.swaps >= 2  # the day has meter swaps
    assert len(lost) >= 2
    dashboard, panel = _panel("reallabor-energy", "today-15m")
    _, totals = _panel("reallabor-energy", "totals")
    for index, column in ((0, "import_wh"), (1, "export_wh")):
        expected = sum(_truth_kwh(filled_day, column).values())
        target = panel.targets[index]
        by_15m = _sum(filled_day, dashboard, panel, target.query)
        total = _values(
            filled_day.influx, _expand(filled_day, dashboard, totals, totals.targets[index].query)
        )
        assert by_15m == pytest.approx(expected, rel=1e-6, abs=1e-3), column
        assert total == [pytest.approx(by_15m, rel=1e-9)], column
        assert target.raw is not None
        raw = _sum(filled_day, dashboard, panel, target.raw)
        print(
            f"quarter {column}: truth {expected:.3f} kWh, ledger {by_15m:.3f} "
            f"({(by_15m - expected) / expected:+.4%}), "
            f"raw twin {raw:.3f} ({(raw - expected) / expected:+.4%})"
        )
        if column == "import_wh":
            assert raw + sum(lost.values()) == pytest.approx(by_15m, rel=1e-9)


def test_energy_per_building_equals_the_ground_truth(filled_day: FilledDay) -> None:
    """Every building's import of the day equals the truth (the ledger); the raw twin is short by the new
    meters' first readings in buildings with a swap (measured: the worst building, printed)."""
    dashboard, panel = _panel("reallabor-energy", "per-building")
    target = panel.targets[0]
    assert target.raw is not None

    def per_building(query: str) -> dict[str, float]:
        return {
            s["tags"]["building"]: s["values"][0][1]
            for s in filled_day.influx.query(_expand(filled_day, dashboard, panel, query))
        }

    got, raw = per_building(target.query), per_building(target.raw)
    expected: dict[str, float] = defaultdict(float)
    missing: dict[str, float] = defaultdict(float)
    truth, lost = _truth_kwh(filled_day, "import_wh"), _first_new_readings(filled_day)
    for h in filled_day.quarter.households:
        expected[f"Haus {h.building}"] += truth[h.name]
        missing[f"Haus {h.building}"] += lost.get(h.name, 0.0)
    assert set(got) == set(expected) == set(raw)
    for building, kwh in expected.items():
        assert got[building] == pytest.approx(kwh, rel=1e-6, abs=1e-3), building
        assert raw[building] + missing[building] == pytest.approx(got[building], rel=1e-9), building
    worst_ledger = max(abs(got[b] - kwh) / kwh for b, kwh in expected.items())
    worst_raw = max(abs(raw[b] - kwh) / kwh for b, kwh in expected.items())
    print(f"worst building: ledger {worst_ledger:.5%}, raw twin {worst_raw:.4%}")
    assert worst_ledger < 1e-3
    assert sum(1 for b in expected if missing[b]) >= 2  # buildings with a swap are among them


def test_swapped_meters_exact_in_the_household_drill_down(filled_day: FilledDay) -> None:
    """Each household whose meter was swapped or reset that day: every 15 minutes >= 0 and the day equal
    to the truth (the ledger); the raw twin short by exactly the first reading after the drop."""
    _, panel = _panel("reallabor-household", "energy")
    truth, lost = _truth_kwh(filled_day, "import_wh"), _first_new_readings(filled_day)
    swapped = [
        h
        for h in filled_day.quarter.households
        if filled_day.truth.imports[h.number].resets or h.name == RESET_HOUSEHOLD
    ]
    assert len(swapped) >= 3
    assert {h.name for h in swapped} == set(lost)
    target = panel.targets[0]
    assert target.raw is not None
    for h in swapped:

        def run(query: str, name: str = h.name) -> list[float]:
            expanded = expand(
                query,
                from_ms=filled_day.day_start_ms,
                to_ms=filled_day.day_end_ms,
                variables={"household": Variable((name,))},
            )
            return _values(filled_day.influx, expanded)

        values, raw = run(target.query), run(target.raw)
        assert min(values) >= 0
        # to the Wh against the truth (the counters' resolution), exactly consumption.py's rule on what
        # InfluxDB holds
        assert sum(values) == pytest.approx(truth[h.name], rel=1e-6, abs=1e-3), h.name
        readings = filled_day.influx.rows(
            f"SELECT energy_import_kwh FROM electricity WHERE household = '{h.name}' AND channel = ''"
        )
        rule = daily_energy((r["time"], r["energy_import_kwh"]) for r in readings)
        assert sum(values) == pytest.approx(rule[DAY_DATE], rel=1e-12), h.name
        assert sum(raw) + lost[h.name] == pytest.approx(sum(values), rel=1e-9), h.name


def test_daily_ledger_equals_the_ground_truth(filled_day: FilledDay) -> None:
    """The 30-day and 12-month panels read the ledger's days (energy_1d, local midnight): the swap day
    equals the truth for every flow. Their raw twins: the 30-day one (15-minute differences) short by
    the new meters' first readings; the 12-month one (daily differences) loses the swapped meters'
    whole day."""
    truth, lost = _truth_kwh(filled_day, "import_wh"), _first_new_readings(filled_day)
    for key in ("days-30", "months-12"):
        dashboard, panel = _panel("reallabor-energy", key)
        for target, column in zip(panel.targets, COLUMNS, strict=True):
            series = filled_day.influx.query(_expand(filled_day, dashboard, panel, target.query))
            days = {row[0]: row[1] for row in series[0]["values"]}
            expected = sum(_truth_kwh(filled_day, column).values())
            # import and export: the truth is the meters' counters, exact; PV, heat, EV: the model's
            # flows, which their counters carry to the Wh (1e-4 of a day)
            rel = 1e-6 if column in ("import_wh", "export_wh") else 1e-4
            assert list(days.values())[-1] == pytest.approx(expected, rel=rel, abs=1e-3), (key, column)
        assert panel.targets[0].raw is not None
        raw = _values(filled_day.influx, _expand(filled_day, dashboard, panel, panel.targets[0].raw))
        expected = sum(truth.values())
        if key == "days-30":
            assert raw[-1] + sum(lost.values()) == pytest.approx(expected, rel=1e-6)
        else:
            assert raw[-1] == pytest.approx(expected - sum(truth[h] for h in lost), rel=1e-6)
            print(f"12-month raw twin on the swap day: {(raw[-1] - expected) / expected:+.3%}")
    assert ZONE == "Europe/Berlin"


def test_ledger_buckets_equal_the_raw_twin_but_at_swaps(filled_day: FilledDay) -> None:
    """Quarter hour by quarter hour, the ledger and the raw twin agree except in the buckets of a new
    meter's first reading, where the ledger has that reading more."""
    dashboard, panel = _panel("reallabor-energy", "today-15m")
    target = panel.targets[0]
    assert target.raw is not None

    def buckets(query: str) -> dict[int, float]:
        series = filled_day.influx.query(_expand(filled_day, dashboard, panel, query))
        return {row[0]: row[1] for row in series[0]["values"] if row[1] is not None}

    ledger, raw = buckets(target.query), buckets(target.raw)
    assert len(ledger) == 96
    differing = [t for t in ledger if ledger[t] != pytest.approx(raw.get(t, 0.0), rel=1e-9, abs=1e-9)]
    assert 1 <= len(differing) <= filled_day.faults.swaps + 1  # + the reset
    assert all(ledger[t] > raw.get(t, 0.0) for t in differing)


def test_self_consumption_and_sufficiency_from_the_three_totals(filled_day: FilledDay) -> None:
    """The ratios panel's totals, combined as its Grafana transformations do, against the ground truth."""
    dashboard, panel = _panel("reallabor-energy", "ratios")
    got = {
        t.alias: _values(filled_day.influx, _expand(filled_day, dashboard, panel, t.query))[0]
        for t in panel.targets
    }
    truth = {name: sum(_truth_kwh(filled_day, f"{name}_wh").values()) for name in ("pv", "export", "import")}
    for name in truth:  # PV: the model's flow, carried by its counter to the Wh
        assert got[name] == pytest.approx(truth[name], rel=1e-4 if name == "pv" else 1e-6), name
    used = got["pv"] - got["export"]
    assert 0 < used / got["pv"] <= 1
    assert used / (used + got["import"]) == pytest.approx(
        (truth["pv"] - truth["export"]) / (truth["pv"] - truth["export"] + truth["import"]), rel=1e-4
    )


def test_readings_per_gateway_from_the_rollup_equal_the_raw_count(rolled_day: FilledDay) -> None:
    """The gateways panel sums the 15-minute rollup's count: bucket by bucket and gateway what counting
    the raw readings gives, over the day and (from the daily rollup) the day's total."""
    dashboard, panel = _panel("reallabor-fleet", "gateways")
    (target,) = panel.targets
    assert target.raw is not None
    assert '"rollups"."electricity_15m"' in target.query

    def buckets(query: str) -> dict[tuple[str, int], float]:
        return {
            (series["tags"]["gateway"], row[0]): row[1]
            for series in rolled_day.influx.query(_expand(rolled_day, dashboard, panel, query))
            for row in series["values"]
        }

    rollup, raw = buckets(target.query), buckets(target.raw)
    assert len({gateway for gateway, _ in raw}) >= 2
    assert rollup == raw
    assert sum(raw.values()) > 96 * 100
    # a rollup day [23:00 UTC, 23:00 UTC) inside the filled data: the daily rollup sums the quarter hours
    gateway = min(gateway for gateway, _ in raw)
    start = rolled_day.day_start_ms + 3_600_000
    where = f"\"gateway\" = '{gateway}' AND time >= {start}ms AND time < {start + 86_400_000}ms"
    daily = rolled_day.influx.query(
        f'SELECT sum("power_w_count") FROM "rollups"."electricity_1d" WHERE {where}'
    )
    counted = rolled_day.influx.count("electricity", "power_w", where=where)
    assert counted > 0
    assert daily[0]["values"][0][1] == counted


@pytest.mark.parametrize(
    ("key", "points", "month_interval"),
    [("today-15m", 150, "6h"), ("temperature", 250, "3h"), ("signal", 250, "3h"), ("gateways", 250, "3h")],
)
def test_long_ranges_get_coarser_buckets_from_max_data_points(
    rolled_day: FilledDay, key: str, points: int, month_interval: str
) -> None:
    """Over a day the panel keeps its min interval; over 30 days $__interval grows to range / max data
    points rounded as Grafana rounds it (3 h for 250 points, 6 h for 150), and the query still runs."""
    filled_day = rolled_day
    dashboard, panel = next((d, p) for d in dashboards() for p in d.panels if p.key == key)
    assert panel.max_data_points == points
    variables = _variables(filled_day, dashboard)
    query = panel.targets[0].query
    day = expand(
        query,
        from_ms=filled_day.day_start_ms,
        to_ms=filled_day.day_end_ms,
        variables=variables,
        max_data_points=panel.max_data_points,
        min_interval=panel.interval,
    )
    assert f"time({panel.interval})" in day
    month = expand(
        query,
        from_ms=filled_day.day_end_ms - 30 * 86_400_000,
        to_ms=filled_day.day_end_ms,
        variables=variables,
        max_data_points=panel.max_data_points,
        min_interval=panel.interval,
    )
    assert f"time({month_interval})" in month
    times = sorted({row[0] for series in filled_day.influx.query(month) for row in series["values"]})
    assert len(times) >= 2
    step = duration_ms(month_interval) * 1_000_000
    assert all((b - a) % step == 0 for a, b in itertools.pairwise(times))


@pytest.mark.parametrize(("uid", "key"), [("reallabor-environment", "co2"), ("reallabor-fleet", "signal")])
def test_room_climate_and_signal_from_the_rollup_equal_raw_means(
    rolled_day: FilledDay, uid: str, key: str
) -> None:
    """By quarter hours over the day, the rollup's means per device are the raw readings' means."""
    dashboard, panel = _panel(uid, key)
    target = panel.targets[0]
    assert target.raw is not None
    assert '"rollups".' in target.query

    def buckets(query: str) -> dict[tuple[str, int], float]:
        return {
            (series["tags"]["device"], row[0]): row[1]
            for series in rolled_day.influx.query(_expand(rolled_day, dashboard, panel, query))
            for row in series["values"]
        }

    rollup, raw = buckets(target.query), buckets(target.raw)
    assert len(raw) >= 96 * 10
    assert rollup.keys() == raw.keys()
    assert all(rollup[k] == pytest.approx(raw[k], rel=1e-9) for k in raw)
