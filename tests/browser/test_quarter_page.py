"""The public quarter page in headless Chromium at phone size, for an anonymous visitor: both charts drawn
from the seeded InfluxDB (uPlot's data equal the seeded quarter's, every series' colour on the canvas), in
German and after the switch in English; axe-core finds no WCAG 2.1 A/AA violation; without JavaScript
every value is in the text and tables. Screenshots in both languages (``$REALLABOR_SCREENSHOTS`` keeps them).
Also the states a visitor may meet: quarter hours a late household has not delivered yet ("noch nicht
vollständig"), and the previous figures, said with their time, while InfluxDB cannot be read.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ingest.api.app import create_app
from ingest.api.pages.ops_page import UPLOT_DIR
from ingest.config import Settings
from ingest.localservices import InfluxDB
from ingest.registry.db import make_engine
from ingest.registry.migrate import upgrade
from tests.browser import axe
from tests.browser.charts import painted_charts
from tests.browser.conftest import PHONE, serve
from tests.browser.screens import shot
from tests.portal.quarter_seed import Quarter, seed, street_means

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(240)]

CHARTS = painted_charts(
    "quarterCharts", "labels: u.series.slice(1).map((s) => s.label), data: u.data.slice(1)"
)


@pytest.fixture
def quarter(influxdb: InfluxDB) -> Iterator[Quarter]:
    seeded = seed(influxdb.url, now=dt.datetime.now(dt.UTC), daylight=False)  # PV at any hour of the test
    yield seeded
    seeded.drop()


@pytest.fixture
def quarter_url(quarter: Quarter, tmp_path: Path) -> Iterator[str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    out = tmp_path / "opendata"
    (out / "quarter-energy-daily").mkdir(parents=True)
    (out / "catalog.jsonld").write_text("{}", encoding="utf-8")
    for ext in ("csv", "json"):
        (out / "quarter-energy-daily" / f"quarter-energy-daily_2026-11.{ext}").write_text(
            "{}", encoding="utf-8"
        )
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": quarter.url, "database": quarter.database},
        opendata={"out_dir": out, "cache_s": 60},
    )
    app = create_app(settings, engine=engine, migrate=False)
    with serve(app) as url:
        yield url
    engine.dispose()


def settled_slots(quarter: Quarter) -> list[dt.datetime]:
    """Today's quarter hours that ended before the seed's last one: every device reported after them."""
    day_start = quarter.midnight(quarter.today).astimezone(dt.UTC)
    moments = {m for p in quarter.quarter_hours.values() for m in p if m >= day_start}
    return sorted(m for m in moments if m + dt.timedelta(minutes=15) <= quarter.now)


def _drawn(page: Page) -> dict[str, dict[str, Any]]:
    page.wait_for_function(
        "() => ['power', 'street'].every((k) => document.querySelector(`.chart[data-chart=${k}]`)"
        "?.dataset.drawn)",
        timeout=20_000,
    )
    charts = {chart["key"]: chart for chart in page.evaluate(CHARTS)}
    assert set(charts) == {"power", "street"}
    for key, chart in charts.items():
        assert all(n > 20 for n in chart["painted"]), (key, chart["painted"])  # every series' colour drawn
    return charts


def _check_charts(page: Page, quarter: Quarter) -> None:
    """The charts hold the seeded quarter's settled quarter hours: import per quarter hour up, export down,
    PV; street means. The running quarter hour is not shown (one more, unsettled, if it ended meanwhile)."""
    charts = _drawn(page)
    slots = settled_slots(quarter)
    imported, exported, pv = charts["power"]["data"]
    assert len(imported) - len(slots) in (0, 1)
    for index, start in enumerate(slots):
        truth = quarter.slot_totals(start)
        assert imported[index] == pytest.approx(truth["import"], abs=0.0006)
        assert exported[index] == pytest.approx(-truth["export"], abs=0.0006)
        assert pv[index] == pytest.approx(truth["pv"], abs=0.0006)
    assert max(pv) > 0
    day_start = quarter.midnight(quarter.today)
    means = [v for m, v in street_means(quarter, "temperature_c").items() if m >= day_start]
    assert charts["street"]["data"][0] == pytest.approx(means)


def test_anonymous_visitor_sees_the_quarter_in_both_languages(
    quarter_url: str, quarter: Quarter, browser: Browser, tmp_path: Path
) -> None:
    assert (UPLOT_DIR / "uPlot.iife.min.js").is_file(), "uPlot is missing: make installs it (npm ci)"
    context = browser.new_context(viewport=PHONE, locale="de-DE", device_scale_factor=2, is_mobile=True)
    axe.install(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    response = page.goto(f"{quarter_url}/quarter")
    assert response is not None
    assert response.status == 200
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator("h1").inner_text() == "Energie und Straßenklima im Quartier"
    _check_charts(page, quarter)
    full_quarter_hour = quarter.now >= quarter.midnight(quarter.today) + dt.timedelta(minutes=15)
    if full_quarter_hour:  # else (00:00 to 00:15) the page says there is none yet today
        flows = page.locator("#flows").inner_text()
        assert "aus dem Stromnetz bezogen" in flows
        assert "kWh" in flows
        assert "im Mittel" in flows
    shares = page.locator("#self-sufficiency").inner_text()
    assert "%" in shares
    if quarter.today.day >= 3:  # the month's final days: through the day before yesterday (window 1 d)
        assert "in diesem Monat, bis" in shares
    assert "Temperatur" in page.locator("#street-latest").inner_text()
    assert "21,5" not in page.locator("#street-latest").inner_text()  # never the flat's room sensor
    assert page.locator("a[href='/opendata/catalog.jsonld']").count() == 1
    axe.check(page, "quarter-de")
    shot(page, tmp_path, "quarter-de")

    page.locator("nav.langs a[hreflang=en]").click()
    page.wait_for_url(f"{quarter_url}/quarter")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Energy and street climate in the quarter"
    if full_quarter_hour:
        assert "drawn from the power grid" in page.locator("#flows").inner_text()
    _check_charts(page, quarter)
    axe.check(page, "quarter-en")
    shot(page, tmp_path, "quarter-en")
    assert [text for text in problems if "404" not in text] == []  # no CSP refusal, no script error (favicon)
    context.close()

    for lang, locale in (("de", "de-DE"), ("en", "en-GB")):
        plain = browser.new_context(viewport=PHONE, locale=locale, java_script_enabled=False)
        page = plain.new_page()
        page.goto(f"{quarter_url}/quarter")
        assert page.locator(".chart canvas").count() == 0
        rows = page.locator("#today-table tbody tr").count()
        assert rows - len(settled_slots(quarter)) in (0, 1)
        assert page.locator("#street-table tbody tr").count() > 0
        shot(page, tmp_path, f"quarter-no-js-{lang}")
        plain.close()


def test_incomplete_quarter_hours_and_stale_figures_are_said_in_plain_words(
    browser: Browser, tmp_path: Path
) -> None:
    """The last household is two quarter hours late; then InfluxDB stops: the page keeps the previous
    figures and says so with their time."""
    with InfluxDB(tmp_path / "influx") as influx:
        now = dt.datetime.now(dt.UTC)
        quarter = seed(influx.url, now=now, daylight=False, late=2)
        engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
        upgrade(engine)
        settings = Settings(
            api={"secret_key": secrets.token_urlsafe(32)},
            influx={"url": quarter.url, "database": quarter.database},
            opendata={"out_dir": tmp_path / "opendata", "cache_s": 1},
        )
        app = create_app(settings, engine=engine, migrate=False)
        with serve(app) as url:
            context = browser.new_context(
                viewport=PHONE, locale="de-DE", device_scale_factor=2, is_mobile=True
            )
            axe.install(context)
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{url}/quarter")
            assert page.locator("#stale").count() == 0
            influx.stop()
            page.wait_for_timeout(1_200)  # the cache period has passed: the next visit tries a refresh
            for lang in ("de", "en"):
                response = page.goto(f"{url}/quarter?lang={lang}")
                assert response is not None
                assert response.status == 200
                stale = page.locator("#stale").inner_text()
                assert (
                    "konnten gerade nicht gelesen werden" if lang == "de" else "could not be read"
                ) in stale
                page.locator("details.values").first.evaluate("(d) => d.open = true")
                rows = page.locator("#today-table tbody tr")
                waiting = "noch nicht vollständig" if lang == "de" else "not complete yet"
                newest = [rows.nth(rows.count() - n).inner_text() for n in (1, 2)]
                midnight = quarter.midnight(quarter.today).astimezone(dt.UTC)
                if now - midnight >= dt.timedelta(minutes=30):  # both late quarter hours are today's
                    assert all(waiting in row for row in newest), newest
                    assert waiting in page.locator("#incomplete-help").inner_text()
                axe.check(page, f"quarter-stale-{lang}")
                page.locator("#today-table").scroll_into_view_if_needed()
                shot(page, tmp_path, f"quarter-incomplete-stale-{lang}")
            context.close()
        engine.dispose()
