"""``opendata`` settings validation, and the day tables' edges: DST days, energy outside every labelled
building, import of meters without household (pure, no services)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ingest.config import ConfigError, Settings, load_settings
from ingest.opendata.disclosure import Rule
from ingest.opendata.energy_tables import DayEnergy, day_tables, self_sufficiency_percent
from ingest.opendata.settings import OpenDataSettings
from ingest.opendata.sources import lat_lon, quarter_hours

TZ = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"daily_at": "3:30"}, "'3:30' is not a local time HH:MM"),
        ({"daily_at": "24:00"}, "'24:00' is not a local time HH:MM"),
        ({"cache_s": 0}, "greater than 0"),
        ({"min_households": 1}, "greater than or equal to 2"),
        ({"dominance_percent": 100}, "less than 100"),
        ({"dominance_percent": 40}, "greater than or equal to 50"),
        ({"base_url": "ftp://files.example.de"}, "base_url 'ftp://files.example.de' is not an http"),
        ({"publisher_url": "https://example.de/?x=1"}, "no query"),
        ({"contributor_id": "a b"}, "should match pattern"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpenDataSettings.model_validate(values)


def test_settings_defaults_and_the_settings_file(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = OpenDataSettings()
    assert (defaults.daily_at, defaults.min_households, defaults.dominance_percent) == ("03:30", 5, 85.0)
    assert defaults.daily_time == dt.time(3, 30)
    assert OpenDataSettings(base_url="https://quartier.example.de/opendata/").base_url == (
        "https://quartier.example.de/opendata"
    )
    monkeypatch.setenv("REALLABOR_OPENDATA__DAILY_AT", "04:15")
    assert Settings().opendata.daily_at == "04:15"
    monkeypatch.setenv("REALLABOR_OPENDATA__DAILY_AT", "4 Uhr")
    with pytest.raises(ConfigError, match=r"opendata\.daily_at"):
        load_settings(None)


def test_dst_days_have_92_and_100_quarter_hours() -> None:
    def count(day: dt.date) -> int:
        midnight = dt.datetime.combine(day, dt.time(), TZ)
        return len(quarter_hours(midnight, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), TZ)))

    assert (count(dt.date(2025, 3, 30)), count(dt.date(2025, 10, 26)), count(dt.date(2025, 6, 1))) == (
        92,
        100,
        96,
    )


def _day(households: dict[tuple[str, str], float]) -> tuple[DayEnergy, dt.datetime]:
    midnight = dt.datetime.combine(dt.date(2025, 10, 26), dt.time(), TZ)
    day = DayEnergy(quarter_hours(midnight, dt.datetime.combine(dt.date(2025, 10, 27), dt.time(), TZ)))
    for who, kwh in households.items():
        for start in day.slots:
            day.add(start, "import", who, kwh)
    return day, midnight


def test_energy_outside_the_labelled_buildings_is_a_hidden_part() -> None:
    """Two published buildings and a third the registry does not know (no label, no row): its import is
    the quarter's total minus the two, so one of them is withheld with it."""
    households = {(f"a{n}", "A"): 0.1 for n in range(5)} | {(f"b{n}", "B"): 0.2 for n in range(5)}
    households |= {("x0", "X"): 0.05}  # one household in an unknown building
    day, midnight = _day(households)
    tables = day_tables(
        day, midnight=midnight, buildings={"A": "building-01", "B": "building-02"}, rule=Rule()
    )
    assert len(tables.quarter_15min) == 100  # the autumn DST day
    assert tables.quarter_daily["grid_import_kwh"] == pytest.approx((0.5 + 1.0 + 0.05) * 100)
    rows = {row["building"]: row for row in tables.buildings_daily}
    assert rows["building-01"]["grid_import_kwh"] is None  # the smallest at least as large as X's 5 kWh
    assert rows["building-02"]["grid_import_kwh"] == pytest.approx(100.0)
    assert "X" not in str(tables)


def test_meters_without_household_count_on_neither_side() -> None:
    households = {(f"a{n}", "A"): 0.1 for n in range(5)} | {("", "A"): 9.0}  # a meter left without household
    day, midnight = _day(households)
    tables = day_tables(day, midnight=midnight, buildings={"A": "building-01"}, rule=Rule())
    assert tables.quarter_daily["grid_import_kwh"] == pytest.approx(50.0)
    assert tables.quarter_daily["households"] == 5


def test_coordinates_only_from_decimal_degrees() -> None:
    assert lat_lon("52.5163, 13.3777") == (52.5163, 13.3777)
    assert lat_lon(" -33.9;18.4 ") == (-33.9, 18.4)
    for text in ("Straße", "Laterne 4, Nordseite", "95.0, 13.0", "52.5 13.3", ""):
        assert lat_lon(text) is None, text


def test_self_sufficiency_nets_import_against_export_per_quarter_hour() -> None:
    # docs/portal.md's example: I=10, E=4, P=6 in one quarter hour: 1 − 6/12 = 50 %
    assert self_sufficiency_percent(10.0, 4.0, 6.0, external=max(0.0, 10.0 - 4.0)) == pytest.approx(50.0)
    assert self_sufficiency_percent(0.0, 3.0, 3.0, external=0.0) is None  # nothing used
    assert self_sufficiency_percent(1.0, 0.0, 9.0, external=0.0) == 100.0
