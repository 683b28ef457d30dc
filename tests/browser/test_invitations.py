"""Residents' access in headless Chromium at phone size: an operator creates an invitation on
/tech/invitations (the code shown once, a print-ready box), a resident types it on /portal/welcome,
chooses username and password, is logged in and sent to /portal, logs out (the session ends), and logs
in again on the one login page. German and English screenshots of every step."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from ingest.api.app import create_app
from ingest.api.security import SESSION_COOKIE
from ingest.config import Settings
from ingest.registry.db import session_factory
from ingest.registry.models import Household, Role
from tests.browser.conftest import PHONE, REPO, serve
from tests.browser.screens import shot
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]
PASSWORD = "Mein Balkon hat 3 Tomaten"
CODE = re.compile(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}")


@pytest.fixture
def invite_server(registry_engine: Engine, tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
    )
    with serve(create_app(settings, engine=registry_engine, migrate=False)) as url:
        yield url


def _phone(browser: Browser, lang: str) -> Page:
    locale = "de-DE" if lang == "de" else "en-GB"
    context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def _log_in(page: Page, username: str, password: str) -> None:
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("form.stack button[type=submit]").click()


def _invite(page: Page, server: str, household: Household, tmp_path: Path, lang: str) -> str:
    page.goto(f"{server}/tech/invitations")
    assert page.locator("#invite-form").is_visible()
    shot(page, tmp_path, f"invitations_{lang}")
    page.locator("#household_id").select_option(str(household.id))
    page.locator("#days").fill("14")
    page.locator("#invite-form button[type=submit]").click()
    code = page.locator("#invitation-code").inner_text()
    assert CODE.fullmatch(code), code
    assert f"{server}/portal/welcome" in page.locator("#letter").inner_text()
    shot(page, tmp_path, f"invitation_created_{lang}")
    page.emulate_media(media="print")  # only the letter's box prints
    assert not page.locator("header.bar").is_visible()
    assert not page.locator("nav.menu").is_visible()
    assert page.locator("#letter").is_visible()
    shot(page, tmp_path, f"invitation_print_{lang}")
    page.emulate_media(media="screen")
    return code


def test_invitation_to_login_and_logout(
    browser: Browser, invite_server: str, registry_engine: Engine, tmp_path: Path
) -> None:
    server = invite_server
    with session_factory(registry_engine)() as session:
        household = f.household(session)
        session.refresh(household)
        operator = f.user(session, Role.operator)

    # the operator: to the login and back, then one invitation in German and one in English
    office = _phone(browser, "de")
    office.goto(f"{server}/tech/invitations")
    _log_in(office, operator.username, f.PASSWORD)
    office.wait_for_url(f"{server}/tech/invitations")
    code_de = _invite(office, server, household, tmp_path, "de")
    office.locator("nav.langs a[hreflang=en]").click()
    office.wait_for_url(f"{server}/tech/invitations")
    assert office.locator("html").get_attribute("lang") == "en"
    code_en = _invite(office, server, household, tmp_path, "en")
    assert code_de != code_en
    office.goto(f"{server}/tech/invitations")
    assert code_de not in office.content()  # shown once only
    assert office.locator("#open-invitations li").count() == 2

    # the resident in German: a typo first, then the code as typed from the letter (small letters)
    home = _phone(browser, "de")
    home.goto(f"{server}/portal/welcome")
    assert home.locator("html").get_attribute("lang") == "de"
    shot(home, tmp_path, "welcome_code_de")
    home.locator("#code").fill(code_de[:-1] + ("A" if code_de[-1] != "A" else "B"))
    home.locator("#code-form button[type=submit]").click()
    assert "Dieser Code gilt nicht" in home.locator("#welcome-error").inner_text()
    assert home.locator("#code").get_attribute("aria-invalid") == "true"
    shot(home, tmp_path, "welcome_wrong_code_de")
    home.locator("#code").fill(code_de.lower().replace("-", " "))
    home.locator("#code-form button[type=submit]").click()
    assert household.name in home.locator("h1").inner_text()
    suggested = home.locator("#username").input_value()
    assert len(suggested) >= 3
    shot(home, tmp_path, "welcome_account_de")
    home.locator("#username").fill("erika.m")
    home.locator("#password").fill(PASSWORD)
    home.locator("#password_again").fill(PASSWORD + "?")
    home.locator("#account-form button[type=submit]").click()
    assert home.locator("#password_again").get_attribute("aria-invalid") == "true"
    shot(home, tmp_path, "welcome_passwords_differ_de")
    home.locator("#password").fill(PASSWORD)
    home.locator("#password_again").fill(PASSWORD)
    home.locator("#account-form button[type=submit]").click()
    home.wait_for_url(f"{server}/portal")  # logged in: the portal (built alongside; its URL is the contract)

    cookies = {c["name"]: c for c in home.context.cookies()}
    session_cookie = cookies[SESSION_COOKIE]
    assert session_cookie["httpOnly"]
    assert session_cookie["sameSite"] == "Strict"
    token = session_cookie["value"]
    me = httpx.get(f"{server}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["username"], me["role"], me["household_id"]) == ("erika.m", "resident", household.id)

    # logout: from the way out the resident finds on the staff pages; the session ends everywhere
    home.goto(f"{server}/tech")
    home.locator("form[action='/tech/logout'] button").click()
    home.wait_for_url(f"{server}/tech/login")
    assert SESSION_COOKIE not in {c["name"] for c in home.context.cookies()}
    assert httpx.get(f"{server}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # back again through the one login page: a resident lands on the portal
    _log_in(home, "erika.m", PASSWORD)
    home.wait_for_url(f"{server}/portal")

    # the code is used up; English: the other code, its steps and the neutral answer
    away = _phone(browser, "en")
    away.goto(f"{server}/portal/welcome")
    assert away.locator("html").get_attribute("lang") == "en"
    shot(away, tmp_path, "welcome_code_en")
    away.locator("#code").fill(code_de)
    away.locator("#code-form button[type=submit]").click()
    assert "This code is not valid" in away.locator("#welcome-error").inner_text()
    shot(away, tmp_path, "welcome_wrong_code_en")
    away.locator("#code").fill(code_en)
    away.locator("#code-form button[type=submit]").click()
    assert f"Your access for {household.name}" in away.locator("h1").inner_text()
    shot(away, tmp_path, "welcome_account_en")
