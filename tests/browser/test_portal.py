"""The residents' portal in headless Chromium at phone size: a resident logs in and sees the day and month
views with data, every chart drawn (uPlot's bars in their colours), in German and after the switch in
English; the tables without JavaScript; the CSV downloaded through the form holds only the household's
rows. Screenshots of every portal page in both languages (``$REALLABOR_SCREENSHOTS`` keeps them).

Data: the portal tests' ledger (tests/portal/ledger.py) in a real InfluxDB and the matching registry."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from ingest.api.pages.ops_page import UPLOT_DIR
from tests.browser.charts import painted_charts
from tests.browser.conftest import PHONE, serve
from tests.browser.screens import shot
from tests.portal.conftest import ledger, world
from tests.portal.ledger import DAY, HOUSEHOLDS, SPARSE_DAY, TZ, kinds_of
from tests.portal.world import World
from tests.registry import factories as f

__all__ = ["ledger", "world"]
pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]
RESIDENT = 0  # hh-001 in Haus 1: own PV, export, EV charging

DRAWN = painted_charts(
    "portalCharts", "points: u.data.slice(1).map((v) => v.filter((x) => x != null).length)"
)


@pytest.fixture
def portal_url(world: World) -> Iterator[str]:
    with serve(world.app) as url:
        yield url


def _log_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/portal")  # not logged in: the login first
    page.locator("#username").fill(username)
    page.locator("#password").fill(f.PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(f"{url}/portal")


def _charts_drawn(page: Page, keys: set[str]) -> None:
    page.wait_for_function(
        "(keys) => keys.every((k) => document.querySelector(`.chart[data-chart=${k}]`)?.dataset.drawn)",
        arg=sorted(keys),
        timeout=20_000,
    )
    drawn = {chart["key"]: chart for chart in page.evaluate(DRAWN)}
    assert set(drawn) == keys
    for key, chart in drawn.items():
        assert all(n > 0 for n in chart["points"]), (key, chart)
        assert all(n > 20 for n in chart["painted"]), (key, chart)  # every series' own colour on the canvas


def test_resident_sees_day_and_month_with_charts_in_both_languages(
    portal_url: str, browser: Browser, world: World, tmp_path: Path
) -> None:
    assert (UPLOT_DIR / "uPlot.iife.min.js").is_file(), "uPlot is missing: make installs it (npm ci)"
    context = browser.new_context(
        viewport=PHONE, locale="de-DE", device_scale_factor=2, is_mobile=True, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    _log_in(page, portal_url, world.residents[RESIDENT])
    assert page.locator("html").get_attribute("lang") == "de"
    shot(page, tmp_path, "portal-now-de")

    page.goto(f"{portal_url}/portal?view=day&date={DAY.isoformat()}")
    world.app.state.portal.quarter.wait(120)  # the quarter's days, computed in the background
    assert page.locator("h1").inner_text() == "Mittwoch, 18. Juni 2025"
    _charts_drawn(page, {"electricity", "heat", "ev"})
    assert page.locator("#bars-table tbody tr").count() == 24
    assert "Strom aus dem Netz" in page.locator("ul.totals").inner_text()
    assert page.locator("table.compare tbody tr").count() >= 4
    shot(page, tmp_path, "portal-day-de")

    page.goto(f"{portal_url}/portal?view=month&date={DAY.isoformat()}")
    assert page.locator("h1").inner_text() == "Juni 2025"
    _charts_drawn(page, {"electricity", "heat", "ev"})
    assert page.locator("#bars-table tbody tr").count() == 30
    shot(page, tmp_path, "portal-month-de")

    page.locator("nav.langs a[hreflang=en]").click()
    page.wait_for_url(f"{portal_url}/portal?view=month&date={DAY.isoformat()}")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "June 2025"
    assert "Electricity from the grid" in page.locator("ul.totals").inner_text()
    _charts_drawn(page, {"electricity", "heat", "ev"})
    shot(page, tmp_path, "portal-month-en")
    page.locator("nav.periods a[rel=prev]").click()
    page.wait_for_url(f"{portal_url}/portal?view=month&date=2025-05-01")
    assert page.locator("h1").inner_text() == "May 2025"

    page.goto(f"{portal_url}/portal?view=day&date={DAY.isoformat()}")
    _charts_drawn(page, {"electricity", "heat", "ev"})
    shot(page, tmp_path, "portal-day-en")
    for name in ("now", "week", "year"):
        page.goto(f"{portal_url}/portal?view={name}&date={DAY.isoformat()}")
        shot(page, tmp_path, f"portal-{name}-en")
    page.goto(f"{portal_url}/portal/devices")
    assert page.locator("table.values tbody tr").count() == len(world.devices[RESIDENT])
    shot(page, tmp_path, "portal-devices-en")
    page.goto(f"{portal_url}/portal?view=day&date=2025-13-01")
    shot(page, tmp_path, "portal-400-en")

    # the CSV form: two days by quarter hour
    page.goto(f"{portal_url}/portal?view=day&date={DAY.isoformat()}")
    page.locator("#csv-from").fill("2025-06-17")
    page.locator("#csv-to").fill("2025-06-18")
    page.locator("#csv-resolution").select_option("15m")
    with page.expect_download() as download:
        page.locator("form[action='/portal/csv'] button[type=submit]").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    name = HOUSEHOLDS[RESIDENT][0]
    assert {row["device"] for row in rows} == {f"{name}-{kind}" for kind in kinds_of(RESIDENT)}
    assert len(rows) == 2 * 96 * len(kinds_of(RESIDENT))
    assert download.value.suggested_filename == "energie-2025-06-17-2025-06-18-15m.csv"
    # no CSP refusal, no script error (the favicon's 404 and the deliberate 400 page aside)
    assert [text for text in problems if "404" not in text and "400" not in text] == []
    context.close()

    for lang, locale in (("de", "de-DE"), ("en", "en-GB")):
        plain = browser.new_context(viewport=PHONE, locale=locale, java_script_enabled=False)
        page = plain.new_page()
        _log_in(page, portal_url, world.residents[RESIDENT])
        page.goto(f"{portal_url}/portal?view=day&date={DAY.isoformat()}")
        assert page.locator("#bars-table tbody tr").count() == 24
        assert page.locator(".chart canvas").count() == 0
        shot(page, tmp_path, f"portal-day-no-js-{lang}")
        page.goto(f"{portal_url}/portal/devices")
        shot(page, tmp_path, f"portal-devices-{lang}")
        plain.close()


def _section_shot(page: Page, tmp_path: Path, name: str) -> None:
    """The comparison and community sections alone (the full page is long), to look at."""
    path = tmp_path / f"{name}.png"
    page.locator("#compare-title").locator("xpath=..").screenshot(path=str(path))
    keep = os.environ.get("REALLABOR_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    if page.locator("#community-title").count():
        community = tmp_path / f"{name}-community.png"
        page.locator("#community-title").locator("xpath=..").screenshot(path=str(community))
        if keep:
            shutil.copy(community, Path(keep) / community.name)


def test_what_residents_see_of_the_quarter(
    portal_url: str, browser: Browser, world: World, tmp_path: Path
) -> None:
    """A typical household and rounded shares with enough households; one sentence with too few (the
    sparse day: four households); today compared with the same part of yesterday. German and English."""
    for lang, locale in (("de", "de-DE"), ("en", "en-GB")):
        context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2, is_mobile=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        _log_in(page, portal_url, world.residents[RESIDENT])
        if lang == "en":
            page.goto(f"{portal_url}/portal/lang/en?next=/portal")
        world.app.state.portal.quarter.days(DAY, DAY + dt.timedelta(days=1))
        page.goto(f"{portal_url}/portal?view=day&date={DAY.isoformat()}")
        head = page.locator("table.compare thead").inner_text()
        assert ("Typischer Haushalt" if lang == "de" else "Typical household") in head
        assert page.locator("#typical-note").is_visible()
        assert page.locator("#too-few-pv").is_visible()  # four PV installations in the test quarter
        shot(page, tmp_path, f"portal-quarter-day-{lang}")
        _section_shot(page, tmp_path, f"portal-quarter-day-section-{lang}")

        page.goto(f"{portal_url}/portal?view=day&date={SPARSE_DAY.isoformat()}")
        assert page.locator("#too-few").is_visible()
        assert page.locator("#community-title").count() == 0
        assert page.locator("table.compare thead th").count() == 3  # no typical column
        shot(page, tmp_path, f"portal-quarter-few-{lang}")
        _section_shot(page, tmp_path, f"portal-quarter-few-section-{lang}")

        page.goto(f"{portal_url}/portal?view=day&date={dt.datetime.now(TZ).date().isoformat()}")
        head = page.locator("table.compare thead").inner_text()
        assert ("Bis jetzt" if lang == "de" else "So far") in head
        assert ("Vortag bis" if lang == "de" else "Day before up to") in head
        shot(page, tmp_path, f"portal-quarter-today-{lang}")
        _section_shot(page, tmp_path, f"portal-quarter-today-section-{lang}")
        context.close()
