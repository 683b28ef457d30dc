"""The buildings' household counts add up to the quarter's (ingest/opendata/energy_tables.py), pure."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ingest.opendata.disclosure import Rule
from ingest.opendata.energy_tables import DayEnergy, DayTables, day_tables
from ingest.opendata.sources import quarter_hours

TZ = ZoneInfo("Europe/Berlin")
DAY = dt.date(2025, 3, 11)


def test_a_building_count_withheld_alone_gets_a_partner() -> None:
    """X: one household, its import withheld, Y's import with it (the smallest); Y keeps its PV and so its
    count. X's count alone withheld would be the quarter's 14 minus Y's 6 and Z's 7."""
    homes = {"X": (1, 0.1, 0.0), "Y": (6, 0.05, 0.1), "Z": (7, 0.2, 0.1)}  # households, import, PV each
    tables = counts_day(homes, ("X", "Y", "Z"))  # labelled building-01 .. building-03
    x, y, z = tables.buildings_daily
    assert tables.quarter_daily["households"] == 14
    assert (x["grid_import_kwh"], y["grid_import_kwh"]) == (None, None)
    assert y["pv_kwh"] is not None
    assert (x["households"], y["households"], z["households"]) == (None, None, 7)
    assert y["suppressed"] == [
        "households",
        "grid_import_kwh",
        "self_sufficiency_percent",
    ]


def counts_day(homes: dict[str, tuple[int, float, float]], labelled: tuple[str, ...]) -> DayTables:
    """Every household of a building with the same import (and PV) in every quarter hour."""
    midnight = dt.datetime.combine(DAY, dt.time(), TZ)
    day = DayEnergy(quarter_hours(midnight, midnight + dt.timedelta(days=1)))
    for building, (count, imported, pv) in homes.items():
        for number in range(count):
            who = (f"{building}{number}", building)
            for start in day.slots:
                day.add(start, "import", who, imported)
                if pv:
                    day.add(start, "pv", who, pv)
    labels = {building: f"building-{index + 1:02d}" for index, building in enumerate(labelled)}
    return day_tables(day, midnight=midnight, buildings=labels, rule=Rule())


def test_two_withheld_building_counts_are_not_left_as_their_sum() -> None:
    """review18b L-a: X (1 household) and Y (2) have every figure withheld, so their counts are; their sum
    would be the quarter's 16 minus W's 6 and Z's 7: 3 households. The smallest published count (W)
    is withheld with them: 9."""
    homes = {"X": (1, 0.1, 0.0), "Y": (2, 0.1, 0.0), "W": (6, 0.1, 0.1), "Z": (7, 0.1, 0.0)}
    tables = counts_day(homes, ("X", "Y", "W", "Z"))
    assert tables.quarter_daily["households"] == 16
    counts = [row["households"] for row in tables.buildings_daily]
    assert counts == [None, None, None, 7]
    assert tables.buildings_daily[2]["pv_kwh"] is not None  # W keeps a figure: withheld as a partner
    assert tables.buildings_daily[2]["suppressed"] == [
        "households",
        "grid_import_kwh",
        "self_sufficiency_percent",
    ]


def test_households_outside_labelled_buildings_are_a_withheld_count() -> None:
    """Two households in a building without label: the quarter's 15 minus the labelled buildings' counts
    would say 2. The smallest labelled count goes with them."""
    homes = {"U": (2, 0.1, 0.0), "W": (6, 0.1, 0.1), "Z": (7, 0.1, 0.0)}
    tables = counts_day(homes, ("W", "Z"))
    assert tables.quarter_daily["households"] == 15
    assert [row["households"] for row in tables.buildings_daily] == [None, 7]
    assert tables.buildings_daily[0]["pv_kwh"] is not None  # W keeps a figure: withheld for the count
