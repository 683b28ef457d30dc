"""Energy from cumulative counters: differences, meter swaps, local days."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.consumption import CounterDays, daily_energy, increment, local_day, total_energy

H = 3_600_000_000_000
MIDNIGHT_CET = int(dt.datetime(2025, 3, 12, 23, tzinfo=dt.UTC).timestamp()) * 10**9  # 13 March local


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [(None, 5.0, 0.0), (5.0, 7.5, 2.5), (5.0, 5.0, 0.0), (12345.6, 0.4, 0.4), (100.0, 0.0, 0.0)],
)
def test_increment(previous: float | None, current: float, expected: float) -> None:
    assert increment(previous, current) == pytest.approx(expected)


def test_daily_energy_across_a_meter_swap_and_midnight() -> None:
    readings = [
        (MIDNIGHT_CET - 2 * H, 1000.0),
        (MIDNIGHT_CET - H, 1000.5),
        (MIDNIGHT_CET + H, 1001.0),  # 0.5 on the 13th
        (MIDNIGHT_CET + 2 * H, 0.2),  # swapped: the new meter counted 0.2
        (MIDNIGHT_CET + 3 * H, 0.9),
    ]
    days = daily_energy(list(reversed(readings)))  # order does not matter, time does
    assert days[dt.date(2025, 3, 12)] == pytest.approx(0.5)
    assert days[dt.date(2025, 3, 13)] == pytest.approx(0.5 + 0.2 + 0.7)
    assert total_energy(readings) == pytest.approx(1.9)


def test_local_days_follow_berlin_time_with_dst() -> None:
    assert local_day(MIDNIGHT_CET) == dt.date(2025, 3, 13)
    assert local_day(MIDNIGHT_CET - 1) == dt.date(2025, 3, 12)
    summer_midnight = int(dt.datetime(2025, 7, 1, 22, tzinfo=dt.UTC).timestamp()) * 10**9
    assert local_day(summer_midnight) == dt.date(2025, 7, 2)
    assert local_day(summer_midnight - 1) == dt.date(2025, 7, 1)


def test_counter_days_refuses_readings_out_of_order_and_counts_resets() -> None:
    counter = CounterDays()
    counter.add(MIDNIGHT_CET, 10.0)
    counter.add(MIDNIGHT_CET + H, 1.0)
    assert counter.resets == 1
    with pytest.raises(ValueError, match="out of time order"):
        counter.add(MIDNIGHT_CET, 2.0)
