"""End to end with the real energy ledger: raw counters (as the ingester writes them) for six households,
``ingest.energy``'s rollup writes ``rollups.energy`` / ``energy_1d``, and the portal's numbers equal the
counters' increments: the day by quarter hours, the week by days, the typical household of the six, the
community figures, the CSV rows; one household never sees another's."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import httpx
import pytest

from ingest.config import InfluxSettings, Settings
from ingest.energy.cli import rollup_with
from ingest.localservices import InfluxDB
from ingest.portal import data as data_module
from ingest.portal.data import Household, PortalData, ledger_rows
from ingest.portal.periods import Period
from ingest.portal.reader import Reader
from tests.helpers import InfluxQuery

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Berlin")
DAY = dt.date(2025, 3, 12)
START = dt.datetime.combine(DAY, dt.time(), TZ) - dt.timedelta(minutes=10)  # a reading before the day
STEPS = 2 * 24 * 12 + 3  # five-minute readings over two days and a bit
HOUSEHOLDS = 6
PV = (0, 2, 4)  # households with their own PV


def per_step(index: int) -> tuple[float, float, float]:
    """kWh per five minutes: import, export, PV; PV households export 40 % of their PV."""
    pv = 0.02 * (index + 1) if index in PV else 0.0
    return round(0.01 * (index + 2), 4), round(0.4 * pv, 4), pv


def _lines() -> list[str]:
    out = []
    for step in range(STEPS):
        t = int((START + dt.timedelta(minutes=5 * step)).timestamp()) * 10**9
        for index in range(HOUSEHOLDS):
            imp, exp, pv = per_step(index)
            tags = f"building=Haus\\ {index % 2 + 1},device=meter-{index},household=hh-{index}"
            out.append(
                f"electricity,{tags} energy_import_kwh={round(1000 + imp * step, 4)},"
                f"energy_export_kwh={round(50 + exp * step, 4)},power_w=400 {t}"
            )
            if index in PV:
                pv_tags = f"building=Haus\\ {index % 2 + 1},device=pv-{index},household=hh-{index}"
                out.append(f"pv,{pv_tags} energy_kwh={round(20 + pv * step, 4)} {t}")
    return out


@pytest.fixture(scope="module")
def rolled(influxdb: InfluxDB) -> Iterator[PortalData]:
    database = f"portal_e2e_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(influxdb.url, database)
    for q in (
        f'CREATE DATABASE "{database}"',
        f'CREATE RETENTION POLICY "rollups" ON "{database}" DURATION INF REPLICATION 1',
    ):
        httpx.post(f"{influxdb.url}/query", data={"q": q}, trust_env=False).raise_for_status()
    response = httpx.post(
        f"{influxdb.url}/write",
        params={"db": database, "precision": "ns"},
        content="\n".join(_lines()).encode(),
        trust_env=False,
    )
    assert response.status_code == 204, response.text
    settings = Settings(influx={"url": influxdb.url, "database": database})
    until = dt.datetime.combine(DAY + dt.timedelta(days=2), dt.time(), TZ)
    rollup_with(settings, dt.datetime.combine(DAY, dt.time(), TZ), until)
    reader = Reader(InfluxSettings(url=influxdb.url, database=database))
    yield PortalData(reader, TZ)
    reader.close()
    influx.drop()


def household(index: int) -> Household:
    return Household(index, f"hh-{index}", f"Haus {index % 2 + 1}")


def test_portal_numbers_equal_the_counters(rolled: PortalData) -> None:
    day = Period.containing("day", DAY, TZ)
    steps_per_day = 24 * 12
    for index in range(HOUSEHOLDS):
        imp, exp, pv = per_step(index)
        bars = rolled.bars(household(index), day)
        expected = {"import": imp * steps_per_day}
        if pv:  # no "export 0" line without PV (L4 of issue 14's review)
            expected["pv"] = pv * steps_per_day
            expected["export"] = exp * steps_per_day
        assert bars.totals == pytest.approx(expected), index
        assert bars.kinds["import"][0] == pytest.approx(imp * 12)  # the first hour
        week = rolled.bars(household(index), Period.containing("week", DAY, TZ))
        wednesday = week.buckets.index(dt.datetime.combine(DAY, dt.time(), TZ))
        assert week.kinds["import"][wednesday] == pytest.approx(imp * steps_per_day)
        assert week.kinds["import"][wednesday + 1] == pytest.approx(imp * steps_per_day)
        rows = ledger_rows(rolled.reader, household(index), *day.range, daily=False)
        assert {row.tags["device"] for row in rows} == {f"meter-{index}"} | ({f"pv-{index}"} if pv else set())


def test_typical_household_and_community_from_the_ledger(
    rolled: PortalData, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = Period.containing("day", DAY, TZ)
    n = 24 * 12
    quarter = rolled.quarter_figures(day)
    assert quarter.enough
    imports = sorted(per_step(i)[0] * n for i in range(HOUSEHOLDS))
    middle = imports[1:-1]  # six households: one left out at each end
    mean = sum(middle) / len(middle)
    assert quarter.typical["import"] == pytest.approx(round(mean, 1) if mean < 10 else round(mean))
    assert quarter.typical["pv"] is None  # three households with PV: fewer than five
    assert quarter.pv_share is None  # three PV installations: no PV figure of the quarter
    # the formulas, with the minimum lowered to three (the six households' three PV installations)
    monkeypatch.setattr(data_module, "MIN_HOUSEHOLDS", 3)
    rolled.forget_kept()
    me = household(2)
    imp, exp, pv = per_step(2)
    figures = rolled.community(me, day, rolled.totals(me, day))
    own_used = (pv - exp) * n
    assert figures.consumption == pytest.approx(imp * n + own_used)
    assert figures.self_sufficiency == pytest.approx(own_used / (imp * n + own_used))
    # every quarter hour the quarter exports less than it imports: each household gets the same share
    quarter_import = sum(per_step(i)[0] for i in range(HOUSEHOLDS))
    quarter_export = sum(per_step(i)[1] for i in range(HOUSEHOLDS))
    shared = imp * n * quarter_export / quarter_import
    assert figures.shared == pytest.approx(shared)
    assert figures.quarter_pv_covered == pytest.approx((own_used + shared) / (imp * n + own_used), abs=0.005)
    quarter_pv = sum(per_step(i)[2] for i in range(HOUSEHOLDS)) * n
    quarter_consumption = (quarter_import - quarter_export) * n + quarter_pv
    assert figures.quarter.pv_share == pytest.approx(quarter_pv / quarter_consumption, abs=0.005)
    assert figures.quarter.self_sufficiency == pytest.approx(quarter_pv / quarter_consumption, abs=0.005)
