"""The public page shows only settled quarter hours (review18 H3, review18b HIGH-2): a quarter hour first
shown with 5 households and later with 6 would change by exactly the late household's value. Settled:
ended, and every expected device has a value in a later quarter hour (tests/portal/test_quarter_settled.py
has the ledger's own cases). Against a real InfluxDB
(a database of its own in the session's server) with the ledger written as the contract says.

Also: HEAD /quarter (L2), ``?lang=en`` (L8), and the autumn day whose 02:00-02:45 happen twice (L7).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ingest import influxql
from ingest.api.app import create_app
from ingest.api.pages.quarter_page import build_view
from ingest.config import InfluxSettings, Settings
from ingest.localservices import InfluxDB
from ingest.opendata.disclosure import Rule
from ingest.opendata.public import BatchReader, PublicFigures, QuarterHour, QuarterSource, StreetClimate
from ingest.opendata.sources import Identities, load_identities
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from tests.opendata.registry import Placed, build_registry
from tests.portal.quarter_helpers import by_start
from tests.portal.quarter_seed import STREET, TZ

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SLOT = dt.timedelta(minutes=15)
NOW = dt.datetime(2026, 11, 30, 10, 7, tzinfo=TZ).astimezone(dt.UTC)  # in the 10:00 quarter hour
LATE = dt.datetime(2026, 11, 30, 9, 45, tzinfo=TZ).astimezone(dt.UTC)  # hh-6's quarter hour, late
HOUSEHOLDS = [f"hh-{number}" for number in range(1, 7)]


def kwh(household: str, moment: dt.datetime) -> float:
    return round(0.1 * int(household[3:]) + 0.001 * (moment.hour * 4 + moment.minute // 15), 6)


def building(household: str) -> str:
    return "Haus A" if int(household[3:]) % 2 else "Haus B"


def line(household: str, moment: dt.datetime) -> str:
    escaped = building(household).replace(" ", "\\ ")
    tags = f"building={escaped},device={household}-meter,household={household},kind=import"
    return f"energy,{tags} kwh={kwh(household, moment)} {int(moment.timestamp())}"


class Ledger:
    def __init__(self, influx: InfluxDB) -> None:
        self.url = influx.url
        self.database = f"complete_{uuid.uuid4().hex[:8]}"
        for q in (
            f"CREATE DATABASE {influxql.ident(self.database)}",
            f'CREATE RETENTION POLICY "rollups" ON {influxql.ident(self.database)} DURATION INF '
            "REPLICATION 1",
        ):
            httpx.post(f"{self.url}/query", data={"q": q}, trust_env=False).raise_for_status()

    def write(self, lines: list[str]) -> None:
        response = httpx.post(
            f"{self.url}/write",
            params={"db": self.database, "rp": "rollups", "precision": "s"},
            content="\n".join(lines).encode(),
            trust_env=False,
            timeout=30,
        )
        assert response.status_code == 204, response.text

    def drop(self) -> None:
        q = f"DROP DATABASE {influxql.ident(self.database)}"
        httpx.post(f"{self.url}/query", data={"q": q}, trust_env=False)

    def source(self) -> QuarterSource:
        return QuarterSource(
            BatchReader(InfluxSettings(url=self.url, database=self.database)),
            TZ,
            rule=Rule(min_households=5, dominance_percent=85),
            street_building=STREET,
            now=lambda: NOW,
        )


@pytest.fixture
def ledger(influxdb: InfluxDB) -> Iterator[Ledger]:
    """Six households' import every quarter hour since yesterday's midnight up to NOW's quarter hour;
    hh-6 has not delivered 09:45 and 10:00 yet (its gateway was offline)."""
    written = Ledger(influxdb)
    lines = []
    moment = dt.datetime(2026, 11, 29, tzinfo=TZ).astimezone(dt.UTC)
    while moment <= NOW:
        for household in HOUSEHOLDS:
            if not (household == "hh-6" and moment >= LATE):
                lines.append(line(household, moment))
        moment += SLOT
    written.write(lines)
    yield written
    written.drop()


def test_a_late_households_quarter_hour_is_shown_only_once_complete_and_then_unchanged(
    ledger: Ledger,
) -> None:
    source = ledger.source()
    before = by_start(source.load())
    assert LATE + SLOT not in before  # 10:00 is still running: never shown
    waiting = before[LATE]
    assert not waiting.complete  # five of six households: not shown
    assert waiting.kwh == {"import": None, "export": None, "pv": None}
    # hh-6's newest value is in 09:30: a reading of 09:44 may still add to it
    assert not before[LATE - SLOT].complete
    shown = before[LATE - 2 * SLOT]
    assert shown.complete
    assert shown.kwh["import"] == pytest.approx(sum(kwh(h, LATE - 2 * SLOT) for h in HOUSEHOLDS), abs=1e-6)
    figures = source.load()
    assert figures.last is not None
    assert figures.last.start == LATE - 2 * SLOT  # the newest settled one
    view = build_view(figures, "de", TZ, cache_s=60)
    rows = {row[0]: row[1:] for row in view["today"]["rows"]}
    assert rows["09:45"] == ["noch nicht vollständig"]  # one text across the columns
    assert view["incomplete"] is True
    english = build_view(figures, "en", TZ, cache_s=60)
    assert {row[0]: row[1] for row in english["today"]["rows"]}["09:45"] == "not complete yet"

    ledger.write([line("hh-6", LATE)])  # the gateway is back
    after = by_start(source.load())
    assert after[LATE - SLOT].complete  # hh-6 has reported after it
    assert after[LATE - SLOT].kwh["import"] == pytest.approx(
        sum(kwh(h, LATE - SLOT) for h in HOUSEHOLDS), abs=1e-6
    )
    for start, quarter in before.items():  # what was shown before is shown unchanged
        if quarter.complete:
            assert after[start] == quarter
    assert not after[LATE].complete  # nothing of hh-6 after 09:45 yet


# --------------------------------------------------------------------------------- HEAD, ?lang, DST


@pytest.fixture
def client(ledger: Ledger, tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": ledger.url, "database": ledger.database},
        ingest={"timezone": "Europe/Berlin"},
        opendata={"out_dir": tmp_path / "opendata"},
    )
    with TestClient(create_app(settings, engine=engine, migrate=False)) as test_client:
        yield test_client


def test_head_and_the_lang_parameter(client: TestClient) -> None:
    head = client.head("/quarter")
    assert head.status_code == 200  # uptime monitors and link checkers (was 405)
    assert head.content == b""
    assert head.headers["content-type"].startswith("text/html")
    german = client.get("/quarter", headers={"Accept-Language": "de"})
    assert german.headers["content-language"] == "de"
    english = client.get("/quarter?lang=en", headers={"Accept-Language": "de"})
    assert english.headers["content-language"] == "en"
    assert "Energy and street climate in the quarter" in english.text
    assert client.get("/quarter?lang=xx").status_code == 422


def test_the_autumn_day_labels_its_times_with_the_zone() -> None:
    autumn = dt.date(2026, 10, 25)  # 03:00 CEST -> 02:00 CET: 100 quarter hours
    start = dt.datetime.combine(autumn, dt.time(), TZ).astimezone(dt.UTC)
    quarters = tuple(
        QuarterHour(
            start + SLOT * index, start + SLOT * (index + 1), {"import": 1.0, "export": 0.0, "pv": 0.0}
        )
        for index in range(16)  # 00:00 CEST to 02:45 CET
    )
    figures = PublicFigures(
        at=quarters[-1].end,
        day=autumn,
        today=quarters,
        last=quarters[-1],
        self_sufficiency_today=None,
        self_sufficiency_month=None,
        street=StreetClimate((), {}, {}),
    )
    german = [row[0] for row in build_view(figures, "de", TZ, cache_s=60)["today"]["rows"]]
    assert german[8:16] == [
        "02:00\u00a0MESZ",
        "02:15\u00a0MESZ",
        "02:30\u00a0MESZ",
        "02:45\u00a0MESZ",
        "02:00\u00a0MEZ",
        "02:15\u00a0MEZ",
        "02:30\u00a0MEZ",
        "02:45\u00a0MEZ",
    ]
    assert len(set(german)) == len(german)  # no time twice
    english = [row[0] for row in build_view(figures, "en", TZ, cache_s=60)["today"]["rows"]]
    assert english[8] == "02:00\u00a0CEST"
    assert english[12] == "02:00\u00a0CET"
    ordinary = PublicFigures(
        at=NOW, day=NOW.date(), today=(), last=None, self_sufficiency_today=None,
        self_sufficiency_month=None, street=StreetClimate((), {}, {}),
    )  # fmt: skip
    assert build_view(ordinary, "de", TZ, cache_s=60)["today"]["rows"] == []


def test_a_household_renamed_mid_day_stays_one_household(ledger: Ledger, tmp_path: Path) -> None:
    """hh-5's name tag changes at 09:00 (a rename in the registry): the page waits for devices, not names, so
    the quarter hours after it settle either way, and by the registry's identity (its meter's assignment)
    it is one household throughout with the same figures."""
    rename = dt.datetime(2026, 11, 30, 9, 0, tzinfo=TZ).astimezone(dt.UTC)
    since = int(rename.timestamp())
    drop = f'DELETE FROM "energy" WHERE "household" = \'hh-5\' AND time >= {since}s'  # tagged anew below
    deleted = httpx.post(
        f"{ledger.url}/query", params={"db": ledger.database}, data={"q": drop}, trust_env=False
    )
    assert "error" not in deleted.text
    renamed = []
    moment = rename
    while moment <= NOW:
        renamed.append(line("hh-5", moment).replace("household=hh-5", "household=hh-5\\ neu"))
        moment += SLOT
    ledger.write(renamed)
    registry = build_registry(
        tmp_path,
        ["Haus A", "Haus B"],
        [(household, building(household)) for household in HOUSEHOLDS],
        [Placed("gw-1", f"{h}-meter", "shelly-gen2", building(h), h) for h in HOUSEHOLDS],
    )
    sessions = session_factory(registry.engine)

    def identities() -> Identities:
        with sessions() as session:
            return load_identities(session)

    by_names = by_start(ledger.source().load())
    source = ledger.source()
    source.identities = identities
    by_identity = by_start(source.load())
    after_rename = [start for start in by_identity if rename <= start < LATE - SLOT]
    assert len(after_rename) == 2  # 09:00, 09:15 (09:30 waits for hh-6)
    assert all(by_names[start].complete for start in after_rename)
    assert all(by_identity[start] == by_names[start] for start in after_rename)
    registry.engine.dispose()
