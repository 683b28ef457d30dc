"""The buildings' household counts add up to the quarter's (ingest/opendata/energy_tables.py), pure."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ingest.opendata.disclosure import Rule
from ingest.opendata.energy_tables import DayEnergy, day_tables
from ingest.opendata.sources import quarter_hours

TZ = ZoneInfo("Europe/Berlin")
DAY = dt.date(2025, 3, 11)


def test_a_building_count_withheld_alone_gets_a_partner() -> None:
    """X: one household, its import withheld, Y's import with it (the smallest); Y keeps its PV and so its
    count. X's count alone withheld would be the quarter's 14 minus Y's 6 and Z's 7."""
    midnight = dt.datetime.combine(DAY, dt.time(), TZ)
    day = DayEnergy(quarter_hours(midnight, midnight + dt.timedelta(days=1)))
    homes = {"X": (1, 0.1, 0.0), "Y": (6, 0.05, 0.1), "Z": (7, 0.2, 0.1)}  # households, import, PV each
    for building, (count, imported, pv) in homes.items():
        for number in range(count):
            who = (f"{building}{number}", building)
            for start in day.slots:
                day.add(start, "import", who, imported)
                if pv:
                    day.add(start, "pv", who, pv)
    labels = {"X": "building-01", "Y": "building-02", "Z": "building-03"}
    tables = day_tables(day, midnight=midnight, buildings=labels, rule=Rule())
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
