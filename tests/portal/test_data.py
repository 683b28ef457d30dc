"""The portal's data layer against a real InfluxDB holding a ledger per the contract: each household sees
exactly its own points (by household *and* building), the typical household needs five households and is
nobody's own value, the community figures follow their definitions (docs/portal.md), current power only
when fresh, CSV rows only the household's own."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from ingest.config import InfluxSettings
from ingest.portal import csv_export
from ingest.portal import data as data_module
from ingest.portal.data import BUILDING_PV, MIN_HOUSEHOLDS, Household, PortalData, consumption, ledger_rows
from ingest.portal.periods import Period
from ingest.portal.quarter import QuarterPending
from ingest.portal.reader import Reader
from tests.portal.ledger import DAY, HOUSEHOLDS, SPARSE_DAY, TZ, Ledger, kinds_of, totals

pytestmark = pytest.mark.integration


def household(index: int) -> Household:
    name, building = HOUSEHOLDS[index]
    return Household(100 + index, name, building)


def _close(a: dict[str, float], b: dict[str, float]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-6), key


@pytest.mark.parametrize("index", range(len(HOUSEHOLDS)))
def test_day_bars_are_the_households_own(portal_data: PortalData, ledger: Ledger, index: int) -> None:
    period = Period.containing("day", DAY, TZ)
    bars = portal_data.bars(household(index), period)
    assert len(bars.buckets) == 24
    start, end = period.range
    name, building = HOUSEHOLDS[index]
    expected = totals(ledger.quarter_hours, name, building, start, end)
    if "pv" not in expected and building == "Haus 2":  # no own PV: the building's is shown beside
        expected[BUILDING_PV] = totals(ledger.quarter_hours, "", building, start, end)["pv"]
    _close(bars.totals, expected)
    assert set(bars.kinds) == set(expected)
    # hour by hour: the four quarter hours of each hour
    first_hour = sum(
        v
        for m, v in ledger.quarter_hours[(name, building, "import", f"{name}-import")].items()
        if start <= m < start + dt.timedelta(hours=1)
    )
    assert bars.kinds["import"][0] == pytest.approx(first_hour)


def test_month_and_year_from_the_daily_ledger(portal_data: PortalData, ledger: Ledger) -> None:
    for view, count in (("month", 30), ("week", 7), ("year", 12)):
        period = Period.containing(view, DAY, TZ)  # type: ignore[arg-type]
        bars = portal_data.bars(household(3), period)
        assert len(bars.buckets) == count
        start, end = period.range
        expected = totals(ledger.days, "EG", "Haus 2", start, end)
        expected[BUILDING_PV] = totals(ledger.days, "", "Haus 2", start, end)["pv"]
        _close(bars.totals, expected)
        # the other EG (Haus 3) is not mixed in
        other = totals(ledger.days, "EG", "Haus 3", start, end)
        assert bars.totals["import"] != pytest.approx(other["import"] + expected["import"])
    year = portal_data.bars(household(0), Period.containing("year", DAY, TZ))
    june = year.buckets.index(dt.datetime(2025, 6, 1, tzinfo=TZ))
    assert year.kinds["import"][june] == pytest.approx(
        totals(ledger.days, "hh-001", "Haus 1", *Period.containing("month", DAY, TZ).range)["import"]
    )
    assert year.kinds["import"][0] is None  # January: nothing in the ledger


def test_previous_period_totals(portal_data: PortalData, ledger: Ledger) -> None:
    month = Period.containing("month", DAY, TZ)
    previous = month.previous()
    assert previous.start == dt.date(2025, 5, 1)
    got = portal_data.totals(household(5), previous)
    _close(got, totals(ledger.days, *HOUSEHOLDS[5], *previous.range))


def _middle_mean(values: list[float]) -> float:
    """The typical household as docs/portal.md defines it, computed independently here."""
    ordered = sorted(values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut]
    return sum(middle) / len(middle)


def test_typical_household_over_five_or_more_households_only(portal_data: PortalData, ledger: Ledger) -> None:
    period = Period.containing("day", DAY, TZ)
    quarter = portal_data.quarter_figures(period)
    start, end = period.range
    per = [totals(ledger.quarter_hours, name, building, start, end) for name, building in HOUSEHOLDS]
    assert quarter.enough
    for kind, values in (
        ("import", [t["import"] for t in per]),
        ("heat", [t["heat"] for t in per]),
        ("consumption", [consumption(t)[0] for t in per]),
    ):
        expected = _middle_mean(values)
        assert quarter.typical[kind] == pytest.approx(
            round(expected, 1) if expected < 10 else round(expected)
        )
        assert expected not in values, kind  # a mean of several, not one household's figure
    assert sum(1 for t in per if "ev" in t) < MIN_HOUSEHOLDS
    assert quarter.typical["ev"] is None  # two households have EV charging: nothing about two
    assert sum(1 for t in per if "pv" in t) < MIN_HOUSEHOLDS
    assert quarter.typical["pv"] is None
    # three households and the building have PV: four installations, so no PV-based quarter figure
    assert quarter.pv_share is None
    assert quarter.self_sufficiency is None
    # a day with data of four households only: no quarter figure at all
    sparse = portal_data.quarter_figures(Period.containing("day", SPARSE_DAY, TZ))
    assert not sparse.enough
    assert all(value is None for value in sparse.typical.values())
    assert sparse.pv_share is None
    assert sparse.self_sufficiency is None


def test_community_figures_follow_their_definition(
    portal_data: PortalData, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The formulas, with the minimum lowered to four so that the ledger's four PV installations count
    (at five the PV figures are hidden: the test above)."""
    monkeypatch.setattr(data_module, "MIN_HOUSEHOLDS", 4)
    period = Period.containing("day", DAY, TZ)
    start, end = period.range
    me = household(0)
    mine = totals(ledger.quarter_hours, me.name, me.building, start, end)
    figures = portal_data.community(me, period, mine)
    flows: dict[dt.datetime, list[float]] = {}
    pv = 0.0
    for (_name, _b, kind, _d), points in ledger.quarter_hours.items():
        for moment, value in points.items():
            if start <= moment < end:
                if kind == "pv":
                    pv += value
                elif kind in ("import", "export"):
                    flows.setdefault(moment, [0.0, 0.0])[kind == "export"] += value
    own_import = ledger.quarter_hours[(me.name, me.building, "import", f"{me.name}-import")]
    shared = sum(
        value * min(1.0, flows[m][1] / flows[m][0]) for m, value in own_import.items() if start <= m < end
    )
    used = max(0.0, mine["pv"] - mine["export"])
    assert figures.consumption == pytest.approx(mine["import"] + used)
    assert figures.self_sufficiency == pytest.approx(used / (mine["import"] + used))
    assert figures.shared == pytest.approx(shared)
    # shares of others are rounded to whole percent
    assert figures.quarter_pv_covered == pytest.approx((used + shared) / (mine["import"] + used), abs=0.005)
    quarter_consumption = sum(f[0] for f in flows.values()) + pv - sum(f[1] for f in flows.values())
    external = sum(max(0.0, f[0] - f[1]) for f in flows.values())
    assert figures.quarter.self_sufficiency == pytest.approx(1 - external / quarter_consumption, abs=0.005)
    assert figures.quarter.pv_share == pytest.approx(pv / quarter_consumption, abs=0.005)
    assert figures.quarter.self_sufficiency is not None
    assert figures.quarter.self_sufficiency == round(figures.quarter.self_sufficiency, 2)
    assert 0 < figures.quarter_pv_covered < 1  # type: ignore[operator]
    # a month from the per-day figures: the quarter cannot cover more of its use than its PV produced
    month = portal_data.community(me, Period.containing("month", DAY, TZ), mine).quarter
    assert month.self_sufficiency is not None
    assert month.pv_share is not None
    assert 0 < month.self_sufficiency <= month.pv_share
    # a household without PV: self-sufficiency 0, yet the quarter's surplus covers part of it
    other = household(2)
    theirs = totals(ledger.quarter_hours, other.name, other.building, start, end)
    figures = portal_data.community(other, period, theirs)
    assert figures.self_sufficiency == 0
    assert figures.quarter_pv_covered is not None
    assert figures.quarter_pv_covered > 0


def test_no_pv_figures_about_the_neighbours_with_fewer_than_five_installations(
    portal_data: PortalData, ledger: Ledger
) -> None:
    period = Period.containing("day", DAY, TZ)
    me = household(2)  # no PV of its own: the covered share would be the neighbours' surplus
    figures = portal_data.community(me, period, portal_data.totals(me, period))
    assert figures.quarter.enough
    assert figures.quarter_pv_covered is None
    assert figures.quarter.pv_share is None


def test_current_power_only_when_fresh_and_from_the_main_meter(
    portal_data: PortalData, ledger: Ledger
) -> None:
    me, other = household(1), household(3)
    now = dt.datetime.now(dt.UTC)

    def write(line: str) -> None:
        response = httpx.post(
            f"{ledger.influx.url}/write",
            params={"db": ledger.influx.database, "precision": "s"},
            content=line.encode(),
            trust_env=False,
        )
        assert response.status_code == 204, response.text

    stamp = int(now.timestamp())
    write(f"electricity,building=Haus\\ 1,device=m1,household=hh-002 power_w=-812.5 {stamp - 60}")
    write(f"electricity,building=Haus\\ 1,channel=1,device=ev,household=hh-002 power_w=9999 {stamp - 30}")
    write(f"electricity,building=Haus\\ 2,device=m2,household=EG power_w=300 {stamp - 600}")
    power = portal_data.power(me)
    assert power is not None
    assert power.watts == -812.5
    assert abs((power.at - now).total_seconds() - (-60)) <= 1
    assert portal_data.power(other) is None  # ten minutes old: no current reading
    assert portal_data.power(household(4)) is None  # the other EG has none at all


def test_csv_rows_only_the_households_own(portal_data: PortalData, ledger: Ledger) -> None:
    me = household(5)  # named like an injection: x' OR '1'='1
    chosen = csv_export.parse_range("2025-06-17", "2025-06-18", "15m", today=dt.date(2026, 1, 1))
    rows = ledger_rows(portal_data.reader, me, *chosen.bounds(TZ), daily=False)
    start, end = chosen.bounds(TZ)
    expected = totals(ledger.quarter_hours, me.name, me.building, start, end)
    assert {row.tags["device"] for row in rows} == {f"{me.name}-{kind}" for kind in kinds_of(5)}
    got: dict[str, float] = {}
    for row in rows:
        got[row.tags["kind"]] = got.get(row.tags["kind"], 0.0) + row.values["kwh"]
    _close(got, expected)
    text = csv_export.csv_text(rows, TZ)
    lines = text.splitlines()
    assert lines[0] == "time_local,time_utc,device,kind,kwh"
    assert len(lines) == 1 + len(rows) == 1 + 2 * 96 * len(kinds_of(5))
    assert "hh-001" not in text
    assert "EG" not in text


@pytest.mark.parametrize(
    ("first", "last", "resolution", "problem"),
    [
        ("2025-06-18", "2025-06-17", "15m", "on or after"),
        ("2025-05-01", "2025-06-18", "15m", "at most 31 days"),
        ("2024-01-01", "2025-06-18", "1d", "at most 366 days"),
        ("2025-13-01", "2025-06-18", "1d", "YYYY-MM-DD"),
        ("1999-12-31", "2000-01-01", "1d", "between"),
        ("2025-06-18", "2027-01-01", "1d", "between"),
        ("2025-06-18", "2025-12-31", "1d", "today at the latest"),
        ("2025-06-18", "2025-06-18", "1m", "15m or 1d"),
        ("2025-06-18' OR 1=1", "2025-06-18", "1d", "YYYY-MM-DD"),
        ("", "2025-06-18", "1d", "YYYY-MM-DD"),
    ],
)
def test_csv_range_refused_with_a_reason(first: str, last: str, resolution: str, problem: str) -> None:
    with pytest.raises(csv_export.BadRange, match=problem):
        csv_export.parse_range(first, last, resolution, today=dt.date(2025, 6, 20))


def test_csv_cells_cannot_be_formulas() -> None:
    assert csv_export._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_export._cell("hh-001") == "hh-001"


def test_quarter_days_computed_once_and_in_the_background(ledger: Ledger) -> None:
    """A year is too long to compute in a request: QuarterPending, the warmer computes it, then it is
    there; a day's figures equal a fresh computation of the same day."""
    reader = Reader(InfluxSettings(url=ledger.influx.url, database=ledger.influx.database))
    try:
        data = PortalData(reader, TZ)
        year = Period.containing("year", DAY, TZ)
        with pytest.raises(QuarterPending):
            data.quarter_figures(year, max_missing=35)
        data.quarter.wait(120)
        figures = data.quarter_figures(year, max_missing=0)  # every day known now: no query needed
        assert figures.enough
        fresh = PortalData(reader, TZ)
        month = Period.containing("month", DAY, TZ)
        assert data.quarter_figures(month, max_missing=0) == fresh.quarter_figures(month)
    finally:
        reader.close()
