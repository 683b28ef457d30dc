"""Review 14 (L10, L11, L13, M3) in headless Chromium at phone size, German and English: a household
and building with 60-character names without spaces fit /ops/households and the invitation pages; the
print box breaks its (long) address only after a '/'; operators move between /tech, /ops/households
and Einladungen by links; an expired form on /ops answers the 'form expired' page; a refused export
answers a plain page. Screenshots of each (``$REALLABOR_SCREENSHOTS`` keeps them)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Page
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.api.export_limit import RESIDENT_PER_HOUR, export_limiter
from ingest.config import Settings
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import session_factory
from ingest.registry.models import Household, Role, User
from tests.browser import axe
from tests.browser.conftest import REPO, serve
from tests.browser.screens import shot
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(180)]
LONG = "Wohngemeinschaft" + "Sonnenblumenweg" * 3 + "Nord"  # 65 characters, no space
PUBLIC = "https://energie.reallabor-quartier-am-stadtpark.example.org/bewohnerportal"


@pytest.fixture
def session(registry_engine: Engine) -> Iterator[Session]:
    with session_factory(registry_engine)() as session:
        yield session


@pytest.fixture
def app(registry_engine: Engine, tmp_path: Path) -> FastAPI:
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32), "public_url": PUBLIC},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
    )
    return create_app(settings, engine=registry_engine, migrate=False)


@pytest.fixture
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        yield base


@pytest.fixture
def long_household(session: Session) -> Household:
    building = create_building(session, name=f"Haus{LONG}"[:100], address="Am Reallabor 1, Oldenburg")
    return create_household(session, building_id=building.id, name=LONG)


def _log_in(page: Page, url: str, user: User, target: str) -> None:
    page.goto(f"{url}{target}")
    page.locator("#username").fill(user.username)
    page.locator("#password").fill(f.PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(f"{url}{target}")


def _look(page: Page, tmp_path: Path, name: str) -> None:
    """The screenshot (no wider than the phone) and axe-core's WCAG 2.1 A/AA check of the page."""
    shot(page, tmp_path, name)
    found = axe.violations(page)
    assert not found, axe.report(name, found)


def _switch(page: Page, lang: str) -> None:
    page.locator(f"nav.langs a[hreflang={lang}]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == lang


def test_long_names_links_and_the_print_box(
    phone: Page, url: str, session: Session, long_household: Household, tmp_path: Path
) -> None:
    operator = f.user(session, Role.operator)
    _log_in(phone, url, operator, "/tech")
    menu = phone.locator("nav.menu")
    assert menu.locator('a[href="/ops/households"]').is_visible()  # L11: /tech -> households, records
    assert menu.locator('a[href="/ops/deletions"]').is_visible()
    _look(phone, tmp_path, "ops-tech-menu-de")

    phone.goto(f"{url}/ops/households")
    assert LONG in phone.locator(f"#household-{long_household.id}").inner_text()
    _look(phone, tmp_path, "ops-households-long-de")  # asserts: no wider than the phone (was 403 px)
    _switch(phone, "en")
    _look(phone, tmp_path, "ops-households-long-en")

    phone.locator(
        f'#household-{long_household.id} a[href="/tech/invitations?household={long_household.id}"]'
    ).click()
    phone.wait_for_url(f"{url}/tech/invitations?household={long_household.id}")
    assert phone.locator("#household_id").input_value() == str(long_household.id)  # preselected
    assert "including from before they moved in" in phone.locator("#invite-history").inner_text()
    _look(phone, tmp_path, "invitations-chosen-en")
    phone.locator("#invite-form button[type=submit]").click()
    box = phone.locator("#letter .url")
    assert box.inner_text().replace("\n", "") == f"{PUBLIC}/portal/welcome"
    # every piece between two '/' breaks sits on one line: the address breaks after a '/' only
    lines = phone.evaluate(
        """() => [...document.querySelectorAll('#letter .url span')].map(n => {
            const r = document.createRange(); r.selectNodeContents(n);
            return [n.textContent, new Set([...r.getClientRects()].map(x => Math.round(x.top))).size]; })"""
    )
    assert len(lines) >= 3
    assert all(count == 1 for _text, count in lines), lines
    assert phone.locator("#letter").bounding_box()["height"] > 0  # type: ignore[index]
    _look(phone, tmp_path, "invitation-created-long-en")
    phone.emulate_media(media="print")
    _look(phone, tmp_path, "invitation-print-long-en")
    phone.emulate_media(media="screen")
    _switch(phone, "de")
    phone.goto(f"{url}/tech/invitations")
    _look(phone, tmp_path, "invitations-de")
    assert phone.locator('nav.menu a[href="/ops/households"]').is_visible()

    phone.goto(f"{url}/ops/households")
    assert phone.locator('nav.menu a[href="/tech/invitations"]').is_visible()  # L11: and back
    phone.goto(f"{url}/ops/households/{long_household.id}/delete")
    _look(phone, tmp_path, "ops-delete-long-de")
    phone.evaluate("document.querySelector('input[name=csrf_token]').value = 'x'.repeat(43)")
    phone.locator("#reason").fill("Auszug")
    phone.locator("#confirm_name").fill(LONG)
    phone.locator("#delete-yes").click()
    phone.wait_for_load_state()
    assert "Das Formular ist abgelaufen" in phone.locator("main").inner_text()  # L13: a page, not JSON
    _look(phone, tmp_path, "ops-delete-csrf-de")
    assert session.get(Household, long_household.id) is not None


def test_a_refused_export_is_a_plain_page(
    phone: Page, app: FastAPI, url: str, session: Session, long_household: Household, tmp_path: Path
) -> None:
    # a plain name here: the portal's own layout with long names is the portal's (its footer overflows)
    resident = f.user(session, Role.resident, f.household(session).id)
    _log_in(phone, url, resident, "/portal/devices")
    limiter = export_limiter(app)
    lease = limiter.acquire(resident.id, per_hour=RESIDENT_PER_HOUR)  # an export of theirs still runs
    try:
        phone.goto(f"{url}/portal/export")
        assert "Ihr Download läuft noch" in phone.locator("main").inner_text()
        _look(phone, tmp_path, "portal-export-running-de")
        phone.goto(f"{url}/portal/lang/en?next=/portal/export")
        assert "Your download is still running" in phone.locator("main").inner_text()
        _look(phone, tmp_path, "portal-export-running-en")
    finally:
        lease.release()

    operator = f.user(session, Role.operator)
    phone.context.clear_cookies()
    _log_in(phone, url, operator, "/ops/households")
    busy = [limiter.acquire(10_000 + n, per_hour=1) for n in range(limiter.slots)]
    try:
        phone.goto(f"{url}/ops/households/{long_household.id}/export")
        assert "Gerade laufen zu viele Downloads" in phone.locator("main").inner_text()
        _look(phone, tmp_path, "ops-export-busy-de")
        _switch(phone, "en")
        assert "Too many downloads are running" in phone.locator("main").inner_text()
        _look(phone, tmp_path, "ops-export-busy-en")
    finally:
        for one in busy:
            one.release()
