"""The operators' overview /ops in headless Chromium at phone size: an operator sees every chart drawn
with data (uPlot's paths and painted pixels), in German and in English, and the tables of the latest
values without JavaScript; a technician and a resident get 403, for the page and for its data.

Data: the panel tests' backfilled day (18 June 2025, 110 households) and a short run of the real
ingester for the pipeline panels (``tests/panels/conftest.py``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from ingest.api.app import create_app
from ingest.api.pages.ops_page import PANELS, UPLOT_DIR
from ingest.config import Settings
from ingest.registry.db import commit, session_factory
from ingest.registry.models import Role
from tests.browser.conftest import PHONE, REPO, serve
from tests.browser.screens import shot
from tests.filled_day import DAY_DATE, FilledDay
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]

DRAWN = """() => Object.entries(window.opsCharts || {}).map(([key, u]) => {
  const canvas = u.root.querySelector("canvas");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = (color) => [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  // pixels painted in each series' own colour: its line or bars, not the axes or the grid
  const painted = u.series.slice(1).map((s, i) => {
    const [r, g, b] = rgb(s.stroke(u, i + 1));
    let n = 0;
    for (let p = 0; p < pixels.length; p += 4) {
      if (Math.abs(pixels[p] - r) + Math.abs(pixels[p + 1] - g) + Math.abs(pixels[p + 2] - b) < 30) n++;
    }
    return n;
  });
  return {
    key,
    points: u.data.slice(1).map((values) => values.filter((v) => v != null).length),
    paths: u.series.slice(1).map((s) => Boolean(s._paths && (s._paths.stroke || s._paths.fill))),
    painted,
  };
})"""


@pytest.fixture
def ops_server(registry_engine: Engine, filled_day: FilledDay, tmp_path: Path) -> Iterator[str]:
    """The API with its InfluxDB pointed at the filled day's database."""
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": filled_day.influx.url, "database": filled_day.influx.database},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
    )
    app = create_app(settings, engine=registry_engine, migrate=False)
    with serve(app) as url:
        yield url


def _log_in(page: Page, server: str, username: str, *, lands: str) -> None:
    page.goto(f"{server}/ops?day={DAY_DATE.isoformat()}")  # not logged in: the login, and back after it
    page.locator("#username").fill(username)
    page.locator("#password").fill(f.PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(f"{server}{lands}")


def _every_chart_drawn(page: Page) -> None:
    keys = [panel.key for panel in PANELS]
    page.wait_for_function(
        "(keys) => keys.every((k) => document.querySelector(`.chart[data-panel=${k}]`)?.dataset.drawn)",
        arg=keys,
        timeout=20_000,
    )
    drawn = {chart["key"]: chart for chart in page.evaluate(DRAWN)}
    assert sorted(drawn) == sorted(keys)
    for key, chart in drawn.items():
        assert chart["points"], (key, chart)
        assert all(n > 0 for n in chart["points"]), (key, chart)
        assert all(chart["paths"]), (key, chart)
        assert sum(chart["painted"]) > 20, (key, chart)  # equal series (in = written) cover each other


def _tables_have_rows(page: Page) -> None:
    for panel in PANELS:
        rows = page.locator(f"#panel-{panel.key} table.latest tbody tr")
        assert rows.count() > 0, panel.key
        caption = page.locator(f"#caption-{panel.key}").inner_text()
        assert any(ch.isdigit() for ch in caption), (panel.key, caption)


def test_operator_sees_every_chart_in_both_languages(
    ops_server: str, browser: Browser, registry_engine: Engine, tmp_path: Path
) -> None:
    assert (UPLOT_DIR / "uPlot.iife.min.js").is_file(), "uPlot is missing: make installs it (npm ci)"
    with session_factory(registry_engine)() as session:
        operator = f.user(session, Role.operator)
        commit(session)
        username = operator.username
    context = browser.new_context(viewport=PHONE, locale="de-DE", device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    _log_in(page, ops_server, username, lands=f"/ops?day={DAY_DATE.isoformat()}")
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator("h1").inner_text() == "Quartier am 18.06.2025"
    assert page.locator("#panel-energy figcaption").inner_text().startswith("Zuletzt")
    assert "Bezug" in page.locator("#panel-energy table.latest").inner_text()
    _every_chart_drawn(page)
    _tables_have_rows(page)
    shot(page, tmp_path, "ops-de")
    for panel in PANELS:  # each chart on its own, to look at
        page.locator(f"#panel-{panel.key} figure").screenshot(path=str(tmp_path / f"ops-{panel.key}.png"))

    page.locator("nav.langs a[hreflang=en]").click()
    page.wait_for_url(f"{ops_server}/ops?day={DAY_DATE.isoformat()}")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "The quarter on 18 Jun 2025"
    assert "PV yield" in page.locator("#panel-energy table.latest").inner_text()
    _every_chart_drawn(page)
    _tables_have_rows(page)
    shot(page, tmp_path, "ops-en")
    assert [url for url in failed if not url.endswith("/favicon.ico")] == []
    assert [text for text in problems if "404" not in text] == []  # no CSP refusal, no script error
    data = page.request.get(f"{ops_server}/ops/data/energy?day={DAY_DATE.isoformat()}")
    assert data.status == 200
    assert data.headers["content-type"].startswith("application/json")
    context.close()

    plain = browser.new_context(viewport=PHONE, locale="en-GB", java_script_enabled=False)
    page = plain.new_page()
    _log_in(page, ops_server, username, lands=f"/ops?day={DAY_DATE.isoformat()}")
    _tables_have_rows(page)
    assert page.locator(".chart canvas").count() == 0
    shot(page, tmp_path, "ops-no-js")
    plain.close()


@pytest.mark.parametrize("role", [Role.technician, Role.resident])
def test_technician_and_resident_get_403(
    ops_server: str, browser: Browser, registry_engine: Engine, role: Role, tmp_path: Path
) -> None:
    with session_factory(registry_engine)() as session:
        household = f.household(session) if role is Role.resident else None
        user = f.user(session, role, household.id if household else None)
        commit(session)
        username = user.username
    context = browser.new_context(viewport=PHONE, locale="de-DE")
    page = context.new_page()
    page.goto(f"{ops_server}/tech/login?next=/ops")
    page.locator("#username").fill(username)
    page.locator("#password").fill(f.PASSWORD)
    with page.expect_navigation():  # a resident always lands on /portal, staff where next says
        page.locator("form.stack button[type=submit]").click()
    answer = page.goto(f"{ops_server}/ops")
    assert answer is not None
    assert answer.status == 403
    assert page.locator("canvas").count() == 0
    assert page.locator("table.latest").count() == 0
    data = page.request.get(f"{ops_server}/ops/data/energy?day={DAY_DATE.isoformat()}", max_redirects=0)
    assert data.status == 403
    shot(page, tmp_path, f"ops-403-{role.value}")
    context.close()
