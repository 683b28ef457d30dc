"""(n, k)-dominance and secondary suppression (ingest/opendata/disclosure.py), pure."""

from __future__ import annotations

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


def test_a_single_suppressed_part_gets_a_complement_at_least_as_large() -> None:
    parts = {
        "a": cell(3.0, Status.suppressed),
        "b": cell(1.0),
        "c": cell(4.0),
        "d": cell(9.0),
        "e": cell(0.0),
    }
    protected, total = protect_group(parts, cell(17.0))
    assert total.published
    assert {key for key, value in protected.items() if value.withheld} == {"a", "c"}
    assert protected["c"].status is Status.secondary
    assert protected["c"].value is None
    # no part as large as the primary one: the largest
    protected, _ = protect_group(
        {"a": cell(30.0, Status.suppressed), "b": cell(1.0), "c": cell(4.0)}, cell(35)
    )
    assert [key for key, value in protected.items() if value.withheld] == ["a", "c"]


def test_no_complement_needed_or_possible() -> None:
    two = {"a": cell(3.0, Status.suppressed), "b": cell(1.0, Status.suppressed), "c": cell(4.0)}
    assert protect_group(two, cell(8.0))[0] == two  # two withheld: their sum only
    one = {"a": cell(3.0, Status.suppressed), "b": cell(1.0)}
    assert protect_group(one, cell(4.0, Status.suppressed))[0] == one  # the total is withheld itself
    alone = {"a": cell(3.0, Status.suppressed), "b": cell(0.0)}  # a zero part hides nothing
    protected, total = protect_group(alone, cell(3.0))
    assert protected == alone
    assert total.status is Status.secondary
    assert total.value is None


def test_derived_figures_follow_their_inputs() -> None:
    assert derived(cell(2.0), cell(1.0), total=1.0).value == 1.0
    withheld = derived(cell(2.0), cell(1.0, Status.secondary), total=1.0)
    assert withheld.withheld
    assert withheld.value is None
    assert derived(cell(2.0), Cell(None, 0, Status.missing), total=None).status is Status.missing
