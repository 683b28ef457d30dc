"""(n, k)-dominance and secondary suppression (ingest/opendata/disclosure.py), pure."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ingest.opendata.disclosure import (
    Cell,
    Rule,
    Status,
    assess,
    derived,
    protect_group,
    publishable,
)
from ingest.opendata.energy_tables import DayEnergy, day_tables
from ingest.opendata.sources import quarter_hours

RULE = Rule(min_households=5, dominance_percent=85.0)


def households(*kwh: float, building: str = "Haus 1") -> dict[tuple[str, str], float]:
    return {(f"hh-{index}", building): value for index, value in enumerate(kwh)}


def test_four_households_are_suppressed_five_published() -> None:
    four = assess(households(1.0, 1.2, 0.8, 1.1), RULE)
    five = assess(households(1.0, 1.2, 0.8, 1.1, 0.9), RULE)
    assert four.status is Status.suppressed
    assert four.value is None
    assert four.total == pytest.approx(4.1)
    assert five.status is Status.published
    assert five.value == pytest.approx(5.0)
    assert five.households == 5


def test_only_non_zero_contributions_count() -> None:
    cell = assess(households(1.0, 1.2, 0.8, 1.1, 0.0, 0.0), RULE)
    assert cell.status is Status.suppressed
    assert cell.households == 4


def test_one_household_with_90_percent_suppresses_the_cell() -> None:
    others = [0.25] * 5  # 1.25 kWh from five households, 11.25 kWh from one: 90 %
    dominated = assess(households(11.25, *others), RULE)
    assert dominated.households == 6
    assert dominated.status is Status.suppressed
    at_85 = assess(households(85.0, 3.0, 3.0, 3.0, 3.0, 3.0), RULE)  # exactly 85 %: allowed
    assert at_85.published
    assert not publishable(households(11.25, *others), min_households=5, dominance_percent=85.0)
    assert publishable(households(11.25, *others), min_households=5, dominance_percent=95.0)


def test_a_building_device_dominates_but_is_no_household() -> None:
    contributions = households(1.0, 1.0, 1.0, 1.0)
    contributions[("", "Haus 1")] = 1.0  # a roof PV without household: five contributors, four households
    assert assess(contributions, RULE).status is Status.suppressed
    contributions = households(1.0, 1.0, 1.0, 1.0, 1.0)
    contributions[("", "Haus 1")] = 50.0  # 91 % from the building's PV
    assert assess(contributions, RULE).status is Status.suppressed


def test_zero_totals_need_enough_reporting_households() -> None:
    night = assess(households(0.0, 0.0, 0.0, 0.0, 0.0), RULE)
    assert night.published
    assert night.value == 0.0
    assert assess(households(0.0, 0.0, 0.0, 0.0), RULE).status is Status.suppressed
    missing = assess({}, RULE)
    assert missing.status is Status.missing
    assert not missing.withheld
    assert missing.value is None


def test_rule_bounds() -> None:
    with pytest.raises(ValueError, match="min_households 1"):
        Rule(min_households=1)
    with pytest.raises(ValueError, match="dominance_percent 100"):
        Rule(dominance_percent=100)


def cell(total: float, status: Status = Status.published) -> Cell:
    return Cell(total, 5, status)


Part = dict[tuple[str, str], float]


def group(parts: dict[str, Part], total_status: Status | None = None) -> tuple[dict[str, Cell], Cell]:
    """``protect_group`` over parts assessed from their contributions, the total from all of them."""
    cells = {key: assess(contributions, RULE) for key, contributions in parts.items()}
    everybody: Part = {}
    for contributions in parts.values():
        for who, kwh in contributions.items():
            everybody[who] = everybody.get(who, 0.0) + kwh
    total = assess(everybody, RULE)
    if total_status is not None:
        total = Cell(total.total, total.households, total_status)
    return protect_group(cells, total, contributions=parts, rule=RULE)


def withheld(cells: dict[str, Cell]) -> set[str]:
    return {key for key, value in cells.items() if value.withheld}


def five(kwh: float, first: int = 10) -> Part:
    return {(f"hh-{first + index}", "Haus 1"): kwh for index in range(5)}


def test_a_single_suppressed_part_gets_the_smallest_partner_that_hides_it() -> None:
    lone = {("hh-0", "Haus 1"): 3.0}
    parts = {"a": lone, "b": five(0.2), "c": five(0.8, 20), "d": five(1.8, 30)}
    protected, total = group(parts)
    assert total.published
    # a + b: six households, hh-0 75 %: passes; the partner is withheld as secondary
    assert withheld(protected) == {"a", "b"}
    assert protected["b"].status is Status.secondary
    assert protected["b"].value is None
    # a large primary: b (97 %), then c (86 %) are not enough, d brings it to 68 %
    protected, total = group({**parts, "a": {("hh-0", "Haus 1"): 30.0}})
    assert withheld(protected) == {"a", "b", "c", "d"}
    assert total.published


def test_two_withheld_parts_of_one_household_are_not_left_as_their_sum() -> None:
    """review18 H1 A: one household's EV charging in two quarter hours, nobody else's: their sum is the
    day minus the published quarter hours, so one more part must go with them."""
    night = {("A5", "Haus A"): 3.0}
    parts = {"02:30": night, "02:45": dict(night), "10:00": five(1.0), "12:00": five(0.0, 40)}
    protected, total = group(parts)
    assert total.published
    assert withheld(protected) == {"02:30", "02:45", "10:00"}  # A5 6 of 11 kWh, six households
    assert protected["12:00"].published  # a zero part would not help: left published


def test_withheld_parts_whose_union_passes_need_no_partner() -> None:
    three = {(f"hh-{index}", "Haus 1"): 1.0 for index in range(3)}
    other = {(f"hh-{index}", "Haus 1"): 1.0 for index in range(3, 6)}
    parts = {"a": three, "b": other, "c": five(1.0)}
    protected, total = group(parts)
    assert withheld(protected) == {"a", "b"}  # their sum: six households, none above 17 %
    assert total.published


def test_zero_parts_partner_zero_parts() -> None:
    few = {(f"hh-{index}", "Haus 1"): 0.0 for index in range(3)}  # 3 report zero: withheld
    parts = {"a": few, "b": five(0.0), "c": five(2.0, 20)}
    protected, _ = group(parts)
    assert withheld(protected) == {"a", "b"}  # a zero part adds reporting households: 8 together


def test_no_partner_needed_or_possible() -> None:
    lone = {("hh-0", "Haus 1"): 3.0}
    parts = {"a": lone, "b": five(1.0)}
    protected, total = group(parts, Status.suppressed)  # the total is withheld itself
    assert withheld(protected) == {"a"}
    assert total.status is Status.suppressed
    cells = {"a": assess(lone, RULE), "b": assess(five(0.0), RULE)}  # a zero part hides nothing
    protected, total = protect_group(
        cells, Cell(3.0, 6, Status.published), contributions={"a": lone, "b": five(0.0)}, rule=RULE
    )
    assert protected == cells
    assert total.status is Status.secondary
    assert total.value is None


def test_derived_figures_follow_their_inputs() -> None:
    assert derived(cell(2.0), cell(1.0), total=1.0).value == 1.0
    withheld = derived(cell(2.0), cell(1.0, Status.secondary), total=1.0)
    assert withheld.withheld
    assert withheld.value is None
    assert derived(cell(2.0), Cell(None, 0, Status.missing), total=None).status is Status.missing


def test_a_withheld_total_linked_to_withheld_cells_of_another_group() -> None:
    """A day's buildings add up to the day even when the day is withheld for its quarter hours: all of
    them published, they would give the day back and the withheld quarter hour with it."""
    quarter_hour = {("hh-0", "Haus 1"): 0.05}  # one exporter: withheld
    parts = {"Haus 1": {("hh-0", "Haus 1"): 2.0, **five(1.0)}, "Haus 2": five(0.5, 20)}
    cells = {key: assess(contributions, RULE) for key, contributions in parts.items()}
    day = Cell(7.55, 11, Status.secondary)
    protected, total = protect_group(cells, day, contributions=parts, rule=RULE, linked=quarter_hour)
    assert withheld(protected) == {"Haus 2"}  # the smallest: 2.5 kWh of five, minus hh-0's 0.05: passes
    assert total is day
    unlinked, _ = protect_group(cells, day, contributions=parts, rule=RULE)
    assert unlinked == cells  # without the link the withheld total protects nothing and needs nothing


def list_of(value: object) -> list[object]:
    assert isinstance(value, list)
    return value


def test_one_withheld_export_quarter_hour_withholds_the_days_export_only() -> None:
    """review18b HIGH-1: the page and the file chose different partners for a withheld quarter hour, and
    together gave it back. Now a quarter hour is withheld by the primary rule alone, and the day's total
    of its kind (with the figures derived from it) instead."""
    tz = ZoneInfo("Europe/Berlin")
    midnight = dt.datetime.combine(dt.date(2025, 6, 15), dt.time(), tz)
    day = DayEnergy(quarter_hours(midnight, midnight + dt.timedelta(days=1)))
    lone = day.slots[28]  # 07:00: only A0 feeds in
    for building in ("A", "B"):
        for number in range(6):
            who = (f"{building}{number}", building)
            for index, start in enumerate(day.slots):
                day.add(start, "import", who, 0.1)
                day.add(start, "heat", who, 0.3)
                if 28 <= index < 72:
                    day.add(start, "pv", who, 0.2)
                if 40 <= index < 60 or (start == lone and who == ("A0", "A")):
                    day.add(start, "export", who, 0.05 if start == lone else 0.1)
    tables = day_tables(day, midnight=midnight, buildings={"A": "building-01", "B": "building-02"}, rule=RULE)
    export_withheld = [
        index
        for index, row in enumerate(tables.quarter_15min)
        if "grid_export_kwh" in list_of(row["suppressed"])
    ]
    assert export_withheld == [28]  # no partner quarter hour
    assert all(row["grid_export_kwh"] == pytest.approx(1.2) for row in tables.quarter_15min[40:60])
    assert all(
        row["suppressed"] == ["grid_export_kwh", "self_consumption_kwh", "self_sufficiency_percent"]
        for row in tables.quarter_15min[28:29]
    )
    assert [index for index, row in enumerate(tables.quarter_15min) if row["suppressed"]] == [28]
    quarter = tables.quarter_daily
    assert quarter["suppressed"] == ["grid_export_kwh", "self_consumption_kwh", "self_sufficiency_percent"]
    assert quarter["grid_export_kwh"] is None
    assert quarter["grid_import_kwh"] == pytest.approx(12 * 96 * 0.1)
    assert quarter["pv_kwh"] == pytest.approx(12 * 44 * 0.2)
    assert quarter["heat_kwh"] == pytest.approx(12 * 96 * 0.3)
    assert quarter["households"] == 12
    # the buildings add up to the day: B's export (the smaller) is withheld so they do not give it back
    a, b = tables.buildings_daily
    assert a["grid_export_kwh"] == pytest.approx(6 * 20 * 0.1 + 0.05)
    assert b["grid_export_kwh"] is None
    assert b["suppressed"] == ["grid_export_kwh", "self_consumption_kwh", "self_sufficiency_percent"]
