"""What residents see of other households (docs/portal.md, "What residents see of others"), replaying the
attacks of the review of issue 14 (/tmp/team/review-14.md) against the real InfluxDB and the real app:
H1 (two households: quarter total minus own = the neighbour), M2 (five households: the median is one of
them), M1 (a deletion changes the quarter's figures by the departed household's), L1 (a late rollup
leaves the kept figures stale), L12 (unassigned devices counted on one side), M4 (an unfinished day
against the whole previous one).

Synthetic ledger points are written on dates the session ledger does not use, as the reviewer did.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ingest.api.pages.portal_page import _same_part
from ingest.config import InfluxSettings
from ingest.portal.data import Household, PortalData, round_kwh
from ingest.portal.periods import Period
from ingest.portal.reader import Reader
from tests.portal.ledger import DAY, HOUSEHOLDS, TZ, Ledger, totals
from tests.portal.test_portal_pages import as_user, main
from tests.portal.world import World

pytestmark = pytest.mark.integration
SLOTS = 96  # quarter hours of the (non-DST-change) days used here


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, follow_redirects=False) as http:
        yield http


def write_day(
    ledger: Ledger,
    day: dt.date,
    household: str,
    building: str,
    kwh: dict[str, float],
    *,
    device: str | None = None,
    sunny: tuple[int, int] = (40, 56),
) -> None:
    """A household's (or, with household "", an unassigned device's) day in both ledger measurements: the
    day's kWh per kind spread evenly over the quarter hours (PV and export over ``sunny`` slots only),
    and the daily point as their sum."""
    start = dt.datetime.combine(day, dt.time(), TZ).astimezone(dt.UTC)
    lines = []
    for kind, total in kwh.items():
        slots = range(*sunny) if kind in ("pv", "export") else range(SLOTS)
        name = device or f"{household or 'orphan'}-{kind}"
        for slot in slots:
            moment = start + dt.timedelta(minutes=15 * slot)
            lines.append(ledger.line("energy", household, building, kind, name, moment, total / len(slots)))
        lines.append(ledger.line("energy_1d", household, building, kind, name, start, total))
    ledger.write(lines)


def resident_page(client: TestClient, world: World, index: int, day: dt.date, lang: str = "de") -> str:
    as_user(client, world, world.residents[index], lang=lang)
    page = client.get(f"/portal?view=day&date={day.isoformat()}")
    assert page.status_code == 200, page.text
    return main(page.text)


def shown(text: str, figure: str) -> bool:
    """Whether ``figure`` ("7,3") stands on the page as a number of its own (not inside "17,35")."""
    return re.search(rf"(?<![\d,.]){re.escape(figure)}(?!\d)", text) is not None


def data_for(ledger: Ledger) -> PortalData:
    return PortalData(Reader(InfluxSettings(url=ledger.influx.url, database=ledger.influx.database)), TZ)


def test_h1_two_households_show_no_quarter_figure(client: TestClient, world: World, ledger: Ledger) -> None:
    """The reviewer's H1: hh-001 5.0 kWh, hh-002 7.3 kWh on 2024-10-15; hh-001 saw "Quartier 12,3 kWh"."""
    day = dt.date(2024, 10, 15)
    for index, value in ((0, 5.0), (1, 7.3)):
        write_day(ledger, day, *HOUSEHOLDS[index], {"import": value})
    for lang, sentence in (
        ("de", "Der Vergleich mit dem Quartier erscheint"),
        ("en", "The comparison with the quarter appears"),
    ):
        page = resident_page(client, world, 0, day, lang)
        assert shown(page, "5,00" if lang == "de" else "5.00")  # the household's own
        for leak in ("7,3", "7,30", "12,3", "12,30", "7.3", "7.30", "12.3", "12.30"):
            assert not shown(page, leak), (lang, leak)
        assert sentence in page
        assert 'id="community-title"' not in page
        assert not re.search(r"\b2 (Haushalte|households)", page)
        assert "Typischer Haushalt" not in page
        assert "Typical household" not in page


def test_m2_typical_household_is_nobodys_value(client: TestClient, world: World, ledger: Ledger) -> None:
    """The reviewer's M2: five households on 2019-05-15 (4.0, 3.0, 5.37, 6.0, 9.0); the median shown was
    5,4 = one neighbour's 5.37. The typical household is the mean of the middle three: 5,1."""
    day = dt.date(2019, 5, 15)
    values = (4.0, 3.0, 5.37, 6.0, 9.0)
    for index, value in enumerate(values):
        write_day(ledger, day, *HOUSEHOLDS[index], {"import": value})
    page = resident_page(client, world, 0, day)
    assert shown(page, "5,1")  # (4.0 + 5.37 + 6.0) / 3 = 5.12
    for other in values[1:]:
        assert not shown(page, f"{other:.1f}".replace(".", ",")), other
        assert not shown(page, f"{other:.2f}".replace(".", ",")), other
    assert not shown(page, "27,4")  # the quarter's total of the review
    assert not re.search(r"\b5 Haushalte", page)
    assert "Ein typischer Haushalt im Quartier" in page


def test_m1_a_deletion_does_not_change_a_settled_days_figures(
    client: TestClient, world: World, ledger: Ledger
) -> None:
    """The reviewer's M1: the quarter's figures before and after a move-out differed by the departed
    household's consumption. A settled day keeps the figures first shown, even after the kept days
    expire (simulated by forgetting them)."""
    day = dt.date(2018, 3, 14)
    for index, value in enumerate((4.2, 3.1, 5.9, 6.4, 8.8)):
        write_day(ledger, day, *HOUSEHOLDS[index], {"import": value})
    write_day(ledger, day, "hh-gone", "Haus 9", {"import": 26.7})
    before = resident_page(client, world, 0, day)
    assert shown(before, "6,3")  # the typical household with hh-gone: (4.2 + 5.9 + 6.4 + 8.8) / 4
    ledger.influx.query("DROP SERIES WHERE \"household\" = 'hh-gone'")
    gone = data_for(ledger)  # what a fresh computation (no kept figures) says now
    try:
        assert gone.quarter_figures(Period.containing("day", day, TZ)).typical["import"] == 5.5  # would leak
    finally:
        gone.reader.close()
    world.app.state.portal.quarter.forget(day, day + dt.timedelta(days=1))  # as after the kept days expire
    after = resident_page(client, world, 0, day)
    assert after == before


def test_l1_a_late_rollup_refreshes_the_kept_figures(ledger: Ledger) -> None:
    """The reviewer's L1: figures kept before the household's own data arrived showed a quarter smaller
    than the household. The household's own import disagreeing with the kept days recomputes them."""
    day = dt.date(2017, 6, 14)
    period = Period.containing("day", day, TZ)
    values = (3.0, 4.0, 5.0, 6.0, 7.0)
    for index, value in enumerate(values, start=1):
        write_day(ledger, day, *HOUSEHOLDS[index], {"import": value})
    data = data_for(ledger)
    try:
        assert data.quarter_figures(period).typical["import"] == 5.0  # 4, 5, 6: kept (a settled day)
        write_day(ledger, day, *HOUSEHOLDS[0], {"import": 40.0})  # the late rollup of hh-001
        me = Household(100, *HOUSEHOLDS[0])
        figures = data.community(me, period, data.totals(me, period))
        assert figures.consumption == pytest.approx(40.0)
        assert figures.quarter.typical["import"] == round_kwh((4.0 + 5.0 + 6.0 + 7.0) / 4)  # six now
    finally:
        data.reader.close()


def test_l12_unassigned_devices_count_on_neither_side(ledger: Ledger) -> None:
    """The reviewer's L12: a device without household (after a deletion) was in the quarter's import but
    not in its per-quarter-hour netting, overstating self-sufficiency."""
    day = dt.date(2016, 7, 13)
    period = Period.containing("day", day, TZ)
    for index in range(6):  # six households, each with PV: the PV figures are shown
        write_day(ledger, day, *HOUSEHOLDS[index], {"import": 6.0 + index, "pv": 4.0, "export": 0.5})
    first = data_for(ledger)
    try:
        without = first.quarter_figures(period)
    finally:
        first.reader.close()
    assert without.self_sufficiency is not None
    write_day(ledger, day, "", "Haus 1", {"import": 30.0, "export": 1.0}, device="orphan-em")
    second = data_for(ledger)
    try:
        with_orphan = second.quarter_figures(period)
    finally:
        second.reader.close()
    assert with_orphan == without
    # the figure as the definition says, from the households' points alone
    imports = sum(6.0 + i for i in range(6))
    consumption = imports + 6 * 4.0 - 6 * 0.5
    external = imports - 6 * 0.5  # every sunny quarter hour the quarter imports more than it exports
    assert without.self_sufficiency == pytest.approx(round(1 - external / consumption, 2))


def test_m4_unfinished_day_against_the_same_part_of_the_day_before(ledger: Ledger) -> None:
    """The previous period up to the same time: whole days from the daily ledger, the rest by quarter hour."""
    data = data_for(ledger)
    try:
        name, building = HOUSEHOLDS[2]
        me = Household(102, name, building)
        start = dt.datetime.combine(DAY - dt.timedelta(days=2), dt.time(), TZ)
        cut = dt.datetime.combine(DAY, dt.time(10, 15), TZ)
        got = data.totals_between(me, start, cut)
        expected = totals(ledger.quarter_hours, name, building, start, cut)
        assert sorted(got) == sorted(expected)
        for kind, value in expected.items():
            assert got[kind] == pytest.approx(value, abs=1e-6), kind
    finally:
        data.reader.close()


@pytest.mark.parametrize(
    ("view", "now", "cut"),
    [
        ("day", dt.datetime(2026, 11, 30, 4, 14), dt.datetime(2026, 11, 29, 4, 15)),
        ("day", dt.datetime(2026, 11, 30, 4, 15), dt.datetime(2026, 11, 29, 4, 15)),
        ("week", dt.datetime(2026, 12, 2, 23, 50), dt.datetime(2026, 11, 26, 0, 0)),  # Wed 24:00
        ("month", dt.datetime(2026, 11, 14, 9, 0), dt.datetime(2026, 10, 14, 9, 0)),
        ("month", dt.datetime(2026, 3, 31, 9, 0), dt.datetime(2026, 3, 1, 0, 0)),  # February has no 31st
        ("year", dt.datetime(2026, 11, 30, 8, 1), dt.datetime(2025, 11, 30, 8, 15)),
    ],
)
def test_m4_the_same_part_of_the_previous_period(view: str, now: dt.datetime, cut: dt.datetime) -> None:
    period = Period.containing(view, now.date(), TZ)  # type: ignore[arg-type]
    assert _same_part(period, period.previous(), now.replace(tzinfo=TZ)) == cut.replace(tzinfo=TZ)


def test_m4_today_is_labelled_so_far(client: TestClient, world: World) -> None:
    today = dt.datetime.now(TZ).date()
    page = resident_page(client, world, 1, today)
    assert "Bis jetzt" in page
    assert "Vortag bis " in page
    english = resident_page(client, world, 1, today, "en")
    assert "So far" in english
    assert "Day before up to " in english


def test_no_export_line_without_pv(ledger: Ledger) -> None:
    """L4: every main meter has an export register; a household without PV and nothing exported gets no
    "fed into the grid 0" line, one that exported without own PV (e.g. a balcony module) does."""
    day = dt.date(2016, 2, 10)
    write_day(ledger, day, *HOUSEHOLDS[2], {"import": 5.0, "export": 0.0})
    write_day(ledger, day, *HOUSEHOLDS[3], {"import": 5.0, "export": 0.4})
    data = data_for(ledger)
    try:
        period = Period.containing("day", day, TZ)
        for index, has_export in ((2, False), (3, True)):
            me = Household(100 + index, *HOUSEHOLDS[index])
            assert ("export" in data.bars(me, period).kinds) is has_export
            assert ("export" in data.totals(me, period)) is has_export
    finally:
        data.reader.close()
