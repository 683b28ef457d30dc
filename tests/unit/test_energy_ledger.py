"""The energy ledger's pure computation (ingest/energy/ledger.py): table-driven, and against
ingest/consumption.py's daily energy on random counters (one rule, two aggregations)."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from ingest.consumption import daily_energy
from ingest.energy.job import local_days
from ingest.energy.kinds import SOURCES
from ingest.energy.ledger import (
    BUCKET_NS,
    CounterLedger,
    Key,
    Reading,
    add_buckets,
    bucket_of,
    counter_buckets,
    daily,
    local_midnight,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = int(dt.datetime(2025, 6, 18, tzinfo=dt.UTC).timestamp()) * 1_000_000_000  # a bucket boundary
MIN = 60 * 1_000_000_000


def at(minutes: float) -> int:
    return T0 + int(minutes * MIN)


def q(index: int) -> int:
    """The start of the index-th quarter hour after T0."""
    return T0 + index * BUCKET_NS


CASES = [
    # name, predecessor, readings (minutes after T0, value[, household]), {(bucket, household): kWh}
    ("first reading ever is the baseline", None, [(1, 100.0), (6, 100.4)], {(q(0), "a"): 0.4}),
    ("predecessor counts", 99.5, [(1, 100.0), (16, 100.4)], {(q(0), "a"): 0.5, (q(1), "a"): 0.4}),
    (
        "reset to zero: the new reading is its energy",
        50.0,
        [(1, 50.2), (5, 0.0), (9, 0.3)],
        {(q(0), "a"): 0.5},
    ),
    (
        "swap: a new meter from zero, its first reading counts",
        12000.0,
        [(1, 12000.5), (20, 0.7), (40, 1.0)],
        {(q(0), "a"): 0.5, (q(1), "a"): 0.7, (q(2), "a"): 0.3},
    ),
    (
        "gap: the energy lands in the bucket of the next reading, no points in between",
        10.0,
        [(5, 10.0), (70, 12.5)],
        {(q(0), "a"): 0.0, (q(4), "a"): 2.5},
    ),
    ("duplicates (same time) once", 1.0, [(3, 2.0), (3, 2.0), (8, 3.0), (8, 3.0)], {(q(0), "a"): 2.0}),
    (
        "out of order: sorted",
        1.0,
        [(40, 4.0), (10, 2.0), (25, 3.0)],
        {(q(0), "a"): 1.0, (q(1), "a"): 1.0, (q(2), "a"): 1.0},
    ),
    (
        "a reading exactly on a bucket boundary starts the new bucket",
        1.0,
        [(14.99, 1.5), (15, 2.0), (30, 2.25)],
        {(q(0), "a"): 0.5, (q(1), "a"): 0.5, (q(2), "a"): 0.25},
    ),
    (
        "each increment belongs to the later reading's household",
        1.0,
        [(5, 2.0, "a"), (10, 3.0, "b"), (20, 4.0, "b")],
        {(q(0), "a"): 1.0, (q(0), "b"): 1.0, (q(1), "b"): 1.0},
    ),
    ("zero energy: a point of 0, not none", 5.0, [(2, 5.0), (17, 5.0)], {(q(0), "a"): 0.0, (q(1), "a"): 0.0}),
]


@pytest.mark.parametrize(("name", "previous", "readings", "expected"), CASES, ids=[c[0] for c in CASES])
def test_counter_buckets(
    name: str,
    previous: float | None,
    readings: list[tuple[float, float] | tuple[float, float, str]],
    expected: dict[tuple[int, str], float],
) -> None:
    given = [Reading(at(r[0]), r[1], r[2] if len(r) == 3 else "a", "Haus 1") for r in readings]
    got = counter_buckets(given, previous=previous)
    assert {(t, h): kwh for (t, h, _), kwh in got.items()} == pytest.approx(expected), name
    assert all(building == "Haus 1" for _, _, building in got)
    assert all(kwh >= 0 for kwh in got.values())


def test_state_carries_over_from_one_chunk_to_the_next() -> None:
    whole = counter_buckets([Reading(at(m), v) for m, v in ((1, 1.0), (20, 2.0), (40, 0.5), (50, 1.0))])
    ledger = CounterLedger()
    ledger.feed([Reading(at(1), 1.0), Reading(at(20), 2.0)])
    first = ledger.take()
    ledger.feed([Reading(at(40), 0.5), Reading(at(50), 1.0)])
    assert {**first, **ledger.take()} == whole
    assert ledger.readings == 4
    with pytest.raises(ValueError, match="out of time order"):
        ledger.add(Reading(at(45), 2.0))
    ledger.add(Reading(at(50), 1.0))  # the same time as the last: a duplicate, ignored
    assert ledger.readings == 4


def test_bucket_of_is_utc_aligned() -> None:
    assert bucket_of(q(3)) == q(3)
    assert bucket_of(q(3) - 1) == q(2)
    assert bucket_of(q(3) + BUCKET_NS - 1) == q(3)


@pytest.mark.parametrize(
    ("day", "quarter_hours"),
    [(dt.date(2025, 3, 30), 92), (dt.date(2025, 10, 26), 100), (dt.date(2025, 6, 18), 96)],
)
def test_daily_sums_the_local_days_quarter_hours(day: dt.date, quarter_hours: int) -> None:
    """A DST day has 92 or 100 quarter hours; the day's point is at local midnight."""
    start = dt.datetime.combine(day, dt.time(), BERLIN)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), BERLIN)
    first, last = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
    # one reading per quarter hour (0.25 kWh each), from the last quarter hour of the day before to the
    # first of the day after
    times = range(first - BUCKET_NS, last + BUCKET_NS, BUCKET_NS)
    readings = [Reading(t, 0.25 * i, "h1", "Haus 1") for i, t in enumerate(times)]
    points: dict[Key, float] = {}
    add_buckets(points, "import", "m1", counter_buckets(readings))
    days = daily(points)
    key = Key("import", "m1", "h1", "Haus 1", first)
    assert days[key] == pytest.approx(0.25 * quarter_hours)
    assert sum(1 for k in points if first <= k.time_ns < last) == quarter_hours
    assert local_midnight(last - 1) == first
    assert local_midnight(last) == last


def test_daily_equals_consumption_daily_energy_on_random_counters() -> None:
    """Swaps, duplicates, shuffled order, gaps: the ledger's days are consumption.py's days."""
    rng = random.Random(13)
    for _ in range(20):
        readings = []
        value, moment = rng.uniform(0, 5000), T0 - 3 * 86400 * 10**9
        for _ in range(rng.randint(50, 400)):
            moment += rng.choice((1, 5, 15, 60, 240)) * MIN + rng.randint(0, 59) * 10**9
            value = rng.uniform(0, 2) if rng.random() < 0.02 else value + rng.uniform(0, 0.5)
            readings.append((moment, round(value, 3)))
            if rng.random() < 0.05:
                readings.append((moment, round(value, 3)))
        rng.shuffle(readings)
        points: dict[Key, float] = {}
        add_buckets(points, "import", "m", counter_buckets(Reading(t, v) for t, v in readings))
        got = {
            dt.datetime.fromtimestamp(k.time_ns // 10**9, BERLIN).date(): kwh
            for k, kwh in daily(points).items()
        }
        expected = daily_energy(readings)
        assert got == pytest.approx(expected)


def test_a_devices_counters_of_one_kind_add_up() -> None:
    """A sub-meter with two EV channels: one point per bucket, the sum."""
    points: dict[Key, float] = {}
    add_buckets(points, "ev", "shelly", {(q(0), "h", "B"): 1.0})
    add_buckets(points, "ev", "shelly", {(q(0), "h", "B"): 0.5, (q(1), "h", "B"): 0.2})
    assert points == {Key("ev", "shelly", "h", "B", q(0)): 1.5, Key("ev", "shelly", "h", "B", q(1)): 0.2}


@pytest.mark.parametrize(
    ("measurement", "field", "channel", "kind"),
    [
        ("electricity", "energy_import_kwh", "", "import"),
        ("electricity", "energy_export_kwh", "", "export"),
        ("electricity", "energy_import_kwh", "0", "ev"),
        ("electricity", "energy_export_kwh", "1", None),
        ("pv", "energy_kwh", "", "pv"),
        ("heat", "energy_kwh", "", "heat"),
    ],
)
def test_kinds_as_the_panel_catalogue(measurement: str, field: str, channel: str, kind: str | None) -> None:
    source = next(s for s in SOURCES if s.measurement == measurement)
    assert field in source.fields
    assert source.kind(field, channel) == kind


@pytest.mark.parametrize(
    ("since", "until", "days"),
    [
        ("2025-06-18T10:00", "2025-06-18T11:00", ["2025-06-18"]),
        ("2025-06-18T00:00", "2025-06-19T00:00", ["2025-06-18"]),
        ("2025-06-17T23:30", "2025-06-19T00:01", ["2025-06-17", "2025-06-18", "2025-06-19"]),
        ("2025-03-30T00:00", "2025-03-31T00:00", ["2025-03-30"]),
    ],
)
def test_ranges_widen_to_whole_local_days(since: str, until: str, days: list[str]) -> None:
    got = local_days(
        dt.datetime.fromisoformat(since).replace(tzinfo=BERLIN),
        dt.datetime.fromisoformat(until).replace(tzinfo=BERLIN),
        "Europe/Berlin",
    )
    assert [start.date().isoformat() for start, _ in got] == days
    for start, end in got:
        assert start.time() == end.time() == dt.time()
        assert end.date() - start.date() == dt.timedelta(days=1)
