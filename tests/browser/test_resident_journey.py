"""A new resident's whole way, as issue 14 describes it, in one browser at phone size: the invitation (as
`reallabor residents invite` makes it) → the code and a password on /portal/welcome → logged in on the
portal → the day and the month with data and drawn charts → the switch to English → the CSV download,
holding only the household's rows → logout, after which the portal asks for the login again and the old
session is dead.

Data: the portal tests' ledger and registry (tests/portal/world.py); the invited household is hh-002."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from ingest.api.security import SESSION_COOKIE
from ingest.registry import invitations
from ingest.registry.db import session_factory
from ingest.registry.models import Building, Household
from tests.browser.conftest import PHONE
from tests.browser.screens import shot
from tests.browser.test_portal import _charts_drawn, portal_url
from tests.portal.conftest import ledger, world
from tests.portal.ledger import DAY, HOUSEHOLDS, kinds_of
from tests.portal.world import World

__all__ = ["ledger", "portal_url", "world"]
pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]
INVITED = 1  # hh-002 in Haus 1
PASSWORD = "Unser Zaehler tickt 7 mal"


def _invite(world: World) -> str:
    name, building = HOUSEHOLDS[INVITED]
    with session_factory(world.engine)() as session:
        household = (
            session.query(Household)
            .join(Building)
            .filter(Household.name == name, Building.name == building)
            .one()
        )
        _, code = invitations.create(session, household_id=household.id, by="cli:test")
    return code


def test_invitation_to_portal_csv_and_logout(
    portal_url: str, browser: Browser, world: World, tmp_path: Path
) -> None:
    code = _invite(world)
    context = browser.new_context(viewport=PHONE, locale="de-DE", is_mobile=True, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)

    page.goto(f"{portal_url}/portal/welcome")
    page.locator("#code").fill(code)
    page.locator("#code-form button[type=submit]").click()
    assert HOUSEHOLDS[INVITED][0] in page.locator("h1").inner_text()
    page.locator("#username").fill("neu.im.quartier")
    page.locator("#password").fill(PASSWORD)
    page.locator("#password_again").fill(PASSWORD)
    page.locator("#account-form button[type=submit]").click()
    page.wait_for_url(f"{portal_url}/portal")
    token = {c["name"]: c["value"] for c in context.cookies()}[SESSION_COOKIE]

    page.goto(f"{portal_url}/portal?view=day&date={DAY.isoformat()}")
    world.app.state.portal.quarter.wait(120)
    assert page.locator("h1").inner_text() == "Mittwoch, 18. Juni 2025"
    _charts_drawn(page, {"electricity", "heat"})
    assert page.locator("#bars-table tbody tr").count() == 24
    shot(page, tmp_path, "journey-day-de")
    page.goto(f"{portal_url}/portal?view=month&date={DAY.isoformat()}")
    assert page.locator("h1").inner_text() == "Juni 2025"
    assert page.locator("#bars-table tbody tr").count() == 30
    _charts_drawn(page, {"electricity", "heat"})

    page.locator("nav.langs a[hreflang=en]").click()
    page.wait_for_url(f"{portal_url}/portal?view=month&date={DAY.isoformat()}")
    assert page.locator("h1").inner_text() == "June 2025"
    shot(page, tmp_path, "journey-month-en")

    page.locator("#csv-from").fill("2025-06-01")
    page.locator("#csv-to").fill("2025-06-30")
    page.locator("#csv-resolution").select_option("1d")
    with page.expect_download() as download:
        page.locator("form[action='/portal/csv'] button[type=submit]").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    name = HOUSEHOLDS[INVITED][0]
    assert {row["device"] for row in rows} == {f"{name}-{kind}" for kind in kinds_of(INVITED)}
    assert len(rows) == 30 * len(kinds_of(INVITED))

    page.locator("footer form button[type=submit]").click()  # logout
    page.goto(f"{portal_url}/portal")
    assert "/login" in page.url, page.url
    assert SESSION_COOKIE not in {c["name"] for c in context.cookies()}
    me = httpx.get(f"{portal_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    assert me.status_code == 401, "the session outlived the logout"
    context.close()
