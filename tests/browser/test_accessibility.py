"""axe-core finds no WCAG 2.1 A/AA violation on any page, in German and in English, at phone size: the
residents' portal (every period, devices, the 400 page, without JavaScript), the login, /portal/welcome
(both steps, its errors), the operators' pages (/ops, households, the delete confirmation and its error,
the deletion records, invitations and the created invitation) and every technician page (fleet,
gateway, device, forms with their errors, import, discovery, commissioning reports, forbidden and
message pages). Each test collects every page's violations first, then fails with the whole list.

Data: the portal tests' world (tests/portal/world.py; its ledger in a real InfluxDB) and the
technician pages' world (tests/browser/tech_world.py; the dynsec broker of the registry tests)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from ingest.dynsec import DynsecAdmin
from ingest.registry.db import commit, session_factory
from ingest.registry.models import Household, Role, User
from tests.browser import axe
from tests.browser.conftest import PHONE
from tests.browser.screens import shot
from tests.browser.tech_world import tech_world
from tests.browser.test_portal import portal_url
from tests.portal.conftest import ledger, world
from tests.portal.ledger import DAY, SPARSE_DAY
from tests.portal.world import World
from tests.registry import factories as f

__all__ = ["ledger", "portal_url", "world"]
pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]
LANGS = {"de": "de-DE", "en": "en-GB"}
CODE = re.compile(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}")
CHARTS_DRAWN = "() => [...document.querySelectorAll('.chart')].every((c) => c.dataset.drawn)"


class Audit:
    """Runs axe on each page a test visits and keeps what it found; ``assert_clean`` fails with all."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.found: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, page: Page, name: str, *, javascript: bool = True) -> None:
        if javascript and page.locator(".chart").count():
            page.wait_for_function(CHARTS_DRAWN, timeout=20_000)  # the DOM as the resident sees it
        self.found[name] = axe.violations(page)
        if os.environ.get("REALLABOR_SCREENSHOTS"):  # to look at; the other browser tests check widths
            shot(page, self.tmp_path, f"a11y-{name}")

    def assert_clean(self) -> None:
        dirty = {name: found for name, found in self.found.items() if found}
        summary = ", ".join(f"{name} {sum(len(v['nodes']) for v in found)}" for name, found in dirty.items())
        print(f"axe: {len(self.found)} pages, violations (nodes) per page: {summary or 'none'}")
        assert not dirty, "\n".join(axe.report(name, found) for name, found in dirty.items())


def _context(browser: Browser, lang: str, *, javascript: bool = True) -> Page:
    """A phone; without ``javascript`` the pages' own scripts are not loaded (axe itself needs the
    engine on: it does not finish in a context with JavaScript off)."""
    context = browser.new_context(viewport=PHONE, locale=LANGS[lang], device_scale_factor=1, is_mobile=True)
    if not javascript:
        context.route("**/*.js", lambda route: route.abort())
    axe.install(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def _log_in_at(page: Page, url: str, username: str) -> None:
    page.locator("#username").fill(username)
    page.locator("#password").fill(f.PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(url)


def test_axe_reports_known_violations(browser: Browser) -> None:
    """The check can fail: an image without alt text and faint grey text are reported, with selectors."""
    page = browser.new_page()
    page.set_content(
        '<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>Meter</h1>'
        '<img id="meter" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        '<p id="faint" style="color: #bbb; background: #fff">kWh</p></main></body></html>'
    )
    found = {v["id"]: v for v in axe.violations(page)}
    assert sorted(found) == ["color-contrast", "image-alt"]
    assert [n["target"] for n in found["image-alt"]["nodes"]] == ["#meter"]
    assert [n["target"] for n in found["color-contrast"]["nodes"]] == ["#faint"]
    text = axe.report("self-test", list(found.values()))
    assert '<img id="meter"' in text
    assert "contrast" in text
    with pytest.raises(AssertionError, match="image-alt"):
        axe.check(page, "self-test")
    page.locator("#meter").evaluate("(img) => img.setAttribute('alt', 'Electricity meter')")
    page.locator("#faint").evaluate("(p) => { p.style.color = '#555'; }")
    assert axe.violations(page) == []
    page.close()


def _household(world: World, index: int) -> Household:
    with session_factory(world.engine)() as session:
        user = session.query(User).filter_by(username=world.residents[index]).one()
        household = session.get(Household, user.household_id)
        assert household is not None
        session.expunge(household)
        return household


def test_portal_welcome_and_operator_pages(
    portal_url: str, browser: Browser, world: World, tmp_path: Path
) -> None:
    url = portal_url
    audit = Audit(tmp_path)
    world.app.state.portal.quarter.wait(120)  # the quarter's figures, so the pages show everything
    last = _household(world, len(world.residents) - 1)
    household_id, household_name = last.id, last.name
    with session_factory(world.engine)() as session:
        # in a building of the world, no resident, no data: deleted for a record on /ops/deletions,
        # so the world (shared with the portal tests) is as before
        leaving = f.household(session, last.building_id)
        commit(session)
        leaving_id, leaving_name = leaving.id, leaving.name

    for lang in LANGS:
        page = _context(browser, lang)
        page.goto(f"{url}/portal")
        audit(page, f"login-{lang}")
        page.locator("#username").fill("nobody")
        page.locator("#password").fill("wrong")
        page.locator("form.stack button[type=submit]").click()
        audit(page, f"login-failed-{lang}")
        _log_in_at(page, f"{url}/portal", world.residents[0])
        audit(page, f"portal-now-{lang}")
        for view in ("day", "week", "month", "year"):
            page.goto(f"{url}/portal?view={view}&date={DAY.isoformat()}")
            audit(page, f"portal-{view}-{lang}")
        page.goto(f"{url}/portal?view=day&date={SPARSE_DAY.isoformat()}")  # too few households
        audit(page, f"portal-few-households-{lang}")
        page.goto(f"{url}/portal?view=week")  # unfinished: compared with the same part of last week
        audit(page, f"portal-week-so-far-{lang}")
        page.goto(f"{url}/portal/devices")
        audit(page, f"portal-devices-{lang}")
        page.goto(f"{url}/portal?view=day&date=2025-13-01")
        audit(page, f"portal-400-{lang}")
        page.goto(f"{url}/tech")
        audit(page, f"tech-as-resident-{lang}")
        page.context.close()

        plain = _context(browser, lang, javascript=False)
        plain.goto(f"{url}/portal")
        _log_in_at(plain, f"{url}/portal", world.residents[0])
        plain.goto(f"{url}/portal?view=day&date={DAY.isoformat()}")
        audit(plain, f"portal-day-no-js-{lang}", javascript=False)
        plain.context.close()

        office = _context(browser, lang)
        office.goto(f"{url}/ops")
        _log_in_at(office, f"{url}/ops", world.operator)
        audit(office, f"ops-{lang}")
        office.goto(f"{url}/portal")
        audit(office, f"portal-as-operator-{lang}")
        office.goto(f"{url}/ops/households")
        audit(office, f"ops-households-{lang}")
        office.goto(f"{url}/ops/households/{household_id}/delete")
        audit(office, f"ops-delete-{lang}")
        office.locator("#reason").fill("Test")
        office.locator("#confirm_name").fill(household_name + "?")
        office.locator("#delete-yes").click()
        expect(office.locator("#problem")).to_be_visible()
        audit(office, f"ops-delete-mismatch-{lang}")
        if lang == "de":
            office.goto(f"{url}/ops/deletions")
            audit(office, "ops-deletions-none-de")
            office.goto(f"{url}/ops/households/{leaving_id}/delete")
            office.locator("#reason").fill("Auszug")
            office.locator("#confirm_name").fill(leaving_name)
            office.locator("#delete-yes").click()
            office.wait_for_url(f"{url}/ops/deletions?done=*")
            audit(office, "ops-deletions-done-de")
        else:
            office.goto(f"{url}/ops/deletions")
            audit(office, f"ops-deletions-{lang}")

        office.goto(f"{url}/tech/invitations")
        audit(office, f"invitations-{lang}")
        office.locator("#household_id").select_option(str(household_id))
        office.locator("#days").fill("14")
        office.locator("#invite-form button[type=submit]").click()
        code = office.locator("#invitation-code").inner_text()
        assert CODE.fullmatch(code), code
        audit(office, f"invitation-created-{lang}")
        office.goto(f"{url}/tech/invitations")
        audit(office, f"invitations-open-{lang}")
        office.context.close()

        newcomer = _context(browser, lang)
        newcomer.goto(f"{url}/portal/welcome")
        audit(newcomer, f"welcome-code-{lang}")
        newcomer.locator("#code").fill("AAAA-AAAA-AAAA-AAAA")
        newcomer.locator("#code-form button[type=submit]").click()
        expect(newcomer.locator("#welcome-error")).to_be_visible()
        audit(newcomer, f"welcome-wrong-code-{lang}")
        newcomer.locator("#code").fill(code)
        newcomer.locator("#code-form button[type=submit]").click()
        expect(newcomer.locator("#account-form")).to_be_visible()
        audit(newcomer, f"welcome-account-{lang}")
        newcomer.locator("#password").fill("Mein Balkon hat 3 Tomaten")
        newcomer.locator("#password_again").fill("Mein Balkon hat 4 Tomaten")
        newcomer.locator("#account-form button[type=submit]").click()
        expect(newcomer.locator("#password_again")).to_have_attribute("aria-invalid", "true")
        audit(newcomer, f"welcome-passwords-differ-{lang}")
        newcomer.context.close()
    audit.assert_clean()


def test_technician_pages(
    server: str,
    browser: Browser,
    registry_engine: Engine,
    broker_admin: DynsecAdmin,
    tmp_path: Path,
    unique: str,
) -> None:
    audit = Audit(tmp_path)
    tech = tech_world(registry_engine, broker_admin, unique)
    with session_factory(registry_engine)() as session:
        technician = f.user(session, Role.technician).username
        commit(session)
    csv = tmp_path / "devices.csv"
    csv.write_text(f"gateway,native_id,profile\n{tech.gateway_name},a+b,bogus\nnogw,x1,generic-json\n")
    for lang in LANGS:
        page = _context(browser, lang)
        page.goto(f"{server}/tech/login")
        audit(page, f"tech-login-{lang}")
        _log_in_at(page, f"{server}/tech", tech.operator)
        for name, path in tech.pages().items():
            page.goto(server + path)
            audit(page, f"{name}-{lang}")
        for name, path in {"import": "/tech/import", "discovery": "/tech/discovery"}.items():
            page.goto(server + path)
            audit(page, f"{name}-{lang}")
        page.goto(f"{server}/tech/devices/{tech.device_id}")
        page.locator(f"form[action='/tech/devices/{tech.device_id}/commission'] button[type=submit]").click()
        expect(page.locator("#events li").first).to_be_visible()  # a run listening, as it is watched
        audit(page, f"run-live-{lang}")

        page.goto(f"{server}/tech/gateways/new")
        audit(page, f"gateway-new-{lang}")
        page.locator("#name").fill(tech.gateway_name)
        page.locator("#notes").fill("=1+1")
        page.locator("form.stack button[type=submit]").click()
        expect(page.locator("#form-error")).to_be_visible()
        audit(page, f"gateway-new-errors-{lang}")
        page.locator("#name").fill(f"n{lang}{unique}")
        page.locator("#notes").fill("")
        page.locator("form.stack button[type=submit]").click()
        expect(page.locator("#form-error")).to_have_count(0)
        audit(page, f"gateway-created-{lang}")

        page.goto(f"{server}/tech/devices/new")
        audit(page, f"device-new-{lang}")
        page.locator("#gateway_id").select_option(str(tech.gateway_id))
        page.locator("#native_id").fill("zaehler+1")
        page.locator("#location").fill("=x")
        expect(page.locator("#err-native_id")).not_to_be_empty()
        expect(page.locator("#err-location")).not_to_be_empty()
        audit(page, f"device-new-live-{lang}")
        page.locator("#device-form button[type=submit]").click()
        expect(page.locator(".notice.bad")).to_be_visible()
        audit(page, f"device-new-errors-{lang}")

        page.goto(f"{server}/tech/import")
        page.locator("#file").set_input_files(str(csv))
        page.locator("form.stack button[type=submit]").click()
        expect(page.locator("#import-report")).to_be_visible()
        audit(page, f"import-errors-{lang}")

        page.goto(f"{server}/tech/gateways/{tech.gateway_id}")
        page.locator("#rotate").click()
        expect(page.locator("#gateway-password")).to_be_visible()
        audit(page, f"gateway-rotated-{lang}")
        page.context.close()

        staff = _context(browser, lang)
        staff.goto(f"{server}/tech/login")
        _log_in_at(staff, f"{server}/tech", technician)
        staff.goto(f"{server}/tech/invitations")
        audit(staff, f"invitations-as-technician-{lang}")
        staff.goto(f"{server}/ops/households")
        audit(staff, f"ops-households-as-technician-{lang}")
        staff.context.close()

        stranger = _context(browser, lang)
        stranger.goto(f"{server}/tech/login")
        _log_in_at(stranger, f"{server}/portal", tech.resident)
        stranger.goto(f"{server}/tech")
        audit(stranger, f"forbidden-{lang}")
        stranger.context.close()

    page = _context(browser, "en")
    page.goto(f"{server}/tech/login")
    _log_in_at(page, f"{server}/tech", tech.operator)
    page.goto(f"{server}/tech/gateways/{tech.gateway_id}/revoke")
    page.locator("#revoke-yes").click()
    expect(page.locator(".badge.revoked")).to_be_visible()
    audit(page, "gateway-revoked-en")
    page.context.close()
    audit.assert_clean()
