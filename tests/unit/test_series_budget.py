"""The series budget per gateway: known series always pass, new ones beyond the budget are refused."""

from __future__ import annotations

import pytest

from ingest.lineprotocol import format_line
from ingest.readings import DecodeRejected
from ingest.security.series import SeriesBudget


def _line(budget: SeriesBudget, gateway: str, sensor: str) -> str:
    tags = {"gateway": gateway, "device": "d1", "sensor": sensor}
    return format_line("environment", tags, {"temperature_c": 21.5}, 1, on_new_series=budget.admit)


def test_a_gateway_beyond_its_budget_keeps_its_series_and_gets_no_new_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = SeriesBudget(3)
    for sensor in ("a", "b", "c"):
        _line(budget, "gw-x", sensor)
    for _ in range(2):
        with pytest.raises(DecodeRejected) as caught:  # refused again: a refused head is never cached
            _line(budget, "gw-x", "d")
        assert caught.value.reason == "too_many_series"
    assert _line(budget, "gw-x", "a").startswith("environment,device=d1,gateway=gw-x,sensor=a ")
    assert _line(budget, "gw-y", "d").startswith("environment,device=d1,gateway=gw-y,sensor=d ")
    assert caplog.text.count("has 3 series") == 1  # warned once


def test_the_budget_counts_series_not_lines() -> None:
    budget = SeriesBudget(1)
    lines = [
        format_line("m", {"gateway": "g-1"}, {"f": float(n)}, n, on_new_series=budget.admit)
        for n in range(100)
    ]
    assert len(set(lines)) == 100  # a hundred points of one series
    with pytest.raises(DecodeRejected):
        format_line("m", {"gateway": "g-1", "sensor": "other"}, {"f": 1.0}, 1, on_new_series=budget.admit)
