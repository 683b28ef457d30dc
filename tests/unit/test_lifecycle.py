"""Data lifecycle statements (ingest/lifecycle.py): retention, rollups, CQs, backfill, period energy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import lifecycle
from ingest.config import ConfigError, load_settings
from ingest.consumption import total_energy
from ingest.lifecycle_cli import TASKS_DIR, _same_cq
from ingest.timeparse import datetime_to_ns

QUARTER, DAILY = lifecycle.ROLLUPS


@pytest.mark.parametrize(
    ("text", "days"), [("90d", 90), ("7d", 7), ("26w", 182), ("2160h", 90), ("520w", 3640)]
)
def test_raw_retention_durations(text: str, days: int) -> None:
    assert lifecycle.parse_duration(text) == dt.timedelta(days=days)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("6d", "at least 7d"),
        ("521w", "at most 520w"),
        ("90", "whole number"),
        ("90 d", "whole number"),
        ("1.5w", "whole number"),
        ("INF", "whole number"),
        ("0d", "whole number"),
        ("-90d", "whole number"),
        ("90m", "whole number"),
    ],
)
def test_nonsense_retention_is_refused_with_key_path_and_value(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(f'influx: {{raw_retention: "{text}"}}\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    message = str(error.value)
    assert "influx.raw_retention" in message
    assert repr(text) in message
    assert problem in message


def test_raw_retention_defaults_to_90_days() -> None:
    assert load_settings().influx.raw_retention == "90d"


def test_counters_keep_last_and_max_gauges_mean_and_max() -> None:
    statement = lifecycle.select_into("reallabor", "electricity", QUARTER)
    assert statement.startswith(
        'SELECT last("energy_import_kwh") AS "energy_import_kwh", '
        'max("energy_import_kwh") AS "energy_import_kwh_max", '
    )
    assert 'mean("power_w") AS "power_w", max("power_w") AS "power_w_max"' in statement
    assert 'mean("voltage_l1_v") AS "voltage_l1_v"' in statement
    assert statement.endswith(
        'INTO "reallabor"."rollups"."electricity_15m" FROM "reallabor"."raw"."electricity" '
        "GROUP BY time(15m), *"
    )
    assert "charging" not in lifecycle.select_into("reallabor", "ev_charger", QUARTER)


def test_the_day_is_made_from_the_quarter_hours() -> None:
    statement = lifecycle.select_into("reallabor", "heat", DAILY)
    assert 'last("energy_kwh") AS "energy_kwh", max("energy_kwh_max") AS "energy_kwh_max"' in statement
    assert 'mean("power_kw") AS "power_kw", max("power_kw_max") AS "power_kw_max"' in statement
    assert statement.endswith(
        'INTO "reallabor"."rollups"."heat_1d" FROM "reallabor"."rollups"."heat_15m" GROUP BY time(1d, -1h), *'
    )


def test_electricity_keeps_the_number_of_its_readings() -> None:
    """count() per quarter hour, the sum of those per day: readings per gateway without raw points."""
    quarter = lifecycle.select_into("reallabor", "electricity", QUARTER)
    daily = lifecycle.select_into("reallabor", "electricity", DAILY)
    assert ', count("power_w") AS "power_w_count" INTO' in quarter
    assert ', sum("power_w_count") AS "power_w_count" INTO' in daily
    assert "_count" not in lifecycle.select_into("reallabor", "environment", QUARTER)
    flux = lifecycle.flux_tasks()
    assert 'fields: ["power_w"], fn: count, suffix: "_count")' in flux["rollup_15m.flux"]
    assert 'fields: ["power_w_count"], fn: sum, suffix: "")' in flux["rollup_1d.flux"]


def test_a_changed_rollup_replaces_the_stored_cq() -> None:
    """``influx init`` drops and recreates a CQ whose statement changed (a new rollup field)."""
    ours = lifecycle.create_cq("db1", "electricity", QUARTER)
    before = ours.replace(', count("power_w") AS "power_w_count"', "").replace('"', "")
    assert before != ours.replace('"', "")
    assert not _same_cq(before, ours)


def test_environment_has_means_only() -> None:
    statement = lifecycle.select_into("db", "environment", QUARTER)
    assert "last(" not in statement
    assert 'mean("co2_ppm") AS "co2_ppm"' in statement


def test_every_measurement_gets_both_cqs_quarter_hours_first() -> None:
    cqs = lifecycle.create_cqs("reallabor", raw_rp="ingest")
    names = [name for name, _ in cqs]
    assert names[: len(lifecycle.MEASUREMENTS)] == [f"rollup_{m}_15m" for m in lifecycle.MEASUREMENTS]
    assert names[len(lifecycle.MEASUREMENTS) :] == [f"rollup_{m}_1d" for m in lifecycle.MEASUREMENTS]
    assert set(lifecycle.MEASUREMENTS) == {
        "electricity", "heat", "gas", "water", "pv", "ev_charger", "environment", "device_health",
    }  # fmt: skip
    first = dict(cqs)["rollup_gas_15m"]
    assert first.startswith(
        'CREATE CONTINUOUS QUERY "rollup_gas_15m" ON "reallabor" RESAMPLE EVERY 15m FOR 1h BEGIN SELECT '
    )
    assert 'FROM "reallabor"."ingest"."gas"' in first
    assert first.endswith(" END")
    assert "RESAMPLE EVERY 1h FOR 2d BEGIN" in dict(cqs)["rollup_gas_1d"]


def test_stored_cq_text_compares_equal_to_ours() -> None:
    ours = lifecycle.create_cq("db1", "pv", QUARTER)
    stored = ours.replace('"', "").replace("  ", " ")
    assert _same_cq(stored, ours)
    assert not _same_cq(stored.replace("FOR 1h", "FOR 2h"), ours)


def test_retention_statements_create_then_alter() -> None:
    fresh = lifecycle.retention_statements("db", dt.timedelta(days=90), ["autogen"])
    assert fresh == [
        'CREATE RETENTION POLICY "raw" ON "db" DURATION 90d REPLICATION 1 DEFAULT',
        'CREATE RETENTION POLICY "rollups" ON "db" DURATION INF REPLICATION 1',
    ]
    again = lifecycle.retention_statements("db", dt.timedelta(hours=36), ["raw", "rollups"])
    assert again == [
        'ALTER RETENTION POLICY "raw" ON "db" DURATION 36h DEFAULT',
        'ALTER RETENTION POLICY "rollups" ON "db" DURATION INF',
    ]


def test_identifiers_are_quoted() -> None:
    assert lifecycle.quote('we"ird\\db') == '"we\\"ird\\\\db"'
    assert 'ON "a\\"b"' in lifecycle.create_cq('a"b', "gas", QUARTER)


def test_the_rollup_day_starts_at_23_utc() -> None:
    assert lifecycle.day_start(dt.date(2025, 1, 15)) == dt.datetime(2025, 1, 14, 23, tzinfo=dt.UTC)
    new_day = dt.datetime(2025, 1, 14, 23, tzinfo=dt.UTC)
    assert lifecycle.rollup_day(datetime_to_ns(new_day)) == dt.date(2025, 1, 15)
    assert lifecycle.rollup_day(datetime_to_ns(new_day) - 1) == dt.date(2025, 1, 14)  # exact to the ns
    summer_evening = dt.datetime(2025, 6, 18, 22, 30, tzinfo=dt.UTC)  # 00:30 CEST on the 19th
    assert lifecycle.rollup_day(datetime_to_ns(summer_evening)) == dt.date(2025, 6, 18)


def test_backfill_goes_a_day_at_a_time_then_the_days() -> None:
    statements = list(
        lifecycle.backfill_statements(
            "db", first_day=dt.date(2025, 1, 14), until=dt.datetime(2025, 1, 15, 10, 7, tzinfo=dt.UTC)
        )
    )
    n = len(lifecycle.MEASUREMENTS)
    assert len(statements) == 3 * n  # two chunks of quarter hours, one of days
    assert "time >= '2025-01-13T23:00:00Z' AND time < '2025-01-14T23:00:00Z'" in statements[0]
    assert "time >= '2025-01-14T23:00:00Z' AND time < '2025-01-15T10:15:00Z'" in statements[n]
    assert all("GROUP BY time(15m), *" in s for s in statements[: 2 * n])
    assert all(
        "time >= '2025-01-13T23:00:00Z' AND time < '2025-01-15T10:15:00Z' GROUP BY time(1d, -1h), *" in s
        for s in statements[2 * n :]
    )


@pytest.mark.parametrize(
    ("previous", "maximum", "last", "energy"),
    [
        (100.0, 100.5, 100.5, 0.5),  # an ordinary period
        (100.0, 100.0, 100.0, 0.0),  # nothing used
        (100.0, 100.2, 0.3, 0.2 + 0.3),  # the meter swapped inside the period: old up to 100.2, new 0.3
        (100.0, 0.4, 0.4, 0.4),  # swapped between the periods
        (None, 5.0, 5.0, 0.0),  # no baseline
        (None, 7.0, 0.2, 0.2),  # no baseline, swapped inside: the new meter's part
        (100.0, None, 100.5, 0.5),  # no max stored
    ],
)
def test_period_energy_reset_rule(
    previous: float | None, maximum: float | None, last: float, energy: float
) -> None:
    assert lifecycle.period_energy(previous, maximum, last) == pytest.approx(energy)


_steps = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@given(
    start=st.floats(min_value=1000.0, max_value=1e5, allow_nan=False),
    periods=st.lists(
        st.tuples(st.lists(_steps, min_size=1, max_size=6), st.none() | st.integers(0, 5)),
        min_size=1,
        max_size=12,
    ),
)
def test_periods_add_up_to_the_readings_with_one_swap_per_period(
    start: float, periods: list[tuple[list[float], int | None]]
) -> None:
    """The rollup's (last, max) per period give the energy of the raw readings, a meter swap included
    (a new meter from zero stays below the old one's reading inside its period: at most 360 here)."""
    readings: list[tuple[int, float]] = [(0, start)]
    rows = []
    value, t = start, 0
    for index, (steps, swap_at) in enumerate(periods):
        values = []
        for position, step in enumerate(steps):
            t += 1
            swapped = swap_at == position and value >= 1000.0  # one new meter, from zero
            value = step if swapped else value + step
            values.append(value)
            readings.append((t, value))
        rows.append(((index + 1) * 1000, values[-1], max(values)))
    energies = lifecycle.period_energies([(-1, start, start), *rows])
    assert all(energy >= 0 for energy in energies.values())
    assert sum(energies.values()) == pytest.approx(total_energy(readings), abs=1e-6)


def test_the_flux_tasks_in_the_repository_are_the_generated_ones() -> None:
    generated = lifecycle.flux_tasks()
    assert sorted(p.name for p in TASKS_DIR.glob("*.flux")) == sorted(generated)
    for name, text in generated.items():
        assert (TASKS_DIR / name).read_text(encoding="utf-8") == text, (
            f"regenerate {name}: reallabor influx tasks"
        )


def test_flux_tasks_name_both_buckets_and_the_zone() -> None:
    tasks = lifecycle.flux_tasks(bucket="lab", rollups_bucket="lab_long")
    assert 'from(bucket: "lab")' in tasks["rollup_15m.flux"]
    assert 'to(bucket: "lab_long")' in tasks["rollup_15m.flux"]
    daily = tasks["rollup_1d.flux"]
    assert 'timezone.location(name: "Europe/Berlin")' in daily
    assert 'rollup(measurement: "electricity_15m", into: "electricity_1d"' in daily
