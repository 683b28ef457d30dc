"""The public page shows a quarter hour only once it is settled (review18b HIGH-2): it has ended and every
expected device has a ledger value in a later quarter hour (the ledger books an increment into the quarter
hour of its later reading), so no later ledger run changes it. Raw counter readings in a real InfluxDB, the
real ledger (:func:`ingest.energy.job.rollup`) and the page's own source; each household has two devices
(main meter and PV meter, each on its own gateway).

Also: today's figures by the primary (n, k) rule only, no sum over today's quarter hours on the page, and
today's self-sufficiency over settled quarter hours, rounded to 0.1 % and withheld with any withheld
quarter hour (HIGH-1).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from ingest import influxql
from ingest.api.pages.quarter_page import build_view
from ingest.config import InfluxSettings
from ingest.energy.job import rollup
from ingest.energy.store import LedgerWriter, RawReader
from ingest.lifecycle_cli import InfluxV1
from ingest.localservices import InfluxDB
from ingest.opendata.disclosure import Rule
from ingest.opendata.public import BatchReader, QuarterSource
from ingest.opendata.sources import Identities, Span
from ingest.portal import view as numbers
from tests.portal.quarter_helpers import by_start
from tests.portal.quarter_seed import STREET, TZ

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SLOT = dt.timedelta(minutes=15)
DAY = dt.date(2026, 6, 15)
HOUSEHOLDS = [f"hh-{number}" for number in range(1, 7)]
READ_AT = (2, 7, 12)  # minutes into each quarter hour: three readings per device


def local(hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hour, minute), TZ).astimezone(dt.UTC)


NOW = local(10, 22)  # in the 10:15 quarter hour: it runs, 10:00 has ended
PV_LATE = local(9, 55)  # hh-6's PV meter (own gateway) delivers nothing from here until its backlog
METER_LATE = local(10, 5)  # hh-5's main meter: a first reading at 10:02, then a backlog


def increment(household: str, kind: str, moment: dt.datetime, lonely_export: bool) -> float:
    """kWh of the reading at ``moment`` since the device's previous reading (5 minutes)."""
    number = int(household[3:])
    hour = moment.astimezone(TZ).hour
    if kind == "import":
        return round(0.01 * number + 0.001 * (moment.minute % 7), 6)
    daylight = 8 <= hour < 16
    if kind == "export" and lonely_export and hour == 8 and moment.minute < 15:
        return 0.004 if number == 1 else 0.0  # 08:00: hh-1 alone feeds in (withheld by the rule)
    factor = 0.004 if kind == "export" else 0.02
    return round(factor * number, 6) if daylight else 0.0


@dataclass
class Meters:
    """The raw readings written and the ledger's value per (device, kind, bucket) they must give."""

    influx: InfluxDB
    lonely_export: bool
    database: str = field(default_factory=lambda: f"settled_{uuid.uuid4().hex[:8]}")
    held: list[str] = field(default_factory=list)  # the late devices' readings, written later
    buckets: dict[tuple[str, str, dt.datetime], float] = field(default_factory=lambda: defaultdict(float))

    def setup(self) -> None:
        for q in (
            f"CREATE DATABASE {influxql.ident(self.database)}",
            f'CREATE RETENTION POLICY "rollups" ON {influxql.ident(self.database)} DURATION INF '
            "REPLICATION 1",
        ):
            httpx.post(f"{self.influx.url}/query", data={"q": q}, trust_env=False).raise_for_status()
        lines: list[str] = []
        held: list[str] = []
        counters: dict[tuple[str, str], float] = defaultdict(lambda: 100.0)
        start = local(0, 0) - dt.timedelta(days=1)
        moment = start
        while moment < NOW:
            for minute in READ_AT:
                at = moment + dt.timedelta(minutes=minute)
                if at > NOW:
                    continue
                for household in HOUSEHOLDS:
                    building = "Haus\\ A" if int(household[3:]) % 2 else "Haus\\ B"
                    tags = f"building={building},household={household}"
                    fields = []
                    for kind in ("import", "export"):
                        step = increment(household, kind, at, self.lonely_export) if at > start + SLOT else 0
                        counters[(household, kind)] += step
                        self.buckets[(f"{household}-meter", kind, moment)] += step
                        fields.append(f"energy_{kind}_kwh={counters[(household, kind)]:.6f}")
                    meter = f"electricity,{tags},device={household}-meter {','.join(fields)} "
                    meter += str(int(at.timestamp()))
                    step = increment(household, "pv", at, self.lonely_export) if at > start + SLOT else 0
                    counters[(household, "pv")] += step
                    self.buckets[(f"{household}-pv", "pv", moment)] += step
                    pv = f"pv,{tags},device={household}-pv energy_kwh={counters[(household, 'pv')]:.6f} "
                    pv += str(int(at.timestamp()))
                    meter_late = household == "hh-5" and at >= METER_LATE
                    pv_late = household == "hh-6" and at >= PV_LATE
                    (held if meter_late else lines).append(meter)
                    (held if pv_late else lines).append(pv)
            moment += SLOT
        self.held = held
        self.write(lines)
        self.run_ledger()

    def write(self, lines: list[str]) -> None:
        response = httpx.post(
            f"{self.influx.url}/write",
            params={"db": self.database, "precision": "s"},
            content="\n".join(lines).encode(),
            trust_env=False,
            timeout=60,
        )
        assert response.status_code == 204, response.text

    def run_ledger(self) -> None:
        """The ledger's loop run at NOW over its window (as ``job(now − window, now)``)."""
        client = InfluxV1(self.influx.url, auth=None)
        writer = LedgerWriter(self.influx.url, self.database, auth=None)
        try:
            rollup(
                RawReader(client, self.database),
                writer,
                since=NOW - dt.timedelta(days=1),
                until=NOW,
                zone="Europe/Berlin",
            )
        finally:
            writer.close()
            client.close()

    def deliver_backlog(self) -> None:
        self.write(self.held)
        self.run_ledger()

    def source(self, identities: Identities | None = None) -> QuarterSource:
        return QuarterSource(
            BatchReader(InfluxSettings(url=self.influx.url, database=self.database)),
            TZ,
            rule=Rule(min_households=5, dominance_percent=85),
            street_building=STREET,
            identities=(lambda: identities) if identities is not None else None,
            now=lambda: NOW,
        )

    def total(self, kind: str, start: dt.datetime) -> float:
        """The quarter's kWh of ``kind`` in the quarter hour at ``start``: every household's devices."""
        return sum(value for (_d, k, moment), value in self.buckets.items() if k == kind and moment == start)

    def self_sufficiency(self, starts: list[dt.datetime]) -> float:
        external = consumption = 0.0
        for start in starts:
            imported, exported, pv = (self.total(kind, start) for kind in ("import", "export", "pv"))
            external += max(0.0, imported - exported)
            consumption += imported + pv - exported
        return 1 - external / consumption

    def drop(self) -> None:
        q = f"DROP DATABASE {influxql.ident(self.database)}"
        httpx.post(f"{self.influx.url}/query", data={"q": q}, trust_env=False)


@pytest.fixture
def meters(influxdb: InfluxDB, request: pytest.FixtureRequest) -> Iterator[Meters]:
    made = Meters(influxdb, lonely_export=getattr(request, "param", False))
    made.setup()
    yield made
    made.drop()


def test_a_late_second_device_and_a_backlog_keep_their_quarter_hours_unsettled_until_they_arrive(
    meters: Meters,
) -> None:
    before = meters.source().load()
    shown = by_start(before)
    # never the running quarter hour (10:15), in no figure
    assert all(quarter.end <= NOW for quarter in before.today)
    assert local(10, 15) not in shown
    # hh-6's PV meter's newest value is in 09:45 (its 09:52 reading): 09:45 may still change, so may
    # 10:00; hh-5's main meter has its 10:02 reading in 10:00 and nothing later: 10:00 may still change
    for start in (local(9, 45), local(10, 0)):
        assert not shown[start].complete
        assert shown[start].kwh == {"import": None, "export": None, "pv": None}
    assert shown[local(9, 30)].complete
    assert before.last is not None
    assert before.last.start == local(9, 30)
    settled = [start for start, quarter in shown.items() if quarter.complete]
    assert before.self_sufficiency_today == pytest.approx(
        round(meters.self_sufficiency(settled), 3), abs=1e-12
    )

    meters.deliver_backlog()
    after = meters.source().load()
    again = by_start(after)
    for start, quarter in shown.items():  # what was shown is shown unchanged
        if quarter.complete:
            assert again[start] == quarter
    for start in (local(9, 45), local(10, 0)):
        assert again[start].complete
        for kind in ("import", "export", "pv"):
            assert again[start].kwh[kind] == pytest.approx(round(meters.total(kind, start), 3), abs=1e-9)
    assert after.last is not None
    assert after.last.start == local(10, 0)
    assert after.self_sufficiency_today == pytest.approx(
        round(meters.self_sufficiency([start for start in again if start < local(10, 15)]), 3), abs=1e-12
    )


def test_a_device_whose_assignment_ended_is_not_waited_for(meters: Meters) -> None:
    """hh-6's PV meter was taken out at 09:45 (its assignment closed): by the registry it is no longer
    expected from then on, so 09:45 settles once everyone else has reported after it; by the name tags it
    is waited for (24 hours); hh-5's backlog still holds 10:00 either way."""
    haus = {"Haus A": 1, "Haus B": 2}
    spans: dict[str, tuple[Span, ...]] = {}
    for household in HOUSEHOLDS:
        number = int(household[3:])
        building = haus["Haus A" if number % 2 else "Haus B"]
        since = local(0, 0) - dt.timedelta(days=30)
        spans[f"{household}-meter"] = (Span(since, None, number, building),)
        end = local(9, 45) if household == "hh-6" else None
        spans[f"{household}-pv"] = (Span(since, end, number, building),)
    identities = Identities(
        spans,
        {
            (household, "Haus A" if int(household[3:]) % 2 else "Haus B"): int(household[3:])
            for household in HOUSEHOLDS
        },
        haus,
        {number: name for name, number in haus.items()},
    )
    by_tags = by_start(meters.source().load())
    by_registry = by_start(meters.source(identities).load())
    assert not by_tags[local(9, 45)].complete
    assert by_registry[local(9, 45)].complete
    assert not by_registry[local(10, 0)].complete  # hh-5's main meter: still waited for


@pytest.mark.parametrize("meters", [True], indirect=True)
def test_today_uses_the_primary_rule_only_and_publishes_no_sum(meters: Meters) -> None:
    """08:00: hh-1 alone feeds in. That cell is withheld, no other quarter hour is (no partners), today's
    self-sufficiency is withheld (the file withholds the day's export and what derives from it), and the
    page shows no total of today's quarter hours of any kind."""
    figures = meters.source().load()
    shown = by_start(figures)
    lonely = shown[local(8, 0)]
    assert lonely.complete
    assert lonely.kwh["export"] is None
    assert lonely.kwh["import"] == pytest.approx(round(meters.total("import", local(8, 0)), 3))
    withheld = [
        (start, kind) for start, q in shown.items() if q.complete for kind, v in q.kwh.items() if v is None
    ]
    assert withheld == [(local(8, 0), "export")]
    assert figures.self_sufficiency_today is None
    for lang in ("de", "en"):
        view = build_view(figures, lang, TZ, cache_s=60)
        text = json.dumps(view, ensure_ascii=False)
        for kind in ("import", "export", "pv"):
            total = sum(value for q in figures.today if q.complete for value in (q.kwh[kind],) if value)
            assert total > 1
            assert numbers.kwh(lang, total) not in text
            assert f"{round(total, 3)}" not in text
        assert view["self_sufficiency"]["today_text"] in ("nicht veröffentlicht", "not published")
